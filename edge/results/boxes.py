"""Boxes and classes: Detections (detect) and Classification (classify)."""

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np


def label_of(labels: Optional[Sequence[str]], class_id: int) -> Optional[str]:
    """The name of ``class_id`` in ``labels``, or None (no labels, or an id they do not cover)."""
    if labels is None or not 0 <= class_id < len(labels):
        return None
    return labels[class_id]


@dataclass
class Detections:
    """Boxes found in one frame, in source-frame pixels.

    boxes_xyxy: (N, 4) float32, x1 y1 x2 y2 in pixels of the frame given to the model.
    scores: (N,) float32 in [0, 1].
    class_ids: (N,) int64.
    keypoints_xy: (N, K, 2) float32 pixels, or None when the model has no keypoints.
    labels: class names indexed by class id, or None.
    track_ids: (N,) int64 ids that persist across frames (from :class:`edge.Tracker`), or None
        when the detections are not tracked.
    """

    boxes_xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    keypoints_xy: Optional[np.ndarray] = None
    labels: Optional[List[str]] = None
    track_ids: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        self.boxes_xyxy = np.asarray(self.boxes_xyxy, dtype=np.float32).reshape(-1, 4)
        n = len(self.boxes_xyxy)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(n)
        self.class_ids = np.asarray(self.class_ids, dtype=np.int64).reshape(n)
        if self.keypoints_xy is not None:
            keypoints = np.asarray(self.keypoints_xy, dtype=np.float32)
            count = keypoints.shape[1] if keypoints.ndim == 3 else keypoints.size // max(1, 2 * n)
            self.keypoints_xy = keypoints.reshape(n, count, 2)
        if self.track_ids is not None:
            self.track_ids = np.asarray(self.track_ids, dtype=np.int64).reshape(n)

    @classmethod
    def empty(cls, num_keypoints: int = 0, labels: Optional[List[str]] = None) -> "Detections":
        """No detections, with the keypoint layout of the model that produced them."""
        keypoints = np.zeros((0, num_keypoints, 2), np.float32) if num_keypoints else None
        return cls(np.zeros((0, 4), np.float32), np.zeros(0), np.zeros(0), keypoints, labels)

    def __len__(self) -> int:
        return len(self.boxes_xyxy)

    def __getitem__(self, index: Any) -> "Detections":
        """Select detections by index, slice or boolean mask; always returns Detections."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        keypoints = None if self.keypoints_xy is None else self.keypoints_xy[index]
        track_ids = None if self.track_ids is None else self.track_ids[index]
        return Detections(
            self.boxes_xyxy[index], self.scores[index], self.class_ids[index], keypoints, self.labels, track_ids
        )

    def with_track_ids(self, track_ids: Any) -> "Detections":
        """A copy of these detections (arrays shared) with the given (N,) track ids."""
        return Detections(self.boxes_xyxy, self.scores, self.class_ids, self.keypoints_xy, self.labels, track_ids)

    @property
    def area_px(self) -> np.ndarray:
        """Box areas in square pixels."""
        wh = np.clip(self.boxes_xyxy[:, 2:] - self.boxes_xyxy[:, :2], 0, None)
        return wh[:, 0] * wh[:, 1]

    def to_json(self) -> Dict[str, Any]:
        """Plain-JSON form: one dict per detection."""
        items = []
        for i in range(len(self)):
            item: Dict[str, Any] = {
                "box_xyxy": [round(float(v), 2) for v in self.boxes_xyxy[i]],
                "score": round(float(self.scores[i]), 4),
                "class_id": int(self.class_ids[i]),
            }
            label = label_of(self.labels, int(self.class_ids[i]))
            if label is not None:
                item["label"] = label
            if self.track_ids is not None:
                item["track_id"] = int(self.track_ids[i])
            if self.keypoints_xy is not None:
                item["keypoints_xy"] = [[round(float(x), 2), round(float(y), 2)] for x, y in self.keypoints_xy[i]]
            items.append(item)
        return {"task": "detect", "detections": items}


@dataclass
class Classification:
    """Top-k classes for one frame, best first.

    class_ids: (k,) int64; scores: (k,) float32 probabilities; labels: names by class id.
    """

    class_ids: np.ndarray
    scores: np.ndarray
    labels: Optional[List[str]] = None

    def __post_init__(self) -> None:
        self.class_ids = np.asarray(self.class_ids, dtype=np.int64).reshape(-1)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(len(self.class_ids))

    def __len__(self) -> int:
        return len(self.class_ids)

    @property
    def top_label(self) -> Optional[str]:
        """Name of the best class, or None without labels or classes."""
        return label_of(self.labels, int(self.class_ids[0])) if len(self) else None

    def to_json(self) -> Dict[str, Any]:
        """Plain-JSON form: one dict per class, best first."""
        items = []
        for class_id, score in zip(self.class_ids, self.scores):
            item: Dict[str, Any] = {"class_id": int(class_id), "score": round(float(score), 4)}
            label = label_of(self.labels, int(class_id))
            if label is not None:
                item["label"] = label
            items.append(item)
        return {"task": "classify", "classes": items}
