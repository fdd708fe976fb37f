"""The CUDA layer on cuda-python (``cuda.bindings.runtime``; ``cuda.cudart`` before 12.6.1).

It uses the device's primary context, the one TensorRT and every runtime-API library use:
``activate()`` calls ``cudaSetDevice`` on the calling thread (which makes the primary context
current there) and restores the thread's previous device on exit, so a layer created on thread A
works inside ``activate()`` on thread B. Every call's status is checked; a failure raises
``CudaError("cudaMalloc failed: cudaErrorMemoryAllocation")``. ``close()`` frees what the layer
allocated and may run on any thread; the primary context stays (other libraries share it).
"""

import contextlib
import ctypes
from typing import Any, Callable, Iterator, List, Optional, Tuple

import numpy as np

from edge.cuda import PinnedRanges, no_device_error
from edge.cuda.base import CudaError, CudaLayer, DeviceBuffer, DeviceInfo, HostBuffer, Stream
from edge.errors import EdgeError, MissingDependency

_FIX = ("pip install cuda-python (x86 and JetPack 6+; its major version must match the driver's CUDA: "
        "JetPack 6 -> 'cuda-python<13', CUDA 13 -> 13.x), or pip install pycuda")


def import_runtime() -> Any:
    """``cuda.bindings.runtime`` (cuda-python >= 12.6.1), else the old ``cuda.cudart``."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:
            from cuda import cudart as runtime  # removed in cuda-python 13.0
        except ImportError:
            raise MissingDependency("cuda.bindings", "the cuda-python CUDA layer", _FIX) from None
    return runtime


def import_driver() -> Any:
    """``cuda.bindings.driver``, else the old ``cuda.cuda`` (the kernel launch uses the driver API)."""
    try:
        from cuda.bindings import driver
    except ImportError:
        try:
            from cuda import cuda as driver
        except ImportError:
            raise MissingDependency("cuda.bindings", "the cuda-python CUDA layer", _FIX) from None
    return driver


def native_handle(obj: Any) -> int:
    """Integer handle of a cuda-python object: ``get_cuda_native_handle`` (``int(obj)`` is deprecated
    from cuda-bindings 12.9.1/13.0), else ``int(obj)`` for older bindings."""
    try:
        from cuda.bindings.utils import get_cuda_native_handle
    except ImportError:
        return int(obj)
    return int(get_cuda_native_handle(obj))


def _error_name(runtime: Any, err: Any) -> str:
    try:
        name = runtime.cudaGetErrorName(err)[1]
    except (TypeError, AttributeError, IndexError):
        return str(err)
    return name.decode() if isinstance(name, bytes) else str(name)


def check(runtime: Any, result: Any, call: str) -> Any:
    """Unpack a cuda-python ``(err, *values)`` result; CudaError naming ``call`` and the error."""
    err, rest = (result[0], result[1:]) if isinstance(result, tuple) else (result, ())
    if int(err) != 0:
        raise CudaError(f"{call} failed: {_error_name(runtime, err)}")
    return rest[0] if len(rest) == 1 else (tuple(rest) or None)


def device_count(runtime: Any) -> int:
    """Devices the driver reports; EdgeError (no device / no driver) when there are none."""
    result = runtime.cudaGetDeviceCount()
    if int(result[0]) != 0:
        raise no_device_error("cuda-python", _error_name(runtime, result[0]))
    if int(result[1]) == 0:
        raise no_device_error("cuda-python", "cudaErrorNoDevice")
    return int(result[1])


class CudaPythonDeviceBuffer(DeviceBuffer):
    """``cudaMalloc`` memory."""

    def __init__(self, layer: "CudaPythonLayer", ptr: int, nbytes: int) -> None:
        self._layer, self.ptr, self.nbytes = layer, int(ptr), int(nbytes)
        self.freed = False

    def free(self) -> None:
        """``cudaFree`` (inside the layer's activate()); idempotent."""
        if not self.freed:
            self.freed = True
            self._layer._call("cudaFree", self.ptr)


class CudaPythonHostBuffer(HostBuffer):
    """``cudaMallocHost`` / ``cudaHostAlloc(cudaHostAllocMapped)`` memory viewed as a numpy array."""

    def __init__(self, layer: "CudaPythonLayer", ptr: int, array: np.ndarray, device_ptr: Optional[int]) -> None:
        self._layer, self._ptr, self.array, self.device_ptr = layer, int(ptr), array, device_ptr
        self.freed = False
        layer._pinned.add(array)

    def free(self) -> None:
        """``cudaFreeHost``; idempotent (the array must not be used afterwards)."""
        if not self.freed:
            self.freed = True
            self._layer._pinned.remove(self.array)
            self._layer._call("cudaFreeHost", self._ptr)


class CudaPythonStream(Stream):
    """A ``cudaStream_t`` (``raw``) and its integer ``handle``."""

    def __init__(self, layer: "CudaPythonLayer", raw: Any, handle: int) -> None:
        self._layer, self.raw, self.handle = layer, raw, int(handle)
        self.freed = False

    def synchronize(self) -> None:
        """``cudaStreamSynchronize``."""
        self._layer._call("cudaStreamSynchronize", self.raw)

    def free(self) -> None:
        """``cudaStreamDestroy``; idempotent."""
        if not self.freed:
            self.freed = True
            self._layer._call("cudaStreamDestroy", self.raw)


class CudaPythonLayer(CudaLayer):
    """One device's primary context through the CUDA runtime API. See the module docstring."""

    name = "cuda-python"

    def __init__(self, device: int = 0, runtime: Any = None, driver: Any = None,
                 native_handle: Callable[[Any], int] = native_handle) -> None:
        self._rt = runtime if runtime is not None else import_runtime()
        self._driver = driver
        self._native = native_handle
        count = device_count(self._rt)
        if not 0 <= device < count:
            raise EdgeError(f"CUDA device {device} does not exist ({count} found)",
                            fix=f"pick a device 0..{count - 1}, or check CUDA_VISIBLE_DEVICES", where="cuda-python")
        self._index = device
        props = self._call("cudaGetDeviceProperties", device)
        name = props.name.split(b"\0")[0].decode() if isinstance(props.name, bytes) else str(props.name)
        self._info = DeviceInfo(device, name, (int(props.major), int(props.minor)), int(props.totalGlobalMem),
                                bool(props.integrated))
        # before CUDA 12, cudaSetDevice did not make the context current; cudaFree(0) does
        self._lazy_init = self._call("cudaRuntimeGetVersion") < 12000
        self._pinned = PinnedRanges()
        self._owned: List[Any] = []
        self._closed = False
        with self.activate():  # initialise the primary context now, so a driver problem shows here
            pass

    @property
    def runtime_module(self) -> Any:
        """The ``cuda.bindings.runtime`` module in use (for events and other calls outside the interface)."""
        return self._rt

    @property
    def driver_module(self) -> Any:
        """``cuda.bindings.driver`` (imported on first use; the kernel launch needs it)."""
        if self._driver is None:
            self._driver = import_driver()
        return self._driver

    def _call(self, name: str, *args: Any) -> Any:
        return check(self._rt, getattr(self._rt, name)(*args), name)

    def device(self) -> DeviceInfo:
        """The device this layer uses (from cudaGetDeviceProperties)."""
        return self._info

    @contextlib.contextmanager
    def activate(self) -> Iterator[None]:
        """cudaSetDevice on this thread (primary context current); the previous device is restored."""
        if self._closed:
            raise CudaError("cuda-python layer is closed")
        previous = self._call("cudaGetDevice")
        self._call("cudaSetDevice", self._index)
        if self._lazy_init:
            self._call("cudaFree", 0)
        try:
            yield
        finally:
            if previous != self._index:
                self._call("cudaSetDevice", previous)

    def _keep(self, item: Any) -> Any:
        self._owned = [owned for owned in self._owned if not owned.freed]
        self._owned.append(item)
        return item

    def alloc_device(self, nbytes: int) -> DeviceBuffer:
        """``cudaMalloc``."""
        return self._keep(CudaPythonDeviceBuffer(self, self._call("cudaMalloc", max(1, int(nbytes))), nbytes))

    def alloc_host(self, shape: Tuple[int, ...], dtype: Any, mapped: bool = False) -> HostBuffer:
        """``cudaMallocHost``; with ``mapped``, ``cudaHostAlloc(cudaHostAllocMapped)`` and
        ``cudaHostGetDevicePointer`` (zero-copy: the kernel reads host memory directly)."""
        dtype = np.dtype(dtype)
        shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(d) for d in shape)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        if mapped:
            ptr = self._call("cudaHostAlloc", max(1, nbytes), self._rt.cudaHostAllocMapped)
            try:
                device_ptr: Optional[int] = int(self._call("cudaHostGetDevicePointer", ptr, 0))
            except CudaError:
                self._call("cudaFreeHost", ptr)
                raise
        else:
            ptr, device_ptr = self._call("cudaMallocHost", max(1, nbytes)), None
        raw = np.ctypeslib.as_array((ctypes.c_ubyte * max(1, nbytes)).from_address(int(ptr)))
        array = raw[:nbytes].view(dtype).reshape(shape)
        return self._keep(CudaPythonHostBuffer(self, ptr, array, device_ptr))

    def stream(self) -> Stream:
        """``cudaStreamCreateWithFlags(cudaStreamNonBlocking)``."""
        raw = self._call("cudaStreamCreateWithFlags", self._rt.cudaStreamNonBlocking)
        return self._keep(CudaPythonStream(self, raw, self._native(raw)))

    def _copy(self, dst: int, src: int, nbytes: int, kind: str, stream: Stream) -> None:
        raw = getattr(stream, "raw", None)
        self._call("cudaMemcpyAsync", dst, src, nbytes, getattr(self._rt.cudaMemcpyKind, kind),
                   raw if raw is not None else stream.handle)

    def copy_to_device(self, dst_ptr: int, src: np.ndarray, stream: Stream) -> None:
        """``cudaMemcpyAsync`` host->device from page-locked ``src``."""
        self._pinned.check(src, "copy_to_device source")
        self._copy(int(dst_ptr), int(src.ctypes.data), int(src.nbytes), "cudaMemcpyHostToDevice", stream)

    def copy_to_host(self, dst: np.ndarray, src_ptr: int, stream: Stream) -> None:
        """``cudaMemcpyAsync`` device->host into page-locked ``dst`` (valid after ``stream.synchronize()``)."""
        self._pinned.check(dst, "copy_to_host destination")
        self._copy(int(dst.ctypes.data), int(src_ptr), int(dst.nbytes), "cudaMemcpyDeviceToHost", stream)

    def close(self) -> None:
        """Free every buffer and stream the layer made (any thread); idempotent."""
        if self._closed:
            return
        with self.activate():
            for item in reversed(self._owned):
                item.free()
            self._owned.clear()
        self._closed = True

    def __enter__(self) -> "CudaPythonLayer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
