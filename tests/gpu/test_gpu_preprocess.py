"""GpuPreprocessor: its plumbing (pinned staging, async upload, kernel arguments, pointers, Transform)
against the fake runtime with a kernel emulated by the NumPy reference; and, marked ``gpu``, the real
kernel against the CPU path on each CUDA layer that finds a device."""

import threading

import numpy as np
import pytest
from cuda_bindings_fakes import EmulatedKernel, FakeCudaRuntime
from test_gpu_reference import frame_for, spec_for

from edge.config import InputSpec, PreprocessSpec
from edge.cuda import available_layers, gpu_available, kernels, open_cuda
from edge.cuda.cuda_python_layer import CudaPythonLayer
from edge.cuda.gpu_preprocess import GpuPreprocessor, reference_preprocess, tolerance
from edge.errors import EdgeError
from edge.preprocess import Preprocessor

LETTERBOX = ((1280, 720), (128, 128), "letterbox", "RGB", "NCHW", "float32", 3,
             dict(scale=1 / 255, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)), "linear")
STRETCH_F16 = ((640, 480), (224, 224), "stretch", "BGR", "NHWC", "float16", 3,
               dict(scale=1 / 255, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)), "linear")


@pytest.fixture()
def fake_gpu(monkeypatch):
    """(layer on the fake runtime, its stream, make(case) -> (GpuPreprocessor, kernel))."""
    runtime = FakeCudaRuntime()
    layer = CudaPythonLayer(0, runtime=runtime, native_handle=int)
    made = []

    def make(case):
        input_spec, spec = spec_for(case)
        kernel = EmulatedKernel(runtime)
        monkeypatch.setattr(kernels, "load_kernel", lambda layer: kernel)
        made.append(GpuPreprocessor(layer, input_spec, spec))
        return made[-1], kernel

    with layer.activate():
        stream = layer.stream()
    yield layer, stream, make
    for gpu in made:
        gpu.close()
    layer.close()
    assert runtime.heap.blocks == {} and runtime.host == {}


@pytest.mark.parametrize("case", [LETTERBOX, STRETCH_F16])
def test_a_frame_goes_through_staging_and_the_kernel_into_the_input_tensor(fake_gpu, case):
    layer, stream, make = fake_gpu
    gpu, kernel = make(case)
    frame = frame_for(case[0])
    ptr, transform = gpu(frame, stream)
    cpu, cpu_transform = Preprocessor(*spec_for(case))(frame)
    assert ptr == gpu.output_ptr and transform == cpu_transform
    result = gpu.download(stream)
    assert result.shape == gpu.output_shape == cpu.shape and result.dtype == cpu.dtype
    assert (np.abs(result.astype(float) - cpu.astype(float)) <= tolerance(*spec_for(case), cpu)).all()
    values = kernel.launches[0]
    assert values["src_pitch"] == case[0][0] * 3 and values["dst"] == gpu.output_ptr
    assert values["flags"] & kernels.SWAP_RB == (kernels.SWAP_RB if case[3] == "RGB" else 0)


def test_non_contiguous_frames_and_growing_sizes_reuse_or_regrow_the_staging(fake_gpu):
    layer, stream, make = fake_gpu
    gpu, _ = make(LETTERBOX)
    big = np.ascontiguousarray(frame_for((1280, 720)))
    gpu(big[::2, ::2], stream)  # a strided view: copied into the staging buffer
    small_result = gpu.download(stream)
    expected = reference_preprocess(np.ascontiguousarray(big[::2, ::2]), *spec_for(LETTERBOX))[0]
    np.testing.assert_array_equal(small_result, expected)
    gpu(big, stream)
    np.testing.assert_array_equal(gpu.download(stream), reference_preprocess(big, *spec_for(LETTERBOX))[0])


