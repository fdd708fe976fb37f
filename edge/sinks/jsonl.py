"""JSON lines: one compact JSON object per frame, flushed per line (numpy-safe, NaN as null)."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import IO, Any, Dict, Optional, Tuple, Union

import numpy as np

from edge.errors import EdgeError
from edge.results import Frame
from edge.sinks.base import PathLike, Sink, _check_parent

JSON_EXTS: Tuple[str, ...] = (".jsonl", ".json")


def jsonable(value: Any) -> Any:
    """Plain-JSON copy of ``value``: numpy scalars and arrays as Python, NaN and inf as None."""
    if isinstance(value, float):  # also np.float64, a float subclass
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    """json.dumps hook for what the encoder does not know."""
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if hasattr(value, "to_json"):
        return jsonable(value.to_json())
    if isinstance(value, (Path, os.PathLike)):
        return os.fspath(value)
    if isinstance(value, (set, frozenset)):
        return jsonable(sorted(value, key=str))
    raise TypeError(f"cannot write a {type(value).__name__} as JSON")


def dumps_line(record: Dict[str, Any]) -> str:
    """One compact JSON line (no newline) for a record; NaN and inf become null."""
    return json.dumps(jsonable(record), separators=(",", ":"), allow_nan=False, default=_json_default)


class JsonLinesSink(Sink):
    """Writes one JSON object per frame, one per line, flushed at once.

    stream_or_path: an open text stream, "-" for stdout, or a file path (.jsonl or .json).
    Only files this sink opened are closed by it.
    """

    def __init__(self, stream_or_path: Union[PathLike, IO[str]] = "-") -> None:
        super().__init__()
        self._owned = False
        if hasattr(stream_or_path, "write"):
            self.stream: IO[str] = stream_or_path  # type: ignore[assignment]
            self.name = getattr(stream_or_path, "name", "<stream>")
        elif os.fspath(stream_or_path) in ("-", "stdout"):  # type: ignore[arg-type]
            self.stream, self.name = sys.stdout, "<stdout>"
        else:
            path = Path(stream_or_path)  # type: ignore[arg-type]
            _check_parent(path, "JSON lines output")
            try:
                self.stream = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in _close
            except OSError as exc:
                raise EdgeError(
                    f"cannot open for writing ({exc.strerror})", "choose a writable path", str(path)
                ) from None
            self.name, self._owned = str(path), True
        self.lines_written = 0

    def __repr__(self) -> str:
        return f"JsonLinesSink({self.name!r})"

    def _write(self, frame: Frame, annotated: Optional[np.ndarray], record: Dict[str, Any]) -> bool:
        line = dumps_line(record)
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except BrokenPipeError:
            # The reader went away (`| head`): that is the user stopping the run.
            return False
        self.lines_written += 1
        return True

    def _close(self) -> None:
        if self._owned:
            self.stream.close()
            return
        try:
            self.stream.flush()
        except (BrokenPipeError, ValueError):
            pass  # reader gone or stream closed by its owner: nothing left to flush
