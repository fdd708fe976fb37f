"""benchmarks.stats on synthetic samples with known answers; no wall-clock assertions."""

import itertools
import math

import numpy as np
import pytest

from benchmarks.stats import (
    bootstrap_medians,
    ci_half_width_rel,
    intervals_overlap,
    median_ci,
    ratio_ci,
    run_until,
    significant_change,
    summarize,
    tukey_outliers,
)

ONE_TO_100 = [float(v) for v in range(1, 101)]

# (case, samples, field, expected)
KNOWN = [
    ("1..100 n", ONE_TO_100, "n", 100),
    ("1..100 min", ONE_TO_100, "min", 1.0),
    ("1..100 p5", ONE_TO_100, "p5", 5.95),
    ("1..100 p50", ONE_TO_100, "p50", 50.5),
    ("1..100 p90", ONE_TO_100, "p90", 90.1),
    ("1..100 p95", ONE_TO_100, "p95", 95.05),
    ("1..100 p99", ONE_TO_100, "p99", 99.01),
    ("1..100 max", ONE_TO_100, "max", 100.0),
    ("1..100 mean", ONE_TO_100, "mean", 50.5),
    ("1..100 std (ddof=1)", ONE_TO_100, "std", math.sqrt(100 * 101 / 12)),
    ("1..100 cv", ONE_TO_100, "cv_pct", 100 * math.sqrt(100 * 101 / 12) / 50.5),
    ("1..100 no outliers", ONE_TO_100, "outliers", 0),
    ("constant std", [7.0] * 50, "std", 0.0),
    ("constant cv", [7.0] * 50, "cv_pct", 0.0),
    ("constant CI", [7.0] * 50, "p50_ci95", [7.0, 7.0]),
    ("one sample std", [3.0], "std", 0.0),
    ("one sample CI", [3.0], "p50_ci95", [3.0, 3.0]),
    # Q1 = 3.25, Q3 = 7.75, IQR 4.5: fences -3.5 and 14.5, so 100 and -50 are out, 14 is in
    ("two outliers", [1, 2, 3, 4, 5, 6, 7, 8, 9, 14, 100, -50], "outliers", 2),
    ("outliers kept", [1, 2, 3, 4, 5, 6, 7, 8, 9, 14, 100, -50], "max", 100.0),
]


@pytest.mark.parametrize("case, samples, field, expected", KNOWN, ids=[k[0] for k in KNOWN])
def test_known_answers(case, samples, field, expected):
    assert summarize(samples)[field] == pytest.approx(expected)


def test_includes_is_stored_only_when_given():
    assert "includes" not in summarize([1.0, 2.0])
    assert summarize([1.0, 2.0], includes="H2D + compute + D2H")["includes"] == "H2D + compute + D2H"


@pytest.mark.parametrize("samples, error", [([], "is empty"), ([1.0, float("nan")], "NaN or Inf"),
                                            ([float("inf")], "NaN or Inf")], ids=["empty", "nan", "inf"])
def test_bad_samples_raise(samples, error):
    with pytest.raises(ValueError, match=error):
        summarize(samples)


def test_tukey_outliers_wider_fence():
    samples = [1, 2, 3, 4, 5, 6, 7, 8, 9, 14, 100, -50]
    assert tukey_outliers(samples, k=1.5) == 2
    assert tukey_outliers(samples, k=20.0) == 0


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_bootstrap_ci_contains_the_true_median_of_a_large_normal_sample(seed):
    samples = np.random.default_rng(100 + seed).normal(10.0, 1.0, 5000)
    lo, hi = summarize(samples, seed=seed)["p50_ci95"]
    assert lo < 10.0 < hi
    assert lo <= float(np.median(samples)) <= hi


def test_bootstrap_ci_narrows_with_n():
    rng = np.random.default_rng(5)
    widths = [np.diff(median_ci(rng.normal(10.0, 1.0, n)))[0] for n in (50, 500, 5000)]
    assert widths[0] > widths[1] > widths[2] > 0
    assert widths[0] / widths[2] == pytest.approx(10.0, rel=0.5)  # width ~ 1/sqrt(n)


def test_seeded_is_deterministic_and_seeds_differ():
    samples = np.random.default_rng(9).exponential(3.0, 300)
    assert summarize(samples, seed=4) == summarize(samples, seed=4)
    assert summarize(samples, seed=4)["p50_ci95"] != summarize(samples, seed=5)["p50_ci95"]


@pytest.mark.parametrize("n", [1, 2, 7, 50, 51])
def test_bootstrap_medians_match_naive_resampling(n):
    """The order-statistic draw gives the distribution of medians of real resamples (total variation < 3%)."""
    values = np.arange(1.0, n + 1)  # distinct values, so each median value has a mass to compare
    rng = np.random.default_rng(0)
    naive = np.median(values[rng.integers(0, n, size=(40000, n))], axis=1)
    fast = bootstrap_medians(values, np.random.default_rng(1), 40000)
    support = np.union1d(naive, fast)
    mass = [np.searchsorted(np.sort(m), support, side="right") - np.searchsorted(np.sort(m), support, side="left")
            for m in (naive, fast)]
    assert 0.5 * np.abs(mass[0] - mass[1]).sum() / 40000 < 0.03
    assert set(fast) <= set(naive) | set((values[:-1] + values[1:]) / 2)  # only order statistics or midpoints


