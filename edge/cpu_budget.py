"""The CPU budget of a camera pipeline: its own threads first, the rest of the cores to inference.

A pipeline runs a capture thread a source (which also preprocesses, for one source), an inference
thread and the calling thread (drawing, writing the outputs). ONNX Runtime's default intra-op pool
takes one thread per physical core and keeps them spinning between calls, and OpenCV's pool takes
every core for a resize: on a board with two or four cores those pools starve the pipeline's own
threads, and the pipeline runs slower than its slowest stage timed alone. So the pipeline counts
its threads, gives inference ``cores - own threads`` (at least 1; ``--threads`` overrides), turns
the intra-op pool's spinning off and sizes OpenCV's pool from the cores left.

GPU backends (TensorRT, ONNX Runtime's CUDA and TensorRT providers) take no intra-op threads: the
inference thread waits on the device, and the CUDA driver's own host threads sleep between calls, so
there is nothing to size for them; the budget still leaves the pipeline's threads their cores.
"""

import os
from dataclasses import dataclass, replace
from typing import Any, Dict, Optional, Tuple


def usable_cores() -> int:
    """CPU cores this process may run on: its affinity mask where the OS has one (Linux, taskset, cgroup
    cpusets), else every core."""
    affinity = getattr(os, "sched_getaffinity", None)
    if affinity is not None:
        try:
            return max(1, len(affinity(0)))
        except OSError:
            pass
    return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class CpuBudget:
    """How a pipeline's threads share the cores.

    cores: usable cores. inference: intra-op threads of the model (the inference thread is one of them).
    stages: the pipeline's own threads besides inference ("capture" per source, "main"). opencv: threads
    of OpenCV's pool (resize in preprocessing; the inference pool itself for the opencv backend).
    spinning: whether ONNX Runtime's intra-op pool busy-waits between calls. chosen_by: "budget", "--threads",
    or "measured" / "measured earlier" (:mod:`edge.thread_tuning`). measured_ms: (threads, ms a call) pairs
    that the choice was measured with.
    """

    cores: int
    inference: int
    stages: Tuple[str, ...]
    opencv: int
    spinning: bool = False
    chosen_by: str = "budget"
    measured_ms: Tuple[Tuple[int, float], ...] = ()

    @property
    def stage_cores(self) -> int:
        """Cores left to the pipeline's own threads (at least one, shared when fewer than the threads)."""
        return max(1, self.cores - self.inference)

    def backend_options(self) -> Dict[str, Any]:
        """What the model's backend is given with ``threads=inference`` (edge.Model backend_options)."""
        return {"spinning": self.spinning}

    def for_backend(self, backend_name: str) -> "CpuBudget":
        """The budget once the backend is known: OpenCV's DNN backend infers on OpenCV's pool."""
        if backend_name.startswith("opencv"):
            return replace(self, opencv=self.inference)
        return self

    def text(self) -> str:
        """The one line printed at start, e.g. ``threads: inference 1 of 2 cores (capture, main: 1 shared);
        spinning off; OpenCV 1``, and what the choice was measured with, if it was."""
        captures = sum(1 for stage in self.stages if stage == "capture")
        names = (["capture"] if captures == 1 else [f"{captures} capture"] if captures else []) + \
            [stage for stage in self.stages if stage != "capture"]
        share = f"{self.stage_cores}{' shared' if self.stage_cores < len(self.stages) else ''}"
        how = " (--threads)" if self.chosen_by == "--threads" else ""
        line = (f"threads: inference {self.inference}{how} of {self.cores} cores ({', '.join(names)}: {share}); "
                f"spinning {'on' if self.spinning else 'off'}; OpenCV {self.opencv}")
        if self.measured_ms:
            times = sorted(self.measured_ms, key=lambda pair: pair[0] != self.inference)  # the chosen one first
            said = ", ".join(f"{ms:.1f} ms a call on {count} thread{'s' if count > 1 else ''}" if index == 0 else
                             f"{ms:.1f} ms on {count}" for index, (count, ms) in enumerate(times))
            line += f"; {self.chosen_by}: {said}"
        return line

    def to_dict(self) -> Dict[str, Any]:
        """Machine-readable form (the summary's "threads")."""
        return {"cores": self.cores, "inference": self.inference, "stages": list(self.stages),
                "stage_cores": self.stage_cores, "opencv": self.opencv, "spinning": self.spinning,
                "chosen_by": self.chosen_by,
                "measured_ms": {str(count): round(ms, 4) for count, ms in self.measured_ms}}


