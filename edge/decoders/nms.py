"""Non-maximum suppression: classic greedy NMS and MediaPipe's weighted NMS.

Both are class-agnostic (as MediaPipe's NonMaxSuppressionCalculator is by default) and work on boxes
``[x1, y1, x2, y2]`` in any one coordinate system (IoU does not change under per-axis scaling).
A box suppresses another when their IoU is strictly greater than ``iou_threshold``. Equal scores keep
input order, so results are deterministic.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np


def iou_one_to_many(box_xyxy: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
    """IoU of one box (4,) with each of (N, 4) boxes; 0 where the union is empty."""
    box = np.asarray(box_xyxy, dtype=np.float64)
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    inter_w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0.0, None)
    inter_h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0.0, None)
    intersection = inter_w * inter_h
    area = max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0)
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0.0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0.0, None)
    union = area + areas - intersection
    return np.divide(intersection, union, out=np.zeros_like(union), where=union > 0)


def _order_best_first(scores: np.ndarray) -> np.ndarray:
    return np.argsort(-np.asarray(scores, dtype=np.float64).reshape(-1), kind="stable")


def nms(
    boxes_xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float, max_detections: Optional[int] = None
) -> np.ndarray:
    """Greedy NMS: indices (int64) of the kept boxes, best score first.

    boxes_xyxy: (N, 4); scores: (N,); iou_threshold: a box is dropped when its IoU with a kept box
    is > this; max_detections: stop after this many kept boxes (None: no limit).
    """
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    remaining = _order_best_first(scores)
    kept: List[int] = []
    limit = len(remaining) if max_detections is None else max_detections
    while len(remaining) and len(kept) < limit:
        best = remaining[0]
        kept.append(int(best))
        rest = remaining[1:]
        remaining = rest[iou_one_to_many(boxes[best], boxes[rest]) <= iou_threshold]
    return np.asarray(kept, dtype=np.int64)


def weighted_clusters(
    boxes_xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float, max_detections: Optional[int] = None
) -> List[np.ndarray]:
    """MediaPipe's WEIGHTED NMS clustering: one int64 index array per output, its best box first.

    Repeatedly takes the best remaining box and gathers every remaining box whose IoU with it is
    > ``iou_threshold`` (the best box always belongs to its own cluster), then removes the cluster.
    Clusters come best first; ``max_detections`` stops after that many (later ones cannot change them).
    """
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    remaining = _order_best_first(scores)
    clusters: List[np.ndarray] = []
    limit = len(remaining) if max_detections is None else max_detections
    while len(remaining) and len(clusters) < limit:
        member = iou_one_to_many(boxes[remaining[0]], boxes[remaining]) > iou_threshold
        member[0] = True
        clusters.append(remaining[member].astype(np.int64))
        remaining = remaining[~member]
    return clusters


def weighted_nms(
    boxes_xyxy: np.ndarray,
    scores: np.ndarray,
    keypoints_xy: Optional[np.ndarray],
    iou_threshold: float,
    max_detections: Optional[int] = None,
) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """MediaPipe's WEIGHTED NMS: each cluster becomes its score-weighted mean box and keypoints.

    boxes_xyxy: (N, 4); scores: (N,); keypoints_xy: (N, K, 2) or None. Each output keeps the best
    score of its cluster. Returns (boxes (M, 4), scores (M,), keypoints (M, K, 2) or None) as float32,
    best first.
    """
    clusters = weighted_clusters(boxes_xyxy, scores, iou_threshold, max_detections)
    return merge_clusters(clusters, boxes_xyxy, scores, keypoints_xy)


def merge_clusters(
    clusters: List[np.ndarray], boxes_xyxy: np.ndarray, scores: np.ndarray, keypoints_xy: Optional[np.ndarray]
) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """Score-weighted mean box and keypoints of each cluster from :func:`weighted_clusters`, best score."""
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    score_arr = np.asarray(scores, dtype=np.float64).reshape(-1)
    keypoints = None if keypoints_xy is None else np.asarray(keypoints_xy, dtype=np.float64)
    num_keypoints = 0 if keypoints is None else keypoints.shape[1]
    out_boxes = np.zeros((len(clusters), 4), dtype=np.float64)
    out_scores = np.zeros(len(clusters), dtype=np.float64)
    out_keypoints = np.zeros((len(clusters), num_keypoints, 2), dtype=np.float64)
    for i, members in enumerate(clusters):
        weights = score_arr[members]
        total = weights.sum()
        # All-zero scores would divide by zero: fall back to the best box itself.
        weights = weights / total if total > 0 else np.eye(1, len(members)).ravel()
        out_boxes[i] = weights @ boxes[members]
        out_scores[i] = score_arr[members[0]]
        if keypoints is not None:
            out_keypoints[i] = np.tensordot(weights, keypoints[members], axes=1)
    out_kp = None if keypoints is None else out_keypoints.astype(np.float32)
    return out_boxes.astype(np.float32), out_scores.astype(np.float32), out_kp
