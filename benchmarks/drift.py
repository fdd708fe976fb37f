"""The machine's speed over a run: a fixed calibration probe timed between blocks, and the drift flag.

The probe is a small fixed numpy kernel (elementwise passes over float32 arrays, a few milliseconds)
split across as many threads as the runtimes use, so it slows down when any of those cores is taken,
as a parallel inference does. Its duration between the blocks of a model's rows is the machine's
speed during them: a row whose window saw the probe move by more than ``threshold`` (the
interquartile range of the probe's per-round points, relative to their median: the machine ran at
another speed for at least a quarter of the window; a shorter burst only touches a few blocks,
which the medians of paired per-block ratios shrug off) is flagged, and the suite can measure it
again. On a Jetson a clock change or a throttled die in the row's window (tegrastats and
the clock snapshots, the row's ``stable``) flags it too.
"""

import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from .stats import percentiles

#: default drift threshold: the probe's interquartile range over a row's window, relative to its median
THRESHOLD = 0.10
#: elements per thread and passes of the kernel: about 2 ms per probe on a server-class core
SIZE = 1 << 17
PASSES = 90
PROBE_WHAT = (f"{PASSES} fused multiply-add passes over {SIZE} float32 per thread, one thread per core "
              "the runtimes use; the wall time of the slowest thread")


class Probe:
    """The calibration probe: ``probe()`` runs the kernel once on every thread and returns its milliseconds.

    Threads wait on an event between probes (no spinning), so an idle probe costs the measured rows nothing.
    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, threads: int = 1, clock: Callable[[], float] = time.perf_counter) -> None:
        self.threads = max(1, int(threads))
        self.clock = clock
        rng = np.random.default_rng(0)
        self._data = [(rng.random(SIZE, dtype=np.float32), np.empty(SIZE, np.float32))
                      for _ in range(self.threads)]
        self._go = [threading.Event() for _ in range(self.threads - 1)]
        self._done = [threading.Event() for _ in range(self.threads - 1)]
        self._stop = False
        self._workers = [threading.Thread(target=self._serve, args=(i,), daemon=True, name=f"probe-{i + 1}")
                         for i in range(self.threads - 1)]
        for worker in self._workers:
            worker.start()

    def _kernel(self, index: int) -> None:
        source, out = self._data[index + 1] if index >= 0 else self._data[0]
        np.multiply(source, 1.0001, out=out)
        for _ in range(PASSES - 1):
            np.multiply(out, 0.9999, out=out)
            np.add(out, source, out=out)

    def _serve(self, index: int) -> None:
        while True:
            self._go[index].wait()
            self._go[index].clear()
            if self._stop:
                return
            self._kernel(index)
            self._done[index].set()

    def __call__(self) -> float:
        """One probe: the kernel on every thread at once; milliseconds until the last one finished."""
        started = self.clock()
        for go in self._go:
            go.set()
        self._kernel(-1)
        for done in self._done:
            done.wait()
            done.clear()
        return (self.clock() - started) * 1e3

    def round(self, calls: int = 3) -> float:
        """The median of ``calls`` probes: one point of the machine's speed series."""
        return float(np.median([self() for _ in range(max(1, calls))]))

    def close(self) -> None:
        """Stop the helper threads."""
        self._stop = True
        for go in self._go:
            go.set()
        for worker in self._workers:
            worker.join(timeout=1.0)

    def __enter__(self) -> "Probe":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def moved(probe_ms: Sequence[float]) -> float:
    """How far the machine's speed moved over a window: (p75 - p25) / p50 of the probe times in it (0 for
    fewer than 3 points: too few to say)."""
    values = [float(v) for v in probe_ms]
    if len(values) < 3:
        return 0.0
    p25, p50, p75 = percentiles(values, [25, 50, 75])
    return (p75 - p25) / p50 if p50 > 0 else 0.0


def row_drift(probe_ms: Sequence[float], threshold: float = THRESHOLD,
              stable: Optional[bool] = None) -> Dict[str, Any]:
    """A row's ``drift`` entry: the probe's median and movement over its window, and whether it is flagged
    (moved above ``threshold``, or ``stable`` is False: clocks changed or the board throttled)."""
    values = [float(v) for v in probe_ms]
    amount = moved(values)
    reasons = []
    if amount > threshold:
        reasons.append(f"the machine's speed moved {100 * amount:.0f} % (calibration probe, interquartile range) "
                       f"while it was measured, above the {100 * threshold:g} % threshold")
    if stable is False:
        reasons.append("the clocks changed or the board throttled while it was measured")
    return {"probe_p50_ms": float(np.median(values)) if values else None, "moved_pct": 100 * amount,
            "points": len(values), "threshold_pct": 100 * threshold, "flagged": bool(reasons),
            "reason": "; ".join(reasons) or None}


def speed_summary(series: Sequence[Sequence[float]]) -> Optional[Dict[str, Any]]:
    """The run's ``machine_speed`` entry from its probe series [[seconds since start, probe ms], ...]: the
    median probe, its p10..p90 spread, and the speed (median / probe, 1 = typical) in tenths of the run."""
    if not series:
        return None
    times = np.array([float(t) for t, _ in series])
    probe = np.array([float(ms) for _, ms in series])
    p10, p50, p90 = percentiles(probe, [10, 50, 90])
    edges = np.linspace(times.min(), times.max() + 1e-9, 11)
    tenths: List[Optional[float]] = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = probe[(times >= lo) & (times < hi)]
        tenths.append(float(p50 / np.median(inside)) if inside.size else None)
    return {"what": PROBE_WHAT, "points": int(probe.size), "probe_p50_ms": p50, "probe_p10_ms": p10,
            "probe_p90_ms": p90, "spread_pct": 100 * (p90 - p10) / p50 if p50 > 0 else 0.0,
            "speed_by_tenth": tenths, "series": [[float(t), float(ms)] for t, ms in series]}


def speed_line(summary: Optional[Dict[str, Any]]) -> str:
    """One line for the reports: the probe's spread and the machine's speed over the run."""
    if not summary:
        return "machine speed: not measured (no calibration probe in this run)"
    tenths = " ".join("—" if v is None else f"{100 * v:.0f}" for v in summary["speed_by_tenth"])
    return (f"machine speed (calibration probe, {summary['points']} points, p50 {summary['probe_p50_ms']:.2f} ms, "
            f"p10..p90 spread {summary['spread_pct']:.1f} %): % of typical speed by tenth of the run: {tenths}")
