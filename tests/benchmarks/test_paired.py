"""The paired design, the drift flag and compare's verdicts on synthetic timers: a fake clock whose speed drifts.

A synthetic row's call costs ``work`` units; the fake clock turns a unit into ``slowdown(t)`` milliseconds at
its current time, plus a little seeded noise, and advances. Nothing here reads the wall clock.
"""

import math
from typing import Callable, Dict, List, Sequence

import numpy as np
import pytest

from benchmarks.compare import compare_results
from benchmarks.drift import row_drift, speed_summary
from benchmarks.group import finish_row
from benchmarks.paired import block_size, interleave, layer_consistency, paired_speedup
from benchmarks.rounds import merge
from benchmarks.stats import ratio_ci
from benchmarks.suite import add_speedups


class FakeClock:
    """Milliseconds of work at a speed that changes with time: ``slowdown(t_ms)`` multiplies every cost."""

    def __init__(self, slowdown: Callable[[float], float], seed: int = 0, noise: float = 0.02) -> None:
        self.t = 0.0
        self.slowdown = slowdown
        self.rng = np.random.default_rng(seed)
        self.noise = noise

    def spend(self, work: float) -> float:
        """One call of ``work`` units: its duration (ms), the clock moved on by it."""
        ms = work * self.slowdown(self.t) * (1 + self.noise * abs(self.rng.standard_normal()))
        self.t += ms
        return ms

    def now_s(self) -> float:
        return self.t / 1e3


class FakeRow:
    """A row on the fake clock: inference costs ``work``, e2e ``work * e2e_factor``."""

    def __init__(self, clock: FakeClock, work: float, e2e_factor: float = 1.2) -> None:
        self.clock, self.work, self.e2e_factor = clock, work, e2e_factor

    def run_block(self, calls: int, layers: Sequence[str]) -> Dict[str, List[float]]:
        cost = {"inference": self.work, "e2e": self.work * self.e2e_factor}
        return {layer: [self.clock.spend(cost[layer]) for _ in range(calls)] for layer in layers}


def ramp(total_ms: float, by: float) -> Callable[[float], float]:
    """A machine getting steadily slower: 1 at the start, 1 + by after ``total_ms``."""
    return lambda t: 1 + by * min(t / total_ms, 1.0)


def probe_of(clock: FakeClock, work: float = 2.0) -> Callable[[], float]:
    return lambda: float(np.median([clock.spend(work) for _ in range(3)]))


def test_paired_design_recovers_the_true_ratio_where_the_sequential_one_does_not():
    count, true_speedup = 200, 2.0  # the row does half the baseline's work
    # sequential (the edgebench/1 design): the baseline's samples, then the row's, while the machine slows
    clock = FakeClock(ramp(count * 1.5 * 2.2, by=0.5), seed=1)
    base, row = FakeRow(clock, 1.0), FakeRow(clock, 0.5)
    base_samples = base.run_block(count, ["inference"])["inference"]
    row_samples = row.run_block(count, ["inference"])["inference"]
    ratio, (lo, hi) = ratio_ci(base_samples, row_samples)
    assert not lo <= true_speedup <= hi and ratio < 1.9  # drift read as a smaller speed-up, confidently

    clock = FakeClock(ramp(count * 1.5 * 2.2, by=0.5), seed=1)
    measured = interleave({"base": FakeRow(clock, 1.0), "row": FakeRow(clock, 0.5)}, count, block_size(count),
                          probe=probe_of(clock), now=clock.now_s)
    base_blocks = [float(np.median(b["inference"])) for b in measured.blocks["base"]]
    row_blocks = [float(np.median(b["inference"])) for b in measured.blocks["row"]]
    paired = paired_speedup(base_blocks, row_blocks)
    assert paired["ci95"][0] <= true_speedup <= paired["ci95"][1]
    assert paired["ratio"] == pytest.approx(true_speedup, rel=0.03) and paired["blocks"] == 20
    assert len(measured.blocks["base"]) == 20 and sum(len(b["inference"]) for b in measured.blocks["base"]) == count


def test_interleave_alternates_rows_and_layers_and_probes_every_round():
    seen = []

    class Recorder:
        def __init__(self, name):
            self.name = name

        def run_block(self, calls, layers):
            seen.append((self.name, tuple(layers), calls))
            return {layer: [1.0] * calls for layer in layers}

    measured = interleave({"a": Recorder("a"), "b": Recorder("b")}, count=7, block=3, probe=lambda: 2.0)
    assert seen == [("a", ("inference", "e2e"), 3), ("b", ("inference", "e2e"), 3),
                    ("b", ("e2e", "inference"), 3), ("a", ("e2e", "inference"), 3),
                    ("a", ("inference", "e2e"), 1), ("b", ("inference", "e2e"), 1)]
    assert [ms for _, ms in measured.probe] == [2.0] * 4  # before each of 3 rounds and after the last


