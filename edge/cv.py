"""Lazy access to OpenCV, which is never a hard dependency.

On a Jetson, pip's opencv-python would shadow JetPack's GStreamer-enabled OpenCV, so the
package imports cv2 only when a feature needs it, and says how to get it when it is missing.
"""

from __future__ import annotations

import functools
import os
from types import ModuleType

from edge.errors import MissingDependency

CV2_FIX = (
    "pip install 'edge[cpu]' (brings opencv-python); on a Jetson use JetPack's OpenCV "
    "(sudo apt install nvidia-opencv) in a venv made with --system-site-packages"
)


@functools.lru_cache(maxsize=None)
def import_cv2() -> ModuleType:
    """Import cv2 once (ImportError when absent), with OpenCV's own logging quietened."""
    # OpenCV logs failed device probes as warnings on stderr; edge reports them as EdgeErrors.
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    import cv2

    return cv2


def require_cv2(purpose: str = "this feature") -> ModuleType:
    """Return the cv2 module, or raise MissingDependency naming ``purpose`` and the fix."""
    try:
        return import_cv2()
    except ImportError:
        raise MissingDependency("cv2", purpose, CV2_FIX) from None


def has_gstreamer() -> bool:
    """Whether the installed OpenCV was built with GStreamer (OpenCV 3.x and 4.x+ layouts)."""
    try:
        cv2 = import_cv2()
    except ImportError:
        return False
    lines = cv2.getBuildInformation().splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("GStreamer:"):
            rest = stripped[len("GStreamer:"):].strip()
            if rest:
                return rest.upper().startswith("YES")
            following = lines[i + 1].strip() if i + 1 < len(lines) else ""
            return following.startswith("base:") and "YES" in following
    return False