def test_run_on_device_takes_a_pitch_and_an_output_slot(fake_gpu):
    layer, stream, make = fake_gpu
    gpu, kernel = make(LETTERBOX)
    frame = frame_for((320, 200))
    pitch = 320 * 3 + 64
    with layer.activate():
        padded = layer.alloc_host((200, pitch), np.uint8)
        padded.array[:, :320 * 3] = frame.reshape(200, -1)
        device = layer.alloc_device(padded.array.nbytes)
        layer.copy_to_device(device.ptr, padded.array, stream)
        slot = layer.alloc_device(gpu.output_nbytes)
        ptr, transform = gpu.run_on_device(device.ptr, (320, 200), stream, row_stride_bytes=pitch, out_ptr=slot.ptr)
    assert ptr == slot.ptr and kernel.launches[-1]["src_pitch"] == pitch
    expected, expected_transform = reference_preprocess(frame, *spec_for(LETTERBOX))
    assert transform == expected_transform
    written = np.frombuffer(layer_heap(layer).read(slot.ptr, gpu.output_nbytes), np.float32)
    np.testing.assert_array_equal(written, expected.ravel())


def layer_heap(layer):
    return layer.runtime_module.heap


@pytest.mark.parametrize("frame, message", [
    (np.zeros((4, 4), np.uint8), "BGR uint8 frame"),
    (np.zeros((4, 4, 3), np.float32), "BGR uint8 frame"),
    (np.zeros((0, 4, 3), np.uint8), "non-empty"),
])
def test_bad_frames_are_one_line_errors(fake_gpu, frame, message):
    layer, stream, make = fake_gpu
    gpu, _ = make(LETTERBOX)
    with pytest.raises(EdgeError, match=message):
        gpu(frame, stream)


def test_close_frees_and_unloads_once_and_then_refuses_work(fake_gpu):
    layer, stream, make = fake_gpu
    gpu, kernel = make(LETTERBOX)
    gpu(frame_for((64, 48)), stream)
    with gpu:
        pass
    gpu.close()
    assert kernel.closed
    with pytest.raises(EdgeError, match="closed"):
        gpu(frame_for((64, 48)), stream)


def test_unsupported_configs_fail_before_any_allocation():
    input_spec = InputSpec("x", (1, 3, 8, 8))
    with pytest.raises(EdgeError, match="interpolation"):
        GpuPreprocessor(object(), input_spec, PreprocessSpec(interpolation="area"))


# ------------------------------------------------------------------------------------------ real GPU

USABLE = [name for name, reason in available_layers() if reason is None]
requires_gpu = pytest.mark.skipif(not gpu_available()[0], reason=f"no CUDA device: {gpu_available()[1]}")
GPU_CASES = [LETTERBOX, STRETCH_F16, ((1920, 1080), (640, 640), "letterbox", "RGB", "NCHW", "float16", 3,
                                      dict(scale=1 / 255, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)), "nearest"),
             ((1280, 720), (112, 112), "center_crop", "RGB", "NHWC", "uint8", 1,
              dict(scale=1.0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)), "linear")]


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("layer_name", USABLE or ["none"])
@pytest.mark.parametrize("case", GPU_CASES, ids=lambda c: f"{c[1][0]}-{c[2]}-{c[5]}-{c[8]}")
def test_real_kernel_equals_the_reference_and_the_cpu_path(layer_name, case):
    frame = frame_for(case[0])
    input_spec, spec = spec_for(case)
    with open_cuda(layer_name) as layer:
        with GpuPreprocessor(layer, input_spec, spec) as gpu, layer.activate():
            stream = layer.stream()
            gpu(frame, stream)
            result = gpu.download(stream)
    np.testing.assert_array_equal(result, reference_preprocess(frame, input_spec, spec)[0])
    cpu = Preprocessor(input_spec, spec)(frame)[0]
    assert (np.abs(result.astype(float) - cpu.astype(float)) <= tolerance(input_spec, spec, cpu)).all()


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("layer_name", USABLE or ["none"])
def test_real_layer_created_on_main_works_on_a_worker_thread(layer_name):
    layer = open_cuda(layer_name)
    errors = []
    with layer.activate():
        host = layer.alloc_host((1 << 20,), np.uint8)
        back = layer.alloc_host((1 << 20,), np.uint8)
        device = layer.alloc_device(1 << 20)

    def work():
        try:
            with layer.activate():
                stream = layer.stream()
                host.array[:] = np.arange(1 << 20) % 251
                layer.copy_to_device(device.ptr, host.array, stream)
                layer.copy_to_host(back.array, device.ptr, stream)
                stream.synchronize()
        except Exception as exc:  # noqa: BLE001 - reported on the test thread
            errors.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    assert not errors
    np.testing.assert_array_equal(back.array, host.array)
    layer.close()
