"""The cuda-python layer against a faithful fake of ``cuda.bindings.runtime``: call order, the current
device per thread, every error as CudaError naming the call and cudaGetErrorName, zero-copy through
cudaHostAlloc(cudaHostAllocMapped) + cudaHostGetDevicePointer."""

import threading

import numpy as np
import pytest
from cuda_bindings_fakes import FakeCudaRuntime, cudaError_t, cudaMemcpyKind
from cuda_fakes import run_in_thread

from edge.cuda.base import CudaError, DeviceInfo
from edge.cuda.cuda_python_layer import CudaPythonLayer, native_handle
from edge.errors import EdgeError


def make(fake: FakeCudaRuntime, device: int = 0) -> CudaPythonLayer:
    return CudaPythonLayer(device, runtime=fake, native_handle=int)


def test_construction_reads_the_device_and_initialises_its_primary_context():
    fake = FakeCudaRuntime(integrated=True)
    layer = make(fake)
    assert fake.log.names() == ["cudaGetDeviceCount", "cudaGetDeviceProperties", "cudaGetDevice", "cudaSetDevice"]
    assert layer.device() == DeviceInfo(0, "Fake Orin", (8, 7), 8 << 30, True)
    layer.close()


def test_activate_sets_the_device_on_the_calling_thread_and_restores_the_previous_one():
    fake = FakeCudaRuntime(devices=2)
    layer = make(fake, device=1)
    fake.cudaSetDevice(0)
    with layer.activate():
        assert fake.current_device() == 1
    assert fake.current_device() == 0
    layer.close()


def test_before_cuda_12_activate_forces_the_lazy_context_with_cudafree0():
    fake = FakeCudaRuntime(version=11040)
    layer = make(fake)
    fake.log.calls.clear()
    with layer.activate():
        pass
    assert fake.log.names() == ["cudaGetDevice", "cudaSetDevice", "cudaFree"]
    layer.close()


@pytest.mark.parametrize("mapped", [False, True])
def test_round_trip_and_the_zero_copy_path(mapped):
    fake = FakeCudaRuntime()
    with make(fake) as layer, layer.activate():
        host = layer.alloc_host((3, 4), np.float16, mapped=mapped)
        back = layer.alloc_host((3, 4), np.float16)
        device = layer.alloc_device(host.array.nbytes)
        stream = layer.stream()
        host.array[:] = np.arange(12).reshape(3, 4)
        layer.copy_to_device(device.ptr, host.array, stream)
        layer.copy_to_host(back.array, device.ptr, stream)
        stream.synchronize()
        np.testing.assert_array_equal(back.array, host.array)
    calls = [(name, args) for _, name, args in fake.log.calls]
    if mapped:
        assert ("cudaHostAlloc", (24, FakeCudaRuntime.cudaHostAllocMapped)) in calls
        assert calls[calls.index(("cudaHostAlloc", (24, 2))) + 1][0] == "cudaHostGetDevicePointer"
        assert host.device_ptr is not None
    else:
        assert host.device_ptr is None and "cudaHostAlloc" not in fake.log.names()
    assert ("cudaStreamCreateWithFlags", (FakeCudaRuntime.cudaStreamNonBlocking,)) in calls
    kinds = [args[0] for name, args in calls if name == "cudaMemcpyAsync"]
    assert kinds == [cudaMemcpyKind.cudaMemcpyHostToDevice, cudaMemcpyKind.cudaMemcpyDeviceToHost]
    assert stream.handle == int(stream.raw)


@pytest.mark.parametrize("call, error", [
    ("cudaMalloc", cudaError_t.cudaErrorMemoryAllocation),
    ("cudaMallocHost", cudaError_t.cudaErrorMemoryAllocation),
    ("cudaStreamCreateWithFlags", cudaError_t.cudaErrorInvalidValue),
    ("cudaMemcpyAsync", cudaError_t.cudaErrorInvalidValue),
    ("cudaSetDevice", cudaError_t.cudaErrorInvalidDevice),
])
def test_every_failing_call_raises_cuda_error_naming_the_call_and_the_error(call, error):
    fake = FakeCudaRuntime()
    layer = make(fake)
    fake.fail[call] = error
    with pytest.raises(CudaError, match=rf"^{call} failed: {error.name}$"):
        with layer.activate():
            host = layer.alloc_host((4,), np.uint8)
            layer.copy_to_device(layer.alloc_device(4).ptr, host.array, layer.stream())
    layer.close()


