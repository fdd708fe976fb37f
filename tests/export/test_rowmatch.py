"""Detections with a dynamic row count: compared as an unordered table (export/rowmatch.py via compare)."""

from __future__ import annotations

import numpy as np
import pytest

from export.checks import dynamic_row_outputs
from export.compare import TOLERANCES, compare

FP32 = TOLERANCES["fp32"]
NAMES = ("boxes", "scores", "labels")


def detections(count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    corner = rng.uniform(0, 200, (count, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(5, 100, (count, 2))], axis=1).astype(np.float32)
    scores = np.sort(rng.uniform(0.3, 1.0, count))[::-1].astype(np.float32)
    return {"boxes": boxes, "scores": scores, "labels": rng.integers(1, 91, count).astype(np.int64)}


def reorder(outputs, order):
    return {k: v[order] for k, v in outputs.items()}


def nudge(outputs, name, row, amount):
    changed = {k: v.copy() for k, v in outputs.items()}
    changed[name][row] += amount
    return changed


REF = detections(20)
SWAP = np.r_[1, 0, 2:20]  # two equal-score detections listed the other way round


@pytest.mark.parametrize("candidate, passed, reason", [
    (REF, True, "within tolerance"),
    (reorder(REF, SWAP), True, "rows paired regardless of order"),
    (nudge(reorder(REF, SWAP), "scores", 0, 1e-5), True, "rows paired regardless of order"),
    (nudge(reorder(REF, SWAP), "boxes", 3, 2.0), False, "elements outside"),  # 2 px off: a real difference
    (nudge(REF, "labels", 5, 1), False, "elements outside"),
    (reorder(REF, np.arange(19)), False, "19 rows where the reference has 20"),
])
def test_unordered_detections(candidate, passed, reason):
    stats = compare(REF, candidate, FP32, unordered=NAMES)
    assert [s.name for s in stats] == list(NAMES)
    assert all(s.passed for s in stats) is passed
    assert any(reason in s.reason for s in stats), [s.reason for s in stats]


def test_without_unordered_a_swap_fails():
    stats = compare(REF, reorder(REF, SWAP), FP32)
    assert not all(s.passed for s in stats)


def test_no_detections_on_either_side_agree():
    empty = detections(0)
    assert all(s.passed for s in compare(empty, detections(0, seed=1), FP32, unordered=NAMES))


def test_pairing_does_not_swallow_a_boxes_bug():
    # every box shifted by a pixel: no pairing can hide it
    shifted = nudge(REF, "boxes", slice(None), 1.0)
    stats = {s.name: s for s in compare(REF, reorder(shifted, SWAP), FP32, unordered=NAMES)}
    assert not stats["boxes"].passed and stats["scores"].passed


@pytest.mark.parametrize("input_shape, outputs, expected", [
    ((1, 3, 320, 320), [("boxes", ("K", 4)), ("scores", ("K",)), ("labels", ("K",))], ["boxes", "scores", "labels"]),
    (("batch", 3, 32, 32), [("output", ("batch", 4))], []),  # a dynamic batch is not a row set
    ((1, 3, 32, 32), [("output", (1, 4))], []),
    ((1, 3, 32, 32), [("scalar", ())], []),
])
def test_dynamic_row_outputs(input_shape, outputs, expected):
    assert dynamic_row_outputs(input_shape, outputs) == expected
