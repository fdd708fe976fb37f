"""Greedy and weighted NMS on small hand-made tables with known answers."""

import numpy as np
import pytest

from edge.decoders.nms import (
    NMS_BLOCK,
    batched_nms,
    iou_one_to_many,
    nms,
    pairwise_iou,
    weighted_clusters,
    weighted_nms,
)

# Boxes [x1, y1, x2, y2]. A and B overlap with IoU 81/119; C is far away; D and E have IoU exactly 0.5.
A = [0, 0, 10, 10]
B = [1, 1, 11, 11]
C = [20, 20, 30, 30]
D = [0, 0, 3, 1]
E = [1, 0, 4, 1]
IOU_AB = 81 / 119


@pytest.mark.parametrize("box, boxes, expected", [
    (A, [A], [1.0]),
    (A, [B, C], [IOU_AB, 0.0]),
    (D, [E], [0.5]),
    (A, [[0, 0, 5, 10]], [0.5]),
    ([0, 0, 0, 0], [[0, 0, 0, 0]], [0.0]),   # empty union: 0, not NaN
    (A, np.zeros((0, 4)), []),
])
def test_iou(box, boxes, expected):
    np.testing.assert_allclose(iou_one_to_many(np.array(box, float), np.array(boxes, float)), expected)


@pytest.mark.parametrize("boxes, scores, iou_threshold, max_detections, expected", [
    ([A, B], [0.9, 0.6], 0.3, None, [0]),            # overlapping: the better one stays
    ([A, B], [0.6, 0.9], 0.3, None, [1]),
    ([A, C], [0.6, 0.9], 0.3, None, [1, 0]),         # disjoint: both, best first
    ([D, E], [0.9, 0.8], 0.5, None, [0, 1]),         # IoU == threshold: kept (suppress only when >)
    ([D, E], [0.9, 0.8], 0.49, None, [0]),
    ([A, B, C], [0.9, 0.8, 0.7], 0.9, None, [0, 1, 2]),
    ([A, B, C], [0.9, 0.8, 0.7], 0.9, 2, [0, 1]),    # max_detections
    ([A, C, B], [0.5, 0.5, 0.5], 0.3, None, [0, 1]),  # equal scores: input order decides
    (np.zeros((0, 4)), [], 0.5, None, []),
])
def test_greedy_nms(boxes, scores, iou_threshold, max_detections, expected):
    kept = nms(np.array(boxes, np.float32), np.array(scores, np.float32), iou_threshold, max_detections)
    assert kept.dtype == np.int64
    assert kept.tolist() == expected


def test_greedy_nms_suppressed_box_does_not_suppress():
    # X overlaps Y, Y overlaps Z, X does not overlap Z: greedy keeps X and Z.
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [10, 0, 20, 10]], np.float32)
    assert nms(boxes, np.array([0.9, 0.8, 0.7]), 0.3).tolist() == [0, 2]


def test_weighted_nms_merges_overlap_to_weighted_mean():
    keypoints = np.array([[[2, 2], [8, 2]], [[3, 3], [9, 3]]], np.float32)
    boxes_xyxy = np.array([A, B], np.float32)
    boxes, scores, merged_keypoints = weighted_nms(boxes_xyxy, np.array([0.9, 0.6]), keypoints, 0.3)
    # (0.9 * A + 0.6 * B) / 1.5 = A + 0.4
    np.testing.assert_allclose(boxes, [[0.4, 0.4, 10.4, 10.4]], rtol=1e-6)
    np.testing.assert_allclose(scores, [0.9])  # the best score, not the mean
    np.testing.assert_allclose(merged_keypoints, [[[2.4, 2.4], [8.4, 2.4]]], rtol=1e-6)
    assert boxes.dtype == scores.dtype == merged_keypoints.dtype == np.float32


@pytest.mark.parametrize("boxes, scores, iou_threshold, max_detections, expected_boxes, expected_scores", [
    ([A, C], [0.6, 0.9], 0.3, None, [C, A], [0.9, 0.6]),                    # disjoint: kept, best first
    ([A, B, C], [0.9, 0.6, 0.8], 0.3, None, [[0.4, 0.4, 10.4, 10.4], C], [0.9, 0.8]),
    ([A, B], [0.9, 0.6], 0.7, None, [A, B], [0.9, 0.6]),                    # IoU 0.68 <= 0.7: not merged
    ([D, E], [0.5, 0.5], 0.5, None, [D, E], [0.5, 0.5]),                    # IoU == threshold: not merged
    ([D, E], [0.5, 0.5], 0.49, None, [[0.5, 0, 3.5, 1]], [0.5]),            # equal weights: plain mean
    ([A, C, B], [0.9, 0.8, 0.6], 0.3, 1, [[0.4, 0.4, 10.4, 10.4]], [0.9]),  # max_detections
    (np.zeros((0, 4)), [], 0.3, None, np.zeros((0, 4)), []),
])
def test_weighted_nms(boxes, scores, iou_threshold, max_detections, expected_boxes, expected_scores):
    out_boxes, out_scores, out_keypoints = weighted_nms(
        np.array(boxes, np.float32), np.array(scores, np.float32), None, iou_threshold, max_detections)
    np.testing.assert_allclose(out_boxes, np.array(expected_boxes, np.float32).reshape(-1, 4), rtol=1e-6)
    np.testing.assert_allclose(out_scores, expected_scores, rtol=1e-6)
    assert out_keypoints is None