def test_a_row_that_breaks_mid_run_fails_alone():
    class Breaks:
        def __init__(self):
            self.calls = 0

        def run_block(self, calls, layers):
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("device lost")
            return {layer: [1.0] * calls for layer in layers}

    clock = FakeClock(lambda t: 1.0)
    measured = interleave({"ok": FakeRow(clock, 1.0), "bad": Breaks()}, count=40, block=10)
    assert measured.failed == {"bad": "device lost"}
    assert len(measured.blocks["ok"]) == 4 and len(measured.blocks["bad"]) == 1


@pytest.mark.parametrize("slowdown, flagged", [
    (lambda t: 1.0, False),  # steady machine, 2 % noise
    (lambda t: 1.0 if t < 300 else 1.4, True),  # 40 % slower half-way
    (ramp(600, by=0.3), True),  # steadily 30 % slower
])
def test_drift_is_flagged_when_the_machine_moves(slowdown, flagged):
    clock = FakeClock(slowdown, seed=2)
    measured = interleave({"a": FakeRow(clock, 1.0), "b": FakeRow(clock, 0.5)}, 200, 10, probe=probe_of(clock),
                          now=clock.now_s)
    drift = row_drift([ms for _, ms in measured.probe], threshold=0.10)
    assert drift["flagged"] is flagged and drift["points"] == 21
    assert (drift["reason"] is not None) is flagged
    summary = speed_summary(measured.probe)
    assert len(summary["speed_by_tenth"]) == 10 and summary["points"] == 21
    if flagged:
        speeds = [v for v in summary["speed_by_tenth"] if v]
        assert max(speeds) / min(speeds) > 1.2  # the report shows the slow-down


def test_throttling_flags_a_row_even_when_the_probe_held():
    drift = row_drift([2.0, 2.0, 2.01, 2.0], threshold=0.10, stable=False)
    assert drift["flagged"] and "throttled" in drift["reason"]


def test_layer_consistency_marks_a_layer_faster_than_the_one_it_contains():
    good = {"inference": [10.0, 10.2, 9.9, 10.1], "e2e": [12.0, 12.1, 11.9, 12.2]}
    assert layer_consistency(good) == []
    bad = {"inference": [10.0, 10.2, 9.9, 10.1], "e2e": [6.0, 6.1, 6.2, 5.9]}
    (reason,) = layer_consistency(bad)
    assert reason.startswith("e2e measured faster than the inference it contains: e2e/inference = 0.6")
    # one noisy block the other way is within the interval: not a contradiction
    close = {"inference": [10.0, 10.0, 10.0, 10.0, 10.0], "e2e": [10.5, 9.8, 10.6, 10.4, 10.7]}
    assert layer_consistency(close) == []


# ------------------------------------------------------------------ synthetic runs for compare
MODELS = [f"m{i}" for i in range(10)]
WORK = {m: 1.0 + 0.7 * i for i, m in enumerate(MODELS)}


def synthetic_run(seed: int, speed: float, slower: float = 1.0, rounds: int = 2, count: int = 60) -> Dict:
    """A results dict like the suite's: 10 models x (baseline, opencv) measured in paired blocks, ``rounds``
    rounds, on a machine ``speed`` times slower than nominal with a little drift; every row ``slower``."""
    rng = np.random.default_rng(seed)
    by_key: Dict = {}
    series = []
    for _ in range(rounds):
        for model in MODELS:
            wobble = 1 + 0.01 * rng.standard_normal()  # what differs between rounds: placement, caches
            clock = FakeClock(lambda t, w=wobble: speed * w * (1 + 0.01 * math.sin(t / 50)),
                              seed=int(rng.integers(1 << 30)))
            rows = {"onnxruntime-cpu": FakeRow(clock, WORK[model] * slower),
                    "opencv": FakeRow(clock, WORK[model] * 0.6 * slower)}
            measured = interleave(rows, count, block_size(count), probe=probe_of(clock), now=clock.now_s)
            probe_ms = [ms for _, ms in measured.probe]
            series += [[len(series) + i, ms] for i, (_, ms) in enumerate(measured.probe)]
            for backend in rows:
                row = {"model": model, "backend": backend, "baseline": backend == "onnxruntime-cpu", "status": "ok",
                       "stable": None, "memory_mb": {"host_peak": 100.0}}
                row = finish_row(row, measured.blocks[backend], block_size(count), seed=0)
                row["drift"] = row_drift(probe_ms)
                by_key.setdefault((model, backend), []).append(row)
    rows = [merge(by_key[(m, b)]) for m in MODELS for b in ("onnxruntime-cpu", "opencv")]
    add_speedups(rows)
    return {"schema": "edgebench/2", "rows": rows, "machine_speed": speed_summary(series)}


def changed(rows):
    return sum(1 for r in rows if r["change"])


