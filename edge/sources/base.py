"""The Source interface: an iterator of Frames that owns a capture device and releases it.

A source implements two hooks: ``_grab(timeout_s)`` returns the next image (or None) and
``_release()`` frees what it holds. The public :meth:`Source.read` numbers the frames,
stamps them and builds :class:`~edge.results.Frame`; :meth:`Source.close` runs once.
"""

import time
from typing import Any, Dict, Iterator, Optional, Tuple, TypeVar

import numpy as np

from edge.errors import EdgeError
from edge.results import Frame

# What a source's hook hands back: the BGR image, its capture time (perf_counter s), truth.
Grabbed = Tuple[np.ndarray, float, Dict[str, Any]]

_SourceT = TypeVar("_SourceT", bound="Source")
_ITER_WAIT_S = 0.5  # iteration waits in slices so Ctrl-C is seen promptly

# Frame size bounds: 8K UHD (7680x4320, 33.2 MP) is the largest frame any camera or video here
# delivers; a side up to 16384 px allows panoramas. Larger requests are typos or attacks that
# would otherwise end in a traceback or the out-of-memory killer.
MAX_FRAME_SIDE_PX = 16384
MAX_FRAME_PIXELS = 7680 * 4320

#: The camera app's exit code when its live source is gone for good (a camera unplugged past the
#: reconnect back-off, a stream that never comes back): non-zero, so systemd's Restart=on-failure
#: restarts the app; distinct from 1 (an output failed) and 2 (a user mistake).
EXIT_SOURCE_LOST = 3


class SourceLost(EdgeError):
    """A live source stopped delivering and every reconnect attempt failed (exit code EXIT_SOURCE_LOST)."""

    exit_code = EXIT_SOURCE_LOST


class Source:
    """Frames from one URI; a context manager and an iterator.

    Attributes: uri; live (a camera or stream: newest frame only, may drop); size_wh
    (width, height) or None until known; fps (nominal) or None; ended_reason, why
    iteration stopped ("end of file", "camera lost after 5 reconnect attempts", …) or None
    while running; dropped, frames a live source replaced before they were read;
    skipped_frames, frames that could not be decoded and were skipped (a corrupt frame in a video);
    lost, True when iteration stopped because a live source went away for good (not at the end of a
    file or of a finite stream, nor on close).
    """

    live = False

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.size_wh: Optional[Tuple[int, int]] = None
        self.fps: Optional[float] = None
        self.ended_reason: Optional[str] = None
        self.dropped = 0
        self.skipped_frames = 0
        self.lost = False
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

    def _end(self, reason: str, lost: bool = False) -> None:
        if self.ended_reason is None:
            self.ended_reason = reason
            self.lost = lost

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


def check_frame_size(size_wh: Tuple[int, int], where: str = "source") -> None:
    """EdgeError when a frame size is beyond MAX_FRAME_SIDE_PX per side or MAX_FRAME_PIXELS in all."""
    width, height = (int(v) for v in size_wh)
    if width < 1 or height < 1 or max(width, height) > MAX_FRAME_SIDE_PX or width * height > MAX_FRAME_PIXELS:
        raise EdgeError(
            f"frame size {width}x{height} is outside what edge handles (1..{MAX_FRAME_SIDE_PX} px a side, "
            f"at most {MAX_FRAME_PIXELS / 1e6:.1f} MP, 8K UHD)",
            fix="ask for a smaller size, e.g. width=1920&height=1080",
            where=where,
        )


def available_memory_bytes() -> Optional[int]:
    """Memory the kernel says new allocations can get without swapping (MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_memory(needed_bytes: int, what: str, where: str, fix: str) -> None:
    """EdgeError before allocating when ``needed_bytes`` exceeds the memory available now."""
    available = available_memory_bytes()
    if available is not None and needed_bytes > available:
        raise EdgeError(
            f"{what} needs about {needed_bytes / 2**30:.1f} GiB of memory and {available / 2**30:.1f} GiB is available",
            fix=fix,
            where=where,
        )
