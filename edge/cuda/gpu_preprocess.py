"""Preprocessing on the GPU: one kernel launch turns a BGR uint8 frame into the engine's input tensor.

``GpuPreprocessor(layer, input_spec, preprocess_spec)`` does what ``edge.preprocess.Preprocessor``
does, in device memory, and returns the same ``Transform`` (both call ``edge.preprocess.geometry``).
``reference_preprocess`` is the kernel's arithmetic in NumPy, so the maths is tested without a GPU.

Agreement with the CPU path: the kernel repeats OpenCV's uint8 arithmetic (the resize's fixed-point
weights and SIMD rounding, the gray conversion's 15-bit weights; see ``edge.cuda.kernels``) and the
same float32 ``pixel * gain + bias``. Measured against opencv-python 5.0 (x86_64): float32 and uint8
outputs identical; float16 within 0.23 grey levels (the CPU path computes in float16).

The stated bound, for every value: ``|gpu - cpu| <= |gain_c| * 1 grey level`` (``gain_c = scale /
std_c``: 1/255 in normalised units for ``scale = 1/255, std = 1``), leaving room for OpenCV builds
whose rounding differs; float16 adds the CPU path's own rounding ``(255 * |gain_c| + |bias_c|) * 2**-10``;
uint8: 1 level. ``tolerance()`` computes it; ``tests/gpu/test_gpu_reference.py`` checks it.
"""

from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np

from edge.config import InputSpec, PreprocessSpec
from edge.cuda import kernels
from edge.cuda.base import CudaLayer, DeviceBuffer, HostBuffer, Stream
from edge.errors import EdgeError
from edge.preprocess import geometry
from edge.transform import Transform

GPU_INTERPOLATIONS = ("linear", "nearest")
_DTYPE_FLAGS = {"float32": 0, "float16": kernels.OUT_F16, "uint8": kernels.OUT_U8}


@dataclass(frozen=True)
class KernelPlan:
    """Everything the kernel needs for one source size, except the two pointers."""

    crop_xywh: Tuple[int, int, int, int]
    resized_wh: Tuple[int, int]
    paste_xy: Tuple[int, int]
    scale_xy: Tuple[float, float]  # source pixels per resized pixel, as OpenCV computes it (1 / (dst / src))
    out_wh: Tuple[int, int]
    gain: Tuple[float, float, float]  # float32 values, per model channel
    bias: Tuple[float, float, float]
    pad_value: int
    flags: int
    transform: Optional[Transform]

    def launch_args(self, src_ptr: int, src_pitch: int, dst_ptr: int) -> kernels.LaunchArgs:
        """The kernel's argument list for this plan."""
        (cx, cy, cw, ch), (rw, rh), (px, py) = self.crop_xywh, self.resized_wh, self.paste_xy
        return kernels.LaunchArgs((src_ptr, src_pitch, cx, cy, cw, ch, rw, rh, px, py, *self.scale_xy, dst_ptr,
                                   *self.out_wh, *self.gain, *self.bias, self.pad_value, self.flags))


def check_supported(input_spec: InputSpec, spec: PreprocessSpec) -> None:
    """EdgeError when the kernel cannot do what the config asks."""
    if spec.interpolation not in GPU_INTERPOLATIONS:
        raise EdgeError(f"GPU preprocessing supports interpolation {' or '.join(GPU_INTERPOLATIONS)}, "
                        f"not {spec.interpolation!r}", fix="set preprocess.interpolation to linear in the edge "
                        "config, or preprocess on the CPU", where="gpu preprocess")
    if input_spec.dtype not in _DTYPE_FLAGS or input_spec.channels not in (1, 3):
        raise EdgeError(f"GPU preprocessing cannot write a {input_spec.channels}-channel {input_spec.dtype} input",
                        fix="preprocess on the CPU", where="gpu preprocess")


