"""What a run did: the summary the camera app prints and writes with --summary-json (frames, rate, per-stage
times, outputs, per-stream figures), and which stages a model's pipeline times. Split from edge/pipeline.py,
which runs the threads; both names are importable from edge.pipeline as before."""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from edge.stats import STAGES, StageTimes, percentiles


@dataclass
class StreamStats:
    """One stream of a multi-stream run: frames delivered, capture-to-result latency, and how it ended.

    name: the URI (passwords redacted) or the name given to it. last_result_s: seconds from the run's start
    to this stream's last result (its FPS is over that span). lost: a live source gone for good.
    """

    index: int
    name: str
    frames: int = 0
    detections: int = 0
    last_result_s: float = 0.0
    latencies_ms: List[float] = field(default_factory=list)
    ended: str = ""
    lost: bool = False
    dropped: int = 0

    @property
    def fps(self) -> float:
        """Results per second of this stream, from the run's start to its last result."""
        return self.frames / self.last_result_s if self.last_result_s > 0 else 0.0

    def latency_ms(self, qs: Sequence[float] = (50, 95)) -> Optional[List[float]]:
        """Percentiles of capture-to-result latency in ms, or None before the first result."""
        if not self.latencies_ms:
            return None
        return percentiles(self.latencies_ms, qs)

    def add(self, count: int, latency_ms: float, since_start_s: float) -> None:
        """Count one delivered result."""
        self.frames += 1
        self.detections += count
        self.latencies_ms.append(latency_ms)
        self.last_result_s = since_start_s

    def to_dict(self) -> Dict[str, Any]:
        """Machine-readable form (for --summary-json and the benchmarks)."""
        pcts = self.latency_ms() or [None, None]
        return {"index": self.index, "name": self.name, "frames": self.frames, "fps": round(self.fps, 3),
                "detections": self.detections, "latency_p50_ms": _round(pcts[0]), "latency_p95_ms": _round(pcts[1]),
                "ended": self.ended, "lost": self.lost, "dropped": self.dropped}

    def text(self) -> str:
        """One summary line."""
        pcts = self.latency_ms()
        latency = f", latency p50 {pcts[0]:.1f} ms, p95 {pcts[1]:.1f} ms" if pcts else ""
        lost = "; LOST for good" if self.lost else ""
        return (f"  stream {self.index} {self.name}: {self.frames} frames, {self.fps:.1f} FPS{latency}; "
                f"ended: {self.ended or 'still running when the run stopped'}{lost}")


def _counts_text(counts: Optional[Dict[str, int]]) -> str:
    return " (" + ", ".join(f"{key} {value}" for key, value in counts.items()) + ")" if counts else ""


def _round(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value, 3)


