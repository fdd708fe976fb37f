"""The sink interface: ``write(frame, annotated, record) -> bool`` and an idempotent ``close()``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np

from edge.errors import EdgeError
from edge.results import Frame

PathLike = Union[str, "os.PathLike[str]"]


class Sink:
    """Base class: a context manager that receives every frame and its record.

    Subclasses implement ``_write`` and, when they hold resources, ``_close``.
    """

    needs_annotated: bool = False

    def __init__(self) -> None:
        self._closed = False

    def write(self, frame: Frame, annotated: Optional[np.ndarray], record: Dict[str, Any]) -> bool:
        """Take one frame; return False when the user asked to stop.

        frame: the source frame. annotated: the frame with the overlay drawn, or None when no
        sink needs pixels (sinks that show pixels fall back to ``frame.image``).
        record: the frame's JSON record (index, timestamp, result, stage timings in ms).
        """
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        return bool(self._write(frame, annotated, record))

    def _write(self, frame: Frame, annotated: Optional[np.ndarray], record: Dict[str, Any]) -> bool:
        raise NotImplementedError

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

    def __enter__(self) -> Sink:  # noqa: PYI034 - typing.Self needs Python 3.11
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _pixels(frame: Frame, annotated: Optional[np.ndarray]) -> np.ndarray:
    return frame.image if annotated is None else annotated


def _check_parent(path: Path, what: str) -> None:
    """Fail before any processing when the output's folder is missing or not writable."""
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise EdgeError(
            f"the folder for the {what} does not exist", f"create it first: mkdir -p {parent}", str(path)
        )
    if not os.access(parent, os.W_OK):
        raise EdgeError(f"the folder for the {what} is not writable", "choose a writable folder", str(path))