def plan_for(source_wh: Tuple[int, int], input_spec: InputSpec, spec: PreprocessSpec) -> KernelPlan:
    """The kernel's parameters for frames of ``source_wh`` (uses the CPU path's ``geometry``)."""
    check_supported(input_spec, spec)
    crop, resized, paste, transform = geometry(source_wh, input_spec.size_wh, spec.resize)
    std = np.asarray(spec.std, np.float64)
    gain = (spec.scale / std).astype(np.float32)  # as Preprocessor computes them
    bias = (-np.asarray(spec.mean, np.float64) / std).astype(np.float32)
    flags = _DTYPE_FLAGS[input_spec.dtype]
    flags |= kernels.SWAP_RB if spec.color == "RGB" else 0
    flags |= kernels.NHWC if input_spec.layout == "NHWC" else 0
    flags |= kernels.GRAY if input_spec.channels == 1 else 0
    flags |= kernels.NEAREST if spec.interpolation == "nearest" else 0
    scale = (1.0 / (resized[0] / crop[2]), 1.0 / (resized[1] / crop[3]))
    return KernelPlan(tuple(crop), tuple(resized), tuple(paste), scale, input_spec.size_wh,
                      tuple(float(g) for g in gain), tuple(float(b) for b in bias), int(spec.pad_value), flags,
                      transform)


def _axis(out_size: int, paste: int, resized: int, crop: int, scale: float, nearest: bool, clamp_weight: bool):
    """Per output index along one axis, as the kernel computes them: (inside the pasted region,
    first source index, second source index, fixed-point weight of the first, of the second)."""
    r = np.clip(np.arange(out_size) - paste, 0, resized - 1)
    inside = (np.arange(out_size) - paste >= 0) & (np.arange(out_size) - paste < resized)
    if nearest:
        i0 = np.minimum(np.floor(r.astype(np.float64) * scale).astype(np.int64), crop - 1)
        return inside, i0, i0, np.full(out_size, 2048, np.int64), np.zeros(out_size, np.int64)
    position = ((r + 0.5) * scale - 0.5).astype(np.float32)
    i0 = np.floor(position).astype(np.int64)
    f = (position - i0.astype(np.float32)).astype(np.float32)
    if clamp_weight:  # columns: the weight goes to the border pixel
        low, high = i0 < 0, i0 >= crop - 1
        i0 = np.where(low, 0, np.where(high, crop - 1, i0))
        f = np.where(low | high, np.float32(0), f).astype(np.float32)
    i1 = np.clip(i0 + 1, 0, crop - 1)
    i0 = np.clip(i0, 0, crop - 1)
    w0 = np.rint((np.float32(1) - f) * np.float32(2048)).astype(np.int64)
    return inside, i0, i1, w0, np.rint(f * np.float32(2048)).astype(np.int64)


def reference_preprocess(frame_bgr: np.ndarray, input_spec: InputSpec, spec: PreprocessSpec
                         ) -> Tuple[np.ndarray, Transform]:
    """The kernel's exact arithmetic in NumPy: (input tensor with batch dim, Transform)."""
    frame = np.asarray(frame_bgr)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise EdgeError(f"expected a BGR uint8 frame (H, W, 3), got {frame.dtype} {frame.shape}",
                        where="gpu preprocess")
    plan = plan_for((frame.shape[1], frame.shape[0]), input_spec, spec)
    return run_plan(frame, plan), plan.transform


