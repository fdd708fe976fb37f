"""The CUDA layer on PyCUDA (``pycuda.driver``): JetPack 4/5 and TensorRT 8.x.

The layer retains the device's *primary* context (``Device.retain_primary_context()``, as NVIDIA's
TensorRT 8.5 samples prefer, so TensorRT and any runtime-API library share it) and never leaves it
current: ``activate()`` pushes it on the calling thread's context stack and pops it on exit, so a
layer created on thread A works inside ``activate()`` on thread B (brief §2.2, pattern 2).
``close()`` must run on the creating thread: PyCUDA's ``detach()`` silently does nothing on
another thread (brief §2.3), so this layer raises instead of leaking.
"""

import contextlib
import threading
from typing import Any, Iterator, List, Optional, Tuple

import numpy as np

from edge.cuda import PinnedRanges, no_device_error
from edge.cuda.base import CudaError, CudaLayer, DeviceBuffer, DeviceInfo, HostBuffer, Stream
from edge.errors import EdgeError, MissingDependency

STREAM_NON_BLOCKING = 1  # CU_STREAM_NON_BLOCKING: no implicit sync with the legacy default stream


def import_driver() -> Any:
    """``pycuda.driver``, or MissingDependency with the fix."""
    try:
        import pycuda.driver as driver
    except ImportError as exc:
        if "libcuda" in str(exc):
            raise no_device_error("pycuda", "libcuda.so not found", str(exc)) from None
        raise MissingDependency("pycuda", "the PyCUDA CUDA layer",
                                "pip install pycuda (JetPack 4/5; needs /usr/local/cuda/bin on PATH to build), "
                                "or pip install cuda-python") from None
    return driver


class PyCudaDeviceBuffer(DeviceBuffer):
    """``pycuda.driver.mem_alloc`` memory."""

    def __init__(self, allocation: Any, nbytes: int) -> None:
        self._allocation = allocation
        self.ptr = int(allocation)
        self.nbytes = nbytes

    def free(self) -> None:
        """Release the memory now (inside the layer's activate()); idempotent."""
        if self._allocation is not None:
            allocation, self._allocation = self._allocation, None
            allocation.free()

    @property
    def freed(self) -> bool:
        """True once ``free()`` ran."""
        return self._allocation is None


class PyCudaHostBuffer(HostBuffer):
    """``pycuda.driver.pagelocked_empty`` memory, optionally mapped (DEVICEMAP)."""

    def __init__(self, array: np.ndarray, device_ptr: Optional[int], ranges: PinnedRanges) -> None:
        self.array = array
        self.device_ptr = device_ptr
        self._ranges = ranges
        ranges.add(array)

    def free(self) -> None:
        """Release the page-locked memory now; idempotent (the array must not be used afterwards)."""
        base = getattr(self.array, "base", None)
        if self._ranges.remove(self.array) and base is not None and hasattr(base, "free"):
            base.free()

    @property
    def freed(self) -> bool:
        """True once ``free()`` ran."""
        return not self._ranges.holds(self.array)


