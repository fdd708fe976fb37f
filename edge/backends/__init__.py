"""Backends and their selection.

``create_backend(path, "auto")`` tries the candidates in order of speed and reports one
line per candidate: chosen, or skipped and why. A backend asked for by name that cannot
run is an error, never a silent fallback.
"""

from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Type, Union

from edge.backends.base import Backend
from edge.backends.onnxruntime import (
    OnnxRuntimeBackend,
    OnnxRuntimeCPUBackend,
    OnnxRuntimeCUDABackend,
    OnnxRuntimeTensorRTBackend,
)
from edge.backends.opencv import OpenCVBackend
from edge.backends.tensorrt import TensorRTBackend
from edge.backends.triton import TritonBackend
from edge.errors import EdgeError

BACKENDS: Dict[str, Type[Backend]] = {
    cls.name: cls
    for cls in (TensorRTBackend, OnnxRuntimeBackend, OnnxRuntimeTensorRTBackend, OnnxRuntimeCUDABackend,
                OnnxRuntimeCPUBackend, OpenCVBackend, TritonBackend)
}
#: what "auto" tries, fastest first (never triton: a remote server is asked for by name, with its address)
AUTO_ORDER: Tuple[str, ...] = ("tensorrt", "onnxruntime-tensorrt", "onnxruntime-cuda", "onnxruntime-cpu", "opencv")


def backend_class(name: str) -> Type[Backend]:
    """The backend class registered under ``name``; EdgeError listing the known names otherwise."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise EdgeError(f"unknown backend '{name}'",
                        fix=f"use one of: auto, {', '.join(BACKENDS)} (python -m edge.camera --list-backends)",
                        where="--backend") from None


def availability() -> List[Tuple[str, Optional[str]]]:
    """(backend name, reason it cannot run or None) for every registered backend."""
    return [(name, cls.unavailable_reason()) for name, cls in BACKENDS.items()]


def create_backend(model_path: Union[str, Path], name: str = "auto", *, threads: Optional[int] = None,
                   options: Optional[Dict[str, Any]] = None,
                   report: Optional[Callable[[str], None]] = None) -> Backend:
    """Create and prepare a backend for ``model_path``; ``auto`` picks the fastest that runs here."""
    if name != "auto":
        backend = backend_class(name)(model_path, threads=threads, options=options).prepare()
        _report_notes(backend, report)
        return backend
    skipped: List[Tuple[str, str]] = []
    for candidate in AUTO_ORDER:
        cls = BACKENDS[candidate]
        reason = cls.unavailable_reason()
        if reason is None:
            backend = cls(model_path, threads=threads, options=options)
            try:
                backend.prepare()
            except EdgeError as exc:
                reason = exc.what
            else:
                if report:
                    report(f"backend {candidate}: chosen ({backend.describe()})")
                _report_notes(backend, report)
                return backend
        skipped.append((candidate, reason))
        if report:
            report(f"backend {candidate}: skipped, {reason}")
    raise EdgeError("no backend can run this model here (" + _grouped(skipped) + ")",
                    fix="pip install 'edge[cpu]' for ONNX Runtime and OpenCV", where=str(model_path))


def _grouped(skipped: List[Tuple[str, str]]) -> str:
    """'a, b: same reason; c: other reason' - one clause per distinct reason."""
    by_reason: Dict[str, List[str]] = {}
    for name, reason in skipped:
        by_reason.setdefault(reason, []).append(name)
    return "; ".join(f"{', '.join(names)}: {reason}" for reason, names in by_reason.items())


def _report_notes(backend: Backend, report: Optional[Callable[[str], None]]) -> None:
    for note in backend.notes:
        if report:
            report(f"note: {note}")
