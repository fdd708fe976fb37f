"""The app's overlay: the per-kind annotators of ``edge.annotators`` composed for any result.

``Annotator().annotate(scene, result) -> scene`` draws Detections (boxes, keypoints, track
trails when tracked, label chips), a Classification (top-k panel), a Segmentation (blended masks;
a legend of class shares for class maps, boxes and labels for instances), Keypoints (skeletons and
points; boxes and labels for pose detections) or Embeddings (gallery identities on boxes) in place
on a BGR uint8 image; ``annotate_status``
adds the FPS and stage-time panel. Sizes follow the image size.
For a custom overlay, compose the annotators directly.
"""

from typing import Any, Dict, Iterable, Optional, Sequence

import numpy as np

from edge.annotators import (
    CORNERS,
    PALETTE_BGR,
    BoxAnnotator,
    ClassificationAnnotator,
    IdentityAnnotator,
    KeypointAnnotator,
    KeypointsAnnotator,
    LabelAnnotator,
    MaskAnnotator,
    MaskLegendAnnotator,
    StatusAnnotator,
    TrackAnnotator,
    color_for_class,
)
from edge.annotators.draw import Color, check_scene
from edge.cv import require_cv2
from edge.results import Classification, Detections, Embeddings, Keypoints, Segmentation

__all__ = ["CORNERS", "PALETTE_BGR", "Annotator", "color_for_class"]


class Annotator:
    """Draws Detections, Classification, Segmentation and Keypoints results on BGR uint8 images, in place.

    thickness_px: box line width; None scales with the image (2 px at 720p).
    text_scale: OpenCV font scale; None scales with the image (0.6 at 720p).
    top_k: how many classes a Classification panel lists.
    corner: where the Classification panel goes, one of CORNERS (the status panel is top-left).
    palette_bgr: colours by class id, or by track id for tracked detections.
    trail_frames: length of the track trails drawn for tracked detections (0: none).
    mask_opacity: weight of the mask colours, 0..1. min_keypoint_score: keypoints with a lower
    visibility are not drawn.
    """

    def __init__(
        self,
        thickness_px: Optional[int] = None,
        text_scale: Optional[float] = None,
        top_k: int = 5,
        corner: str = "top-right",
        palette_bgr: Sequence[Color] = PALETTE_BGR,
        trail_frames: int = 30,
        mask_opacity: float = 0.5,
        min_keypoint_score: float = 0.5,
    ) -> None:
        require_cv2("drawing results on frames")  # fail at construction, not on the first frame
        self.detection_annotators = [BoxAnnotator(thickness_px, palette_bgr),
                                     KeypointAnnotator(thickness_px, palette_bgr)]
        if trail_frames:
            self.detection_annotators.append(TrackAnnotator(trail_frames, thickness_px, palette_bgr))
        self.detection_annotators.append(LabelAnnotator(text_scale, palette_bgr))  # chips on top
        self.classification_annotator = ClassificationAnnotator(top_k, corner, text_scale)
        self.mask_annotators = [MaskAnnotator(mask_opacity, palette_bgr),
                                MaskLegendAnnotator(top_k, corner, text_scale)]
        self.keypoints_annotator = KeypointsAnnotator(min_keypoint_score, thickness_px, palette_bgr)
        # boxes and labels of instance masks and pose detections (no trails: those are not tracked)
        self.instance_annotators = [BoxAnnotator(thickness_px, palette_bgr), LabelAnnotator(text_scale, palette_bgr)]
        self.identity_annotator = IdentityAnnotator(corner, thickness_px, text_scale, palette_bgr)
        self.status_annotator = StatusAnnotator(text_scale)

    def annotate(self, scene: np.ndarray, result: Any) -> np.ndarray:
        """Draw ``result`` (Detections, Classification, Segmentation, Keypoints, Embeddings or None) on ``scene``."""
        check_scene(scene)
        if result is None:
            return scene
        if isinstance(result, Detections):
            for annotator in self.detection_annotators:
                annotator.annotate(scene, result)
            return scene
        if isinstance(result, Classification):
            return self.classification_annotator.annotate(scene, result)
        if isinstance(result, Segmentation):
            for annotator in self.mask_annotators:
                annotator.annotate(scene, result)
            return self._instances(scene, result.instances)
        if isinstance(result, Keypoints):
            self.keypoints_annotator.annotate(scene, result)
            if result.boxes_xyxy is None:
                return scene
            return self._instances(scene, Detections(result.boxes_xyxy, result.scores, result.class_ids, None,
                                                     result.labels))
        if isinstance(result, Embeddings):
            return self.identity_annotator.annotate(scene, result)
        raise TypeError(
            f"Annotator cannot draw {type(result).__name__}; expected Detections, Classification, Segmentation, "
            "Keypoints or Embeddings"
        )

    def _instances(self, scene: np.ndarray, detections: Optional[Detections]) -> np.ndarray:
        """Boxes and label chips of the instances a mask or pose model found (nothing for None)."""
        if detections is not None:
            for annotator in self.instance_annotators:
                annotator.annotate(scene, detections)
        return scene

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
