"""The newest frame and the recent JSON lines of a run, shared by the camera thread and the viewers' threads.

The camera thread only keeps references (:meth:`LiveFeed.publish`: no copy, no encoding): the pipeline hands
every sink a fresh annotated array per frame, which nothing changes afterwards. Viewers' threads do the work,
and only while someone watches: :meth:`LiveFeed.jpeg_after` encodes the newest frame at most once per frame for
all viewers and at most ``fps_cap`` times a second, so a slow viewer skips frames and gets the newest one;
:meth:`LiveFeed.lines_after` hands out the JSON lines kept in a bounded ring, where a viewer that falls behind by
more than the ring loses the oldest lines and learns how many. The RTSP output reads frames the same way
(:meth:`LiveFeed.frame_after`).
"""

import socket
import sys
import threading
import time
from collections import deque
from typing import Any, Deque, Dict, List, Optional, Tuple

import numpy as np

from edge.errors import EdgeError
from edge.sinks.jsonl import dumps_line

#: JSON lines kept for the event streams: a viewer this far behind loses the oldest
LINES_KEPT = 256


class LiveFeed:
    """Frames and JSON lines of a running pipeline, for any number of viewers.

    quality: JPEG quality (1-100). fps_cap: at most this many JPEG encodings (and RTSP frames) a second.
    lines_kept: JSON lines kept for slow event viewers.
    """

    def __init__(self, quality: int = 80, fps_cap: float = 15.0, lines_kept: int = LINES_KEPT) -> None:
        self.quality = int(quality)
        self.fps_cap = float(fps_cap)
        self._cond = threading.Condition()
        self.number = 0  # frames published so far; frame n is the n-th
        self._image: Optional[np.ndarray] = None
        self._image_number = 0  # the frame number of _image: frames published without pixels keep the last one
        self._next_draw_s = 0.0
        self._lines: Deque[Tuple[int, str]] = deque(maxlen=lines_kept)
        self._jpeg_number = 0
        self._jpeg = b""
        self._encoding = False
        self._next_encode_s = 0.0
        self.line_viewers = 0
        self.image_viewers = 0
        self.encoded = 0  # JPEG encodings made
        self.closed = False

    # ------------------------------------------------------------ camera thread
    def publish(self, image: Optional[np.ndarray], record: Any) -> None:
        """Make ``image`` (kept by reference, not copied; None: no pixels for this frame) and the record's JSON line
        the newest; wake viewers.

        The line is made only while someone reads the event stream (and is cached on the record for other
        JSON outputs): it must be made here, as the pipeline adds timings to the record after its sinks ran. A
        record without its result (no output asked for it when the frame was delivered) gives no line.
        """
        line = dumps_line(record) if self.line_viewers and "result" in record else None
        with self._cond:
            self.number += 1
            if image is not None:
                self._image, self._image_number = image, self.number
                self._next_draw_s = time.monotonic() + 1.0 / self.fps_cap
            if line is not None:
                self._lines.append((self.number, line))
            self._cond.notify_all()

    def close(self) -> None:
        """Wake every waiting viewer; from now on they get None and end their responses."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    # ------------------------------------------------------------ viewers' threads
    def jpeg_after(self, seen: int, timeout_s: float) -> Optional[Tuple[int, bytes]]:
        """The newest frame as JPEG once it is newer than frame ``seen``: (frame number, bytes).

        Encodes at most once per frame for all callers and at most ``fps_cap`` times a second (callers wait for
        the next slot). None when the feed closed or nothing newer came within timeout_s.
        """
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not self.closed:
                now = time.monotonic()
                fresh = self._jpeg_number > seen
                if fresh and (self._jpeg_number == self._image_number or now < self._next_encode_s or self._encoding):
                    return self._jpeg_number, self._jpeg
                if self._image_number > seen and not self._encoding and now >= self._next_encode_s:
                    return self._encode_newest(now)
                wait_s = deadline - now
                if wait_s <= 0:
                    return None
                if self._image_number > seen and not self._encoding:  # a frame, not its slot
                    wait_s = min(wait_s, max(self._next_encode_s - now, 0.001))
                self._cond.wait(wait_s)
        return None

    def _encode_newest(self, now: float) -> Tuple[int, bytes]:
        """Encode the newest frame outside the lock (called with it held; returns with it held)."""
        import cv2

        number, image = self._image_number, self._image
        self._encoding = True
        self._next_encode_s = now + 1.0 / self.fps_cap
        self._cond.release()
        try:
            ok, encoded = cv2.imencode(".jpg", image, [int(cv2.IMWRITE_JPEG_QUALITY), self.quality])
            data = encoded.tobytes() if ok else b""
        finally:
            self._cond.acquire()
            self._encoding = False
            self._cond.notify_all()
        if data:
            self._jpeg_number, self._jpeg = number, data
            self.encoded += 1
        return self._jpeg_number, self._jpeg

    def jpeg_newest(self, timeout_s: float) -> Optional[Tuple[int, bytes]]:
        """The newest frame with pixels as JPEG (the next one when the newest has none); None after timeout_s."""
        with self._cond:
            seen = self._image_number - 1 if self._image is not None else self.number
        return self.jpeg_after(seen, timeout_s)

    def wants_image(self) -> bool:
        """Whether the next frame should be drawn for the viewers: someone watches, and the last frame with pixels
        is 1 / fps_cap old (frames that no encoding would use are not drawn: the overlay costs the camera thread
        about 0.6 ms a 720p frame)."""
        return self.image_viewers > 0 and time.monotonic() >= self._next_draw_s

    def watch_images(self) -> None:
        """Register a viewer of frames (the pipeline draws while there is one); call :meth:`unwatch_images` after."""
        with self._cond:
            self.image_viewers += 1

    def unwatch_images(self) -> None:
        """A viewer of frames left."""
        with self._cond:
            self.image_viewers -= 1

    def frame_after(self, seen: int, timeout_s: float) -> Optional[Tuple[int, np.ndarray]]:
        """The newest frame (not copied) once it is newer than frame ``seen``, at most ``fps_cap`` a second
        for this caller: (frame number, image); None when the feed closed or nothing came within timeout_s."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not self.closed:
                if self._image_number > seen:
                    return self._image_number, self._image
                wait_s = deadline - time.monotonic()
                if wait_s <= 0:
                    return None
                self._cond.wait(wait_s)
        return None

    def watch_lines(self) -> int:
        """Register an event viewer; returns the frame number it starts after (call :meth:`unwatch_lines` at the
        end)."""
        with self._cond:
            self.line_viewers += 1
            return self.number

    def unwatch_lines(self) -> None:
        """An event viewer left."""
        with self._cond:
            self.line_viewers -= 1

    def lines_after(self, seen: int, timeout_s: float) -> Optional[Tuple[List[Tuple[int, str]], int]]:
        """The kept JSON lines of frames after ``seen``, waiting up to timeout_s for one: ([(frame number, line),
        ...], lost), where lost counts lines of frames after ``seen`` that left the ring before this call.

        Only lines made while someone watched are kept, so a first call may start a frame or two after ``seen``
        (the viewer came as those frames were being published): callers count losses between deliveries.
        None when the feed closed and every kept line after ``seen`` was handed out.
        """
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                if self._lines and self._lines[-1][0] > seen:  # before closed: a run's last lines still go out
                    lines = [item for item in self._lines if item[0] > seen]
                    return lines, max(0, lines[0][0] - seen - 1)
                if self.closed:
                    return None
                wait_s = deadline - time.monotonic()
                if wait_s <= 0:
                    return [], 0
                self._cond.wait(wait_s)


# -------------------------------------------------------- shared by the http:// and rtsp:// outputs' URLs
def url_number(query: Dict[str, str], name: str, default: float, low: float, high: float, where: str,
               whole: bool = True) -> Any:
    """Option ``name`` of an output URL's query as a number from low to high (``default`` when absent); a
    one-line error naming the option otherwise."""
    text = query.get(name)
    if text is None:
        return default
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        kind = "whole number" if whole else "number"
        raise EdgeError(f"{name}={text} is not a {kind} from {low:g} to {high:g}", f"fix {name}=", where)
    return value


def probe_bind(host: str, port: int) -> None:
    """Bind host:port as the server will (SO_REUSEADDR) and release it at once; OSError when it cannot be bound."""
    probe = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
    finally:
        probe.close()


def stderr_line(line: str) -> None:
    """Where a server output's start lines go by default."""
    print(line, file=sys.stderr, flush=True)
