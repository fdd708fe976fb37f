"""JSON lines: one compact JSON object per frame, flushed per line (numpy-safe, NaN as null)."""

import json
import math
import os
import sys
from pathlib import Path
from typing import IO, Any, Dict, Optional, Tuple, Union

import numpy as np

from edge.errors import EdgeError
from edge.results import Frame
from edge.sinks.base import OutputWriteError, PathLike, Sink, _check_parent, check_overwrite, free_bytes

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
    """One compact JSON line (no newline) for a record; NaN and inf become null. A pipeline's FrameRecord keeps
    its line, so several outputs of one frame (a .jsonl file and an mqtt:// broker) serialise it once."""
    line = getattr(record, "json_line", None)
    if line is None:
        line = json.dumps(jsonable(record), separators=(",", ":"), allow_nan=False, default=_json_default)
        if hasattr(record, "json_line"):
            record.json_line = line  # type: ignore[attr-defined]
    return line


class JsonLinesSink(Sink):
    """Writes one JSON object per frame, one per line, written through at once.

    stream_or_path: an open text stream, "-" for stdout, or a file path (.jsonl or .json).
    overwrite: replace an existing non-empty file (without it such a file is refused). A file is
    created on the first frame, so a run that fails before it leaves no file behind. Only files
    this sink opened are closed by it. A failed write (disk full) leaves whole lines only and
    raises OutputWriteError.
    """

    needs_record = True

    def __init__(self, stream_or_path: Union[PathLike, IO[str]] = "-", *, overwrite: bool = False) -> None:
        super().__init__()
        self._fd: Optional[int] = None
        self._path: Optional[Path] = None
        self._good_bytes = 0
        self._longest_line = 0
        self.stream: Optional[IO[str]] = None
        if hasattr(stream_or_path, "write"):
            self.stream = stream_or_path  # type: ignore[assignment]
            self.name = getattr(stream_or_path, "name", "<stream>")
        elif os.fspath(stream_or_path) in ("-", "stdout"):  # type: ignore[arg-type]
            self.stream, self.name = sys.stdout, "<stdout>"
        else:
            path = Path(stream_or_path)  # type: ignore[arg-type]
            _check_parent(path, "JSON lines output")
            check_overwrite(path, overwrite, "JSON lines output")
            self._path, self.name = path, str(path)
        self.lines_written = 0

    def __repr__(self) -> str:
        return f"JsonLinesSink({self.name!r})"

    @property
    def frames_in_output(self) -> Optional[int]:
        """Complete lines written."""
        return self.lines_written

    def preflight(self) -> None:
        """Stop before a line that would not fit on the disk."""
        if self._path is None or self.lines_written == 0:
            return
        free = free_bytes(self._path.parent)
        if free is not None and free < 2 * self._longest_line + 4096:
            raise OutputWriteError(f"the disk is full after {self.lines_written} lines",
                                   "free space or write to another disk", self.name)

    def _open(self) -> int:
        assert self._path is not None
        try:
            self._fd = os.open(str(self._path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        except OSError as exc:
            raise EdgeError(f"cannot open for writing ({exc.strerror})", "choose a writable path",
                            self.name) from None
        return self._fd

    def _write(self, frame: Frame, annotated: Optional[np.ndarray], record: Dict[str, Any]) -> bool:
        line = dumps_line(record) + "\n"
        if self.stream is not None:
            return self._write_stream(line)
        data = line.encode("utf-8")
        fd = self._fd if self._fd is not None else self._open()
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except OSError as exc:
            try:  # keep whole lines only: the summary's count is what the file holds
                os.ftruncate(fd, self._good_bytes)
            except OSError:
                pass
            raise OutputWriteError(f"cannot write line {self.lines_written + 1} ({exc.strerror}); the file holds "
                                   f"{self.lines_written} whole lines", "free space or write to another disk",
                                   self.name) from None
        self._good_bytes += len(data)
        self._longest_line = max(self._longest_line, len(data))
        self.lines_written += 1
        return True

    def _write_stream(self, line: str) -> bool:
        assert self.stream is not None
        try:
            self.stream.write(line)
            self.stream.flush()
        except BrokenPipeError:
            # The reader went away (`| head`): that is the user stopping the run.
            return False
        except OSError as exc:
            raise OutputWriteError(f"cannot write line {self.lines_written + 1} ({exc.strerror}) after "
                                   f"{self.lines_written} lines", "write to a file on a disk with space, "
                                   "or to a pipe", self.name) from None
        self.lines_written += 1
        return True

    def _close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
            return
        if self.stream is None:
            return
        try:
            self.stream.flush()
        except (OSError, ValueError):
            pass  # reader gone, disk full (already reported) or stream closed by its owner
