"""The preprocessing kernel: CUDA C source, run-time compilation, and launch for either CUDA layer.

One thread per model-input pixel does, in one pass: the resize of the BGR uint8 frame as
``cv2.resize`` does it on uint8 (INTER_LINEAR: pixel centres aligned, ``src = (dst + 0.5) * scale - 0.5``
with ``scale`` in double, columns clamped at the borders, rows clamped, 11-bit fixed-point weights and
the rounding of OpenCV's SIMD path; INTER_NEAREST: ``src = floor(dst * scale)`` in double), the letterbox
pad (or the centre-crop offset), the colour swap (or BGR->gray with OpenCV's 15-bit weights),
``pixel * gain + bias`` (``gain = scale / std``, ``bias = -mean / std``, float32) and the store as
NCHW or NHWC float32, float16 or uint8. ``edge.cuda.gpu_preprocess.reference_preprocess`` is the
same arithmetic in NumPy; ``--fmad=false`` keeps ``pixel * gain + bias`` two roundings, as in NumPy.

Compilation: NVRTC (``cuda.bindings.nvrtc``) to a CUBIN for the device (or PTX for the newest
architecture NVRTC knows), else ``nvcc -cubin``; PyCUDA uses ``pycuda.compiler.SourceModule``.
"""

import ctypes
import functools
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Any, List, Sequence, Tuple

from edge.cuda.base import CudaError, CudaLayer, Stream
from edge.errors import EdgeError

KERNEL_NAME = "edge_preprocess"
BLOCK = (32, 8, 1)
COMPILE_OPTIONS = ("--fmad=false", "--std=c++14")

# flags: one bit each
SWAP_RB, NHWC, GRAY, NEAREST, OUT_F16, OUT_U8 = 1, 2, 4, 8, 16, 32

KERNEL_SOURCE = r"""
extern "C" __global__ void edge_preprocess(
    const unsigned char* __restrict__ src, int src_pitch,
    int crop_x, int crop_y, int crop_w, int crop_h,
    int resized_w, int resized_h, int paste_x, int paste_y,
    double scale_x, double scale_y,
    void* __restrict__ dst, int out_w, int out_h,
    float gain0, float gain1, float gain2, float bias0, float bias1, float bias2,
    int pad_value, int flags)
{
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= out_w || y >= out_h) return;
    const int rx = x - paste_x, ry = y - paste_y;
    int q[3] = {pad_value, pad_value, pad_value};  /* B, G, R after the resize, rounded like cv2 */
    if (rx >= 0 && ry >= 0 && rx < resized_w && ry < resized_h) {
        if (flags & 8) {  /* INTER_NEAREST: floor(dst * scale), in double as OpenCV */
            const int sx = min((int)floor((double)rx * scale_x), crop_w - 1);
            const int sy = min((int)floor((double)ry * scale_y), crop_h - 1);
            const unsigned char* p = src + (long long)(crop_y + sy) * src_pitch + (crop_x + sx) * 3;
            q[0] = p[0]; q[1] = p[1]; q[2] = p[2];
        } else {  /* INTER_LINEAR as cv2.resize does it on uint8: 11-bit weights, SIMD rounding */
            const float fxs = (float)(((double)rx + 0.5) * scale_x - 0.5);
            int sx = (int)floorf(fxs);
            float fx = fxs - (float)sx;
            if (sx < 0) { sx = 0; fx = 0.0f; }
            if (sx >= crop_w - 1) { sx = crop_w - 1; fx = 0.0f; }
            const int sx1 = min(sx + 1, crop_w - 1);
            const float fys = (float)(((double)ry + 0.5) * scale_y - 0.5);
            const int sy = (int)floorf(fys);
            const float fy = fys - (float)sy;  /* rows are clamped, the weight is not (as OpenCV) */
            const int sy0 = min(max(sy, 0), crop_h - 1), sy1 = min(max(sy + 1, 0), crop_h - 1);
            const int a0 = __float2int_rn((1.0f - fx) * 2048.0f), a1 = __float2int_rn(fx * 2048.0f);
            const int b0 = __float2int_rn((1.0f - fy) * 2048.0f), b1 = __float2int_rn(fy * 2048.0f);
            const unsigned char* r0 = src + (long long)(crop_y + sy0) * src_pitch;
            const unsigned char* r1 = src + (long long)(crop_y + sy1) * src_pitch;
            const int c0 = (crop_x + sx) * 3, c1 = (crop_x + sx1) * 3;
            for (int k = 0; k < 3; ++k) {
                const int h0 = r0[c0 + k] * a0 + r0[c1 + k] * a1;
                const int h1 = r1[c0 + k] * a0 + r1[c1 + k] * a1;
                const int v = (((b0 * (h0 >> 4)) >> 16) + ((b1 * (h1 >> 4)) >> 16) + 2) >> 2;
                q[k] = min(max(v, 0), 255);
            }
        }
    }
    int channels = 3;
    int value[3];
    if (flags & 4) {  /* cv2.COLOR_BGR2GRAY: OpenCV's 15-bit weights */
        channels = 1;
        value[0] = (q[0] * 3735 + q[1] * 19235 + q[2] * 9798 + 16384) >> 15;
    } else if (flags & 1) {  /* model wants RGB */
        value[0] = q[2]; value[1] = q[1]; value[2] = q[0];
    } else {
        value[0] = q[0]; value[1] = q[1]; value[2] = q[2];
    }
    const float gain[3] = {gain0, gain1, gain2};
    const float bias[3] = {bias0, bias1, bias2};
    const long long plane = (long long)out_w * out_h;
    const long long pixel = (long long)y * out_w + x;
    for (int c = 0; c < channels; ++c) {
        const long long i = (flags & 2) ? pixel * channels + c : c * plane + pixel;
        if (flags & 32) {
            ((unsigned char*)dst)[i] = (unsigned char)value[c];
            continue;
        }
        const float out = (float)value[c] * gain[c] + bias[c];
        if (flags & 16) {
            unsigned short h;
            asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(out));
            ((unsigned short*)dst)[i] = h;
        } else {
            ((float*)dst)[i] = out;
        }
    }
}
"""

