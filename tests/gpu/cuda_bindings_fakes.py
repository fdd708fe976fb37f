"""Faithful fakes of ``cuda.bindings.runtime`` and ``cuda.bindings.driver`` (see cuda_fakes.py for the
shared heap and call log), and the kernel emulated by its NumPy reference.

What they reproduce: every call returns ``(err, *values)`` and never raises; ``cudaGetErrorName``
names the error; ``cudaSetDevice`` binds the device to the calling thread only; mapped host memory
has a device pointer equal to its host address (UVA).
"""

import ctypes
import enum
import itertools
import struct
import threading
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from cuda_fakes import CallLog, DeviceHeap

# --------------------------------------------------------------------------------- cuda.bindings.runtime


class cudaError_t(enum.IntEnum):  # noqa: N801 - the real name
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorMemoryAllocation = 2
    cudaErrorInsufficientDriver = 35
    cudaErrorNoDevice = 100
    cudaErrorInvalidDevice = 101


class cudaMemcpyKind(enum.IntEnum):  # noqa: N801
    cudaMemcpyHostToHost = 0
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2


class cudaStream_t:  # noqa: N801
    def __init__(self, handle: int) -> None:
        self._handle = handle

    def __int__(self) -> int:
        return self._handle


class cudaDeviceProp:  # noqa: N801
    def __init__(self, name: str, major: int, minor: int, memory: int, integrated: int) -> None:
        self.name = name.encode().ljust(256, b"\0")
        self.major, self.minor, self.totalGlobalMem, self.integrated = major, minor, memory, integrated


