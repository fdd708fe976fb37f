"""The CUDA memory layer's interface: what the TensorRT backend, the INT8 calibrator and the GPU
preprocessing kernel need from CUDA, behind one small type with two implementations
(``edge/cuda/pycuda_layer.py`` and ``edge/cuda/cuda_python_layer.py``).

Contract (every implementation, every method):
- ``activate()`` is a context manager that makes this layer's CUDA context current on the
  calling thread for the duration of the block and restores the previous state afterwards
  (pycuda: push/pop of an owned or primary context; cuda-python: cudaSetDevice on the primary
  context). All other methods may be called only inside ``activate()`` — from any thread, one
  thread at a time. This is what makes inference on a worker thread work (brief §2.2).
- Pointers are plain ``int``; streams expose ``.handle`` as ``int`` (what TensorRT's
  ``execute_async_v3`` takes).
- Every CUDA call is checked; a failure raises ``CudaError`` with the CUDA error name.
- ``close()`` frees everything the layer allocated and releases its context; idempotent.
"""

from dataclasses import dataclass
from typing import Any, ContextManager, Optional, Tuple

import numpy as np


class CudaError(RuntimeError):
    """A CUDA call failed (the message names the call and the CUDA error)."""


@dataclass(frozen=True)
class DeviceInfo:
    """What the engine cache and the backend need to know about the GPU."""

    index: int
    name: str
    compute_capability: Tuple[int, int]
    total_memory_bytes: int
    integrated: bool  # Jetson: GPU and CPU share memory, so mapped (zero-copy) host memory is an option


class DeviceBuffer:
    """Device memory: ``ptr`` (int), ``nbytes``; ``free()`` is idempotent."""

    ptr: int
    nbytes: int

    def free(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class HostBuffer:
    """Page-locked host memory viewed as a numpy array (``array``); ``device_ptr`` is set when the
    memory is mapped into the device address space (zero-copy), else None; ``free()`` is idempotent."""

    array: np.ndarray
    device_ptr: Optional[int]

    def free(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class Stream:
    """A non-default CUDA stream: ``handle`` (int), ``synchronize()``."""

    handle: int

    def synchronize(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class CudaLayer:
    """One CUDA device and context, as used by one engine or kernel. See the module docstring."""

    name = "base"

    def device(self) -> DeviceInfo:  # pragma: no cover - interface
        raise NotImplementedError

    def activate(self) -> ContextManager[None]:  # pragma: no cover - interface
        raise NotImplementedError

    def alloc_device(self, nbytes: int) -> DeviceBuffer:  # pragma: no cover - interface
        raise NotImplementedError

    def alloc_host(self, shape: Tuple[int, ...], dtype: Any, mapped: bool = False) -> HostBuffer:  # pragma: no cover
        raise NotImplementedError

    def stream(self) -> Stream:  # pragma: no cover - interface
        raise NotImplementedError

    def copy_to_device(self, dst_ptr: int, src: np.ndarray, stream: Stream) -> None:  # pragma: no cover
        """Async host->device copy; ``src`` must be page-locked (a HostBuffer's array)."""
        raise NotImplementedError

    def copy_to_host(self, dst: np.ndarray, src_ptr: int, stream: Stream) -> None:  # pragma: no cover
        """Async device->host copy into a page-locked array; valid after ``stream.synchronize()``."""
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError
