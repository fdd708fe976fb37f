"""Box overlap and optimal one-to-one assignment for the tracker (and the tracking benchmark).

``linear_assignment`` uses SciPy's ``linear_sum_assignment`` when SciPy is importable and a
pure-NumPy Hungarian algorithm otherwise (JetPack's Python often has no SciPy wheel); both
minimise the same total cost, so they agree wherever the optimum is unique.
"""

from typing import Optional, Tuple

import numpy as np

_UNMATCHABLE = 1e6  # stands for "no pair" inside the solver; far above any real cost
_scipy_solver: Optional[object] = None
_scipy_checked = False


def _scipy() -> Optional[object]:
    """SciPy's linear_sum_assignment, or None where SciPy is not installed (checked once)."""
    global _scipy_solver, _scipy_checked
    if not _scipy_checked:
        _scipy_checked = True
        try:
            from scipy.optimize import linear_sum_assignment
        except ImportError:
            linear_sum_assignment = None
        _scipy_solver = linear_sum_assignment
    return _scipy_solver


def linear_assignment_ready() -> None:
    """Import the assignment solver (SciPy's, where installed) now: the import takes ~0.4 s."""
    _scipy()


def hungarian(cost: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Minimum-cost assignment of a dense (N, M) cost matrix in pure NumPy: (rows, cols), rows sorted.

    Every row is assigned when N <= M (every column otherwise). The Hungarian method with
    potentials, O(N^2 M), its inner loops vectorised over columns.
    """
    cost = np.asarray(cost, np.float64)
    if cost.ndim != 2:
        raise ValueError(f"cost must be a 2-D matrix, got shape {cost.shape}")
    if cost.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if not np.isfinite(cost).all():
        raise ValueError("cost must be finite (use a large number for pairs that must not match)")
    if cost.shape[0] > cost.shape[1]:
        cols, rows = hungarian(cost.T)
        order = np.argsort(rows)
        return rows[order], cols[order]
    n, m = cost.shape
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    row_of_col = np.zeros(m + 1, np.int64)  # 1-based row assigned to each column; 0 = none
    way = np.zeros(m + 1, np.int64)
    for row in range(1, n + 1):
        row_of_col[0] = row
        col = 0
        min_slack = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, bool)
        while True:
            used[col] = True
            current_row = row_of_col[col]
            free = ~used[1:]
            slack = cost[current_row - 1] - u[current_row] - v[1:]
            better = free & (slack < min_slack[1:])
            min_slack[1:][better] = slack[better]
            way[1:][better] = col
            candidates = np.where(free, min_slack[1:], np.inf)
            next_col = int(np.argmin(candidates)) + 1
            delta = candidates[next_col - 1]
            u[row_of_col[used]] += delta
            v[used] -= delta
            min_slack[~used] -= delta
            col = next_col
            if row_of_col[col] == 0:
                break
        while col:  # augment along the alternating path
            previous = way[col]
            row_of_col[col] = row_of_col[previous]
            col = previous
    cols = np.flatnonzero(row_of_col[1:])
    rows = row_of_col[1:][cols] - 1
    order = np.argsort(rows)
    return rows[order].astype(np.int64), cols[order].astype(np.int64)


def linear_assignment(cost: np.ndarray, max_cost: float, use_scipy: Optional[bool] = None
                      ) -> Tuple[np.ndarray, np.ndarray]:
    """Pairs (rows, cols) of least total cost among those with ``cost <= max_cost``; rows sorted.

    cost: (N, M); entries above ``max_cost`` (or not finite) never pair.
    use_scipy: None picks SciPy when importable; False forces the NumPy solver; True requires SciPy.
    """
    cost = np.asarray(cost, np.float64)
    if cost.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    allowed = np.isfinite(cost) & (cost <= max_cost)
    if not allowed.any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    bounded = np.where(allowed, cost, _UNMATCHABLE)
    solver = _scipy() if use_scipy is not False else None
    if use_scipy and solver is None:
        raise ImportError("scipy is not installed (pip install scipy)")
    if solver is not None:
        rows, cols = solver(bounded)  # type: ignore[operator]
    else:
        rows, cols = hungarian(bounded)
    keep = allowed[rows, cols]
    return np.asarray(rows[keep], np.int64), np.asarray(cols[keep], np.int64)
