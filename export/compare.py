"""Numeric comparison of model outputs between two runs (backends, precisions, exports).

Polygraphy-style per-output statistics with precision-aware default tolerances, plus the
two metrics that say whether a reduced-precision model still does its job: cosine
similarity and top-1 agreement. Used by ``edge-export verify`` and by the parity check
in ``edge-export onnx``. numpy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    """When two outputs agree. An element passes when ``|a - b| <= atol + rtol * |a|`` (a = reference;
    for outputs named like boxes, ``|a|`` is the largest coordinate of the output: positions are judged
    against the extent of the boxes, not against their distance from the image origin).

    An output passes when every element passes, the cosine similarity of the flattened arrays
    is at least ``min_cosine`` (judged only when some difference exceeds atol: below it the
    angle is noise) and, for score-like outputs, the fraction of rows whose top-1 class agrees
    is at least ``min_top1`` (0..1).
    """

    atol: float
    rtol: float
    min_cosine: float
    min_top1: float


# Why these numbers:
# - fp32: two fp32 runs differ only by summation order and fused kernels (~1e-6 relative per op,
#   growing with depth); 1e-4 absolute + 1e-3 relative leaves a 10x margin (ORT vs OpenCV on the
#   face detector uses under a tenth of it) without hiding a real bug, and an fp32 engine must
#   never change a decision. Polygraphy's 1e-5 default gives false failures across backends.
# - fp16: a 10-bit mantissa is ~5e-4 relative per op; errors accumulate over dozens of layers, so
#   1e-2 absolute and relative, cosine >= 0.999 and at most 1 % of near-tie decisions flipped.
# - int8: quantisation steps are ~1 % of each tensor's range, so element bounds are only a
#   guard against garbage (0.1 abs/rel); the real checks are the direction of the output
#   (cosine >= 0.99) and the decisions (95 % top-1 agreement).
TOLERANCES: Dict[str, Tolerance] = {
    "fp32": Tolerance(atol=1e-4, rtol=1e-3, min_cosine=0.9999, min_top1=1.0),
    "fp16": Tolerance(atol=1e-2, rtol=1e-2, min_cosine=0.999, min_top1=0.99),
    "int8": Tolerance(atol=1e-1, rtol=1e-1, min_cosine=0.99, min_top1=0.95),
}

# Output names that say "these are class scores" for outputs with more than 2 dimensions.
_SCORE_WORDS = ("score", "logit", "prob", "class", "cls", "conf", "softmax")


@dataclass
class OutputStats:
    """How one output of the candidate compares with the reference.

    max_abs, mean_abs: absolute differences; max_rel: largest |a - b| / |a| where |a| >= atol;
    cosine: similarity of the flattened arrays (1.0 = same direction); top1_agreement: fraction
    of rows with the same arg-max along the last axis, or None when the output is not scores.
    Statistics are NaN when they could not be computed (missing output, shape mismatch).
    """

    name: str
    shape: Tuple[int, ...]
    max_abs: float
    max_rel: float
    mean_abs: float
    cosine: float
    top1_agreement: Optional[float]
    passed: bool
    reason: str


def _failed(name: str, shape: Tuple[int, ...], reason: str) -> OutputStats:
    nan = float("nan")
    return OutputStats(name, shape, nan, nan, nan, nan, None, False, reason)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity in float64; two all-zero arrays are identical (1.0), one all-zero is 0.0."""
    norm_a, norm_b = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if norm_a == 0.0 and norm_b == 0.0:
        return 1.0
    if norm_a == 0.0 or norm_b == 0.0:
        return 0.0
    return float(np.clip(np.dot(a, b) / (norm_a * norm_b), -1.0, 1.0))


def _is_box_output(name: str) -> bool:
    """Whether an output holds box coordinates, by its name (boxes, detection_boxes, pred_boxes, ...)."""
    return "box" in name.lower()


def _looks_like_scores(name: str, reference: np.ndarray) -> bool:
    """(N, C) unless named like boxes; (N, ..., C) when named like scores or the rows are probabilities."""
    if reference.ndim < 2 or reference.shape[-1] < 2 or reference.size == 0 or _is_box_output(name):
        return False  # box coordinates are not class scores, whatever their shape
    if reference.ndim == 2:
        return True
    if any(word in name.lower() for word in _SCORE_WORDS):
        return True
    finite = np.isfinite(reference).all()
    in_unit = finite and float(reference.min()) >= 0.0 and float(reference.max()) <= 1.0
    return bool(in_unit and np.allclose(reference.sum(axis=-1), 1.0, atol=1e-3))