def cpu_budget(streams: int = 1, threads: Optional[int] = None, cores: Optional[int] = None) -> CpuBudget:
    """The budget of a pipeline over ``streams`` sources (one capture thread each) and a main thread.

    threads: inference threads asked for (``--threads``; checked like everywhere else), or None for the
    cores the pipeline's own threads leave, at least 1. cores: None for :func:`usable_cores`.
    """
    from edge.backends.base import check_threads  # noqa: PLC0415 - keeps `import edge.cpu_budget` light

    asked = check_threads(threads)
    total = max(1, int(cores)) if cores is not None else usable_cores()
    stages = ("capture",) * max(1, int(streams)) + ("main",)
    inference = asked if asked is not None else max(1, total - len(stages))
    return CpuBudget(cores=total, inference=inference, stages=stages, opencv=max(1, total - inference),
                     spinning=False, chosen_by="--threads" if asked is not None else "budget")


#: FFmpeg decode threads for video files; 0: FFmpeg's own choice (one per core, which then competes with
#: inference). The camera app sets it from its CPU budget; edge.sources.capture reads it when it opens a file.
_DECODE_THREADS = [0]


def set_decode_threads(count: int) -> None:
    """Decode video files with ``count`` FFmpeg threads from now on (0: FFmpeg's default)."""
    _DECODE_THREADS[0] = max(0, int(count))


def decode_threads() -> int:
    """FFmpeg decode threads for the next video file opened (0: FFmpeg's default)."""
    return _DECODE_THREADS[0]


def set_opencv_threads(count: int) -> Optional[int]:
    """Size OpenCV's pool; returns the previous size (None without OpenCV, nothing changed)."""
    try:
        import cv2  # noqa: PLC0415 - optional here
    except ImportError:
        return None
    previous = int(cv2.getNumThreads())
    cv2.setNumThreads(int(count))
    return previous


class PreprocessPlacement:
    """Where a one-source pipeline preprocesses each frame: on the capture thread (frame N+1 is prepared while
    frame N is inferred) or on the inference thread, whichever leaves the busier of the two less to do.

    The capture thread reads (decodes) frames; the inference thread infers and decodes outputs. Preprocessing
    belongs to whichever of them is not the bottleneck: with a heavy model, the capture thread; when video
    decoding is the slower stage (a light model on a 720p file), the inference thread. Judged on the stage
    times measured over the last :attr:`WINDOW` frames, with a margin so that it does not flap; the capture
    thread reads :attr:`on_capture` before each frame. Frames already prepared when it changes are used as they
    are, so a move loses nothing.
    """

    WINDOW = 30
    #: a move must shorten the busier thread's frame by this share of the preprocessing (the most it can)
    MARGIN = 0.5

    def __init__(self) -> None:
        self.on_capture = True
        #: frames preprocessed on each thread, for the run's summary
        self.frames = {"capture": 0, "inference": 0}
        self.moves = 0
        self._sums = [0.0, 0.0, 0.0]
        self._count = 0

    def add(self, capture_ms: float, preprocess_ms: float, inference_ms: float, on_capture: bool) -> None:
        """One frame's times (capture: reading it; inference: infer + output decode + tracking) and where it was
        preprocessed; every WINDOW frames, decide where the next ones are."""
        self.frames["capture" if on_capture else "inference"] += 1
        for index, value in enumerate((capture_ms, preprocess_ms, inference_ms)):
            self._sums[index] += value
        self._count += 1
        if self._count >= self.WINDOW:
            capture, preprocess, inference = (total / self._count for total in self._sums)
            self._sums, self._count = [0.0, 0.0, 0.0], 0
            self.decide(capture, preprocess, inference)

    def decide(self, capture_ms: float, preprocess_ms: float, inference_ms: float) -> bool:
        """Move preprocessing when the other thread would make the busier thread's frame shorter by at least
        MARGIN of the preprocessing time (a move gains at most all of it); returns whether it moved."""
        with_capture = max(capture_ms + preprocess_ms, inference_ms)
        with_inference = max(capture_ms, inference_ms + preprocess_ms)
        here, there = (with_capture, with_inference) if self.on_capture else (with_inference, with_capture)
        if here - there > self.MARGIN * preprocess_ms:
            self.on_capture = not self.on_capture
            self.moves += 1
            return True
        return False

    def to_dict(self) -> Dict[str, Any]:
        """For the summary: frames preprocessed on each thread, and how often it moved."""
        return {"capture": self.frames["capture"], "inference": self.frames["inference"], "moves": self.moves}
