"""The backend interface: prepare once, infer many, close.

The public :meth:`Backend.infer` checks the inputs at the boundary and times the call; a
backend implements only ``_prepare``, ``_infer`` and ``_close``. Hardware libraries are
imported inside those hooks, never at module top.
"""

import operator
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from edge.cuda.base import CudaError
from edge.errors import EdgeError
from edge.onnxfile import TensorSpec, read_onnx

#: most inference threads per CPU core: beyond this, threads only add switching and memory
THREADS_PER_CORE_MAX = 4


def max_threads() -> int:
    """The largest ``threads`` accepted here: THREADS_PER_CORE_MAX per CPU core."""
    return THREADS_PER_CORE_MAX * (os.cpu_count() or 1)


def check_threads(threads: Any) -> Optional[int]:
    """``threads`` as an int in 1..max_threads(), or None (the backend's choice); EdgeError otherwise.

    ONNX Runtime and OpenCV start one worker thread per requested thread, so an unchecked
    --threads 10000 starts 10,000 threads and brings the board to a halt.
    """
    if threads is None:
        return None
    highest = max_threads()
    fix = f"pass --threads 1..{highest} ({THREADS_PER_CORE_MAX} per CPU core, {os.cpu_count() or 1} cores here), " \
          "or leave it out for the backend's choice"
    if isinstance(threads, bool):
        raise EdgeError(f"threads must be a whole number, not {threads!r}", fix=fix, where="--threads")
    try:
        count = operator.index(threads)
    except TypeError:
        raise EdgeError(f"threads must be a whole number, not {threads!r}", fix=fix, where="--threads") from None
    if count < 1:
        raise EdgeError(f"threads {count} is outside 1..{highest}: at least one thread runs the model",
                        fix=fix, where="--threads")
    if count > highest:
        raise EdgeError(f"threads {count} is outside 1..{highest}: more than {THREADS_PER_CORE_MAX} threads per "
                        "CPU core only add switching", fix=fix, where="--threads")
    return int(count)


class Backend:
    """One way of running a model file. Use as a context manager, or call close()."""

    name = "base"
    #: one line on what it is, for --list-backends
    summary = ""

    def __init__(self, model_path: Union[str, Path], *, threads: Optional[int] = None,
                 options: Optional[Dict[str, Any]] = None) -> None:
        self.model_path = Path(model_path)
        self.threads = check_threads(threads)
        self.options = dict(options or {})
        self.inputs: Tuple[TensorSpec, ...] = ()
        self.operators: Tuple[str, ...] = ()  # ONNX operator types of the graph, where known
        self.outputs: Tuple[TensorSpec, ...] = ()
        self.output_names: Tuple[str, ...] = ()
        self.device = "cpu"
        self.last_infer_ms = 0.0
        #: one-line findings from prepare() worth telling the user (e.g. part of the graph on the CPU)
        self.notes: List[str] = []
        self._prepared = False
        self._checks: Tuple[Tuple[str, Tuple[Any, ...], np.dtype], ...] = ()

    # ----------------------------------------------------------------- hooks
    @classmethod
    def unavailable_reason(cls) -> Optional[str]:
        """Why this backend cannot run here (missing library, no device), or None if it can."""
        return None

    @classmethod
    def install_hint(cls) -> str:
        """How to make this backend available (the fix printed with unavailable_reason)."""
        return "see python -m edge.camera --list-backends"

    def _prepare(self) -> None:
        raise NotImplementedError

    def _infer(self, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        raise NotImplementedError

    def _close(self) -> None:
        pass

    # ------------------------------------------------------------ public API
    def prepare(self) -> "Backend":
        """Load the model and allocate what inference needs; safe to call twice."""
        if self._prepared:
            return self
        reason = self.unavailable_reason()
        if reason:
            raise EdgeError(f"backend '{self.name}' cannot run here: {reason}", fix=self.install_hint(),
                            where=f"--backend {self.name}")
        if not self.inputs:
            info = read_onnx(self.model_path)
            self.inputs, self.outputs, self.operators = info.inputs, info.outputs, info.operators
        try:
            self._prepare()
        except CudaError as exc:  # e.g. out of device memory on a 4 GB board: a user-fixable condition
            raise EdgeError(f"CUDA failed while preparing backend '{self.name}' ({exc})",
                            fix="free GPU memory (close other GPU apps), lower --workspace, or use a CPU backend",
                            where=str(self.model_path)) from None
        self.output_names = tuple(o.name for o in self.outputs)
        self._checks = tuple((i.name, i.shape, i.dtype) for i in self.inputs)
        self._prepared = True
        return self

    def infer(self, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Run the model on named inputs; returns outputs by name. Times the call (last_infer_ms)."""
        if not self._prepared:
            self.prepare()
        if len(feeds) != len(self._checks):
            self._bad_feeds(feeds)
        for name, shape, dtype in self._checks:
            array = feeds.get(name)
            if array is None or array.dtype != dtype or not _shape_ok(array.shape, shape):
                self._bad_feeds(feeds)
        start = time.perf_counter()
        outputs = self._infer(feeds)
        self.last_infer_ms = (time.perf_counter() - start) * 1e3
        return outputs

    def close(self) -> None:
        """Release the session and device memory; safe to call twice."""
        if self._prepared:
            self._prepared = False
            self._close()

    def __enter__(self) -> "Backend":
        return self.prepare()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def describe(self) -> str:
        """One line: backend, device and what it really runs on."""
        return f"{self.name} on {self.device}"

    # ------------------------------------------------------------- helpers
    def _bad_feeds(self, feeds: Dict[str, Any]) -> None:
        expected = ", ".join(f"{n} {list(s)} {np.dtype(d).name}" for n, s, d in self._checks)
        found = ", ".join(
            f"{k} {list(getattr(v, 'shape', ()))} {getattr(getattr(v, 'dtype', None), 'name', type(v).__name__)}"
            for k, v in feeds.items()
        )
        raise EdgeError(f"inputs do not match the model: expected {expected}; got {found or 'nothing'}",
                        fix="feed the tensors the model declares (Model() preprocesses frames for you)",
                        where=f"{self.model_path.name} [{self.name}]")


def _shape_ok(actual: Tuple[int, ...], declared: Tuple[Any, ...]) -> bool:
    if len(actual) != len(declared):
        return False
    return all(not isinstance(d, int) or d == a for a, d in zip(actual, declared))
