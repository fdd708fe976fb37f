"""An OpenCV window, where a display exists; 'q', Esc or closing the window stops the run."""

import math
import os
import sys
import time
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from edge.cv import require_cv2
from edge.errors import EdgeError
from edge.results import Frame
from edge.sinks.base import Sink, _pixels

_QUIT_KEYS = (ord("q"), ord("Q"), 27)  # 27 is Esc


def display_available() -> bool:
    """Whether a window can be shown: True on macOS and Windows, else DISPLAY or WAYLAND_DISPLAY is set."""
    if sys.platform == "darwin" or sys.platform.startswith("win"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def opencv_has_gui() -> bool:
    """Whether the installed OpenCV can open windows (False for opencv-python-headless)."""
    for line in require_cv2("showing a window").getBuildInformation().splitlines():
        stripped = line.strip()
        if stripped.startswith("GUI:"):
            return stripped[len("GUI:") :].strip().upper() not in ("NONE", "NO")
    return True  # unknown layout: let imshow say


class WindowSink(Sink):
    """Shows annotated frames in an OpenCV window; 'q', Esc or closing the window stops the run."""

    needs_annotated = True
    needs_record = False

    def __init__(self, title: str = "edge") -> None:
        super().__init__()
        if not display_available():
            raise EdgeError("no display", "run with --headless or set DISPLAY", "window output")
        if not opencv_has_gui():
            raise EdgeError(
                "this OpenCV has no GUI support (opencv-python-headless?)",
                "run with --headless, or install opencv-python instead of the headless build",
                "window output",
            )
        self.title = title
        self._cv2 = require_cv2("showing a window")
        self._shown = False
        self._seen_visible = False

    def __repr__(self) -> str:
        return f"WindowSink({self.title!r})"

    def _write(self, frame: Frame, annotated: Optional[np.ndarray], record: Dict[str, Any]) -> bool:
        return self._show(_pixels(frame, annotated))

    def _show(self, image: np.ndarray) -> bool:
        """Show ``image``; False when the user asked to stop (a quit key, or the window closed)."""
        cv2 = self._cv2
        try:
            cv2.imshow(self.title, image)
        except cv2.error as exc:
            raise EdgeError(f"cannot show a window ({exc})", "run with --headless", "window output") from None
        self._shown = True
        key = cv2.waitKey(1) & 0xFF
        if key in _QUIT_KEYS:
            return False
        visible = cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE)
        # Some GUI backends report -1 for this property: only trust it once it has been seen >= 1.
        if visible >= 1:
            self._seen_visible = True
        return not (self._seen_visible and visible < 1)

    def _close(self) -> None:
        if not self._shown:
            return
        cv2 = self._cv2
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)  # let the GUI loop process the destroy event
        except cv2.error:
            pass  # the user already closed it


def grid_shape(count: int) -> Tuple[int, int]:
    """(columns, rows) of the most square grid that holds ``count`` tiles (4: 2x2, 5: 3x2)."""
    columns = max(1, math.ceil(math.sqrt(count)))
    return columns, max(1, math.ceil(count / columns))


def tile_size(frame_wh: Tuple[int, int], count: int, max_wh: Tuple[int, int]) -> Tuple[int, int]:
    """(width, height) of one tile: frames keep their aspect, shrunk so that the grid fits ``max_wh``."""
    columns, rows = grid_shape(count)
    scale = min(1.0, max_wh[0] / (columns * frame_wh[0]), max_wh[1] / (rows * frame_wh[1]))
    return max(1, int(frame_wh[0] * scale)), max(1, int(frame_wh[1] * scale))


class TiledWindow:
    """All streams of a multi-stream run in one grid image; each stream's newest frame in its tile, named.

    names: one per stream, in stream order. max_wh: the largest grid, pixels (tiles shrink to fit).
    """

    def __init__(self, names: Sequence[str], max_wh: Tuple[int, int] = (1920, 1080)) -> None:
        self.names = list(names)
        self.max_wh = max_wh
        self.tile_wh: Optional[Tuple[int, int]] = None
        self.grid: Optional[np.ndarray] = None

    def put(self, index: int, image: np.ndarray) -> np.ndarray:
        """Draw stream ``index``'s frame into its tile; the whole grid (BGR uint8)."""
        cv2 = require_cv2("tiling a window")
        if self.tile_wh is None:
            self.tile_wh = tile_size((int(image.shape[1]), int(image.shape[0])), len(self.names), self.max_wh)
            columns, rows = grid_shape(len(self.names))
            self.grid = np.zeros((rows * self.tile_wh[1], columns * self.tile_wh[0], 3), np.uint8)
        assert self.grid is not None
        width, height = self.tile_wh
        columns = grid_shape(len(self.names))[0]
        x, y = (index % columns) * width, (index // columns) * height
        tile = self.grid[y:y + height, x:x + width]
        tile[:] = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        label = f"{index}: {self.names[index]}"
        scale = max(0.4, height / 720 * 0.8)
        thickness = max(1, int(round(scale * 2)))
        (text_w, text_h), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        cv2.rectangle(tile, (0, height - text_h - base - 8), (min(width, text_w + 8), height), (0, 0, 0), -1)
        cv2.putText(tile, label, (4, height - base - 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                    thickness, cv2.LINE_AA)
        return self.grid


class TiledWindowSink(WindowSink):
    """One window for a multi-stream run: every stream in a grid (:class:`TiledWindow`), redrawn at most
    ``max_fps`` times a second; 'q', Esc or closing the window stops the run."""

    def __init__(self, names: Sequence[str], title: str = "edge", max_fps: float = 30.0) -> None:
        super().__init__(title)
        self.tiles = TiledWindow(names)
        self._every_s = 1.0 / max_fps
        self._shown_s: Optional[float] = None

    def __repr__(self) -> str:
        return f"TiledWindowSink({self.title!r}, {len(self.tiles.names)} streams)"

    def _write(self, frame: Frame, annotated: Optional[np.ndarray], record: Dict[str, Any]) -> bool:
        grid = self.tiles.put(int(record["stream"]["index"]), _pixels(frame, annotated))
        now = time.perf_counter()
        if self._shown_s is not None and now - self._shown_s < self._every_s:
            return True  # several streams' frames in one redraw: imshow and the GUI loop cost per call
        self._shown_s = now
        return self._show(grid)
