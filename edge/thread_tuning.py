"""Inference threads chosen by measuring the model, not by counting threads alone.

:func:`edge.cpu_budget.cpu_budget` gives inference the cores the pipeline's own threads leave: one of two
cores here, two of four on a Jetson Nano. That is right for a light model (the face detector infers in
1.2 ms on one thread and 0.93 ms on two on this idle 2-core machine, but 2.1 ms on two while another thread
holds a core, as the pipeline's capture thread does: a perfect split would save 0.6 ms a frame, less than the
capture thread needs) and wrong for a heavy one (ResNet-50: 75 ms on one thread, 38-42 ms on two, so the
camera loop ran at half the speed the model allows). Which one a model is depends on the
model and the board, so it is measured once, when the model loads:

1. the model is loaded with the budget's threads and timed on a blank input (a few calls after a warm-up);
2. only when more threads could win - when the time saved by splitting the work perfectly over every core
   is larger than what the pipeline's own threads need a frame (:data:`STAGE_MS` per capture thread:
   decoding a 720p H.264 frame and preprocessing it cost 1.7 ms here) - a second copy is loaded with every
   core, the two copies are timed in alternation (a machine whose speed changes meanwhile slows both), and
   the second is kept when it is faster by that margin; the other copy is closed.

The choice is cached (``~/.cache/edge/threads.json``, keyed by the model file, its size and time, the
backend and precision asked for, the cores and the CPU), so a light model pays a few calls once and a
heavy one a second load once, per board; the start line says "measured earlier" then. A choice measured
while other work loaded the board can be wrong: delete the file to measure again, or give ``--threads``,
which skips all of it. Only ONNX Runtime's CPU backend
is tuned: GPU backends take no intra-op threads, and OpenCV's DNN backend uses OpenCV's global pool.
"""

import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from edge.cpu_budget import CpuBudget

#: the pipeline's own CPU a frame, per capture thread (decode + preprocess of 720p H.264 here: 1.7 ms), in ms
STAGE_MS = 3.0
#: more threads are kept only when at least this much faster (10 %) after paying STAGE_MS
MARGIN = 0.9
#: timed calls a candidate (after one warm-up call), and the time after which fewer are enough
PROBE_CALLS = 5
PROBE_BUDGET_S = 0.5
TUNED_BACKENDS = ("onnxruntime-cpu",)
CACHE_NAME = "threads.json"
CACHE_VERSION = 1


def probe_ms(*models: Any) -> Optional[List[float]]:
    """Median ms of each model's ``infer`` on a blank input, after a warm-up call each, the models' calls
    alternated (so that a machine whose speed changes during the probe slows them alike); None when a model
    has no fixed input buffer to time with (then nothing is tuned)."""
    tensors = []
    for model in models:
        new_buffer = getattr(getattr(model, "preprocessor", None), "new_buffer", None)
        if new_buffer is None:
            return None
        tensors.append(new_buffer())
        model.infer(tensors[-1])  # warm-up: ONNX Runtime allocates and plans on the first call
    times: List[List[float]] = [[] for _ in models]
    started = time.perf_counter()
    while len(times[0]) < PROBE_CALLS:
        for model, tensor, samples in zip(models, tensors, times):
            start = time.perf_counter()
            model.infer(tensor)
            samples.append((time.perf_counter() - start) * 1e3)
        if time.perf_counter() - started > PROBE_BUDGET_S and len(times[0]) >= 3:
            break
    return [_median(samples) for samples in times]


