"""The PyCUDA layer against a faithful fake of ``pycuda.driver``: call order, push/pop balance on the
right thread, errors as CudaError naming the call, zero-copy through DEVICEMAP + get_device_pointer."""

import threading

import numpy as np
import pytest
from cuda_fakes import FakePycudaDriver, run_in_thread

from edge.cuda.base import CudaError, DeviceInfo
from edge.cuda.pycuda_layer import STREAM_NON_BLOCKING, PyCudaLayer
from edge.errors import EdgeError


def test_construction_retains_the_primary_context_without_making_it_current():
    fake = FakePycudaDriver(integrated=True)
    layer = PyCudaLayer(0, driver=fake)
    assert fake.log.names() == ["init", "Device.count", "Device", "Device.retain_primary_context"]
    assert fake.stack() == []  # nothing left current on the creating thread
    assert layer.device() == DeviceInfo(0, "Fake GPU", (8, 7), 8 << 30, True)
    layer.close()


def test_activate_pushes_and_pops_balanced_even_nested_and_on_error():
    fake = FakePycudaDriver()
    layer = PyCudaLayer(0, driver=fake)
    with layer.activate():
        with layer.activate():
            assert len(fake.stack()) == 2
        assert len(fake.stack()) == 1
    with pytest.raises(ZeroDivisionError):
        with layer.activate():
            raise ZeroDivisionError
    assert fake.stack() == []
    names = fake.log.names()
    assert names.count("Context.push") == names.count("Context.pop") == 3
    layer.close()


@pytest.mark.parametrize("mapped, flags", [(False, 0), (True, 2)])
def test_round_trip_through_pinned_memory_and_the_zero_copy_path(mapped, flags):
    fake = FakePycudaDriver()
    with PyCudaLayer(0, driver=fake) as layer, layer.activate():
        host = layer.alloc_host((4, 5), np.float32, mapped=mapped)
        back = layer.alloc_host((4, 5), np.float32)
        device = layer.alloc_device(host.array.nbytes)
        stream = layer.stream()
        host.array[:] = np.arange(20, dtype=np.float32).reshape(4, 5)
        layer.copy_to_device(device.ptr, host.array, stream)
        layer.copy_to_host(back.array, device.ptr, stream)
        stream.synchronize()
        np.testing.assert_array_equal(back.array, host.array)
    assert ("pagelocked_empty", ((4, 5), flags)) in [(n, a) for _, n, a in fake.log.calls]
    assert ("HostAllocation.get_device_pointer" in fake.log.names()) is mapped
    assert (host.device_ptr is not None) is mapped
    assert ("Stream", (STREAM_NON_BLOCKING,)) in [(n, a) for _, n, a in fake.log.calls]
    assert isinstance(stream.handle, int)


def test_async_copies_refuse_pageable_memory():
    fake = FakePycudaDriver()
    with PyCudaLayer(0, driver=fake) as layer, layer.activate():
        device = layer.alloc_device(16)
        with pytest.raises(ValueError, match="not page-locked"):
            layer.copy_to_device(device.ptr, np.zeros(4, np.float32), layer.stream())


def test_calls_outside_activate_fail_as_cuda_error_naming_the_call():
    fake = FakePycudaDriver()
    layer = PyCudaLayer(0, driver=fake)
    with pytest.raises(CudaError, match=r"cuMemAlloc failed: .*no currently active context"):
        layer.alloc_device(16)
    layer.close()


def test_a_layer_created_on_one_thread_works_inside_activate_on_another():
    fake = FakePycudaDriver()
    layer = PyCudaLayer(0, driver=fake)
    main = threading.get_ident()
    with layer.activate():
        host = layer.alloc_host((8,), np.uint8)
        device = layer.alloc_device(8)

    def work():
        with layer.activate():
            stream = layer.stream()
            host.array[:] = np.arange(8, dtype=np.uint8)
            layer.copy_to_device(device.ptr, host.array, stream)
            stream.synchronize()
            return len(fake.stack())

    depth, worker = run_in_thread(work)
    assert depth == 1
    assert fake.log.names(worker) == ["Context.push", "Stream", "memcpy_htod_async", "Stream.synchronize",
                                      "Context.pop"]
    assert fake.heap.read(device.ptr, 8) == bytes(range(8))
    with pytest.raises(CudaError, match="no currently active context"):  # without activate(): PyCUDA's error
        run_in_thread(lambda: layer.alloc_device(8))
    layer.close()
    assert fake.stack() == [] and fake.log.names(main)[-1] == "Context.detach"


def test_close_frees_everything_then_detaches_on_the_creating_thread_and_is_idempotent():
    fake = FakePycudaDriver()
    layer = PyCudaLayer(0, driver=fake)
    with layer.activate():
        host = layer.alloc_host((4,), np.float32)
        layer.alloc_device(64)
    layer.close()
    layer.close()
    names = fake.log.names()
    assert names[-5:] == ["Context.push", "DeviceAllocation.free", "HostAllocation.free", "Context.pop",
                          "Context.detach"]
    assert names.count("Context.detach") == 1 and len(fake.released) == 1
    assert host.array.base.freed
    with pytest.raises(CudaError, match="closed"):
        with layer.activate():
            pass


def test_close_on_another_thread_raises_instead_of_leaking_the_context():
    fake = FakePycudaDriver()
    layer = PyCudaLayer(0, driver=fake)
    with pytest.raises(CudaError, match="thread that created"):
        run_in_thread(layer.close)
    assert fake.released == []
    layer.close()
    assert len(fake.released) == 1


@pytest.mark.parametrize("fake, device, message", [
    (FakePycudaDriver(init_error="cuInit failed: no CUDA-capable device is detected"), 0,
     r"pycuda \| no CUDA device \(cuInit failed: no CUDA-capable device is detected\)\..*Fix: run on a machine"),
    (FakePycudaDriver(devices=0), 0, r"no CUDA device \(cuDeviceGetCount returned 0\)"),
    (FakePycudaDriver(devices=2), 2, r"CUDA device 2 does not exist \(2 found\)\. Fix: pick a device 0\.\.1"),
])
def test_no_device_is_a_one_line_edge_error_with_the_fix(fake, device, message):
    with pytest.raises(EdgeError, match=message) as info:
        PyCudaLayer(device, driver=fake)
    assert "\n" not in str(info.value)
