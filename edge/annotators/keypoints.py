"""Annotator for Keypoints: skeleton lines and points (landmarks, pose keypoints).

Points whose visibility (``point_scores``) is below ``min_score`` are skipped, and so are the
skeleton lines that touch them. Boxes and labels of pose detections are drawn by the detection
annotators (the overlay composes them).
"""

from typing import Any, Optional, Sequence

import numpy as np

from edge.annotators.draw import PALETTE_BGR, Color, check_palette, check_scene, thickness_for
from edge.cv import require_cv2
from edge.results import Keypoints


class KeypointsAnnotator:
    """Skeleton lines in the instance's colour (by class id) and points coloured by keypoint index.

    min_score: points with a visibility below it are not drawn (nor their lines).
    thickness_px: line width; None scales with the image (2 px at 720p); points are a little larger (smaller
    for dense landmark sets such as a 468-point face mesh).
    """

    def __init__(self, min_score: float = 0.5, thickness_px: Optional[int] = None,
                 palette_bgr: Sequence[Color] = PALETTE_BGR) -> None:
        if isinstance(min_score, bool) or not isinstance(min_score, (int, float)) or not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be a number in [0, 1], got {min_score!r}")
        self.min_score = float(min_score)
        self.thickness_px = thickness_px
        self.palette_bgr = check_palette(palette_bgr)

    def annotate(self, scene: np.ndarray, keypoints: Keypoints) -> np.ndarray:
        """Draw every instance's skeleton and visible points inside ``scene``; return ``scene``."""
        check_scene(scene)
        if not isinstance(keypoints, Keypoints):
            raise TypeError(f"KeypointsAnnotator draws Keypoints, got {type(keypoints).__name__}")
        cv2: Any = require_cv2("drawing results on frames")
        thickness = thickness_for(scene, self.thickness_px)
        radius = thickness + 1 if keypoints.num_keypoints <= 33 else max(1, thickness // 2)  # dense meshes: dots
        height, width = scene.shape[:2]
        for i in range(len(keypoints)):
            points = keypoints.points_xy[i]
            visible = np.isfinite(points).all(axis=1)
            if keypoints.point_scores is not None:
                visible &= keypoints.point_scores[i] >= self.min_score
            # far-away points clipped so OpenCV gets sane int32 coordinates; lines still point the right way
            pixels = np.round(np.clip(np.nan_to_num(points), [-width, -height], [2 * width, 2 * height]))
            pixels = pixels.astype(np.int32)
            if keypoints.skeleton:
                pairs = np.asarray(keypoints.skeleton, np.int64).reshape(-1, 2)
                pairs = pairs[visible[pairs[:, 0]] & visible[pairs[:, 1]]]
                if len(pairs):
                    color = self.palette_bgr[int(keypoints.class_ids[i]) % len(self.palette_bgr)]  # type: ignore[index]
                    cv2.polylines(scene, list(pixels[pairs]), False, color, thickness, cv2.LINE_AA)
            inside = visible & (pixels[:, 0] >= 0) & (pixels[:, 0] < width) & (pixels[:, 1] >= 0) & \
                (pixels[:, 1] < height)
            for k in np.flatnonzero(inside):
                color = self.palette_bgr[int(k) % len(self.palette_bgr)]
                cv2.circle(scene, (int(pixels[k, 0]), int(pixels[k, 1])), radius, color, -1, cv2.LINE_AA)
        return scene