class FakeCudaRuntime:
    """Stands in for ``cuda.bindings.runtime``: ``(err, *values)`` tuples, per-thread current device.

    fail: {call name: error} makes that call return the error (the first time, or every time with
    ``sticky``)."""

    cudaError_t, cudaMemcpyKind, cudaStream_t = cudaError_t, cudaMemcpyKind, cudaStream_t
    cudaHostAllocDefault, cudaHostAllocMapped, cudaStreamNonBlocking = 0, 2, 1

    def __init__(self, devices: int = 1, count_error: Optional[cudaError_t] = None, version: int = 13000,
                 integrated: bool = False) -> None:
        self.log, self.heap = CallLog(), DeviceHeap()
        self.devices, self.count_error, self.version, self.integrated = devices, count_error, version, integrated
        self.fail: Dict[str, cudaError_t] = {}
        self.host: Dict[int, Tuple[Any, int]] = {}  # address -> (ctypes buffer, flags)
        self.streams: Dict[int, cudaStream_t] = {}
        self._local = threading.local()
        self._handles = itertools.count(0x9000)

    def _ok(self, name: str, *values: Any) -> tuple:
        error = self.fail.pop(name, None)
        return (error,) + tuple(None for _ in values) if error else (cudaError_t.cudaSuccess,) + values

    def current_device(self) -> Optional[int]:
        return getattr(self._local, "device", None)

    def cudaGetErrorName(self, error: Any) -> tuple:
        return cudaError_t.cudaSuccess, cudaError_t(int(error)).name.encode()

    def cudaGetDeviceCount(self) -> tuple:
        self.log.add("cudaGetDeviceCount")
        if self.count_error is not None:
            return self.count_error, 0
        return self._ok("cudaGetDeviceCount", self.devices)

    def cudaGetDeviceProperties(self, device: int) -> tuple:
        self.log.add("cudaGetDeviceProperties", device)
        return self._ok("cudaGetDeviceProperties", cudaDeviceProp("Fake Orin", 8, 7, 8 << 30, int(self.integrated)))

    def cudaRuntimeGetVersion(self) -> tuple:
        return self._ok("cudaRuntimeGetVersion", self.version)

    def cudaGetDevice(self) -> tuple:
        self.log.add("cudaGetDevice")
        return self._ok("cudaGetDevice", self.current_device() or 0)

    def cudaSetDevice(self, device: int) -> tuple:
        self.log.add("cudaSetDevice", device)
        if not 0 <= device < self.devices:
            return (cudaError_t.cudaErrorInvalidDevice,)
        self._local.device = device
        return self._ok("cudaSetDevice")

    def cudaMalloc(self, nbytes: int) -> tuple:
        self.log.add("cudaMalloc", nbytes)
        result = self._ok("cudaMalloc", 0)
        return result if result[0] else (result[0], self.heap.alloc(nbytes))

    def cudaFree(self, ptr: int) -> tuple:
        self.log.add("cudaFree", ptr)
        if ptr:
            self.heap.free(int(ptr))
        return self._ok("cudaFree")

    def _host(self, name: str, nbytes: int, flags: int) -> tuple:
        result = self._ok(name, 0)
        if result[0]:
            return result
        buffer = ctypes.create_string_buffer(nbytes)
        self.host[ctypes.addressof(buffer)] = (buffer, flags)
        return cudaError_t.cudaSuccess, ctypes.addressof(buffer)

    def cudaMallocHost(self, nbytes: int) -> tuple:
        self.log.add("cudaMallocHost", nbytes)
        return self._host("cudaMallocHost", nbytes, 0)

    def cudaHostAlloc(self, nbytes: int, flags: int) -> tuple:
        self.log.add("cudaHostAlloc", nbytes, flags)
        return self._host("cudaHostAlloc", nbytes, flags)

    def cudaHostGetDevicePointer(self, host_ptr: int, flags: int) -> tuple:
        self.log.add("cudaHostGetDevicePointer", host_ptr, flags)
        entry = self.host.get(int(host_ptr))
        if entry is None or not entry[1] & self.cudaHostAllocMapped:
            return cudaError_t.cudaErrorInvalidValue, 0
        return self._ok("cudaHostGetDevicePointer", int(host_ptr))  # UVA: the same address

    def _host_block(self, ptr: int, nbytes: int) -> Optional[int]:
        for address, (buffer, _) in self.host.items():
            if address <= ptr and ptr + nbytes <= address + len(buffer):
                return address
        return None

    def read_device(self, ptr: int, nbytes: int) -> bytes:
        """What a kernel reads at ``ptr``: device memory, or mapped host memory (zero-copy)."""
        if self._host_block(ptr, nbytes) is not None:
            return ctypes.string_at(ptr, nbytes)
        return self.heap.read(ptr, nbytes)

    def write_device(self, ptr: int, data: bytes) -> None:
        if self._host_block(ptr, len(data)) is not None:
            ctypes.memmove(ptr, data, len(data))
        else:
            self.heap.write(ptr, data)

    def cudaEventCreate(self) -> tuple:
        self.log.add("cudaEventCreate")
        return self._ok("cudaEventCreate", object())

    def cudaEventRecord(self, event: Any, stream: Any) -> tuple:
        return self._ok("cudaEventRecord")

    def cudaEventSynchronize(self, event: Any) -> tuple:
        return self._ok("cudaEventSynchronize")

    def cudaEventElapsedTime(self, start: Any, end: Any) -> tuple:
        return self._ok("cudaEventElapsedTime", 0.042)

    def cudaEventDestroy(self, event: Any) -> tuple:
        self.log.add("cudaEventDestroy")
        return self._ok("cudaEventDestroy")

    def cudaFreeHost(self, ptr: int) -> tuple:
        self.log.add("cudaFreeHost", ptr)
        self.host.pop(int(ptr))
        return self._ok("cudaFreeHost")

    def cudaStreamCreateWithFlags(self, flags: int) -> tuple:
        self.log.add("cudaStreamCreateWithFlags", flags)
        stream = cudaStream_t(next(self._handles))
        self.streams[int(stream)] = stream
        return self._ok("cudaStreamCreateWithFlags", stream)

    def cudaStreamSynchronize(self, stream: Any) -> tuple:
        self.log.add("cudaStreamSynchronize", int(stream))
        return self._ok("cudaStreamSynchronize")

    def cudaStreamDestroy(self, stream: Any) -> tuple:
        self.log.add("cudaStreamDestroy", int(stream))
        del self.streams[int(stream)]
        return self._ok("cudaStreamDestroy")

    def cudaMemcpyAsync(self, dst: int, src: int, nbytes: int, kind: cudaMemcpyKind, stream: Any) -> tuple:
        self.log.add("cudaMemcpyAsync", kind, int(stream))
        result = self._ok("cudaMemcpyAsync")
        if result[0]:
            return result
        if kind == cudaMemcpyKind.cudaMemcpyHostToDevice:
            self.heap.write(int(dst), ctypes.string_at(int(src), nbytes))
        elif kind == cudaMemcpyKind.cudaMemcpyDeviceToHost:
            ctypes.memmove(int(dst), self.heap.read(int(src), nbytes), nbytes)
        else:
            return (cudaError_t.cudaErrorInvalidValue,)
        return result


# ---------------------------------------------------------------------------------- cuda.bindings.driver