# (name, C type) of each parameter, in order; 'p' pointer, 'i' int32, 'f' float32, 'd' float64
PARAMETERS: Tuple[Tuple[str, str], ...] = (
    ("src", "p"), ("src_pitch", "i"), ("crop_x", "i"), ("crop_y", "i"), ("crop_w", "i"), ("crop_h", "i"),
    ("resized_w", "i"), ("resized_h", "i"), ("paste_x", "i"), ("paste_y", "i"), ("scale_x", "d"), ("scale_y", "d"),
    ("dst", "p"), ("out_w", "i"), ("out_h", "i"), ("gain0", "f"), ("gain1", "f"), ("gain2", "f"),
    ("bias0", "f"), ("bias1", "f"), ("bias2", "f"), ("pad_value", "i"), ("flags", "i"),
)
_CTYPES = {"p": ctypes.c_void_p, "i": ctypes.c_int32, "f": ctypes.c_float, "d": ctypes.c_double}


def grid_for(out_wh: Tuple[int, int]) -> Tuple[int, int, int]:
    """Blocks per axis so that every output pixel gets one thread."""
    return (-(-out_wh[0] // BLOCK[0]), -(-out_wh[1] // BLOCK[1]), 1)


def _import_nvrtc() -> Any:
    try:
        from cuda.bindings import nvrtc
    except ImportError:
        from cuda import nvrtc  # cuda-python < 12.6.1 (removed in 13.0)
    return nvrtc


def _nvrtc_check(nvrtc: Any, result: Any, call: str) -> Any:
    err, rest = result[0], result[1:]
    if int(err) != 0:
        name = nvrtc.nvrtcGetErrorString(err)[1]
        raise CudaError(f"{call} failed: {name.decode() if isinstance(name, bytes) else name}")
    return rest[0] if len(rest) == 1 else rest


def nvrtc_compile(compute_capability: Tuple[int, int], nvrtc: Any = None) -> Tuple[bytes, str]:
    """Compile the kernel with NVRTC: (image, "cubin" | "ptx"). CUBIN for the device's own
    architecture when NVRTC supports it (loads on any driver of the same CUDA major), else PTX
    for the newest architecture below it (the driver JIT-compiles it)."""
    nvrtc = nvrtc or _import_nvrtc()
    arch = compute_capability[0] * 10 + compute_capability[1]
    supported = list(_nvrtc_check(nvrtc, nvrtc.nvrtcGetSupportedArchs(), "nvrtcGetSupportedArchs"))
    below = [a for a in supported if a <= arch]
    if not below:
        raise CudaError(f"NVRTC cannot target sm_{arch} (it supports {supported}); use an older cuda-python")
    cubin = arch in supported
    target = f"--gpu-architecture={'sm' if cubin else 'compute'}_{arch if cubin else max(below)}"
    program = _nvrtc_check(nvrtc, nvrtc.nvrtcCreateProgram(KERNEL_SOURCE.encode(), b"edge_preprocess.cu", 0, [], []),
                           "nvrtcCreateProgram")
    try:
        options = [o.encode() for o in (target,) + COMPILE_OPTIONS]
        result = nvrtc.nvrtcCompileProgram(program, len(options), options)
        if int(result[0]) != 0:
            size = _nvrtc_check(nvrtc, nvrtc.nvrtcGetProgramLogSize(program), "nvrtcGetProgramLogSize")
            log = b" " * size
            _nvrtc_check(nvrtc, nvrtc.nvrtcGetProgramLog(program, log), "nvrtcGetProgramLog")
            raise CudaError(f"nvrtcCompileProgram failed: {log.decode(errors='replace').strip()}")
        kind = "cubin" if cubin else "ptx"
        getter = "CUBIN" if cubin else "PTX"
        size = _nvrtc_check(nvrtc, getattr(nvrtc, f"nvrtcGet{getter}Size")(program), f"nvrtcGet{getter}Size")
        image = b" " * size
        _nvrtc_check(nvrtc, getattr(nvrtc, f"nvrtcGet{getter}")(program, image), f"nvrtcGet{getter}")
        return image, kind
    finally:
        nvrtc.nvrtcDestroyProgram(program)


def nvcc_compile(compute_capability: Tuple[int, int]) -> bytes:
    """Compile the kernel with the toolkit's nvcc to a CUBIN (the fallback when NVRTC is missing)."""
    nvcc = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if os.path.exists("/usr/local/cuda/bin/nvcc") else None)
    if nvcc is None:
        raise EdgeError("compiling the preprocessing kernel needs NVRTC or nvcc, and neither was found",
                        fix="pip install cuda-python nvidia-cuda-nvrtc, or put /usr/local/cuda/bin on PATH")
    arch = f"sm_{compute_capability[0]}{compute_capability[1]}"
    with tempfile.TemporaryDirectory() as folder:
        source, image = os.path.join(folder, "k.cu"), os.path.join(folder, "k.cubin")
        with open(source, "w") as handle:
            handle.write(KERNEL_SOURCE)
        done = subprocess.run([nvcc, "-cubin", f"-arch={arch}", *COMPILE_OPTIONS, "-o", image, source],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        if done.returncode != 0:
            raise CudaError(f"nvcc -cubin -arch={arch} failed: {done.stderr.strip()}")
        with open(image, "rb") as handle:
            return handle.read()


@functools.lru_cache(maxsize=4)
def compile_image(compute_capability: Tuple[int, int]) -> Tuple[bytes, str]:
    """CUBIN or PTX for the device: NVRTC when it loads, else nvcc (cached per architecture)."""
    try:
        nvrtc = _import_nvrtc()
    except ImportError:
        nvrtc = None
    if nvrtc is not None:
        try:
            return nvrtc_compile(compute_capability, nvrtc)
        except CudaError:
            raise
        except (RuntimeError, OSError):  # cuda-python without libnvrtc (not found by cuda.pathfinder)
            pass
    return nvcc_compile(compute_capability), "cubin"


@dataclass
class LaunchArgs:
    """Values for the kernel's parameters (see PARAMETERS), pointers as ints."""

    values: Sequence[Any]

    def __post_init__(self) -> None:
        if len(self.values) != len(PARAMETERS):
            raise ValueError(f"the kernel takes {len(PARAMETERS)} arguments, got {len(self.values)}")

    def as_ctypes(self) -> List[Any]:
        """One ctypes object per parameter (kept alive by the caller until the launch returns)."""
        return [_CTYPES[kind](value) for (_, kind), value in zip(PARAMETERS, self.values)]

    def as_numpy(self) -> List[Any]:
        """Typed NumPy scalars, as ``pycuda`` packs kernel arguments."""
        import numpy as np

        kinds = {"p": np.uintp, "i": np.int32, "f": np.float32, "d": np.float64}
        return [kinds[kind](value) for (_, kind), value in zip(PARAMETERS, self.values)]


class Kernel:
    """The compiled kernel in one layer's context; ``launch(args, grid, stream)``; ``close()``."""

    def launch(self, args: LaunchArgs, grid: Tuple[int, int, int], stream: Stream) -> None:  # pragma: no cover
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class DriverKernel(Kernel):
    """cuda-python: cuModuleLoadData + cuModuleGetFunction + cuLaunchKernel (driver API)."""

    def __init__(self, driver: Any, image: bytes) -> None:
        self._driver = driver
        self._check(driver.cuInit(0), "cuInit")
        self._image = ctypes.create_string_buffer(image, len(image) + 1)  # NUL-terminated for PTX
        self._module = self._check(driver.cuModuleLoadData(ctypes.addressof(self._image)), "cuModuleLoadData")
        self._function = self._check(driver.cuModuleGetFunction(self._module, KERNEL_NAME.encode()),
                                     "cuModuleGetFunction")

    def _check(self, result: Any, call: str) -> Any:
        err, rest = result[0], result[1:]
        if int(err) != 0:
            name = self._driver.cuGetErrorName(err)[1]
            raise CudaError(f"{call} failed: {name.decode() if isinstance(name, bytes) else name}")
        return rest[0] if len(rest) == 1 else (rest or None)

    def launch(self, args: LaunchArgs, grid: Tuple[int, int, int], stream: Stream) -> None:
        """Queue the kernel on ``stream`` (inside the layer's activate())."""
        if self._module is None:
            raise CudaError("the preprocessing kernel was closed")
        values = args.as_ctypes()
        pointers = (ctypes.c_void_p * len(values))(*[ctypes.addressof(v) for v in values])
        self._check(self._driver.cuLaunchKernel(self._function, grid[0], grid[1], grid[2], BLOCK[0], BLOCK[1],
                                                BLOCK[2], 0, self._driver.CUstream(stream.handle),
                                                ctypes.addressof(pointers), 0), "cuLaunchKernel")

    def close(self) -> None:
        """Unload the module (inside the layer's activate()); idempotent."""
        if self._module is not None:
            module, self._module = self._module, None
            self._check(self._driver.cuModuleUnload(module), "cuModuleUnload")


class PyCudaKernel(Kernel):
    """PyCUDA: SourceModule (nvcc), or module_from_buffer with an NVRTC/nvcc image."""

    def __init__(self, driver: Any, compute_capability: Tuple[int, int], compiler: Any = None) -> None:
        self._driver = driver
        try:
            if compiler is None:
                from pycuda import compiler
            self._module = compiler.SourceModule(KERNEL_SOURCE, no_extern_c=True, options=list(COMPILE_OPTIONS))
        except (ImportError, OSError, driver.Error):  # nvcc not on PATH: NVRTC, or nvcc by full path
            self._module = driver.module_from_buffer(compile_image(compute_capability)[0])
        self._function = self._module.get_function(KERNEL_NAME)

    def launch(self, args: LaunchArgs, grid: Tuple[int, int, int], stream: Stream) -> None:
        """Queue the kernel on ``stream`` (inside the layer's activate())."""
        if self._module is None:
            raise CudaError("the preprocessing kernel was closed")
        try:
            self._function(*args.as_numpy(), block=BLOCK, grid=grid[:2], stream=getattr(stream, "raw", None))
        except self._driver.Error as exc:
            raise CudaError(f"cuLaunchKernel failed: {exc}") from None

    def close(self) -> None:
        """Drop the module (PyCUDA unloads it); idempotent."""
        self._module = self._function = None


def load_kernel(layer: CudaLayer) -> Kernel:
    """Compile and load the kernel for ``layer`` (call inside ``layer.activate()``)."""
    cc = layer.device().compute_capability
    driver = getattr(layer, "driver_module", None)
    if layer.name == "pycuda":
        return PyCudaKernel(driver, cc)
    if layer.name == "cuda-python":
        return DriverKernel(driver, compile_image(cc)[0])
    raise EdgeError(f"GPU preprocessing has no kernel loader for the CUDA layer {layer.name!r}",
                    fix="open the layer with edge.cuda.open_cuda()")

