"""Annotators for Detections: boxes, label chips, keypoints and track trails.

Each has one method, ``annotate(scene, detections) -> scene``, drawing in place on a BGR uint8
image. Colours come from the palette by class id, or by track id when the detections are
tracked (``color_by="auto"``), so one object keeps its colour while it is followed.
"""

from collections import deque
from typing import Deque, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edge.annotators.draw import (
    PALETTE_BGR,
    Color,
    check_color_by,
    check_palette,
    check_scene,
    chip,
    class_name,
    color_for_class,
    scale_for,
    thickness_for,
)
from edge.cv import require_cv2
from edge.results import Detections


def _check_detections(detections: Detections, who: str) -> None:
    if not isinstance(detections, Detections):
        raise TypeError(f"{who} draws Detections, got {type(detections).__name__}")


def visible_boxes_px(scene: np.ndarray, detections: Detections) -> Tuple[np.ndarray, np.ndarray]:
    """(indices of boxes at least partly in the image, (N, 4) int32 boxes clipped to the image)."""
    height, width = scene.shape[:2]
    boxes = detections.boxes_xyxy
    finite = np.isfinite(boxes).all(axis=1)
    visible = finite & (boxes[:, 2] >= 0) & (boxes[:, 3] >= 0) & (boxes[:, 0] < width) & (boxes[:, 1] < height)
    clipped = np.zeros_like(boxes)
    clipped[finite] = boxes[finite]
    # Clipped so that OpenCV gets sane int32 coordinates even from absurd boxes.
    clipped[:, 0::2] = np.clip(clipped[:, 0::2], 0, width - 1)
    clipped[:, 1::2] = np.clip(clipped[:, 1::2], 0, height - 1)
    return np.flatnonzero(visible), np.round(clipped).astype(np.int32)


class _Colored:
    """Palette and colour choice shared by the detection annotators."""

    def __init__(self, palette_bgr: Sequence[Color] = PALETTE_BGR, color_by: str = "auto") -> None:
        self.palette_bgr = check_palette(palette_bgr)
        self.color_by = check_color_by(color_by)

    def color(self, detections: Detections, i: int) -> Color:
        """Colour of detection ``i``: by track id when tracked (unless color_by='class'), else by class."""
        tracked = detections.track_ids is not None
        if self.color_by == "track" or (self.color_by == "auto" and tracked):
            if tracked:
                return color_for_class(int(detections.track_ids[i]), self.palette_bgr)  # type: ignore[index]
        return color_for_class(int(detections.class_ids[i]), self.palette_bgr)


class BoxAnnotator(_Colored):
    """Box outlines. thickness_px: line width; None scales with the image (2 px at 720p)."""

    def __init__(self, thickness_px: Optional[int] = None, palette_bgr: Sequence[Color] = PALETTE_BGR,
                 color_by: str = "auto") -> None:
        super().__init__(palette_bgr, color_by)
        self.thickness_px = thickness_px

    def annotate(self, scene: np.ndarray, detections: Detections) -> np.ndarray:
        """Draw every box at least partly inside ``scene``; return ``scene``."""
        check_scene(scene)
        _check_detections(detections, "BoxAnnotator")
        cv2 = require_cv2("drawing results on frames")
        thickness = thickness_for(scene, self.thickness_px)
        indices, boxes_px = visible_boxes_px(scene, detections)
        for i in indices:
            x1, y1, x2, y2 = (int(v) for v in boxes_px[i])
            cv2.rectangle(scene, (x1, y1), (x2, y2), self.color(detections, i), thickness, cv2.LINE_AA)
        return scene