def run_plan(frame: np.ndarray, plan: KernelPlan) -> np.ndarray:
    """What the kernel writes for ``plan`` and a (H, W, 3) uint8 frame, as a (1, ...) array."""
    (cx, cy, cw, ch), (rw, rh), (px, py) = plan.crop_xywh, plan.resized_wh, plan.paste_xy
    out_w, out_h = plan.out_wh
    nearest = bool(plan.flags & kernels.NEAREST)
    in_x, x0, x1, a0, a1 = _axis(out_w, px, rw, cw, plan.scale_xy[0], nearest, clamp_weight=True)
    in_y, y0, y1, b0, b1 = _axis(out_h, py, rh, ch, plan.scale_xy[1], nearest, clamp_weight=False)
    crop = frame[cy:cy + ch, cx:cx + cw].astype(np.int64)
    rows = []
    for y, b in ((y0, b0), (y1, b1)):
        h = crop[y][:, x0] * a0[None, :, None] + crop[y][:, x1] * a1[None, :, None]
        rows.append((b[:, None, None] * (h >> 4)) >> 16)
    q = np.clip((rows[0] + rows[1] + 2) >> 2, 0, 255)
    if nearest:
        q = crop[y0][:, x0]
    q[~(in_y[:, None] & in_x[None, :])] = plan.pad_value
    if plan.flags & kernels.GRAY:
        planes = ((q[..., 0] * 3735 + q[..., 1] * 19235 + q[..., 2] * 9798 + 16384) >> 15)[..., None]
    else:
        planes = q[..., ::-1] if plan.flags & kernels.SWAP_RB else q
    channels = planes.shape[2]
    if plan.flags & kernels.OUT_U8:
        out = planes.astype(np.uint8)
    else:
        gain = np.asarray(plan.gain[:channels], np.float32)
        bias = np.asarray(plan.bias[:channels], np.float32)
        out = planes.astype(np.float32) * gain + bias
        out = out.astype(np.float16 if plan.flags & kernels.OUT_F16 else np.float32)
    out = out if plan.flags & kernels.NHWC else out.transpose(2, 0, 1)
    return np.ascontiguousarray(out[None])


def tolerance(input_spec: InputSpec, spec: PreprocessSpec, cpu: np.ndarray) -> np.ndarray:
    """The stated bound for each value of ``cpu`` (see the module docstring), in output units."""
    if input_spec.dtype == "uint8":
        return np.ones(cpu.shape)
    std = np.asarray(spec.std, np.float64)[:input_spec.channels]
    gain = np.abs(spec.scale / std)
    bound = gain * (1 + 1e-4)  # one grey level, and float32 rounding
    if input_spec.dtype == "float16":  # the CPU path multiplies and adds in float16: its roundings
        bias = np.abs(np.asarray(spec.mean, np.float64)[:input_spec.channels] / std)
        bound = bound + (255 * gain + bias) * 2.0 ** -10
    shape = (1, -1, 1, 1) if input_spec.layout == "NCHW" else (1, 1, 1, -1)
    return np.broadcast_to(bound.reshape(shape), cpu.shape)