def _median(values: List[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def worth_more_threads(budget: CpuBudget, measured_ms: float) -> bool:
    """Whether every core could beat the budget's threads, even with perfect scaling: the time a frame would
    save is more than what the pipeline's capture threads need a frame."""
    more = budget.cores
    if more <= budget.inference:
        return False
    best_case = measured_ms * budget.inference / more
    return best_case + _stage_ms(budget) < MARGIN * measured_ms


def keep_more_threads(budget: CpuBudget, few_ms: float, many_ms: float) -> bool:
    """Whether the measured time on every core, plus what the pipeline's threads take from those cores,
    beats the budget's threads by the margin."""
    return many_ms + _stage_ms(budget) < MARGIN * few_ms


def _stage_ms(budget: CpuBudget) -> float:
    return STAGE_MS * max(1, sum(1 for stage in budget.stages if stage == "capture"))


def cache_key(model_path: Path, backend: str, options: Dict[str, Any], budget: CpuBudget) -> str:
    """What the choice depends on: the file (path, size, time), the backend and precision asked for, the
    cores, the pipeline's threads and the CPU."""
    import hashlib  # noqa: PLC0415 - 3 ms of OpenSSL at import: only for the runs that tune

    stat = model_path.stat()
    parts = [str(model_path.resolve()), str(stat.st_size), str(stat.st_mtime_ns), backend,
             str(options.get("precision")), str(options.get("calib_images")), str(budget.cores),
             ",".join(budget.stages), _cpu_name()]
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:32]


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.lower().startswith(("model name", "hardware", "cpu part")):
                    return line.split(":", 1)[-1].strip()
    except OSError:
        pass
    import platform  # noqa: PLC0415 - only where /proc/cpuinfo is missing

    return platform.processor() or platform.machine()


class ChoiceCache:
    """The measured choices, one JSON file: {key: {"threads": n, "measured_ms": {"1": ms, ...}}}.

    A missing, unreadable or foreign file is an empty cache; writing is atomic and failures to write are
    ignored (the next start measures again)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> Dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
            return {}
        choices = data.get("choices")
        return choices if isinstance(choices, dict) else {}

    def get(self, key: str) -> Optional[Tuple[int, Dict[int, float]]]:
        """The cached thread count and the times measured for it, or None."""
        entry = self._read().get(key)
        try:
            threads = int(entry["threads"])
            measured = {int(count): float(ms) for count, ms in entry["measured_ms"].items()}
        except (TypeError, KeyError, ValueError, AttributeError):
            return None
        return (threads, measured) if threads >= 1 else None

    def put(self, key: str, threads: int, measured: Dict[int, float]) -> None:
        """Record a choice (best effort)."""
        choices = self._read()
        choices[key] = {"threads": int(threads), "measured_ms": {str(k): round(v, 4) for k, v in measured.items()}}
        scratch = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            scratch.write_text(json.dumps({"version": CACHE_VERSION, "choices": choices}, indent=1), encoding="utf-8")
            os.replace(str(scratch), str(self.path))
        except OSError:
            try:
                scratch.unlink()
            except OSError:
                pass


def default_cache() -> ChoiceCache:
    """The cache under edge's cache folder (EDGE_CACHE_DIR, XDG_CACHE_HOME or ~/.cache/edge)."""
    from edge.settings import cache_dir

    return ChoiceCache(cache_dir() / CACHE_NAME)


def tuned_model(load: Callable[[int], Any], budget: CpuBudget, model_path: Optional[Path], backend: str,
                options: Dict[str, Any], cache: Optional[ChoiceCache] = None) -> Tuple[Any, CpuBudget]:
    """Load the model with the inference threads that run it fastest in the pipeline: (model, budget).

    load(threads) opens the model with that many intra-op threads. budget: from ``cpu_budget`` (a
    ``--threads`` budget is returned as it is, with one load). model_path: the model file, for the cache
    key (None: no cache). backend/options: as asked for (part of the key). The budget returned says what
    was measured (:attr:`CpuBudget.measured_ms`) and ``chosen_by`` "measured" or "measured earlier".
    """
    if budget.chosen_by != "budget":
        return load(budget.inference), budget
    key = None
    if cache is not None and model_path is not None and model_path.is_file():
        key = cache_key(model_path, backend, options, budget)
        known = cache.get(key)
        if known is not None:
            threads, measured = known
            model = load(threads)
            if _backend_name(model) in TUNED_BACKENDS:
                return model, _chosen(budget, threads, measured, "measured earlier")
            return model, budget
    model = load(budget.inference)
    if _backend_name(model) not in TUNED_BACKENDS:
        return model, budget
    probed = probe_ms(model)
    if probed is None:
        return model, budget
    measured = {budget.inference: probed[0]}
    threads = budget.inference
    if worth_more_threads(budget, probed[0]):
        try:
            other = load(budget.cores)
        except BaseException:
            model.close()
            raise
        few_ms, many_ms = probe_ms(model, other) or (probed[0], None)
        if many_ms is not None:
            measured.update({budget.inference: few_ms, budget.cores: many_ms})
        if many_ms is not None and keep_more_threads(budget, few_ms, many_ms):
            model.close()
            model, threads = other, budget.cores
        else:
            other.close()
    if key is not None and cache is not None:
        cache.put(key, threads, measured)
    return model, _chosen(budget, threads, measured, "measured")


def _backend_name(model: Any) -> str:
    return str(getattr(getattr(model, "backend", None), "name", ""))


def _chosen(budget: CpuBudget, threads: int, measured: Dict[int, float], how: str) -> CpuBudget:
    """The budget with the inference threads chosen by measurement (OpenCV's pool gets the cores left)."""
    return replace(budget, inference=threads, opencv=max(1, budget.cores - threads), chosen_by=how,
                   measured_ms=tuple(sorted(measured.items())))
