"""The app's overlay: the per-kind annotators of ``edge.annotators`` composed for any result.

``Annotator().annotate(scene, result) -> scene`` draws Detections (boxes, keypoints, track
trails when tracked, label chips) or a Classification (top-k panel) in place on a BGR uint8
image; ``annotate_status`` adds the FPS and stage-time panel. Sizes follow the image size.
For a custom overlay, compose the annotators directly.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Optional, Sequence

import numpy as np

from edge.annotators import (
    CORNERS,
    PALETTE_BGR,
    BoxAnnotator,
    ClassificationAnnotator,
    KeypointAnnotator,
    LabelAnnotator,
    StatusAnnotator,
    TrackAnnotator,
    color_for_class,
)
from edge.annotators.draw import Color, check_scene
from edge.cv import require_cv2
from edge.results import Classification, Detections

__all__ = ["CORNERS", "PALETTE_BGR", "Annotator", "color_for_class"]


class Annotator:
    """Draws Detections and Classification results on BGR uint8 images, in place.

    thickness_px: box line width; None scales with the image (2 px at 720p).
    text_scale: OpenCV font scale; None scales with the image (0.6 at 720p).
    top_k: how many classes a Classification panel lists.
    corner: where the Classification panel goes, one of CORNERS (the status panel is top-left).
    palette_bgr: colours by class id, or by track id for tracked detections.
    trail_frames: length of the track trails drawn for tracked detections (0: none).
    """

    def __init__(
        self,
        thickness_px: Optional[int] = None,
        text_scale: Optional[float] = None,
        top_k: int = 5,
        corner: str = "top-right",
        palette_bgr: Sequence[Color] = PALETTE_BGR,
        trail_frames: int = 30,
    ) -> None:
        require_cv2("drawing results on frames")  # fail at construction, not on the first frame
        self.detection_annotators = [BoxAnnotator(thickness_px, palette_bgr),
                                     KeypointAnnotator(thickness_px, palette_bgr)]
        if trail_frames:
            self.detection_annotators.append(TrackAnnotator(trail_frames, thickness_px, palette_bgr))
        self.detection_annotators.append(LabelAnnotator(text_scale, palette_bgr))  # chips on top
        self.classification_annotator = ClassificationAnnotator(top_k, corner, text_scale)
        self.status_annotator = StatusAnnotator(text_scale)

    def annotate(self, scene: np.ndarray, result: Any) -> np.ndarray:
        """Draw ``result`` (Detections, Classification or None) on ``scene`` in place; return it."""
        check_scene(scene)
        if result is None:
            return scene
        if isinstance(result, Detections):
            for annotator in self.detection_annotators:
                annotator.annotate(scene, result)
            return scene
        if isinstance(result, Classification):
            return self.classification_annotator.annotate(scene, result)
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
        return self.status_annotator.annotate(scene, fps, stage_ms, text_lines)