def test_weighted_clusters_gather_around_the_best_box_only():
    # X overlaps Y, Y overlaps Z, X does not overlap Z: MediaPipe clusters {X, Y}, then {Z} on its own.
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [10, 0, 20, 10]], np.float32)
    clusters = weighted_clusters(boxes, np.array([0.9, 0.8, 0.7]), 0.3)
    assert [c.tolist() for c in clusters] == [[0, 1], [2]]


def test_weighted_nms_zero_scores_keep_the_best_box():
    boxes, scores, _ = weighted_nms(np.array([A, B], np.float32), np.zeros(2), None, 0.3)
    np.testing.assert_allclose(boxes, [A])
    np.testing.assert_allclose(scores, [0.0])


def test_weighted_nms_with_threshold_one_keeps_every_box():
    # Identical boxes have IoU 1, not > 1: nothing merges, and each box still forms its own cluster.
    boxes, scores, _ = weighted_nms(np.array([A, A], np.float32), np.array([0.9, 0.8]), None, 1.0)
    np.testing.assert_allclose(boxes, [A, A])
    np.testing.assert_allclose(scores, [0.9, 0.8])


# ------------------------------------------------------------------ batched (class-aware) NMS
@pytest.mark.parametrize("boxes, scores, class_ids, iou_threshold, max_detections, expected", [
    ([A, B, C], [0.9, 0.8, 0.7], [0, 0, 0], 0.3, None, [0, 2]),     # one class: plain greedy
    ([A, B, C], [0.9, 0.8, 0.7], [0, 1, 0], 0.3, None, [0, 1, 2]),  # B is another class: kept
    ([A, B, C], [0.9, 0.8, 0.7], None, 0.3, None, [0, 2]),          # agnostic
    ([A, B, C], [0.9, 0.8, 0.7], [0, 1, 0], 0.3, 2, [0, 1]),
    ([D, E], [0.9, 0.8], [3, 3], 0.5, None, [0, 1]),                # IoU == threshold: kept
    ([A, C, B], [0.5, 0.5, 0.5], [0, 0, 0], 0.3, None, [0, 1]),     # equal scores: input order decides
    (np.zeros((0, 4)), [], [], 0.5, None, []),
])
def test_batched_nms_table(boxes, scores, class_ids, iou_threshold, max_detections, expected):
    ids = None if class_ids is None else np.array(class_ids, np.int64)
    kept = batched_nms(np.array(boxes, np.float32), np.array(scores, np.float32), ids, iou_threshold, max_detections)
    assert kept.dtype == np.int64 and kept.tolist() == expected


def random_boxes(rng: np.random.Generator, count: int):
    corner = rng.uniform(0, 300, (count, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(5, 120, (count, 2))], axis=1).astype(np.float32)
    scores = (rng.permutation(count) + 1).astype(np.float32) / count  # distinct: ties have no defined order
    return boxes, scores, rng.integers(0, 5, count)


@pytest.mark.parametrize("seed, count", [(0, 0), (1, 1), (2, 50), (3, 300), (4, NMS_BLOCK + 1), (5, 2000)])
@pytest.mark.parametrize("iou_threshold", [0.3, 0.7])
def test_batched_nms_equals_torchvision(seed, count, iou_threshold):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    boxes, scores, class_ids = random_boxes(np.random.default_rng(seed), count)
    for ids in (class_ids, np.zeros(count, np.int64)):
        expected = torchvision.ops.batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores),
                                               torch.from_numpy(ids), iou_threshold).numpy()
        assert batched_nms(boxes, scores, ids, iou_threshold).tolist() == expected.tolist()
    agnostic = batched_nms(boxes, scores, None, iou_threshold, max_detections=10)
    assert agnostic.tolist() == nms(boxes, scores, iou_threshold, 10).tolist()


def test_pairwise_iou_matches_one_to_many():
    boxes, _, _ = random_boxes(np.random.default_rng(7), 20)
    matrix = pairwise_iou(boxes, boxes[:5])
    for j in range(5):
        np.testing.assert_allclose(matrix[:, j], iou_one_to_many(boxes[j], boxes), rtol=1e-5, atol=1e-6)