def test_a_mapped_allocation_whose_device_pointer_fails_is_freed():
    fake = FakeCudaRuntime()
    layer = make(fake)
    fake.fail["cudaHostGetDevicePointer"] = cudaError_t.cudaErrorInvalidValue
    with layer.activate(), pytest.raises(CudaError, match="cudaHostGetDevicePointer failed: cudaErrorInvalidValue"):
        layer.alloc_host((4,), np.uint8, mapped=True)
    assert fake.host == {} and fake.log.names()[-1] == "cudaFreeHost"
    layer.close()


def test_a_layer_created_on_one_thread_works_inside_activate_on_another():
    fake = FakeCudaRuntime()
    layer = make(fake)
    with layer.activate():
        host = layer.alloc_host((8,), np.uint8)
        device = layer.alloc_device(8)

    def work():
        with layer.activate():
            device_there = fake.current_device()
            stream = layer.stream()
            host.array[:] = 7
            layer.copy_to_device(device.ptr, host.array, stream)
            stream.synchronize()
            return device_there

    device_there, worker = run_in_thread(work)
    assert device_there == 0
    assert fake.log.names(worker)[:2] == ["cudaGetDevice", "cudaSetDevice"]  # set on the worker thread itself
    assert fake.heap.read(device.ptr, 8) == b"\x07" * 8
    run_in_thread(layer.close)  # any thread may close a cuda-python layer
    assert fake.heap.blocks == {} and fake.host == {} and fake.streams == {}


def test_close_frees_buffers_and_streams_once():
    fake = FakeCudaRuntime()
    layer = make(fake)
    with layer.activate():
        layer.alloc_device(32)
        layer.alloc_host((2,), np.float32, mapped=True)
        layer.stream()
        freed_early = layer.alloc_device(8)
        freed_early.free()
        freed_early.free()
    layer.close()
    layer.close()
    names = fake.log.names()
    assert names.count("cudaFree") == 2 and names.count("cudaFreeHost") == 1 and names.count("cudaStreamDestroy") == 1
    assert names[-3:] == ["cudaStreamDestroy", "cudaFreeHost", "cudaFree"]
    with pytest.raises(CudaError, match="closed"):
        with layer.activate():
            pass


@pytest.mark.parametrize("fake, device, message", [
    (FakeCudaRuntime(count_error=cudaError_t.cudaErrorNoDevice), 0,
     r"^cuda-python \| no CUDA device \(cudaErrorNoDevice\)\. Fix: run on a machine with an NVIDIA GPU"),
    (FakeCudaRuntime(devices=0), 0, r"no CUDA device \(cudaErrorNoDevice\)"),
    (FakeCudaRuntime(count_error=cudaError_t.cudaErrorInsufficientDriver), 0,
     r"driver is missing or older .*\(cudaErrorInsufficientDriver\)\. Fix: install the NVIDIA driver"),
    (FakeCudaRuntime(devices=1), 3, r"CUDA device 3 does not exist \(1 found\)"),
])
def test_no_device_is_a_one_line_edge_error_with_the_fix(fake, device, message):
    with pytest.raises(EdgeError, match=message) as info:
        make(fake, device)
    assert "\n" not in str(info.value)


def test_native_handle_uses_get_cuda_native_handle_with_real_cuda_python():
    runtime = pytest.importorskip("cuda.bindings.runtime", reason="cuda-python (cuda.bindings) is not installed")
    assert native_handle(runtime.cudaStream_t(1234)) == 1234


def test_threads_do_not_share_the_current_device():
    fake = FakeCudaRuntime(devices=2)
    layer = make(fake, device=1)
    seen = []
    barrier = threading.Barrier(2)

    def work():
        with layer.activate():
            barrier.wait()
            seen.append(fake.current_device())

    other = threading.Thread(target=work)
    other.start()
    barrier.wait()
    other.join()
    assert seen == [1] and fake.current_device() in (None, 0)  # this thread's device was not touched
    layer.close()
