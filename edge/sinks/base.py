"""The sink interface: ``write(frame, annotated, record) -> bool`` and an idempotent ``close()``."""

import os
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np

from edge.errors import EdgeError
from edge.results import Frame

PathLike = Union[str, "os.PathLike[str]"]


class OutputWriteError(EdgeError):
    """Writing an output failed during the run (disk full, I/O error): the run stops with exit 1."""

    exit_code = 1


class FrameRecord(dict):
    """A frame's record as the pipeline hands it to every sink: a plain JSON dict (index, timestamp, stage
    timings in ms, and, when some sink has ``needs_record``, the result's JSON form under "result"), which
    also carries the result object itself as :attr:`result` (never serialised: ``dict`` views and
    ``json.dumps`` see the keys only). Sinks that write the result in another form (mask images) read the
    object; they cost no JSON conversion.
    """

    def __init__(self, result: Any = None, *args: Any, **fields: Any) -> None:
        super().__init__(*args, **fields)
        #: the decoder's (and tracker's) result: Detections, Classification, Segmentation, ...; None when unknown
        self.result = result
        #: the record's JSON line once a sink has made it (edge.sinks.jsonl.dumps_line), for the next sink
        self.json_line: Optional[str] = None


class Sink:
    """Base class: a context manager that receives every frame and its record.

    Subclasses implement ``_write`` and, when they hold resources, ``_close``. ``frames_in_output``
    is how many frames the output really holds (None for outputs that keep nothing, like a window).
    ``needs_annotated``: the sink shows pixels, so the pipeline draws the overlay for it.
    ``needs_record``: the sink reads ``record["result"]``, the result's JSON form; the pipeline converts
    results to JSON (COCO RLE for masks: milliseconds a frame) only when some sink says so. True by
    default, so that a sink written before this flag existed still finds the result in its record.
    """

    needs_annotated: bool = False
    needs_record: bool = True

    def __init__(self) -> None:
        self._closed = False

    def write(self, frame: Frame, annotated: Optional[np.ndarray], record: Dict[str, Any]) -> bool:
        """Take one frame; return False when the user asked to stop.

        frame: the source frame. annotated: the frame with the overlay drawn, or None when no
        sink needs pixels (sinks that show pixels fall back to ``frame.image``).
        record: the frame's JSON record (index, timestamp, stage timings in ms, and the result's JSON
        form when ``needs_record``); from the pipeline a :class:`FrameRecord`, whose ``.result`` is the
        result object.
        """
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        return bool(self._write(frame, annotated, record))

    def _write(self, frame: Frame, annotated: Optional[np.ndarray], record: Dict[str, Any]) -> bool:
        raise NotImplementedError

    def preflight(self) -> None:
        """Raise OutputWriteError when the next frame cannot be written whole (e.g. the disk is nearly full).

        The pipeline asks every sink before writing a frame to any, so that all outputs stop at the same frame.
        """

    def check_result(self, result: Any) -> None:
        """Raise EdgeError when this output cannot hold this kind of result (e.g. mask images of boxes).

        The pipeline asks every sink before writing a frame to any, like :meth:`preflight`.
        """

    @property
    def frames_in_output(self) -> Optional[int]:
        """Frames this output holds so far (None: it keeps nothing)."""
        return None

    def summary(self) -> Optional[Dict[str, int]]:
        """Counts this output adds to the run summary beside :attr:`frames_in_output`, e.g. an MQTT sink's
        {"published": 118, "dropped": 2, "unconfirmed": 0}; None when it has nothing to add. Read after close()."""
        return None

    def close(self) -> None:
        """Release what the sink holds (files, writers, windows); safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        self._close()

    def _close(self) -> None:
        """Hook: release resources; called once."""

    @property
    def closed(self) -> bool:
        """Whether close() has run."""
        return self._closed

    def __enter__(self) -> "Sink":  # noqa: PYI034 - typing.Self needs Python 3.11
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _pixels(frame: Frame, annotated: Optional[np.ndarray]) -> np.ndarray:
    return frame.image if annotated is None else annotated


def free_bytes(folder: Path) -> Optional[int]:
    """Bytes this process may still write in ``folder``'s filesystem (root may use the reserved blocks)."""
    try:
        stats = os.statvfs(str(folder))
    except (OSError, AttributeError):  # no statvfs on Windows
        return None
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    return (stats.f_bfree if is_root else stats.f_bavail) * stats.f_frsize


def check_overwrite(path: Path, overwrite: bool, what: str) -> None:
    """Refuse a path that is a folder, and an existing non-empty file unless ``overwrite``: a run never
    empties a file it did not write."""
    if path.is_dir():
        raise EdgeError(f"the {what} path is a folder", "give a file name inside it", str(path))
    if not overwrite and path.is_file() and path.stat().st_size > 0:
        raise EdgeError(f"the {what} already exists", "add --overwrite to replace it, or choose another name",
                        str(path))


def _check_parent(path: Path, what: str) -> None:
    """Fail before any processing when the output's folder is missing or not writable."""
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise EdgeError(
            f"the folder for the {what} does not exist", f"create it first: mkdir -p {parent}", str(path)
        )
    if not os.access(parent, os.W_OK):
        raise EdgeError(f"the folder for the {what} is not writable", "choose a writable folder", str(path))
