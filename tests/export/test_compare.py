"""export.compare: statistics on known arrays, verdicts, tolerance defaults and the table."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from export.compare import TOLERANCES, OutputStats, Tolerance, combine, compare, format_table, passed

RNG = np.random.default_rng(7)
BOXES = (RNG.standard_normal((1, 20, 4)) * 50).astype(np.float32)  # regression-like, values up to ~150
LOGITS = (RNG.standard_normal((4, 10)) * 3).astype(np.float32)
LOGITS[np.arange(4), np.arange(4)] += 20  # clear winners: classes 0..3
LOOSE = Tolerance(atol=100.0, rtol=0.0, min_cosine=0.0, min_top1=1.0)  # only top-1 can fail


def _flip_top1(logits: np.ndarray) -> np.ndarray:
    flipped = logits.copy()
    flipped[0, 9] = logits[0].max() + 5.0  # row 0 now picks class 9
    return flipped


def _near_tie(logits: np.ndarray) -> np.ndarray:
    tied = logits.copy()
    tied[0, 9] = tied[0].max()  # a tie in the reference ...
    return tied


# (case, reference, candidate, tolerance, expect pass, reason contains)
CASES = [
    ("identical", {"boxes": BOXES}, {"boxes": BOXES.copy()}, "fp32", True, "within tolerance"),
    ("noise under fp32", {"boxes": BOXES}, {"boxes": BOXES + 5e-5}, "fp32", True, "within tolerance"),
    ("noise over fp32", {"boxes": BOXES}, {"boxes": BOXES + np.float32(0.5)}, "fp32", False, "elements outside"),
    ("same noise under fp16", {"boxes": BOXES}, {"boxes": BOXES + 5e-3}, "fp16", True, "within tolerance"),
    ("noise over fp16", {"boxes": BOXES}, {"boxes": BOXES * 1.05}, "fp16", False, "elements outside"),
    ("NaN in candidate", {"boxes": BOXES}, {"boxes": np.where(BOXES > 100, np.nan, BOXES)}, "int8", False, "NaN/Inf"),
    ("Inf in candidate", {"boxes": BOXES}, {"boxes": np.where(BOXES > 100, np.inf, BOXES)}, "int8", False, "NaN/Inf"),
    ("NaN in both", {"x": np.array([1.0, np.nan])}, {"x": np.array([1.0, np.nan])}, "fp32", True, "within"),
    ("shape mismatch", {"boxes": BOXES}, {"boxes": BOXES[0]}, "int8", False, "shape [20, 4] differs"),
    ("missing output", {"boxes": BOXES, "scores": LOGITS}, {"boxes": BOXES}, "int8", False, "missing"),
    ("extra output", {"boxes": BOXES}, {"boxes": BOXES, "more": LOGITS}, "int8", False, "not in the reference"),
    ("top-1 flip", {"logits": LOGITS}, {"logits": _flip_top1(LOGITS)}, LOOSE, False, "top-1 agreement 75.00%"),
    ("top-1 near tie is not a flip", {"logits": _near_tie(LOGITS)}, {"logits": _near_tie(LOGITS) + np.eye(10)[9]},
     LOOSE, True, "within"),
    ("integer outputs", {"ids": np.array([1, 2, 3])}, {"ids": np.array([1, 2, 3])}, "fp32", True, "within"),
    ("cosine fails, elements loose", {"x": np.array([2.0, 2.0])}, {"x": np.array([0.5, 3.5])},
     Tolerance(atol=0.5, rtol=1.0, min_cosine=0.9, min_top1=0.0), False, "cosine 0.800000 < 0.9"),
    ("cosine at the noise floor is not judged", {"x": np.array([1e-7, 0.0])}, {"x": np.array([0.0, 1e-7])},
     "fp32", True, "within"),
]


@pytest.mark.parametrize("reference, candidate, tolerance, ok, reason",
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_compare_verdicts(reference, candidate, tolerance, ok, reason):
    tolerance = TOLERANCES[tolerance] if isinstance(tolerance, str) else tolerance
    stats = compare(reference, candidate, tolerance)
    assert passed(stats) is ok
    assert any(reason in s.reason for s in stats), [s.reason for s in stats]


def test_identical_outputs_have_zero_error_and_unit_cosine():
    (stats,) = compare({"logits": LOGITS}, {"logits": LOGITS.copy()}, TOLERANCES["fp32"])
    assert (stats.name, stats.shape, stats.passed) == ("logits", (4, 10), True)
    assert stats.max_abs == stats.max_rel == stats.mean_abs == 0.0
    assert stats.cosine == pytest.approx(1.0, abs=1e-12)
    assert stats.top1_agreement == 1.0


def test_statistics_values():
    reference = {"x": np.array([[0.0, 2.0, 4.0]])}
    candidate = {"x": np.array([[5e-5, 2.002, 4.0]])}
    (stats,) = compare(reference, candidate, TOLERANCES["fp32"])
    assert stats.max_abs == pytest.approx(0.002)
    assert stats.mean_abs == pytest.approx((5e-5 + 0.002) / 3)
    assert stats.max_rel == pytest.approx(0.001)  # the 0.0 element (|a| < atol) is left out, not divided by
    assert stats.passed  # 0.002 <= 1e-4 + 1e-3 * 2.0


@pytest.mark.parametrize("reference, candidate, cosine", [
    (np.zeros(4), np.zeros(4), 1.0),
    (np.zeros(4), np.ones(4), 0.0),
    (np.ones(4), -np.ones(4), -1.0),
    (np.array([1.0, 0.0]), np.array([1.0, 1.0]), math.sqrt(0.5)),
])
def test_cosine(reference, candidate, cosine):
    loose = Tolerance(atol=10.0, rtol=0.0, min_cosine=-1.0, min_top1=0.0)
    (stats,) = compare({"x": reference}, {"x": candidate}, loose)
    assert stats.cosine == pytest.approx(cosine)


@pytest.mark.parametrize("name, array, computed", [
    ("logits", np.ones((2, 5)), True),              # (N, C): always
    ("regressors", np.ones((1, 896, 16)), False),   # (N, ..., C) not named or shaped like scores
    ("class_scores", np.ones((1, 896, 16)), True),  # named like scores
    ("out", np.full((1, 6, 4), 0.25), True),        # rows are probabilities
    ("logits", np.ones((3, 1)), False),             # one class: nothing to agree on
    ("flat", np.ones(10), False),
])
def test_top1_only_for_score_like_outputs(name, array, computed):
    (stats,) = compare({name: array}, {name: array.copy()}, TOLERANCES["fp32"])
    assert (stats.top1_agreement is not None) is computed


def test_nan_statistics_exclude_bad_elements_and_report_count():
    candidate = BOXES.copy()
    candidate[0, :3, 0] = np.nan
    (stats,) = compare({"boxes": BOXES}, {"boxes": candidate}, TOLERANCES["fp32"])
    assert not stats.passed and "3 NaN/Inf values" in stats.reason
    assert stats.max_abs == 0.0  # the finite elements are identical


@pytest.mark.parametrize("field", ["atol", "rtol", "min_cosine", "min_top1"])
def test_tolerances_nest_fp32_within_fp16_within_int8(field):
    values = [getattr(TOLERANCES[p], field) for p in ("fp32", "fp16", "int8")]
    if field.startswith("min_"):
        assert values[0] >= values[1] >= values[2]  # stricter minimum first
        assert 0.0 < values[2] <= 1.0
    else:
        assert 0.0 < values[0] <= values[1] <= values[2]


def test_tolerance_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TOLERANCES["fp32"].atol = 1.0  # type: ignore[misc]


def test_format_table_rows_verdict_and_alignment():
    stats = compare({"boxes": BOXES, "logits": LOGITS}, {"boxes": BOXES + 1.0, "logits": LOGITS},
                    TOLERANCES["fp32"])
    text = format_table(stats, "onnxruntime-cpu", "opencv")
    lines = text.splitlines()
    assert lines[0] == "opencv vs onnxruntime-cpu (reference)"
    header, boxes, logits = lines[1:4]
    assert header.split() == ["output", "shape", "max_abs", "max_rel", "mean_abs", "cosine", "top1", "result"]
    assert boxes.split()[:3] == ["boxes", "1x20x4", "1.00e+00"] and boxes.endswith("FAIL")
    assert logits.split()[-2:] == ["100.0%", "ok"]
    assert header.index("result") == boxes.index("FAIL") == logits.index("ok")
    assert "FAIL: 1 of 2 outputs disagree" in text and "boxes: 80 of 80 elements outside" in text


def test_format_table_pass_and_unknown_statistics():
    text = format_table(compare({"a": np.ones(3)}, {"a": np.ones(3)}, TOLERANCES["fp32"]), "ref", "cand")
    assert text.endswith("PASS: all 1 outputs agree")
    failed = format_table(compare({"a": np.ones(3)}, {}, TOLERANCES["fp32"]), "ref", "cand")
    assert "a       3      -" in failed and "missing" in failed


def test_combine_takes_the_worst_case_and_names_the_input():
    tolerance = TOLERANCES["fp32"]
    first = compare({"x": np.ones(4)}, {"x": np.ones(4) + 1e-5}, tolerance)
    second = compare({"x": np.ones(4)}, {"x": np.ones(4) + 1.0}, tolerance)
    (row,) = combine([first, second])
    assert isinstance(row, OutputStats)
    assert row.max_abs == pytest.approx(1.0) and row.mean_abs == pytest.approx((1e-5 + 1.0) / 2)
    assert not row.passed and row.reason.startswith("input 2: 4 of 4 elements outside")
    (single,) = combine([first])
    assert single.passed and single.reason == "within tolerance"


def test_empty_comparison_does_not_pass():
    assert passed([]) is False


@pytest.mark.parametrize("name, ok", [
    ("boxes", True),             # 0.015 px at x = 8 in boxes reaching 320 px: within 1e-3 of their extent
    ("detection_boxes", True),
    ("features", False),         # any other output: 0.015 at 8 is 1.9e-3 relative, outside fp32
])
def test_box_coordinates_are_judged_against_their_extent(name, ok):
    reference = np.array([[8.0, 20.0, 300.0, 320.0], [100.0, 4.0, 180.0, 90.0]], np.float32)
    candidate = reference.copy()
    candidate[0, 0] += 0.015
    stats = compare({name: reference}, {name: candidate}, TOLERANCES["fp32"])[0]
    assert stats.passed is ok, stats.reason
    far = reference.copy()
    far[1, 2] += 0.5  # half a pixel is beyond 1e-4 + 1e-3 * 320 = 0.32 px everywhere
    assert not compare({name: reference}, {name: far}, TOLERANCES["fp32"])[0].passed