def _top1_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of rows where the candidate picks the reference's class, or a tie of it.

    A tie is a pick whose reference score is within fp32 noise (the fp32 element tolerance) of
    the reference's best: swapping two classes the reference itself cannot tell apart is not a
    changed decision. Deliberately not the tolerance under test: int8's loose element bounds
    would turn real flips into "ties".
    """
    noise = TOLERANCES["fp32"]
    rows_a = a.reshape(-1, a.shape[-1])
    rows_b = b.reshape(-1, b.shape[-1])
    best_a = rows_a.argmax(axis=1)
    best_b = rows_b.argmax(axis=1)
    top_a = rows_a[np.arange(len(rows_a)), best_a]
    picked_a = rows_a[np.arange(len(rows_a)), best_b]
    with np.errstate(invalid="ignore"):  # inf - inf: not a tie, and NaN/Inf are reported elsewhere
        tie = np.abs(top_a - picked_a) <= noise.atol + noise.rtol * np.abs(top_a)
    return float(np.mean((best_a == best_b) | tie))


def _compare_one(name: str, reference: np.ndarray, candidate: np.ndarray, tolerance: Tolerance) -> OutputStats:
    shape = tuple(int(d) for d in reference.shape)
    if reference.shape != candidate.shape:
        return _failed(name, shape, f"shape {list(candidate.shape)} differs from the reference's {list(shape)}")
    a = np.asarray(reference, np.float64).ravel()
    b = np.asarray(candidate, np.float64).ravel()
    finite = np.isfinite(a) & np.isfinite(b)
    same_special = (np.isnan(a) & np.isnan(b)) | (np.isinf(a) & (a == b))
    problems: List[str] = []
    new_bad = int(np.count_nonzero(np.isfinite(a) & ~np.isfinite(b)))
    if new_bad:
        problems.append(f"{new_bad} NaN/Inf values where the reference is finite")
    lost = int(np.count_nonzero(~np.isfinite(a) & ~same_special))
    if lost:
        problems.append(f"{lost} reference NaN/Inf values not reproduced")
    a, b = a[finite], b[finite]
    diff = np.abs(a - b)
    abs_a = np.abs(a)
    max_abs = float(diff.max()) if diff.size else 0.0
    mean_abs = float(diff.mean()) if diff.size else 0.0
    relevant = abs_a >= tolerance.atol if tolerance.atol > 0 else abs_a > 0
    max_rel = float((diff[relevant] / abs_a[relevant]).max()) if np.any(relevant) else 0.0
    cosine = _cosine(a, b)
    top1: Optional[float] = None
    if _looks_like_scores(name, reference):
        top1 = _top1_agreement(np.asarray(reference, np.float64), np.asarray(candidate, np.float64))

    # Box coordinates are positions: their error is relative to the extent of the boxes, not to the
    # distance from the image origin (a box at x = 8 is not ten times more exact than one at x = 80).
    magnitude = np.full_like(abs_a, abs_a.max()) if _is_box_output(name) and abs_a.size else abs_a
    outside = int(np.count_nonzero(diff > tolerance.atol + tolerance.rtol * magnitude))
    if outside:
        worst = int(np.argmax(diff - tolerance.rtol * magnitude))
        problems.append(f"{outside} of {diff.size} elements outside atol {tolerance.atol:g} + rtol "
                        f"{tolerance.rtol:g}*|ref| (worst: ref {a[worst]:.9g}, got {b[worst]:.9g}, "
                        f"diff {diff[worst]:.3g})")
    # An angle between differences at the noise floor means nothing: judge cosine only above atol.
    if cosine < tolerance.min_cosine and max_abs > tolerance.atol:
        problems.append(f"cosine {cosine:.6f} < {tolerance.min_cosine:g}")
    if top1 is not None and top1 < tolerance.min_top1:
        problems.append(f"top-1 agreement {top1:.2%} < {tolerance.min_top1:.0%}")
    return OutputStats(name, shape, max_abs, max_rel, mean_abs, cosine, top1, not problems,
                       "; ".join(problems) if problems else "within tolerance")


def compare(reference: Dict[str, np.ndarray], candidate: Dict[str, np.ndarray],
            tolerance: Tolerance, unordered: Sequence[str] = ()) -> List[OutputStats]:
    """Compare every output of ``candidate`` with ``reference``; never raises on a mismatch.

    reference, candidate: outputs by name (numeric arrays of any dtype, compared in float64).
    unordered: outputs whose first axis is a dynamic set of rows (detections (K, ...)), compared
    together as one table whose rows may come in another order (export/rowmatch.py).
    Returns one OutputStats per reference output (in reference order), then one failed entry
    per output the candidate has that the reference lacks.
    """
    from .rowmatch import compare_table

    table = [n for n in unordered if n in reference and n in candidate]
    table_stats: Dict[str, OutputStats] = {}
    if table:
        found = compare_table(table, reference, candidate, tolerance.atol, tolerance.rtol,
                              lambda n, r, c: _compare_one(n, r, c, tolerance), _failed)
        table_stats = {s.name: s for s in found}
    stats: List[OutputStats] = []
    for name, ref in reference.items():
        ref = np.asarray(ref)
        if name in table_stats:
            stats.append(table_stats[name])
        elif name not in candidate:
            stats.append(_failed(name, tuple(int(d) for d in ref.shape), "missing from the candidate's outputs"))
        else:
            stats.append(_compare_one(name, ref, np.asarray(candidate[name]), tolerance))
    for name in candidate:
        if name not in reference:
            shape = tuple(int(d) for d in np.asarray(candidate[name]).shape)
            stats.append(_failed(name, shape, "output not in the reference (different models?)"))
    return stats


def _number(value: float, digits: int = 2) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:.{digits}e}"


def format_table(stats: Sequence[OutputStats], reference_name: str, candidate_name: str) -> str:
    """A short aligned table, one row per output, then a verdict line that names the failures."""
    header = ("output", "shape", "max_abs", "max_rel", "mean_abs", "cosine", "top1", "result")
    rows: List[Tuple[str, ...]] = [header]
    for s in stats:
        cosine = "-" if math.isnan(s.cosine) else f"{s.cosine:.6f}"
        top1 = "-" if s.top1_agreement is None else f"{s.top1_agreement:.1%}"
        rows.append((s.name, "x".join(str(d) for d in s.shape) or "scalar", _number(s.max_abs), _number(s.max_rel),
                     _number(s.mean_abs), cosine, top1, "ok" if s.passed else "FAIL"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [f"{candidate_name} vs {reference_name} (reference)"]
    lines += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    failed = [s for s in stats if not s.passed]
    if failed:
        lines.append(f"FAIL: {len(failed)} of {len(stats)} outputs disagree")
        lines += [f"  {s.name}: {s.reason}" for s in failed]
    else:
        lines.append(f"PASS: all {len(stats)} outputs agree")
    return "\n".join(lines)


def combine(per_input: Sequence[Sequence[OutputStats]]) -> List[OutputStats]:
    """Merge the comparisons of several input sets into one row per output: the worst case of each.

    max_abs, max_rel: maxima; mean_abs, top1_agreement: means; cosine: minimum; passed: all
    passed; reason: the first failure, prefixed with its input set ("input 2: …").
    """
    merged: Dict[str, List[Tuple[int, OutputStats]]] = {}
    for index, stats in enumerate(per_input):
        for s in stats:
            merged.setdefault(s.name, []).append((index, s))
    rows: List[OutputStats] = []
    for name, entries in merged.items():
        items = [s for _, s in entries]
        failures = [(i, s) for i, s in entries if not s.passed]
        top1s = [s.top1_agreement for s in items if s.top1_agreement is not None]
        notes = [s.reason for s in items if s.passed and s.reason != "within tolerance"]  # e.g. rows paired
        reason = (notes[0] if notes else "within tolerance") if not failures else (
            (f"input {failures[0][0] + 1}: " if len(per_input) > 1 else "") + failures[0][1].reason)
        rows.append(OutputStats(
            name, items[0].shape, _reduce([s.max_abs for s in items], max), _reduce([s.max_rel for s in items], max),
            _reduce([s.mean_abs for s in items], np.mean), _reduce([s.cosine for s in items], min),
            float(np.mean(top1s)) if top1s else None, not failures, reason))
    return rows


def _reduce(values: Sequence[float], how: Callable[[Sequence[float]], float]) -> float:
    """``how`` over the values that are not NaN (NaN marks a statistic that could not be computed)."""
    known = [v for v in values if not math.isnan(v)]
    return float(how(known)) if known else float("nan")


def passed(stats: Sequence[OutputStats]) -> bool:
    """Whether every output agreed (an empty comparison does not pass: nothing was checked)."""
    return bool(stats) and all(s.passed for s in stats)


__all__ = ["TOLERANCES", "OutputStats", "Tolerance", "combine", "compare", "format_table", "passed"]
