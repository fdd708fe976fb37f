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
    spinning: whether ONNX Runtime's intra-op pool busy-waits between calls. chosen_by: "budget" or "--threads".
    """

    cores: int
    inference: int
    stages: Tuple[str, ...]
    opencv: int
    spinning: bool = False
    chosen_by: str = "budget"

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
        spinning off; OpenCV 1``."""
        captures = sum(1 for stage in self.stages if stage == "capture")
        names = (["capture"] if captures == 1 else [f"{captures} capture"] if captures else []) + \
            [stage for stage in self.stages if stage != "capture"]
        shared = " shared" if self.stage_cores < len(self.stages) else ""
        how = " (--threads)" if self.chosen_by == "--threads" else ""
        return (f"threads: inference {self.inference}{how} of {self.cores} cores ({', '.join(names)}: "
                f"{self.stage_cores}{shared}); spinning {'on' if self.spinning else 'off'}; OpenCV {self.opencv}")

    def to_dict(self) -> Dict[str, Any]:
        """Machine-readable form (the summary's "threads")."""
        return {"cores": self.cores, "inference": self.inference, "stages": list(self.stages),
                "stage_cores": self.stage_cores, "opencv": self.opencv, "spinning": self.spinning,
                "chosen_by": self.chosen_by}


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


def set_opencv_threads(count: int) -> Optional[int]:
    """Size OpenCV's pool; returns the previous size (None without OpenCV, nothing changed)."""
    try:
        import cv2  # noqa: PLC0415 - optional here
    except ImportError:
        return None
    previous = int(cv2.getNumThreads())
    cv2.setNumThreads(int(count))
    return previous