# (case, factor: b = a / factor, expected ratio)
SCALED = [("half the time", 2.0, 2.0), ("same", 1.0, 1.0), ("twice the time", 0.5, 0.5), ("ten times", 10.0, 10.0)]


@pytest.mark.parametrize("case, factor, expected", SCALED, ids=[s[0] for s in SCALED])
def test_ratio_ci_on_scaled_copies(case, factor, expected):
    baseline = np.random.default_rng(11).normal(100.0, 2.0, 1000)
    ratio, (lo, hi) = ratio_ci(baseline, baseline / factor, seed=0)
    assert ratio == pytest.approx(expected)
    assert lo <= ratio <= hi
    assert (hi - lo) / ratio < 0.02  # 1000 samples with a 2% spread: a tight interval


def test_ratio_ci_is_seeded():
    a, b = np.random.default_rng(1).normal(10, 1, 200), np.random.default_rng(2).normal(5, 1, 200)
    assert ratio_ci(a, b, seed=7) == ratio_ci(a, b, seed=7)


# (case, a, b, overlap)
INTERVALS = [
    ("disjoint", (1.0, 2.0), (3.0, 4.0), False),
    ("disjoint reversed", (3.0, 4.0), (1.0, 2.0), False),
    ("touching", (1.0, 2.0), (2.0, 3.0), True),
    ("nested", (1.0, 4.0), (2.0, 3.0), True),
    ("partial", (1.0, 3.0), (2.0, 4.0), True),
    ("points equal", (2.0, 2.0), (2.0, 2.0), True),
]


@pytest.mark.parametrize("case, a, b, overlap", INTERVALS, ids=[i[0] for i in INTERVALS])
def test_intervals_overlap(case, a, b, overlap):
    assert intervals_overlap(a, b) is overlap
    assert intervals_overlap(b, a) is overlap


# (case, A's p50 CI, B's p50 CI, change of B against A)
CHANGES = [
    ("B slower", [10.0, 10.5], [11.0, 11.4], "slower"),
    ("B faster", [10.0, 10.5], [9.0, 9.9], "faster"),
    ("overlapping", [10.0, 10.5], [10.4, 11.0], None),
    ("identical", [10.0, 10.5], [10.0, 10.5], None),
    ("touching", [10.0, 10.5], [10.5, 11.0], None),
]


@pytest.mark.parametrize("case, a_ci, b_ci, expected", CHANGES, ids=[c[0] for c in CHANGES])
def test_significant_change(case, a_ci, b_ci, expected):
    assert significant_change({"p50_ci95": a_ci}, {"p50_ci95": b_ci}) == expected


def _cycle(values):
    """A deterministic sample function returning values in turn."""
    source = itertools.cycle(values)
    return lambda: next(source)


def test_run_until_stops_by_target_at_min_samples_for_constant_samples():
    done = run_until(lambda: 4.0, min_samples=30, max_samples=1000, time_budget_s=3600, target_ci_rel=0.01)
    assert (done.stopped_by, len(done.samples_ms), done.ci_rel) == ("target", 30, 0.0)


def test_run_until_stops_by_target_once_the_median_is_known():
    noise = np.random.default_rng(0).normal(10.0, 1.0, 100000)
    done = run_until(_cycle(noise), min_samples=20, max_samples=100000, time_budget_s=3600, target_ci_rel=0.01)
    assert done.stopped_by == "target"
    assert 20 < len(done.samples_ms) < 100000
    assert done.ci_rel <= 0.01
    assert ci_half_width_rel(done.samples_ms) == pytest.approx(done.ci_rel)
    assert done.samples_ms == list(noise[:len(done.samples_ms)])


def test_run_until_stops_by_max_samples_when_the_target_is_unreachable():
    done = run_until(_cycle([1.0, 100.0]), min_samples=10, max_samples=57, time_budget_s=3600, target_ci_rel=0.01)
    assert (done.stopped_by, len(done.samples_ms)) == ("max_samples", 57)
    assert done.ci_rel > 0.01


def test_run_until_checks_at_the_given_interval():
    calls = []
    done = run_until(lambda: calls.append(1) or 2.0, min_samples=5, max_samples=5, time_budget_s=3600,
                     target_ci_rel=0.0, check_every=3)
    assert (done.stopped_by, len(calls)) == ("target", 5)  # a constant meets even a zero target


def test_run_until_time_budget_is_checked_after_min_samples():
    done = run_until(_cycle([1.0, 100.0]), min_samples=8, max_samples=1000, time_budget_s=0.0, target_ci_rel=0.0)
    assert (done.stopped_by, len(done.samples_ms)) == ("time_budget", 8)


@pytest.mark.parametrize("low, high", [(0, 5), (10, 5)])
def test_run_until_rejects_bad_limits(low, high):
    with pytest.raises(ValueError, match="need 1 <= min <= max"):
        run_until(lambda: 1.0, min_samples=low, max_samples=high, time_budget_s=1, target_ci_rel=0.1)
