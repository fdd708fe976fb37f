"""The Source interface: an iterator of Frames that owns a capture device and releases it.

A source implements two hooks: ``_grab(timeout_s)`` returns the next image (or None) and
``_release()`` frees what it holds. The public :meth:`Source.read` numbers the frames,
stamps them and builds :class:`~edge.results.Frame`; :meth:`Source.close` runs once.
"""

from __future__ import annotations

import time
from typing import Any, Dict, Iterator, Optional, Tuple, TypeVar

import numpy as np

from edge.results import Frame

# What a source's hook hands back: the BGR image, its capture time (perf_counter s), truth.
Grabbed = Tuple[np.ndarray, float, Dict[str, Any]]

_SourceT = TypeVar("_SourceT", bound="Source")
_ITER_WAIT_S = 0.5  # iteration waits in slices so Ctrl-C is seen promptly


class Source:
    """Frames from one URI; a context manager and an iterator.

    Attributes: uri; live (a camera or stream: newest frame only, may drop); size_wh
    (width, height) or None until known; fps (nominal) or None; ended_reason, why
    iteration stopped ("end of file", "camera lost after 5 reconnect attempts", …) or None
    while running; dropped, frames a live source replaced before they were read.
    """

    live = False

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.size_wh: Optional[Tuple[int, int]] = None
        self.fps: Optional[float] = None
        self.ended_reason: Optional[str] = None
        self.dropped = 0
        self._next_index = 0
        self._closed = False

    # -- hooks for subclasses ---------------------------------------------------------
    def _grab(self, timeout_s: Optional[float]) -> Optional[Grabbed]:
        """Next image, or None on timeout or end (call ``self._end(reason)`` at the end)."""
        raise NotImplementedError

    def _release(self) -> None:
        """Free the device or file; called exactly once."""

    # -- public API --------------------------------------------------------------------
    @property
    def ended(self) -> bool:
        """Whether the source has stopped delivering frames for good."""
        return self.ended_reason is not None

    def read(self, timeout_s: Optional[float] = None) -> Optional[Frame]:
        """The next frame, or None when the source has ended or ``timeout_s`` passed with no frame.

        Check :attr:`ended` to tell the two apart. timeout_s None waits as long as it takes.
        """
        if self.ended:
            return None
        grabbed = self._grab(timeout_s)
        if grabbed is None:
            return None
        image, timestamp_s, truth = grabbed
        if self.size_wh is None:
            self.size_wh = (int(image.shape[1]), int(image.shape[0]))
        frame = Frame(image, self._next_index, timestamp_s, self.uri, truth)
        self._next_index += 1
        return frame

    def close(self) -> None:
        """Release the device or file; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        if self.ended_reason is None:
            self.ended_reason = "closed"
        self._release()

    def _end(self, reason: str) -> None:
        if self.ended_reason is None:
            self.ended_reason = reason

    def __iter__(self) -> Iterator[Frame]:
        return self

    def __next__(self) -> Frame:
        while True:
            frame = self.read(timeout_s=_ITER_WAIT_S)
            if frame is not None:
                return frame
            if self.ended:
                raise StopIteration

    def __enter__(self: _SourceT) -> _SourceT:  # noqa: PYI019 - typing.Self needs Python 3.11
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        # A source whose __init__ failed has no _closed yet: nothing to release then.
        if getattr(self, "_closed", True) is False:
            self.close()

    def __repr__(self) -> str:
        state = self.ended_reason or "open"
        return f"{type(self).__name__}({self.uri!r}, size_wh={self.size_wh}, fps={self.fps}, {state})"


def now_s() -> float:
    """Capture timestamp on the perf_counter clock, seconds."""
    return time.perf_counter()