@dataclass
class RunSummary:
    """What a run did: frames, rate, per-stage times and why it stopped."""

    frames: int = 0
    elapsed_s: float = 0.0
    ended: str = ""
    first_result_s: Optional[float] = None
    #: time.perf_counter() when the first result was delivered (CLOCK_MONOTONIC on Linux: comparable
    #: across processes, which lets a benchmark measure spawn-to-first-result)
    first_result_at_s: Optional[float] = None
    dropped: int = 0
    #: results reported over all frames: detections, classes (classify), instances (instance masks, keypoints),
    #: or classes present other than background (class maps) - len() of each frame's result
    detections: int = 0
    peak_rss_mb: Optional[float] = None
    #: what each output really holds after the run, e.g. {"out.mp4": 120}
    outputs: Dict[str, int] = field(default_factory=dict)
    #: outputs' own counts (Sink.summary()), e.g. {"mqtt://host/t": {"published": 40, "dropped": 2, ...}}
    output_counts: Dict[str, Dict[str, int]] = field(default_factory=dict)
    interrupted: bool = False
    #: frames of a video file that could not be decoded and were skipped (Source.skipped_frames)
    skipped_frames: int = 0
    times: StageTimes = field(default_factory=StageTimes)
    #: multi-stream runs: one entry per stream (empty for one source)
    streams: List[StreamStats] = field(default_factory=list)
    #: the CPU budget the run had (CpuBudget.to_dict()), or None when none was given
    threads: Optional[Dict[str, Any]] = None
    #: CPU seconds the whole process used during the run (every thread: the pipeline's, ONNX Runtime's and
    #: FFmpeg's pools); with the cores, how busy the run kept the machine
    cpu_s: Optional[float] = None
    #: frames preprocessed on the capture and on the inference thread, and moves between them
    #: (PreprocessPlacement.to_dict()); None where the inference thread always preprocesses
    preprocess_on: Optional[Dict[str, int]] = None

    @property
    def fps(self) -> float:
        """Frames per second over the whole run."""
        return self.frames / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> Dict[str, Any]:
        """Machine-readable summary (for --summary-json and the benchmarks); times in ms unless named _s."""
        stages = {}
        for name in self.times.samples:
            pcts = self.times.percentiles(name, (50, 95))
            if pcts:
                stages[name] = {"p50_ms": round(pcts[0], 4), "p95_ms": round(pcts[1], 4)}
        return {"frames": self.frames, "elapsed_s": round(self.elapsed_s, 4), "fps": round(self.fps, 3),
                "ended": self.ended, "dropped": self.dropped, "skipped_frames": self.skipped_frames,
                "detections": self.detections,
                "outputs": dict(self.outputs), "first_result_s": self.first_result_s,
                **({"output_counts": {n: dict(c) for n, c in self.output_counts.items()}} if self.output_counts
                   else {}),
                "peak_rss_mb": self.peak_rss_mb,
                "first_result_at_perf_counter_s": self.first_result_at_s, "stages": stages,
                "slowest_stage": self.times.slowest_stage(),
                **({"streams": [stream.to_dict() for stream in self.streams]} if self.streams else {}),
                **({"threads": dict(self.threads)} if self.threads is not None else {}),
                **({"preprocess_on": dict(self.preprocess_on)} if self.preprocess_on is not None else {}),
                **self._cpu_dict()}

    def _cpu_dict(self) -> Dict[str, Any]:
        """The run's CPU time: seconds, ms a frame and, with the cores of its budget, the share of them it kept busy."""
        if self.cpu_s is None:
            return {}
        cores = (self.threads or {}).get("cores")
        busy = self.cpu_s / (self.elapsed_s * cores) if cores and self.elapsed_s > 0 else None
        return {"cpu_s": round(self.cpu_s, 4),
                "cpu_ms_per_frame": round(1e3 * self.cpu_s / self.frames, 4) if self.frames else None,
                "cpu_busy": None if busy is None else round(busy, 4)}

    def text(self, source: str = "") -> str:
        """The multi-line summary printed when the app stops."""
        head = f"summary: {self.frames} frames in {self.elapsed_s:.2f} s, {self.fps:.1f} FPS"
        extras = [f"source {source}"] if source else []
        if self.streams:
            extras = [f"{len(self.streams)} streams"]
        extras.append(f"ended: {self.ended}")
        if self.skipped_frames:
            extras.append(f"{self.skipped_frames} undecodable frame{'s' if self.skipped_frames != 1 else ''} skipped")
        if self.dropped:
            extras.append(f"{self.dropped} live frames replaced before use")
        if self.first_result_s is not None:
            extras.append(f"first result after {self.first_result_s:.2f} s")
        if self.peak_rss_mb is not None:
            extras.append(f"peak memory {self.peak_rss_mb:.0f} MB")
        if self.outputs:
            held = ", ".join(f"{name}: {count} frames" + _counts_text(self.output_counts.get(name))
                             for name, count in self.outputs.items())
            extras.append(f"outputs hold {held}")
        streams = "".join(stream.text() + "\n" for stream in self.streams)
        return head + " (" + "; ".join(extras) + ")\n" + streams + self.times.table()


def network_ms(model: Any) -> Optional[float]:
    """The round trip of a remote backend's last call (triton), part of "infer"; None for local backends."""
    return getattr(getattr(model, "backend", None), "last_network_ms", None)


def model_stages(model: Any, tracked: bool) -> Sequence[str]:
    """pipeline_stages, with a "network" row under "infer" for a remote backend (its share of inference)."""
    stages = tuple(pipeline_stages(tracked))
    if hasattr(getattr(model, "backend", None), "last_network_ms"):
        after = stages.index("infer") + 1
        stages = stages[:after] + ("network",) + stages[after:]
    return stages


def pipeline_stages(tracked: bool) -> Sequence[str]:
    """The timed stages in order; a tracker's "track" stage follows "decode"."""
    after_decode = STAGES.index("decode") + 1
    return STAGES if not tracked else STAGES[:after_decode] + ("track",) + STAGES[after_decode:]
