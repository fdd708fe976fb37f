"""Statistics for benchmark samples: percentiles, a bootstrap interval of the median, outliers reported
not dropped, speed-up ratios with intervals, and a convergence loop that stops when the median is known well.

Everything here is deterministic for a given ``seed``: the bootstrap uses ``numpy.random.default_rng(seed)``.
Percentiles use numpy's default (linear interpolation between order statistics), so ``p50`` of 1..100 is 50.5.
This is the benchmarks' one summariser: ``summarize`` (the results' full ``stats`` object) and ``brief``
(the small tables of benchmarks.core / decode / detect / gpu_check) both take their percentiles from
``percentiles``.
"""

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np


def _as_samples(samples_ms: Sequence[float], what: str = "samples_ms") -> np.ndarray:
    """Samples as a 1-D float64 array; empty or non-finite input is a caller's bug, so it raises."""
    values = np.asarray(samples_ms, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError(f"{what} is empty: take at least one sample before summarising")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{what} holds NaN or Inf: a timing sample must be a finite number of milliseconds")
    return values


def percentiles(samples: Sequence[float], qs: Sequence[float]) -> List[float]:
    """The ``qs`` percentiles (0..100) of the samples, linear interpolation; empty or non-finite input raises."""
    return [float(v) for v in np.percentile(_as_samples(samples), list(qs))]


def brief(samples: Sequence[float], unit: str = "us", fields: Sequence[str] = ("min", "p50", "p95", "mean"),
          digits: Optional[int] = None) -> Dict[str, float]:
    """A small summary keyed by unit, e.g. ``{"min_us", "p50_us", "p95_us", "mean_us", "n"}``.

    ``fields``: any of ``min``, ``max``, ``mean`` and ``p<q>`` (``p50``, ``p95``, ``p99.9``); ``digits``
    rounds the values (not ``n``).
    """
    values = _as_samples(samples)
    wanted = [name for name in fields if name.startswith("p")]
    by_name = dict(zip(wanted, percentiles(values, [float(name[1:]) for name in wanted])))
    by_name.update(min=float(values.min()), max=float(values.max()), mean=float(values.mean()))
    out: Dict[str, float] = {}
    for name in fields:
        if name not in by_name:
            raise ValueError(f"unknown summary field {name!r}: use min, max, mean or p<percentile>")
        out[f"{name}_{unit}"] = by_name[name] if digits is None else round(by_name[name], digits)
    out["n"] = int(values.size)
    return out


def bootstrap_medians(samples_ms: Sequence[float], rng: np.random.Generator, resamples: int) -> np.ndarray:
    """Medians of ``resamples`` bootstrap resamples (n draws with replacement) of the samples.

    Drawn exactly but without materialising the resamples: a resample is n indices floor(n U_i) with U_i
    uniform, and floor is monotone, so its k-th smallest index is floor(n U_(k)), where the order statistic
    U_(k) ~ Beta(k, n + 1 - k); for even n the next one is U_(k) + (1 - U_(k)) Beta(1, n - k). The median of
    the resample is then the sorted samples at those indices. O(resamples) after one sort, whatever n is.
    """
    values = np.sort(_as_samples(samples_ms))
    if resamples < 1:
        raise ValueError(f"resamples={resamples}: need at least 1 (2000 is the default)")
    n = values.size
    k = (n + 1) // 2  # 1-based rank of the (lower) middle order statistic
    low = rng.beta(k, n + 1 - k, size=resamples)
    medians = values[np.minimum((n * low).astype(np.int64), n - 1)]
    if n % 2 == 0:
        high = low + (1 - low) * rng.beta(1, n - k, size=resamples)
        medians = (medians + values[np.minimum((n * high).astype(np.int64), n - 1)]) / 2
    return medians


def median_ci(samples_ms: Sequence[float], *, seed: int = 0, resamples: int = 2000,
              confidence: float = 0.95) -> Tuple[float, float]:
    """Percentile-bootstrap interval of the median (ms): the 2.5th and 97.5th percentiles of resampled medians."""
    medians = bootstrap_medians(samples_ms, np.random.default_rng(seed), resamples)
    tail = 100 * (1 - confidence) / 2
    lo, hi = percentiles(medians, [tail, 100 - tail])
    return lo, hi


def tukey_outliers(samples_ms: Sequence[float], k: float = 1.5) -> int:
    """How many samples lie beyond the Tukey fences [Q1 - k IQR, Q3 + k IQR]."""
    values = _as_samples(samples_ms)
    q1, q3 = percentiles(values, [25, 75])
    iqr = q3 - q1
    return int(np.count_nonzero((values < q1 - k * iqr) | (values > q3 + k * iqr)))


def summarize(samples_ms: Sequence[float], *, includes: str = "", seed: int = 0, resamples: int = 2000) -> Dict:
    """The ``stats`` object of one latency layer (edgebench/1 and /2).

    Args:
        samples_ms: per-call durations in milliseconds, in the order they were taken (none dropped).
        includes: what the layer measures, e.g. "H2D + compute + D2H"; stored only when given.
        seed, resamples: of the bootstrap interval of the median (``p50_ci95``).

    ``std`` is the sample standard deviation (ddof=1), 0.0 for a single sample; ``cv_pct`` = 100 std / mean.
    ``p5`` is extra to the required fields (the plots' lower whisker).
    """
    values = _as_samples(samples_ms)
    p5, p50, p90, p95, p99 = percentiles(values, [5, 50, 90, 95, 99])
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    stats = {
        "n": int(values.size), "min": float(values.min()), "p5": p5, "p50": p50, "p90": p90, "p95": p95,
        "p99": p99, "max": float(values.max()), "mean": mean, "std": std,
        "cv_pct": 100.0 * std / mean if mean > 0 else 0.0,
        "p50_ci95": list(median_ci(values, seed=seed, resamples=resamples)),
        "outliers": tukey_outliers(values),
    }
    if includes:
        stats["includes"] = includes
    return stats


def ratio_ci(baseline_samples: Sequence[float], samples: Sequence[float], *, seed: int = 0,
             resamples: int = 2000) -> Tuple[float, Tuple[float, float]]:
    """Speed-up ``median(baseline) / median(samples)`` with a 95% percentile-bootstrap interval.

    The two sample sets are resampled independently (they are separate runs, not pairs); > 1 means
    ``samples`` is faster than the baseline.
    """
    base = _as_samples(baseline_samples, "baseline_samples")
    other = _as_samples(samples, "samples")
    if np.median(other) <= 0:
        raise ValueError("samples have a median of 0 ms or less: a speed-up needs positive durations")
    rng = np.random.default_rng(seed)
    base_medians = bootstrap_medians(base, rng, resamples)
    other_medians = bootstrap_medians(other, rng, resamples)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = base_medians / other_medians
    ratios = ratios[np.isfinite(ratios)]
    lo, hi = percentiles(ratios, [2.5, 97.5])
    return float(np.median(base) / np.median(other)), (lo, hi)


def intervals_overlap(a_ci: Sequence[float], b_ci: Sequence[float]) -> bool:
    """Whether two closed intervals [lo, hi] share a point (touching ends count as overlapping)."""
    return float(a_ci[0]) <= float(b_ci[1]) and float(b_ci[0]) <= float(a_ci[1])


def significant_change(a_stats: Dict, b_stats: Dict) -> Optional[str]:
    """"slower" or "faster" for B against A when their ``p50_ci95`` intervals do not overlap, else None."""
    a_ci, b_ci = a_stats["p50_ci95"], b_stats["p50_ci95"]
    if intervals_overlap(a_ci, b_ci):
        return None
    return "slower" if b_ci[0] > a_ci[1] else "faster"


@dataclass
class Converged:
    """What ``run_until`` took: the samples (ms), why it stopped, and the last relative CI half-width."""

    samples_ms: List[float] = field(default_factory=list)
    stopped_by: str = ""  # "target", "max_samples" or "time_budget"
    ci_rel: float = math.inf


def ci_half_width_rel(samples_ms: Sequence[float], *, seed: int = 0, resamples: int = 500) -> float:
    """Half the width of the median's bootstrap 95% interval, relative to the median (0.01 = ±1%)."""
    values = _as_samples(samples_ms)
    median = float(np.median(values))
    lo, hi = median_ci(values, seed=seed, resamples=resamples)
    if median <= 0:
        return math.inf
    return (hi - lo) / 2 / median


def run_until(fn_sample: Callable[[], float], *, min_samples: int, max_samples: int, time_budget_s: float,
              target_ci_rel: float, check_every: Optional[int] = None, seed: int = 0,
              resamples: int = 500) -> Converged:
    """Call ``fn_sample`` (one timed call, returns its duration in ms) until the median is known well enough.

    ``min_samples`` are always taken. After that the loop stops at the first of: the median's 95% CI
    half-width relative to the median is at most ``target_ci_rel`` (checked every ``check_every`` samples,
    default a tenth of the samples so far, so the bootstrap costs little), ``max_samples`` reached, or
    ``time_budget_s`` of wall time spent (time.perf_counter; the budget is the only use of the clock).
    """
    if not 1 <= min_samples <= max_samples:
        raise ValueError(f"min_samples={min_samples}, max_samples={max_samples}: need 1 <= min <= max")
    clock = time.perf_counter
    started = clock()
    result = Converged()
    samples = result.samples_ms
    next_check = min_samples
    while True:
        samples.append(float(fn_sample()))
        n = len(samples)
        if n < min_samples:
            continue
        if n >= next_check:
            result.ci_rel = ci_half_width_rel(samples, seed=seed, resamples=resamples)
            if result.ci_rel <= target_ci_rel:
                result.stopped_by = "target"
                return result
            next_check = n + (check_every or max(1, n // 10))
        if n >= max_samples or clock() - started >= time_budget_s:
            result.stopped_by = "max_samples" if n >= max_samples else "time_budget"
            result.ci_rel = ci_half_width_rel(samples, seed=seed, resamples=resamples)
            return result


def paired_ratio(numerators: Sequence[float], denominators: Sequence[float], *, seed: int = 0,
                 resamples: int = 2000) -> Dict:
    """The median of per-block ratios ``numerators[i] / denominators[i]`` with a 95% percentile-bootstrap
    interval over the blocks: ``{"ratio", "ci95", "blocks"}``.

    Block i of both series was measured in the same time window (paired, interleaved blocks), so a slow
    phase of the machine scales both sides of a ratio alike: drift that shifts separately measured medians
    cancels here. With one block the interval is that block's ratio on both ends.
    """
    top = _as_samples(numerators, "numerators")
    bottom = _as_samples(denominators, "denominators")
    if top.shape != bottom.shape:
        raise ValueError(f"paired series must have one length (got {top.size} and {bottom.size})")
    if np.any(bottom <= 0):
        raise ValueError("a paired ratio needs positive denominators (durations)")
    ratios = top / bottom
    medians = bootstrap_medians(ratios, np.random.default_rng(seed), resamples)
    lo, hi = percentiles(medians, [2.5, 97.5])
    return {"ratio": float(np.median(ratios)), "ci95": [lo, hi], "blocks": int(ratios.size)}


def block_medians(samples: Sequence[float], block: int) -> List[float]:
    """Medians of consecutive blocks of ``block`` samples (the last block may be shorter)."""
    values = _as_samples(samples)
    if block < 1:
        raise ValueError(f"block={block}: need at least 1 sample per block")
    return [float(np.median(values[start:start + block])) for start in range(0, values.size, block)]
