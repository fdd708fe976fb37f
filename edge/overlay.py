"""Drawing results on frames: boxes, keypoints, labels, top-k classes and a status panel.

One annotator, one method: ``Annotator().annotate(scene, result) -> scene`` draws in place on
a BGR uint8 image and returns it. Sizes (line thickness, text scale) follow the image size so
that a 320x240 test frame and a 1920x1080 camera frame both read well.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from edge.cv import require_cv2
from edge.results import Classification, Detections

Color = Tuple[int, int, int]

# Fixed palette, BGR, indexed by class id modulo its length: the same class keeps its colour
# across frames and runs.
# fmt: off
PALETTE_BGR: Tuple[Color, ...] = (
    (56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207),
    (10, 249, 72), (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0),
    (168, 153, 44), (255, 194, 0), (147, 69, 52), (255, 115, 100), (236, 24, 0),
    (255, 56, 132), (133, 0, 82), (255, 56, 203), (200, 149, 255), (199, 55, 255),
)
# fmt: on

CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
_PANEL_DIM = 0.35  # brightness kept under a text panel: dark, but the scene shows through
_TEXT_BGR: Color = (255, 255, 255)


def color_for_class(class_id: int, palette_bgr: Sequence[Color] = PALETTE_BGR) -> Color:
    """BGR colour of a class id (stable, wraps around the palette)."""
    return tuple(int(c) for c in palette_bgr[int(class_id) % len(palette_bgr)])  # type: ignore[return-value]


def _check_scene(scene: np.ndarray) -> None:
    if not isinstance(scene, np.ndarray) or scene.dtype != np.uint8 or scene.ndim != 3 or scene.shape[2] != 3:
        got = f"{scene.dtype} {scene.shape}" if isinstance(scene, np.ndarray) else type(scene).__name__
        raise ValueError(f"annotate needs an (H, W, 3) uint8 BGR image, got {got}")
    if not scene.flags.c_contiguous or not scene.flags.writeable:
        raise ValueError(
            "annotate draws in place: pass a C-contiguous, writeable image (np.ascontiguousarray)"
        )


def _text_color_on(background_bgr: Color) -> Color:
    """Black on light colours, white on dark ones (perceived luminance)."""
    b, g, r = background_bgr
    return (0, 0, 0) if 0.114 * b + 0.587 * g + 0.299 * r > 150 else (255, 255, 255)


def _dim(scene: np.ndarray, x1: int, y1: int, x2: int, y2: int) -> None:
    """Darken a rectangle in place (translucent dark panel); clipped to the image."""
    height, width = scene.shape[:2]
    x1, x2 = max(0, x1), min(width, x2)
    y1, y2 = max(0, y1), min(height, y2)
    if x2 > x1 and y2 > y1:
        roi = scene[y1:y2, x1:x2]
        np.multiply(roi, _PANEL_DIM, out=roi, casting="unsafe")


class Annotator:
    """Draws Detections and Classification results on BGR uint8 images, in place.

    thickness_px: box line width; None scales with the image (2 px at 720p).
    text_scale: OpenCV font scale; None scales with the image (0.6 at 720p).
    top_k: how many classes a Classification panel lists.
    corner: where the Classification panel goes, one of CORNERS (the status panel is top-left).
    palette_bgr: colours by class id.
    """

    def __init__(
        self,
        thickness_px: Optional[int] = None,
        text_scale: Optional[float] = None,
        top_k: int = 5,
        corner: str = "top-right",
        palette_bgr: Sequence[Color] = PALETTE_BGR,
    ) -> None:
        if corner not in CORNERS:
            raise ValueError(f"corner must be one of {', '.join(CORNERS)}, got {corner!r}")
        if not palette_bgr:
            raise ValueError("palette_bgr must hold at least one colour")
        self.thickness_px = thickness_px
        self.text_scale = text_scale
        self.top_k = int(top_k)
        self.corner = corner
        self.palette_bgr = tuple(palette_bgr)
        self._cv2 = require_cv2("drawing results on frames")

    # -- sizes -------------------------------------------------------------------------------

    def _thickness(self, scene: np.ndarray) -> int:
        if self.thickness_px is not None:
            return max(1, int(self.thickness_px))
        return max(1, round(min(scene.shape[:2]) / 360))

    def _scale(self, scene: np.ndarray) -> float:
        if self.text_scale is not None:
            return float(self.text_scale)
        return max(0.35, min(scene.shape[:2]) / 1200)

    # -- public ------------------------------------------------------------------------------

    def annotate(self, scene: np.ndarray, result: Any) -> np.ndarray:
        """Draw ``result`` (Detections, Classification or None) on ``scene`` in place; return it."""
        _check_scene(scene)
        if result is None:
            return scene
        if isinstance(result, Detections):
            return self._detections(scene, result)
        if isinstance(result, Classification):
            return self._classification(scene, result)
        raise TypeError(
            f"Annotator cannot draw {type(result).__name__}; expected Detections or Classification"
        )

    def annotate_status(
        self,
        scene: np.ndarray,
        fps: Optional[float],
        stage_ms: Dict[str, float],
        text_lines: Iterable[str] = (),
    ) -> np.ndarray:
        """Draw a status panel top-left: ``12.3 FPS | capture 1.2 ms | infer 9.1 ms`` and extra lines.

        fps: frames per second, or None while unknown (shown as ``-- FPS``).
        stage_ms: stage name -> milliseconds, drawn in the given order.
        text_lines: more lines under the timings (backend, model, ...).
        """
        _check_scene(scene)
        parts = [f"{fps:.1f} FPS" if fps is not None and np.isfinite(fps) else "-- FPS"]
        parts += [f"{name} {ms:.1f} ms" for name, ms in stage_ms.items()]
        scale = self._scale(scene)
        lines = self._wrap(parts, scene.shape[1], scale) + [str(line) for line in text_lines]
        self._panel(scene, lines, "top-left", scale)
        return scene

    # -- detections --------------------------------------------------------------------------

    def _detections(self, scene: np.ndarray, detections: Detections) -> np.ndarray:
        if len(detections) == 0:
            return scene
        height, width = scene.shape[:2]
        thickness = self._thickness(scene)
        boxes = detections.boxes_xyxy
        finite = np.isfinite(boxes).all(axis=1)
        # Drop boxes wholly outside the frame, clip the rest so OpenCV gets sane int32 coordinates.
        visible = (
            finite & (boxes[:, 2] >= 0) & (boxes[:, 3] >= 0) & (boxes[:, 0] < width) & (boxes[:, 1] < height)
        )
        clipped = np.zeros_like(boxes)
        clipped[finite] = boxes[finite]
        clipped[:, 0::2] = np.clip(clipped[:, 0::2], 0, width - 1)
        clipped[:, 1::2] = np.clip(clipped[:, 1::2], 0, height - 1)
        boxes_px = np.round(clipped).astype(np.int32)
        for i in np.flatnonzero(visible):
            color = color_for_class(int(detections.class_ids[i]), self.palette_bgr)
            x1, y1, x2, y2 = (int(v) for v in boxes_px[i])
            self._cv2.rectangle(scene, (x1, y1), (x2, y2), color, thickness, self._cv2.LINE_AA)
            if detections.keypoints_xy is not None:
                self._keypoints(scene, detections.keypoints_xy[i], color, thickness)
            self._chip(scene, self._det_text(detections, i), (x1, y1), color)
        return scene

    def _det_text(self, detections: Detections, i: int) -> str:
        class_id = int(detections.class_ids[i])
        labels = detections.labels
        name = labels[class_id] if labels is not None and 0 <= class_id < len(labels) else f"class {class_id}"
        return f"{name} {float(detections.scores[i]):.2f}"

    def _keypoints(self, scene: np.ndarray, points_xy: np.ndarray, color: Color, thickness: int) -> None:
        height, width = scene.shape[:2]
        radius = thickness + 1
        finite = np.isfinite(points_xy).all(axis=1)
        for x, y in np.round(points_xy[finite]).astype(np.int64):
            if 0 <= x < width and 0 <= y < height:
                self._cv2.circle(scene, (int(x), int(y)), radius, color, -1, self._cv2.LINE_AA)

    def _chip(self, scene: np.ndarray, text: str, corner_xy: Tuple[int, int], color: Color) -> None:
        """Filled label chip above the box's top-left corner; inside the box at the top edge."""
        cv2 = self._cv2
        width = scene.shape[1]
        scale = self._scale(scene)
        (text_w, text_h), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        pad = max(2, text_h // 4)
        chip_w, chip_h = text_w + 2 * pad, text_h + baseline + 2 * pad
        x1, y_top = corner_xy
        x1 = max(0, min(x1, width - chip_w))
        y1 = y_top - chip_h if y_top - chip_h >= 0 else y_top
        cv2.rectangle(scene, (x1, y1), (x1 + chip_w, y1 + chip_h), color, -1)
        origin = (x1 + pad, y1 + pad + text_h)
        cv2.putText(
            scene, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, _text_color_on(color), 1, cv2.LINE_AA
        )

    # -- classification and panels -----------------------------------------------------------

    def _classification(self, scene: np.ndarray, classification: Classification) -> np.ndarray:
        count = min(len(classification), self.top_k)
        if count == 0:
            return scene
        labels = classification.labels
        lines = []
        for class_id, score in zip(classification.class_ids[:count], classification.scores[:count]):
            cid = int(class_id)
            name = labels[cid] if labels is not None and 0 <= cid < len(labels) else f"class {cid}"
            lines.append(f"{name} {100.0 * float(score):.1f}%")
        self._panel(scene, lines, self.corner, self._scale(scene))
        return scene

    def _wrap(self, parts: List[str], width_px: int, scale: float) -> List[str]:
        """Join parts with `` | `` into as few lines as fit the image width."""
        cv2 = self._cv2
        lines: List[str] = []
        for part in parts:
            candidate = f"{lines[-1]} | {part}" if lines else part
            fits = cv2.getTextSize(candidate, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] <= width_px - 16
            if lines and fits:
                lines[-1] = candidate
            else:
                lines.append(part)
        return lines

    def _panel(self, scene: np.ndarray, lines: List[str], corner: str, scale: float) -> None:
        """White text lines on a dark translucent rectangle placed in a corner."""
        if not lines:
            return
        cv2 = self._cv2
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
        _dim(scene, x1, y1, x1 + panel_w, y1 + panel_h)
        for row, line in enumerate(lines):
            y = y1 + pad + row * (line_h + pad) + text_h
            cv2.putText(
                scene, line, (x1 + pad, y), cv2.FONT_HERSHEY_SIMPLEX, scale, _TEXT_BGR, 1, cv2.LINE_AA
            )