class CUresult(enum.IntEnum):
    CUDA_SUCCESS = 0
    CUDA_ERROR_INVALID_VALUE = 1
    CUDA_ERROR_INVALID_IMAGE = 200
    CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES = 701


class FakeCudaDriver:
    """Stands in for ``cuda.bindings.driver`` (module load, function lookup, launch) and decodes the
    ``kernelParams`` array of a launch with the kernel's parameter types."""

    CUresult = CUresult

    def __init__(self, parameter_kinds: str) -> None:
        self.log, self.kinds = CallLog(), parameter_kinds
        self.launches: List[Dict[str, Any]] = []
        self.fail: Dict[str, CUresult] = {}
        self.unloaded: List[Any] = []

    def CUstream(self, handle: int) -> int:  # noqa: N802 - the real name
        return int(handle)

    def _ok(self, name: str, *values: Any) -> tuple:
        error = self.fail.pop(name, None)
        return (error,) + tuple(None for _ in values) if error else (CUresult.CUDA_SUCCESS,) + values

    def cuGetErrorName(self, error: Any) -> tuple:
        return CUresult.CUDA_SUCCESS, CUresult(int(error)).name.encode()

    def cuInit(self, flags: int) -> tuple:
        self.log.add("cuInit", flags)
        return self._ok("cuInit")

    def cuModuleLoadData(self, image_address: int) -> tuple:
        self.log.add("cuModuleLoadData")
        self.image = ctypes.string_at(image_address, 4)
        return self._ok("cuModuleLoadData", "module")

    def cuModuleGetFunction(self, module: Any, name: bytes) -> tuple:
        self.log.add("cuModuleGetFunction", name)
        return self._ok("cuModuleGetFunction", ("function", name))

    def cuModuleUnload(self, module: Any) -> tuple:
        self.log.add("cuModuleUnload")
        self.unloaded.append(module)
        return self._ok("cuModuleUnload")

    def cuLaunchKernel(self, function: Any, gx: int, gy: int, gz: int, bx: int, by: int, bz: int, shared: int,
                       stream: Any, params: int, extra: int) -> tuple:
        self.log.add("cuLaunchKernel")
        pointers = (ctypes.c_void_p * len(self.kinds)).from_address(params)
        sizes = {"p": ("Q", 8), "i": ("i", 4), "f": ("f", 4), "d": ("d", 8)}
        values = [struct.unpack(sizes[k][0], ctypes.string_at(p, sizes[k][1]))[0] for k, p in zip(self.kinds, pointers)]
        self.launches.append({"grid": (gx, gy, gz), "block": (bx, by, bz), "stream": stream, "values": values})
        return self._ok("cuLaunchKernel")


# ------------------------------------------------------------------------------ the kernel, emulated


class EmulatedKernel:
    """An ``edge.cuda.kernels.Kernel`` that decodes the launch values into a KernelPlan, reads the frame
    where the kernel would (fake device heap or mapped host memory), runs the NumPy reference of the
    kernel and writes the result at ``dst``: the launch plumbing is tested end to end without a GPU."""

    def __init__(self, runtime: FakeCudaRuntime) -> None:
        self.runtime, self.launches, self.closed = runtime, [], False

    def launch(self, args: Any, grid: Tuple[int, int, int], stream: Any) -> None:
        from edge.cuda import kernels
        from edge.cuda.gpu_preprocess import KernelPlan, run_plan

        v = dict(zip([name for name, _ in kernels.PARAMETERS], args.values))
        self.launches.append(v)
        assert grid == kernels.grid_for((v["out_w"], v["out_h"]))
        plan = KernelPlan((v["crop_x"], v["crop_y"], v["crop_w"], v["crop_h"]), (v["resized_w"], v["resized_h"]),
                          (v["paste_x"], v["paste_y"]), (v["scale_x"], v["scale_y"]), (v["out_w"], v["out_h"]),
                          (v["gain0"], v["gain1"], v["gain2"]), (v["bias0"], v["bias1"], v["bias2"]),
                          v["pad_value"], v["flags"], None)
        rows, width = v["crop_y"] + v["crop_h"], v["crop_x"] + v["crop_w"]
        raw = np.frombuffer(self.runtime.read_device(v["src"], v["src_pitch"] * rows), np.uint8)
        frame = raw.reshape(rows, v["src_pitch"])[:, :width * 3].reshape(rows, width, 3)
        self.runtime.write_device(v["dst"], run_plan(frame, plan).tobytes())

    def close(self) -> None:
        self.closed = True
