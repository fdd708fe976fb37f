"""An OpenCV window, where a display exists; 'q', Esc or closing the window stops the run."""

import os
import sys
from typing import Any, Dict, Optional

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
        cv2 = self._cv2
        try:
            cv2.imshow(self.title, _pixels(frame, annotated))
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
