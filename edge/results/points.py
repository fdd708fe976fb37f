"""Keypoints (keypoints): landmarks and pose keypoints of N instances, in source-frame pixels."""

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from edge.results.boxes import label_of


@dataclass
class Keypoints:
    """Points (landmarks, pose keypoints) of N instances in one frame, in source-frame pixels.

    points_xy: (N, K, 2) float32 pixels.
    scores: (N,) float32 instance scores (presence, or the box score of a pose detector).
    point_scores: (N, K) float32 per-point visibility or confidence in [0, 1], or None.
    points_z: (N, K) float32 relative depth as the model gives it, scaled like x (pixels), or None.
    boxes_xyxy: (N, 4) float32 pixels (pose detectors), or None.
    class_ids: (N,) int64 (zeros when not given); labels: class names by class id, or None.
    keypoint_names: K names, or None; skeleton: (i, j) index pairs to join with lines, or None.
    """

    points_xy: np.ndarray
    scores: np.ndarray
    point_scores: Optional[np.ndarray] = None
    points_z: Optional[np.ndarray] = None
    boxes_xyxy: Optional[np.ndarray] = None
    class_ids: Optional[np.ndarray] = None
    labels: Optional[List[str]] = None
    keypoint_names: Optional[List[str]] = None
    skeleton: Optional[List[Tuple[int, int]]] = None

    def __post_init__(self) -> None:
        points = np.asarray(self.points_xy, dtype=np.float32)
        if points.ndim != 3 or points.shape[2] != 2:
            raise ValueError(f"points_xy must be (N, K, 2), got shape {points.shape}")
        self.points_xy = points
        n, k = points.shape[:2]
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(n)
        if self.point_scores is not None:
            self.point_scores = np.asarray(self.point_scores, dtype=np.float32).reshape(n, k)
        if self.points_z is not None:
            self.points_z = np.asarray(self.points_z, dtype=np.float32).reshape(n, k)
        if self.boxes_xyxy is not None:
            self.boxes_xyxy = np.asarray(self.boxes_xyxy, dtype=np.float32).reshape(n, 4)
        class_ids = np.zeros(n) if self.class_ids is None else self.class_ids
        self.class_ids = np.asarray(class_ids, dtype=np.int64).reshape(n)
        if self.keypoint_names is not None and len(self.keypoint_names) != k:
            raise ValueError(f"keypoint_names has {len(self.keypoint_names)} names for {k} keypoints")
        if self.skeleton is not None:
            self.skeleton = [(int(i), int(j)) for i, j in self.skeleton]
            bad = [pair for pair in self.skeleton if not (0 <= pair[0] < k and 0 <= pair[1] < k)]
            if bad:
                raise ValueError(f"skeleton pair {bad[0]} names a keypoint outside 0..{k - 1}")

    @property
    def num_keypoints(self) -> int:
        """K, the points per instance."""
        return int(self.points_xy.shape[1])

    def __len__(self) -> int:
        return len(self.points_xy)

    def __getitem__(self, index: Any) -> "Keypoints":
        """Select instances by index, slice or boolean mask; always returns Keypoints."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]

        def pick(array: Optional[np.ndarray]) -> Optional[np.ndarray]:
            return None if array is None else array[index]

        return Keypoints(self.points_xy[index], self.scores[index], pick(self.point_scores), pick(self.points_z),
                         pick(self.boxes_xyxy), pick(self.class_ids), self.labels, self.keypoint_names, self.skeleton)

    def to_json(self) -> Dict[str, Any]:
        """Plain-JSON form: one dict per instance, points in pixels."""
        items = []
        for i in range(len(self)):
            item: Dict[str, Any] = {"score": round(float(self.scores[i]), 4),
                                    "class_id": int(self.class_ids[i])}  # type: ignore[index]
            label = label_of(self.labels, int(self.class_ids[i]))  # type: ignore[index]
            if label is not None:
                item["label"] = label
            if self.boxes_xyxy is not None:
                item["box_xyxy"] = [round(float(v), 2) for v in self.boxes_xyxy[i]]
            item["points_xy"] = [[round(float(x), 2), round(float(y), 2)] for x, y in self.points_xy[i]]
            if self.point_scores is not None:
                item["point_scores"] = [round(float(v), 4) for v in self.point_scores[i]]
            if self.points_z is not None:
                item["points_z"] = [round(float(v), 2) for v in self.points_z[i]]
            items.append(item)
        return {"task": "keypoints", "instances": items}
