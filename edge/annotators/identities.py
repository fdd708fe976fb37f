"""Embeddings on screen: who each object is (a gallery match), or that a vector was made.

``IdentityAnnotator.annotate(scene, embeddings)`` draws, for a detector + embedder cascade, a box and
an ``alice 0.83`` chip per object (``unknown 0.41`` below the match threshold); for an embedder on the
whole frame, one panel line. ``as_detections`` is the same view as Detections, for custom overlays.
"""

from typing import List, Optional, Sequence

import numpy as np

from edge.annotators.detections import BoxAnnotator, LabelAnnotator
from edge.annotators.draw import CORNERS, PALETTE_BGR, Color, check_scene, panel, scale_for
from edge.results import Detections, Embeddings

UNKNOWN = "unknown"


def names_of(embeddings: Embeddings) -> List[str]:
    """The identity of each vector, "unknown" below the threshold, or "" when no gallery was asked."""
    if embeddings.identities is None:
        return [""] * len(embeddings)
    return [UNKNOWN if name is None else name for name in embeddings.identities]


def as_detections(embeddings: Embeddings) -> Optional[Detections]:
    """Boxes labelled with identities, scored by similarity (by detection score without a gallery); None
    when the vectors have no boxes."""
    if embeddings.boxes_xyxy is None:
        return None
    names = names_of(embeddings)
    labels = sorted(set(names))
    class_ids = [labels.index(name) for name in names]
    scores = embeddings.similarities if embeddings.similarities is not None else embeddings.scores
    if scores is None:
        scores = np.ones(len(embeddings), np.float32)
    return Detections(embeddings.boxes_xyxy, np.clip(scores, 0.0, 1.0), class_ids, None,
                      labels if any(labels) else None)


class IdentityAnnotator:
    """Boxes with identity chips for per-object embeddings, a panel line for a whole-frame one."""

    def __init__(self, corner: str = "top-right", thickness_px: Optional[int] = None,
                 text_scale: Optional[float] = None, palette_bgr: Sequence[Color] = PALETTE_BGR) -> None:
        if corner not in CORNERS:
            raise ValueError(f"corner must be one of {', '.join(CORNERS)}, got {corner!r}")
        self.corner, self.text_scale = corner, text_scale
        self.boxes = BoxAnnotator(thickness_px, palette_bgr)
        self.labels = LabelAnnotator(text_scale, palette_bgr)

    def annotate(self, scene: np.ndarray, embeddings: Embeddings) -> np.ndarray:
        """Draw ``embeddings`` on ``scene`` in place; return it."""
        check_scene(scene)
        if not isinstance(embeddings, Embeddings):
            raise TypeError(f"IdentityAnnotator draws Embeddings, got {type(embeddings).__name__}")
        detections = as_detections(embeddings)
        if detections is not None:
            self.boxes.annotate(scene, detections)
            return self.labels.annotate(scene, detections)
        lines = []
        for i, name in enumerate(names_of(embeddings)):
            if name and embeddings.similarities is not None:
                lines.append(f"{name} {float(embeddings.similarities[i]):.2f}")
            else:
                lines.append(f"embedding: {embeddings.vectors.shape[1]} numbers")
        if lines:
            panel(scene, lines, self.corner, scale_for(scene, self.text_scale))
        return scene
