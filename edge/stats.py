"""Per-stage timing records for the camera pipeline: cheap to add to, summarised at the end."""

import sys
from array import array
from typing import Dict, Iterable, List, Optional, Sequence

STAGES = ("capture", "preprocess", "infer", "decode", "draw", "sink")


def peak_rss_mb() -> Optional[float]:
    """This process's peak resident memory in MB (VmHWM on Linux: since exec, unlike ru_maxrss)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


class StageTimes:
    """Milliseconds per stage per frame, plus capture-to-result latency."""

    def __init__(self, stages: Iterable[str] = STAGES) -> None:
        self.samples: Dict[str, array] = {name: array("d") for name in list(stages) + ["latency"]}

    def add(self, timings_ms: Dict[str, float]) -> None:
        """Record one frame's timings (unknown stage names are added on first sight)."""
        for name, value in timings_ms.items():
            self.samples.setdefault(name, array("d")).append(value)

    def percentiles(self, name: str, qs: Iterable[float] = (50, 95)) -> Optional[List[float]]:
        """Percentiles of one stage in ms, or None without samples."""
        values = self.samples.get(name)
        if not values:
            return None
        return percentiles(values, qs)

    def slowest_stage(self) -> Optional[str]:
        """The pipeline stage with the highest median (latency excluded)."""
        medians = {n: self.percentiles(n, (50,)) for n in self.samples if n != "latency"}
        medians = {n: m[0] for n, m in medians.items() if m}
        return max(medians, key=medians.get) if medians else None  # type: ignore[arg-type]

    def table(self) -> str:
        """The summary table: p50 and p95 per stage in milliseconds."""
        lines = [f"  {'stage':<11}{'p50 ms':>9}{'p95 ms':>9}"]
        for name in self.samples:
            pcts = self.percentiles(name)
            if pcts:
                note = "  (capture to result)" if name == "latency" else ""
                lines.append(f"  {name:<11}{pcts[0]:>9.2f}{pcts[1]:>9.2f}{note}")
        return "\n".join(lines)


def percentiles(values: Iterable[float], qs: Iterable[float]) -> List[float]:
    """The qs-th percentiles of values (numpy's default linear interpolation, without importing numpy.ma)."""
    ordered = sorted(values)
    return [_percentile(ordered, q) for q in qs]


def _percentile(ordered: Sequence[float], q: float) -> float:
    """The q-th percentile of sorted values, linear interpolation (numpy's default): np.percentile imports
    numpy.ma on NumPy 2.x, 8 ms of every run's summary."""
    position = (len(ordered) - 1) * float(q) / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))
