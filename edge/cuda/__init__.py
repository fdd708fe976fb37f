"""CUDA from Python, behind one interface (``edge.cuda.base.CudaLayer``) with two implementations:
PyCUDA (the design card's choice; JetPack 4/5) and cuda-python (what NVIDIA's TensorRT 10 samples
and JetPack 6+ boards use). ``open_cuda(prefer)`` picks one. Both are imported lazily.

Threading (both layers): create the layer on any thread; on every thread that uses it, wrap the
work in ``with layer.activate():`` -- one thread at a time. PyCUDA's ``close()`` must run on the
thread that created the layer.
"""

import functools
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from edge.cuda.base import CudaError, CudaLayer, DeviceBuffer, DeviceInfo, HostBuffer, Stream
from edge.errors import EdgeError, MissingDependency
from edge.settings import preferred_cuda_layer

LAYER_NAMES = ("cuda-python", "pycuda")  # the default order
_ALIASES = {"cuda-python": "cuda-python", "cuda_python": "cuda-python", "cudapython": "cuda-python",
            "cuda-bindings": "cuda-python", "pycuda": "pycuda"}
__all__ = ["CudaError", "CudaLayer", "DeviceBuffer", "DeviceInfo", "HostBuffer", "Stream", "LAYER_NAMES",
           "open_cuda", "available_layers", "gpu_available", "no_device_error", "PinnedRanges"]


def no_device_error(layer: str, error_name: str, detail: Optional[str] = None) -> EdgeError:
    """The one-line error for a machine where ``layer`` finds no usable GPU."""
    if "InsufficientDriver" in error_name or "libcuda" in error_name:
        return EdgeError(f"the NVIDIA driver is missing or older than this {layer} needs ({error_name})",
                         fix="install the NVIDIA driver (nvidia-smi must list the GPU), or install the cuda-python "
                             "whose major version matches the driver's CUDA (JetPack 6: pip install 'cuda-python<13')",
                         where=layer)
    more = f"; {detail}" if detail else ""
    return EdgeError(f"no CUDA device ({error_name}){more}",
                     fix="run on a machine with an NVIDIA GPU and its driver (nvidia-smi lists it), check "
                         "CUDA_VISIBLE_DEVICES, or use a CPU backend (--backend onnxruntime-cpu)", where=layer)


class PinnedRanges:
    """Address ranges of a layer's live page-locked buffers: async copies are checked against them."""

    def __init__(self) -> None:
        self._ranges: Dict[int, int] = {}  # start address -> end address

    def add(self, array: np.ndarray) -> None:
        """Record a new page-locked array."""
        start = int(array.ctypes.data)
        self._ranges[start] = start + int(array.nbytes)

    def remove(self, array: np.ndarray) -> bool:
        """Forget an array; False if it was not recorded (already freed)."""
        return self._ranges.pop(int(array.ctypes.data), None) is not None

    def holds(self, array: np.ndarray) -> bool:
        """True while ``array`` (as allocated) is recorded."""
        return int(array.ctypes.data) in self._ranges

    def check(self, array: Any, what: str) -> None:
        """ValueError unless ``array`` is C-contiguous and inside one recorded buffer."""
        if not isinstance(array, np.ndarray) or not array.flags.c_contiguous:
            raise ValueError(f"{what} must be a C-contiguous numpy array, got {type(array).__name__}")
        start = int(array.ctypes.data)
        end = start + int(array.nbytes)
        if not any(low <= start and end <= high for low, high in self._ranges.items()):
            raise ValueError(f"{what} is not page-locked memory from this layer: async copies need pinned memory "
                             "(allocate it with layer.alloc_host() and np.copyto into its array)")


def _layer_class(name: str) -> Any:
    if name == "cuda-python":
        from edge.cuda.cuda_python_layer import CudaPythonLayer

        return CudaPythonLayer
    from edge.cuda.pycuda_layer import PyCudaLayer

    return PyCudaLayer


def _resolve(prefer: Optional[str]) -> Optional[str]:
    choice = prefer if prefer is not None else preferred_cuda_layer()
    if not choice:
        return None
    name = _ALIASES.get(choice.strip().lower())
    if name is None:
        raise EdgeError(f"unknown CUDA layer {choice!r}", where="edge.cuda",
                        fix=f"choose one of {', '.join(LAYER_NAMES)} (argument or the EDGE_CUDA environment variable)")
    return name


def open_cuda(prefer: Optional[str] = None, device: int = 0) -> CudaLayer:
    """Open a CUDA layer on ``device``.

    prefer: "cuda-python" or "pycuda" (only that one is tried); None reads EDGE_CUDA, and when that
    is unset tries cuda-python, then pycuda. Raises MissingDependency when neither is installed and
    EdgeError when no GPU or driver is usable, each one line with the fix.
    """
    choice = _resolve(prefer)
    failures: List[EdgeError] = []
    for name in (choice,) if choice else LAYER_NAMES:
        try:
            return _layer_class(name)(device=device)
        except EdgeError as exc:  # not installed, no device, no driver: try the next layer
            failures.append(exc)
    if len(failures) == 1:
        raise failures[0]
    real = [exc for exc in failures if not isinstance(exc, MissingDependency)]
    if real:
        raise real[0]  # a layer imported and found no usable GPU: that is the cause to report
    raise MissingDependency("cuda.bindings (cuda-python) or pycuda", "CUDA on the GPU (TensorRT, GPU preprocessing)",
                            "pip install cuda-python (JetPack 6+, x86) or pycuda (JetPack 4/5)")


def _probe(name: str, check_device: bool) -> Optional[str]:
    """None when ``name`` imports (and sees a device); else why not, in one line."""
    try:
        if name == "cuda-python":
            from edge.cuda.cuda_python_layer import device_count, import_runtime

            runtime = import_runtime()
            if check_device:
                device_count(runtime)
        else:
            from edge.cuda.pycuda_layer import import_driver

            driver = import_driver()
            if check_device:
                try:
                    driver.init()
                    if driver.Device.count() == 0:
                        raise no_device_error(name, "cuDeviceGetCount returned 0")
                except driver.Error as exc:
                    raise no_device_error(name, str(exc)) from None
    except EdgeError as exc:
        return str(exc)
    return None


def available_layers(check_device: bool = True) -> List[Tuple[str, Optional[str]]]:
    """(layer name, None if usable else the reason) for each layer, in the default order.

    check_device: also ask the driver for a device (creates no context)."""
    return [(name, _probe(name, check_device)) for name in LAYER_NAMES]


@functools.lru_cache(maxsize=1)
def gpu_available() -> Tuple[bool, str]:
    """(True, layer name) when some layer sees a CUDA device, else (False, every layer's reason); probed once."""
    reasons = []
    for name, reason in available_layers():
        if reason is None:
            return True, name
        reasons.append(f"{name}: {reason}")
    return False, "; ".join(reasons)