class PyCudaStream(Stream):
    """``pycuda.driver.Stream``; ``raw`` is the PyCUDA object (what ``memcpy_*_async`` takes)."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.handle = int(raw.handle)

    def synchronize(self) -> None:
        """Wait for the stream's work (inside the layer's activate())."""
        self.raw.synchronize()


class PyCudaLayer(CudaLayer):
    """One device's primary context through PyCUDA. See the module docstring for threading."""

    name = "pycuda"

    def __init__(self, device: int = 0, driver: Any = None) -> None:
        drv = driver if driver is not None else import_driver()
        self.driver_module = drv
        try:
            drv.init()
            count = drv.Device.count()
        except drv.Error as exc:
            raise no_device_error("pycuda", str(exc).strip()) from None
        if count == 0:
            raise no_device_error("pycuda", "cuDeviceGetCount returned 0")
        if not 0 <= device < count:
            raise EdgeError(f"CUDA device {device} does not exist ({count} found)",
                            fix=f"pick a device 0..{count - 1}, or check CUDA_VISIBLE_DEVICES", where="pycuda")
        self._device = drv.Device(device)
        self._info = DeviceInfo(device, str(self._device.name()), tuple(self._device.compute_capability()),
                                int(self._device.total_memory()),
                                bool(self._device.get_attribute(drv.device_attribute.INTEGRATED)))
        self._context: Any = self._device.retain_primary_context()  # not made current
        self._owner = threading.get_ident()
        self._pinned = PinnedRanges()
        self._owned: List[Any] = []  # device buffers to free at close

    def device(self) -> DeviceInfo:
        """The device this layer uses (read once at construction)."""
        return self._info

    @contextlib.contextmanager
    def activate(self) -> Iterator[None]:
        """Push the primary context on this thread; pop it on exit (nesting is fine)."""
        if self._context is None:
            raise CudaError("pycuda layer is closed")
        self._call("cuCtxPushCurrent", self._context.push)
        try:
            yield
        finally:
            self._call("cuCtxPopCurrent", self.driver_module.Context.pop)

    def _call(self, name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except self.driver_module.Error as exc:
            raise CudaError(f"{name} failed: {exc}") from None

    def _keep(self, item: Any) -> None:
        """Remember an allocation for close(), forgetting the ones already freed."""
        self._owned = [owned for owned in self._owned if not getattr(owned, "freed", False)]
        self._owned.append(item)

    def alloc_device(self, nbytes: int) -> DeviceBuffer:
        """``mem_alloc``: device memory of ``nbytes`` bytes."""
        buffer = PyCudaDeviceBuffer(self._call("cuMemAlloc", self.driver_module.mem_alloc, max(1, int(nbytes))),
                                    int(nbytes))
        self._keep(buffer)
        return buffer

    def alloc_host(self, shape: Tuple[int, ...], dtype: Any, mapped: bool = False) -> HostBuffer:
        """``pagelocked_empty``; with ``mapped`` also DEVICEMAP + ``get_device_pointer`` (zero-copy)."""
        drv = self.driver_module
        flags = drv.host_alloc_flags.DEVICEMAP if mapped else 0
        array = self._call("cuMemHostAlloc", drv.pagelocked_empty, shape, dtype, mem_flags=flags)
        device_ptr = int(self._call("cuMemHostGetDevicePointer", array.base.get_device_pointer)) if mapped else None
        buffer = PyCudaHostBuffer(array, device_ptr, self._pinned)
        self._keep(buffer)
        return buffer

    def stream(self) -> Stream:
        """A non-blocking stream."""
        stream = PyCudaStream(self._call("cuStreamCreate", self.driver_module.Stream, flags=STREAM_NON_BLOCKING))
        self._keep(stream)
        return stream

    def copy_to_device(self, dst_ptr: int, src: np.ndarray, stream: Stream) -> None:
        """``memcpy_htod_async`` from page-locked ``src``."""
        self._pinned.check(src, "copy_to_device source")
        self._call("cuMemcpyHtoDAsync", self.driver_module.memcpy_htod_async, int(dst_ptr), src,
                   getattr(stream, "raw", None))

    def copy_to_host(self, dst: np.ndarray, src_ptr: int, stream: Stream) -> None:
        """``memcpy_dtoh_async`` into page-locked ``dst`` (valid after ``stream.synchronize()``)."""
        self._pinned.check(dst, "copy_to_host destination")
        self._call("cuMemcpyDtoHAsync", self.driver_module.memcpy_dtoh_async, dst, int(src_ptr),
                   getattr(stream, "raw", None))

    def close(self) -> None:
        """Free what the layer allocated, then detach the primary context (on the creating thread)."""
        if self._context is None:
            return
        if threading.get_ident() != self._owner:
            raise CudaError("PyCudaLayer.close() must run on the thread that created the layer: PyCUDA's "
                            "detach() does nothing on another thread and the context would leak")
        with self.activate():
            for item in reversed(self._owned):
                if hasattr(item, "free"):
                    item.free()
            self._owned.clear()
        context, self._context = self._context, None
        self._call("cuDevicePrimaryCtxRelease", context.detach)  # not current here: PyCUDA pushes, releases, pops

    def __enter__(self) -> "PyCudaLayer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