class LabelAnnotator(_Colored):
    """A filled chip per box: ``#3 face 0.92`` (track id, class name or ``class N``, score).

    text_scale: OpenCV font scale; None scales with the image (0.6 at 720p).
    """

    def __init__(self, text_scale: Optional[float] = None, palette_bgr: Sequence[Color] = PALETTE_BGR,
                 color_by: str = "auto") -> None:
        super().__init__(palette_bgr, color_by)
        self.text_scale = text_scale

    @staticmethod
    def text(detections: Detections, i: int) -> str:
        """The label of detection ``i``."""
        name = class_name(detections.labels, int(detections.class_ids[i]))
        text = f"{name} {float(detections.scores[i]):.2f}"
        if detections.track_ids is not None:
            text = f"#{int(detections.track_ids[i])} {text}"
        return text

    def annotate(self, scene: np.ndarray, detections: Detections) -> np.ndarray:
        """Draw a chip at the top-left corner of every visible box; return ``scene``."""
        check_scene(scene)
        _check_detections(detections, "LabelAnnotator")
        scale = scale_for(scene, self.text_scale)
        indices, boxes_px = visible_boxes_px(scene, detections)
        for i in indices:
            corner = (int(boxes_px[i, 0]), int(boxes_px[i, 1]))
            chip(scene, self.text(detections, i), corner, self.color(detections, i), scale)
        return scene


class KeypointAnnotator(_Colored):
    """Filled dots at the keypoints of visible boxes (nothing without keypoints_xy)."""

    def __init__(self, thickness_px: Optional[int] = None, palette_bgr: Sequence[Color] = PALETTE_BGR,
                 color_by: str = "auto") -> None:
        super().__init__(palette_bgr, color_by)
        self.thickness_px = thickness_px

    def annotate(self, scene: np.ndarray, detections: Detections) -> np.ndarray:
        """Draw each detection's keypoints inside the image; return ``scene``."""
        check_scene(scene)
        _check_detections(detections, "KeypointAnnotator")
        if detections.keypoints_xy is None:
            return scene
        cv2 = require_cv2("drawing results on frames")
        height, width = scene.shape[:2]
        radius = thickness_for(scene, self.thickness_px) + 1
        for i in visible_boxes_px(scene, detections)[0]:
            points_xy = detections.keypoints_xy[i]
            color = self.color(detections, i)
            finite = np.isfinite(points_xy).all(axis=1)
            for x, y in np.round(points_xy[finite]).astype(np.int64):
                if 0 <= x < width and 0 <= y < height:
                    cv2.circle(scene, (int(x), int(y)), radius, color, -1, cv2.LINE_AA)
        return scene


class TrackAnnotator(_Colored):
    """A trail through the last ``trail_frames`` box centres of each tracked object.

    Keeps the trails between calls (one annotator per stream); an id absent from a frame loses
    its trail. Untracked detections draw nothing.
    """

    def __init__(self, trail_frames: int = 30, thickness_px: Optional[int] = None,
                 palette_bgr: Sequence[Color] = PALETTE_BGR) -> None:
        super().__init__(palette_bgr, "track")
        if isinstance(trail_frames, bool) or not isinstance(trail_frames, int) or trail_frames < 2:
            raise ValueError(f"trail_frames must be an integer >= 2, got {trail_frames!r}")
        self.trail_frames = trail_frames
        self.thickness_px = thickness_px
        self._trails: Dict[int, Deque[Tuple[float, float]]] = {}

    def reset(self) -> None:
        """Forget every trail."""
        self._trails.clear()

    def annotate(self, scene: np.ndarray, detections: Detections) -> np.ndarray:
        """Extend the trails with this frame's centres and draw them; return ``scene``."""
        check_scene(scene)
        _check_detections(detections, "TrackAnnotator")
        if detections.track_ids is None:
            return scene
        centres = (detections.boxes_xyxy[:, :2] + detections.boxes_xyxy[:, 2:]) / 2
        present: List[int] = []
        for track_id, (x, y) in zip(detections.track_ids.tolist(), centres.tolist()):
            if np.isfinite(x) and np.isfinite(y):
                self._trails.setdefault(track_id, deque(maxlen=self.trail_frames)).append((x, y))
                present.append(track_id)
        for track_id in [t for t in self._trails if t not in present]:
            del self._trails[track_id]
        cv2 = require_cv2("drawing results on frames")
        thickness = thickness_for(scene, self.thickness_px)
        height, width = scene.shape[:2]
        for track_id in present:
            trail = self._trails[track_id]
            if len(trail) < 2:
                continue
            points = np.clip(np.round(np.array(trail)), [-width, -height], [2 * width, 2 * height])
            color = color_for_class(track_id, self.palette_bgr)
            cv2.polylines(scene, [points.astype(np.int32).reshape(-1, 1, 2)], False, color, thickness, cv2.LINE_AA)
        return scene