class GpuPreprocessor:
    """Frames in, device input tensor out: ``(device pointer, Transform) = gpu(frame_bgr, stream)``.

    The tensor (``output_ptr``, ``output_nbytes`` bytes, ``output_shape``) and the pinned staging
    buffer are reused: synchronize the stream (or let the engine consume the tensor in the same
    stream) before the next call. A context manager; ``close()`` before the layer's ``close()``.
    """

    def __init__(self, layer: CudaLayer, input_spec: InputSpec, spec: PreprocessSpec) -> None:
        check_supported(input_spec, spec)
        self.layer, self.input_spec, self.spec = layer, input_spec, spec
        width, height = input_spec.size_wh
        channels = input_spec.channels
        self.output_shape = (1, channels, height, width) if input_spec.layout == "NCHW" else (1, height, width,
                                                                                              channels)
        self.output_dtype = np.dtype(input_spec.dtype)
        self.output_nbytes = int(np.prod(self.output_shape)) * self.output_dtype.itemsize
        self._plans: Dict[Tuple[int, int], KernelPlan] = {}
        self._staging: Optional[HostBuffer] = None
        self._frame: Optional[DeviceBuffer] = None
        self._download: Optional[HostBuffer] = None
        with layer.activate():
            self._kernel: Optional[kernels.Kernel] = kernels.load_kernel(layer)
            self._out: Optional[DeviceBuffer] = layer.alloc_device(self.output_nbytes)

    @property
    def output_ptr(self) -> int:
        """Device pointer of the input tensor this preprocessor writes."""
        if self._out is None:
            raise EdgeError("the GPU preprocessor is closed", fix="create a new one", where="gpu preprocess")
        return self._out.ptr

    def plan(self, source_wh: Tuple[int, int]) -> KernelPlan:
        """The (cached) kernel plan for one source size."""
        plan = self._plans.get(source_wh)
        if plan is None:
            if len(self._plans) > 8:
                self._plans.clear()
            plan = self._plans[source_wh] = plan_for(source_wh, self.input_spec, self.spec)
        return plan

    def __call__(self, frame_bgr: np.ndarray, stream: Stream) -> Tuple[int, Transform]:
        """Upload the frame (through pinned staging, async on ``stream``) and run the kernel."""
        frame = frame_bgr
        if (not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3
                or not frame.size):
            found = frame.shape if isinstance(frame, np.ndarray) else type(frame).__name__
            raise EdgeError(f"expected a non-empty BGR uint8 frame (H, W, 3), got {found}",
                            fix="pass frames as OpenCV reads them", where="gpu preprocess")
        height, width = frame.shape[:2]
        with self.layer.activate():
            staging = self._staging_for(frame.nbytes)
            view = staging.array[:frame.nbytes].reshape(frame.shape)
            np.copyto(view, frame)  # also makes a non-contiguous frame (a crop, a view) contiguous
            self.layer.copy_to_device(self._frame.ptr, view, stream)  # type: ignore[union-attr]
            return self.run_on_device(self._frame.ptr, (width, height), stream)  # type: ignore[union-attr]

    def run_on_device(self, frame_ptr: int, frame_wh: Tuple[int, int], stream: Stream,
                      row_stride_bytes: Optional[int] = None, out_ptr: Optional[int] = None) -> Tuple[int, Transform]:
        """Run the kernel on a BGR uint8 frame already in device memory.

        frame_ptr: device pointer; frame_wh: its size in pixels; row_stride_bytes: pitch (default
        width * 3); out_ptr: where to write (default this preprocessor's tensor, e.g. a slot of a
        calibration batch). Returns (the pointer written, Transform)."""
        if self._kernel is None:
            raise EdgeError("the GPU preprocessor is closed", fix="create a new one", where="gpu preprocess")
        width, height = int(frame_wh[0]), int(frame_wh[1])
        pitch = width * 3 if row_stride_bytes is None else int(row_stride_bytes)
        if width < 1 or height < 1 or pitch < width * 3:
            raise EdgeError(f"frame size {width}x{height} with row stride {pitch} bytes is not a BGR frame",
                            fix="pass (width, height) and a stride of at least width * 3", where="gpu preprocess")
        plan = self.plan((width, height))
        target = self.output_ptr if out_ptr is None else int(out_ptr)
        with self.layer.activate():
            self._kernel.launch(plan.launch_args(int(frame_ptr), pitch, target), kernels.grid_for(plan.out_wh),
                                stream)
        return target, plan.transform

    def download(self, stream: Stream) -> np.ndarray:
        """Copy the input tensor to the host (synchronizes ``stream``): for tests and checks."""
        with self.layer.activate():
            if self._download is None:
                self._download = self.layer.alloc_host(self.output_shape, self.output_dtype)
            self.layer.copy_to_host(self._download.array, self.output_ptr, stream)
            stream.synchronize()
            return self._download.array.copy()

    def _staging_for(self, nbytes: int) -> HostBuffer:
        if self._staging is None or self._staging.array.nbytes < nbytes:
            for buffer in (self._staging, self._frame):
                if buffer is not None:
                    buffer.free()
            self._staging = self.layer.alloc_host((nbytes,), np.uint8)
            self._frame = self.layer.alloc_device(nbytes)
        return self._staging

    def close(self) -> None:
        """Free the buffers and unload the kernel; idempotent."""
        if self._kernel is None:
            return
        with self.layer.activate():
            for buffer in (self._staging, self._frame, self._download, self._out):
                if buffer is not None:
                    buffer.free()
            self._kernel.close()
        self._kernel = self._out = self._staging = self._frame = self._download = None

    def __enter__(self) -> "GpuPreprocessor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
