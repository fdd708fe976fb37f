"""Compare outputs whose rows are an unordered set: detections with a dynamic count K.

A post-NMS detector (torchvision's boxes (K, 4), scores (K,), labels (K,)) gives a number of rows
that depends on the input, and two runtimes may list equal-score detections in a different order.
Such outputs are compared as one table, row i being (boxes[i], scores[i], labels[i]):

- different K in the two runs: every output of the table fails, saying so (a detection appears in
  one run only, or a threshold decision flipped: either way the export does not compute the same);
- same K, rows in the same order: the ordinary element-wise comparison;
- same K, another order: each reference row is paired with the closest candidate row (greedy,
  reference order; closeness = the largest element difference relative to the tolerance), the
  candidate reordered accordingly, then compared element-wise. The verdict stays element-wise
  strict: a pairing that does not bring every element within tolerance fails.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Sequence

import numpy as np

PAIRED = "rows paired regardless of order"

# Above this many rows the pairing matrix gets large (K*K*D); compare in the given order instead.
MAX_MATCHED_ROWS = 4000


def table_rows(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """(K, D) float64: each output's row flattened, side by side."""
    count = int(arrays[0].shape[0])
    return np.concatenate([np.asarray(a, np.float64).reshape(count, -1) for a in arrays], axis=1)


def pairing(reference: np.ndarray, candidate: np.ndarray, atol: float, rtol: float) -> np.ndarray:
    """For (K, D) tables, candidate row index paired with each reference row (a permutation)."""
    allowed = atol + rtol * np.abs(reference)[:, None, :]
    with np.errstate(invalid="ignore"):
        excess = np.abs(reference[:, None, :] - candidate[None, :, :]) / np.maximum(allowed, 1e-30)
    cost = np.nan_to_num(excess, nan=np.inf).max(axis=2)  # (K_ref, K_cand)
    free = np.ones(len(candidate), bool)
    order = np.empty(len(reference), np.int64)
    for row in range(len(reference)):  # greedy in reference order: K rows, each a vectorised argmin
        costs = np.where(free, cost[row], np.inf)
        best = int(np.argmin(costs))
        order[row] = best
        free[best] = False
    return order


def compare_table(names: Sequence[str], reference: Dict[str, np.ndarray], candidate: Dict[str, np.ndarray],
                  atol: float, rtol: float, compare_one: Callable, fail: Callable) -> List:
    """OutputStats for the outputs ``names`` (all present in both), compared as one unordered table.

    compare_one(name, ref, cand) and fail(name, shape, reason) build the statistics (export.compare).
    """
    refs = [np.asarray(reference[n]) for n in names]
    cands = [np.asarray(candidate[n]) for n in names]
    counts_ref = {int(a.shape[0]) if a.ndim else -1 for a in refs}
    counts_cand = {int(a.shape[0]) if a.ndim else -1 for a in cands}
    if len(counts_ref) != 1 or len(counts_cand) != 1 or -1 in counts_ref | counts_cand:
        return [compare_one(n, r, c) for n, r, c in zip(names, refs, cands)]  # not one table: element-wise
    k_ref, k_cand = counts_ref.pop(), counts_cand.pop()
    if k_ref != k_cand:
        reason = (f"{k_cand} rows where the reference has {k_ref} (the outputs {', '.join(names)} have a dynamic "
                  "row count: a detection appears in one run only)")
        return [fail(n, tuple(int(d) for d in r.shape), reason) for n, r in zip(names, refs)]
    ordered = [compare_one(n, r, c) for n, r, c in zip(names, refs, cands)]
    if all(s.passed for s in ordered) or k_ref > MAX_MATCHED_ROWS or k_ref == 0:
        return ordered
    if any(r.shape[1:] != c.shape[1:] for r, c in zip(refs, cands)):
        return ordered
    order = pairing(table_rows(refs), table_rows(cands), atol, rtol)
    matched = [compare_one(n, r, c[order]) for n, r, c in zip(names, refs, cands)]
    for stats in matched:
        stats.reason = PAIRED if stats.passed else f"{stats.reason} ({PAIRED})"
    return matched
