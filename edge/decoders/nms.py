"""Non-maximum suppression: classic greedy NMS, its fast class-aware form, and MediaPipe's weighted NMS.

:func:`nms` and the weighted NMS are class-agnostic (as MediaPipe's NonMaxSuppressionCalculator is by
default); :func:`batched_nms` is per class (as Ultralytics and ``torchvision.ops.batched_nms``) or
agnostic, and is the fast path the YOLO and boxes decoders use. All work on boxes ``[x1, y1, x2, y2]``
in any one coordinate system (IoU does not change under per-axis scaling). A box suppresses another
when their IoU is strictly greater than ``iou_threshold``. Equal scores keep input order, so results are
deterministic.
"""

from typing import Any, List, Optional, Tuple

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
    """Greedy class-agnostic NMS: indices (int64) of the kept boxes, best score first.

    boxes_xyxy: (N, 4); scores: (N,); iou_threshold: a box is dropped when its IoU with a kept box
    is > this; max_detections: stop after this many kept boxes (None: no limit). The same greedy
    algorithm as :func:`batched_nms`, which it is, without classes.
    """
    return batched_nms(boxes_xyxy, scores, None, iou_threshold, max_detections)


# Candidates are taken in blocks of this many, best first: small enough that the block's IoU matrices
# stay in cache, large enough that the Python loop runs a handful of times.
NMS_BLOCK = 256


def pairwise_iou(boxes_a_xyxy: np.ndarray, boxes_b_xyxy: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
    """IoU of every box of (N, 4) ``a`` with every box of (M, 4) ``b``: (N, M) of ``dtype``; 0 for empty unions.

    float32 (the default) for NMS on the hot path; the tracker asks for float64.
    """
    a = np.asarray(boxes_a_xyxy, dtype=dtype).reshape(-1, 4)
    b = np.asarray(boxes_b_xyxy, dtype=dtype).reshape(-1, 4)
    inter_w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    inter_h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    np.clip(inter_w, 0.0, None, out=inter_w)
    np.clip(inter_h, 0.0, None, out=inter_h)
    intersection = np.multiply(inter_w, inter_h, out=inter_w)
    area_a = np.clip(a[:, 2] - a[:, 0], 0.0, None) * np.clip(a[:, 3] - a[:, 1], 0.0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0.0, None) * np.clip(b[:, 3] - b[:, 1], 0.0, None)
    union = area_a[:, None] + area_b[None, :] - intersection
    return np.divide(intersection, union, out=np.zeros_like(union), where=union > 0)


def batched_nms(boxes_xyxy: np.ndarray, scores: np.ndarray, class_ids: Optional[np.ndarray],
                iou_threshold: float, max_detections: Optional[int] = None) -> np.ndarray:
    """Greedy NMS per class (``class_ids`` given) or across classes (None): kept indices (int64), best first.

    The same result as ``torchvision.ops.batched_nms`` (and :func:`nms` run per class), vectorised.
    Candidates go best first in blocks of :data:`NMS_BLOCK`: one IoU matrix drops the block's boxes
    that a box kept earlier suppresses, then a second (block x block, upper triangle) resolves the
    block itself, where the Python loop visits only boxes that overlap a lower-scored one (a few per
    object). Classes are kept apart by masking pairs of different classes, which is what the
    coordinate-offset trick achieves, without its loss of float32 precision far from the origin.
    Stops as soon as ``max_detections`` boxes are kept.
    """
    score_arr = np.asarray(scores, dtype=np.float64).reshape(-1)
    order = _order_best_first(score_arr)
    boxes = np.asarray(boxes_xyxy, dtype=np.float32).reshape(-1, 4)[order]
    ids = None if class_ids is None else np.asarray(class_ids).reshape(-1)[order]
    limit = len(order) if max_detections is None else max_detections
    kept: List[np.ndarray] = []
    kept_count = 0
    for start in range(0, len(order), NMS_BLOCK):
        if kept_count >= limit:
            break
        block = np.arange(start, min(start + NMS_BLOCK, len(order)))
        if kept_count:
            earlier = np.concatenate(kept)
            hit = pairwise_iou(boxes[block], boxes[earlier]) > iou_threshold
            if ids is not None:
                hit &= ids[block][:, None] == ids[earlier][None, :]
            block = block[~hit.any(axis=1)]
        over = pairwise_iou(boxes[block], boxes[block]) > iou_threshold
        if ids is not None:
            over &= ids[block][:, None] == ids[block][None, :]
        over = np.triu(over, 1)  # row i: the lower-scored boxes of the block that i would suppress
        keep = np.ones(len(block), dtype=bool)
        for i in np.flatnonzero(over.any(axis=1)):  # ascending = best first, as greedy NMS visits them
            if keep[i]:
                keep[over[i]] = False
        kept.append(block[keep])
        kept_count += int(keep.sum())
    positions = np.concatenate(kept)[:limit] if kept else np.zeros(0, np.int64)
    return order[positions].astype(np.int64)


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
