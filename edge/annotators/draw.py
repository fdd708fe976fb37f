"""Drawing primitives the annotators share: palette, sizes, label chips and text panels.

Sizes (line thickness, text scale) follow the image size so that a 320x240 test frame and a
1920x1080 camera frame both read well.
"""

from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from edge.cv import require_cv2

Color = Tuple[int, int, int]

# Fixed palette, BGR, indexed by class id (or track id) modulo its length: the same class keeps
# its colour across frames and runs.
# fmt: off
PALETTE_BGR: Tuple[Color, ...] = (
    (56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207),
    (10, 249, 72), (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0),
    (168, 153, 44), (255, 194, 0), (147, 69, 52), (255, 115, 100), (236, 24, 0),
    (255, 56, 132), (133, 0, 82), (255, 56, 203), (200, 149, 255), (199, 55, 255),
)
# fmt: on

CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
COLOR_BY = ("auto", "class", "track")
PANEL_DIM = 0.35  # brightness kept under a text panel: dark, but the scene shows through
TEXT_BGR: Color = (255, 255, 255)


def color_for_class(class_id: int, palette_bgr: Sequence[Color] = PALETTE_BGR) -> Color:
    """BGR colour of a class id, or of any integer id (stable, wraps around the palette)."""
    return tuple(int(c) for c in palette_bgr[int(class_id) % len(palette_bgr)])  # type: ignore[return-value]


def check_scene(scene: Any) -> None:
    """Annotators draw in place on (H, W, 3) uint8 BGR images: refuse anything else."""
    if not isinstance(scene, np.ndarray) or scene.dtype != np.uint8 or scene.ndim != 3 or scene.shape[2] != 3:
        got = f"{scene.dtype} {scene.shape}" if isinstance(scene, np.ndarray) else type(scene).__name__
        raise ValueError(f"annotate needs an (H, W, 3) uint8 BGR image, got {got}")
    if not scene.flags.c_contiguous or not scene.flags.writeable:
        raise ValueError(
            "annotate draws in place: pass a C-contiguous, writeable image (np.ascontiguousarray)"
        )


def check_palette(palette_bgr: Sequence[Color]) -> Tuple[Color, ...]:
    """The palette as a tuple; at least one colour."""
    if not palette_bgr:
        raise ValueError("palette_bgr must hold at least one colour")
    return tuple(palette_bgr)


def check_color_by(color_by: str) -> str:
    """One of COLOR_BY: 'auto' colours by track id when the detections are tracked, else by class."""
    if color_by not in COLOR_BY:
        raise ValueError(f"color_by must be one of {', '.join(COLOR_BY)}, got {color_by!r}")
    return color_by


def thickness_for(scene: np.ndarray, thickness_px: Optional[int]) -> int:
    """Line width in pixels: the given one, or 2 px at 720p scaled with the image."""
    if thickness_px is not None:
        return max(1, int(thickness_px))
    return max(1, round(min(scene.shape[:2]) / 360))


def scale_for(scene: np.ndarray, text_scale: Optional[float]) -> float:
    """OpenCV font scale: the given one, or 0.6 at 720p scaled with the image."""
    if text_scale is not None:
        return float(text_scale)
    return max(0.35, min(scene.shape[:2]) / 1200)


def text_color_on(background_bgr: Color) -> Color:
    """Black on light colours, white on dark ones (perceived luminance)."""
    b, g, r = background_bgr
    return (0, 0, 0) if 0.114 * b + 0.587 * g + 0.299 * r > 150 else (255, 255, 255)


def dim(scene: np.ndarray, x1: int, y1: int, x2: int, y2: int) -> None:
    """Darken a rectangle in place (translucent dark panel); clipped to the image."""
    height, width = scene.shape[:2]
    x1, x2 = max(0, x1), min(width, x2)
    y1, y2 = max(0, y1), min(height, y2)
    if x2 > x1 and y2 > y1:
        roi = scene[y1:y2, x1:x2]
        np.multiply(roi, PANEL_DIM, out=roi, casting="unsafe")


def chip(scene: np.ndarray, text: str, corner_xy: Tuple[int, int], color: Color, scale: float) -> None:
    """Filled label chip above a box's top-left corner; inside the box at the top edge."""
    cv2 = require_cv2("drawing results on frames")
    width = scene.shape[1]
    (text_w, text_h), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    pad = max(2, text_h // 4)
    chip_w, chip_h = text_w + 2 * pad, text_h + baseline + 2 * pad
    x1, y_top = corner_xy
    x1 = max(0, min(x1, width - chip_w))
    y1 = y_top - chip_h if y_top - chip_h >= 0 else y_top
    cv2.rectangle(scene, (x1, y1), (x1 + chip_w, y1 + chip_h), color, -1)
    origin = (x1 + pad, y1 + pad + text_h)
    cv2.putText(scene, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, text_color_on(color), 1, cv2.LINE_AA)


def wrap(parts: List[str], width_px: int, scale: float) -> List[str]:
    """Join parts with `` | `` into as few lines as fit the image width."""
    cv2 = require_cv2("drawing results on frames")
    lines: List[str] = []
    for part in parts:
        candidate = f"{lines[-1]} | {part}" if lines else part
        fits = cv2.getTextSize(candidate, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] <= width_px - 16
        if lines and fits:
            lines[-1] = candidate
        else:
            lines.append(part)
    return lines


def panel(scene: np.ndarray, lines: List[str], corner: str, scale: float) -> None:
    """White text lines on a dark translucent rectangle placed in a corner (one of CORNERS)."""
    if not lines:
        return
    cv2 = require_cv2("drawing results on frames")
    height, width = scene.shape[:2]
    sizes = [cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, scale, 1) for line in lines]
    text_h = max(h for (_, h), _ in sizes)
    baseline = max(b for _, b in sizes)
    line_h = text_h + baseline
    pad = max(3, line_h // 4)
    panel_w = max(w for (w, _), _ in sizes) + 2 * pad
    panel_h = len(lines) * (line_h + pad) + pad
    x1 = width - panel_w if corner.endswith("right") else 0
    y1 = height - panel_h if corner.startswith("bottom") else 0
    x1, y1 = max(0, x1), max(0, y1)
    dim(scene, x1, y1, x1 + panel_w, y1 + panel_h)
    for row, line in enumerate(lines):
        y = y1 + pad + row * (line_h + pad) + text_h
        cv2.putText(scene, line, (x1 + pad, y), cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT_BGR, 1, cv2.LINE_AA)


def class_name(labels: Optional[Sequence[str]], class_id: int) -> str:
    """A class's name from the labels, or ``class 3`` without one."""
    return labels[class_id] if labels is not None and 0 <= class_id < len(labels) else f"class {class_id}"