def test_compare_on_aa_data_calls_at_most_5_percent_of_rows_changed():
    calls, compared = 0, 0
    for pair in range(3):  # three A/A pairs, the second run of each on a machine 4 % slower
        a = synthetic_run(seed=10 + pair, speed=1.0)
        b = synthetic_run(seed=20 + pair, speed=1.04)
        rows = compare_results(a, b)
        calls += changed(rows)
        compared += sum(r["status"] == "compared" for r in rows)
    assert compared == 60
    assert calls <= 0.05 * compared


def test_compare_calls_a_ten_percent_slowdown():
    a = synthetic_run(seed=30, speed=1.0)
    b = synthetic_run(seed=31, speed=1.0, slower=1.10)
    rows = compare_results(a, b)
    assert all(r["change"] == "regression" for r in rows), [r["note"] for r in rows if not r["change"]]
    assert all(r["ratio"] == pytest.approx(1.10, rel=0.04) for r in rows)


def test_speedups_are_paired_and_agree_across_runs():
    a, b = synthetic_run(seed=40, speed=1.0), synthetic_run(seed=41, speed=1.3)  # B on a much slower machine
    for run in (a, b):
        for row in run["rows"]:
            if row["backend"] == "opencv":
                up = row["speedup"]
                assert up["method"] == "paired" and up["blocks"] == 40  # 2 rounds of 20 blocks
                assert up["ci95"][0] <= 1 / 0.6 <= up["ci95"][1]
                assert len(up["rounds"]) == 2 and all(up["ci95"][0] <= r <= up["ci95"][1] for r in up["rounds"])
    pairs = zip([r for r in a["rows"] if r.get("speedup")], [r for r in b["rows"] if r.get("speedup")])
    for row_a, row_b in pairs:  # the speed-up intervals of the two runs overlap
        assert row_a["speedup"]["ci95"][0] <= row_b["speedup"]["ci95"][1]
        assert row_b["speedup"]["ci95"][0] <= row_a["speedup"]["ci95"][1]


def test_merged_rounds_keep_every_sample_and_the_spread_between_them():
    run = synthetic_run(seed=50, speed=1.0, rounds=3, count=20)
    row = run["rows"][0]
    assert row["rounds"]["n"] == 3 and len(row["rounds"]["inference_p50"]) == 3
    assert row["latency_ms"]["inference"]["n"] == 60 and len(row["blocks_ms"]["inference"]) == 60
    p50s = row["rounds"]["inference_p50"]
    assert row["round_spread_pct"] == pytest.approx(100 * (max(p50s) - min(p50s)) / float(np.median(p50s)))


def test_a_row_failed_in_one_round_is_failed_with_its_round():
    ok = {"model": "m", "backend": "b", "status": "ok"}
    failed = {"model": "m", "backend": "b", "status": "failed", "reason": "the worker exited with -9: killed"}
    row = merge([ok, failed])
    assert row["status"] == "failed" and row["reason"] == "round 2: the worker exited with -9: killed"


def test_a_row_whose_e2e_interval_lies_below_its_inference_interval_is_unstable():
    row = {"model": "m", "backend": "b", "status": "ok"}
    blocks = [{"inference": [10.0, 10.1, 9.9], "e2e": [6.0, 6.1, 5.9]} for _ in range(6)]
    row = finish_row(row, blocks, 3, seed=0)
    assert len(row["unstable"]) == 2  # the paired per-block ratio, and the p50 intervals the report shows
    assert row["unstable"][1] == "e2e p50 6 ms [5.9, 6.1] below the inference p50 it contains, 10 ms [9.9, 10.1]"
    fine = finish_row({"model": "m", "backend": "b", "status": "ok"},
                      [{"inference": [10.0, 10.1, 9.9], "e2e": [12.0, 12.1, 11.9]} for _ in range(6)], 3, seed=0)
    assert "unstable" not in fine


def test_a_speed_up_interval_takes_in_each_round_s_own_ratio():
    ratios_1 = list(np.linspace(0.95, 1.45, 10))  # round 1: ratios spread widely around 1.2
    ratios_2 = [1.0 + 0.001 * i for i in range(10)]  # round 2: tight at 1.0
    base = {"model": "m", "backend": "onnxruntime-cpu", "status": "ok", "rounds": {"n": 2, "blocks": [10, 10]},
            "blocks_ms": {"inference": [10.0] * 20}, "samples_ms": {"inference": [10.0] * 20}}
    row = {"model": "m", "backend": "opencv", "status": "ok", "rounds": {"n": 2, "blocks": [10, 10]},
           "blocks_ms": {"inference": [10.0 / r for r in ratios_1 + ratios_2]}}
    add_speedups([base, row])
    up = row["speedup"]
    assert up["rounds"] == pytest.approx([float(np.median(ratios_1)), float(np.median(ratios_2))])
    assert up["ci95"][1] == pytest.approx(1.2)  # round 1's own ratio, above what the pooled bootstrap gives
    assert up["ci95"][0] <= up["ratio"] <= up["ci95"][1]
