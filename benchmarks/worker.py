"""One benchmark row in a fresh process: ``python -m benchmarks.worker`` reads a JSON spec on stdin and
writes one edgebench/1 row (plus its raw samples) as JSON on stdout.

A fresh process per row makes cold start and peak memory that row's own, and a crash fails that
row only. The protocol, per row:

1. cold start: ``load`` = model + backend creation (session or engine), ``first_inference``;
2. warm-up: ``warmup`` calls, cut short after ``warmup_s`` seconds;
3. inference layer: ``Backend.infer`` on a prepared tensor (host to host, so copies included on a
   GPU backend), ``count`` samples or ``seconds`` of them (``stats.run_until``), with tegrastats
   sampling the window where it exists; compute layer from the backend's ``last_compute_ms``
   (CUDA events) where it has one;
4. e2e layer: preprocess + inference + decode of a 1280x720 frame of the ``demo://`` scene;
5. peak host memory (VmHWM) at the end.

Spec keys: model, path, backend, config (dict or null), model_note, baseline, threads, count,
seconds, warmup, warmup_s, seed, tegrastats_ms. Anything printed by libraries goes to stderr: the
worker moves fd 1 to fd 2 while it runs, so stdout carries only the result.
"""

import json
import math
import os
import sys
import time
import traceback
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from edge.errors import EdgeError

from .environment import clock_snapshot, on_jetson, run_stability
from .stats import run_until, summarize
from .tegrastats import TegrastatsSampler

INCLUDES = {
    "compute": "GPU compute only, between CUDA events (the backend's own timing)",
    "inference": "Backend.infer on a prepared input tensor, host to host: input checks + compute "
                 "(+ host-to-device and device-to-host copies on a GPU backend)",
    "e2e": "preprocess (1280x720 BGR frame) + inference + decode to a result",
}
#: bound on samples in --seconds mode (a 0.02 ms model would otherwise fill memory)
MAX_TIMED_SAMPLES = 200_000
FRAME_WH = (1280, 720)


def one_line(exc: BaseException) -> str:
    """An exception as the one-line reason of a failed row."""
    if isinstance(exc, EdgeError):
        return exc.message()
    text = " ".join(str(exc).split()) or "no message"
    return f"{type(exc).__name__}: {text}"[:400]


def demo_frame(index: int = 0, seed: int = 0) -> np.ndarray:
    """A real 1280x720 BGR frame: the demo:// scene (the astronaut card over the sample backgrounds)."""
    from edge.sources.demo import DemoScene

    return DemoScene(FRAME_WH, seed=seed).render(index)


def load_model(spec: Dict[str, Any]) -> Any:
    """The edge Model for the spec; the torch baseline swaps in its own backend."""
    from edge.model import Model

    backend = spec["backend"]
    if backend != "torch-cpu":
        return Model(spec["path"], backend=backend, threads=spec.get("threads"), config=spec.get("config"))
    from .torch_baseline import TorchEagerBackend

    # Model needs a registered backend; build it on the lightest one, then replace that backend before
    # anything is timed (its load time is excluded: the torch backend's prepare() is timed on its own).
    model = Model(spec["path"], backend="opencv", threads=spec.get("threads"), config=spec.get("config"))
    model.close()
    started = time.perf_counter()
    model.backend = TorchEagerBackend(model.path, threads=spec.get("threads"),
                                      options={"model_name": spec["model"]}).prepare()
    model.torch_load_ms = (time.perf_counter() - started) * 1e3
    return model


def warm_up(fn: Callable[[], Any], count: int, seconds: float) -> int:
    """Call ``fn`` up to ``count`` times, stopping once ``seconds`` have passed; the calls made."""
    clock = time.perf_counter
    started = clock()
    for done in range(1, count + 1):
        fn()
        if clock() - started >= seconds:
            return done
    return count


def measure(fn: Callable[[], Any], spec: Dict[str, Any], after: Optional[Callable[[], None]] = None) -> List[float]:
    """Per-call milliseconds of ``fn``: ``count`` samples, or as many as ``seconds`` allows."""
    clock = time.perf_counter

    def sample() -> float:
        start = clock()
        fn()
        elapsed = (clock() - start) * 1e3
        if after is not None:
            after()
        return elapsed

    seconds = spec.get("seconds")
    if seconds:
        taken = run_until(sample, min_samples=min(10, MAX_TIMED_SAMPLES), max_samples=MAX_TIMED_SAMPLES,
                          time_budget_s=float(seconds), target_ci_rel=0.0, check_every=MAX_TIMED_SAMPLES,
                          seed=spec.get("seed", 0))
    else:
        count = int(spec.get("count", 200))
        taken = run_until(sample, min_samples=count, max_samples=count, time_budget_s=math.inf, target_ci_rel=0.0,
                          check_every=count, seed=spec.get("seed", 0))
    return taken.samples_ms


def precision_of(backend: Any, dtype: np.dtype) -> str:
    """The precision the backend computes in: what it reports (TensorRT: the precision the engine obtained),
    ORT-TensorRT's option, else the input dtype."""
    precision = getattr(backend, "precision_obtained", None) or getattr(backend, "precision", None)
    if precision and precision != "unknown":
        return str(precision)
    if backend.name == "onnxruntime-tensorrt":
        return str(backend.options.get("precision", "fp16"))
    return {"float32": "fp32", "float16": "fp16", "uint8": "int8/uint8 input"}.get(np.dtype(dtype).name,
                                                                                  np.dtype(dtype).name)


def base_row(spec: Dict[str, Any]) -> Dict[str, Any]:
    """The row's identity fields, before anything is measured."""
    return {"model": spec["model"], "model_note": spec.get("model_note"), "backend": spec["backend"],
            "baseline": bool(spec.get("baseline")), "status": "failed", "reason": None, "device": None,
            "precision": None, "input_shape": None, "cold_start_ms": None, "latency_ms": None,
            "pipeline_fps": None, "memory_mb": None, "speedup": None, "power": None, "stable": None}


def run_row(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Measure one (model, backend) row; a failure becomes a failed row with its one-line reason."""
    from edge.stats import peak_rss_mb

    row = base_row(spec)
    jetson = on_jetson()
    clocks_before = clock_snapshot() if jetson else None
    try:
        frame = demo_frame(seed=int(spec.get("seed", 0)))
        started = time.perf_counter()
        model = load_model(spec)
        load_ms = getattr(model, "torch_load_ms", None) or (time.perf_counter() - started) * 1e3
    except Exception as exc:  # noqa: BLE001 - any load failure is this row's result, the suite goes on
        if not isinstance(exc, EdgeError):
            traceback.print_exc()
        row["reason"] = one_line(exc)
        return row
    with model:
        try:
            row.update(measure_model(model, frame, spec, load_ms))
        except Exception as exc:  # noqa: BLE001 - a backend that breaks mid-run fails its row only
            if not isinstance(exc, EdgeError):
                traceback.print_exc()
            row["reason"] = one_line(exc)
            return row
    # Host only: no backend here reports a peak of GPU (or Jetson nvmap) memory, so none is claimed.
    row["memory_mb"] = {"host_peak": peak_rss_mb()}
    throttled = bool((row.get("power") or {}).get("throttled"))
    row["stable"] = run_stability(clocks_before, clock_snapshot() if jetson else None, [throttled])
    return row


def measure_model(model: Any, frame: np.ndarray, spec: Dict[str, Any], load_ms: float) -> Dict[str, Any]:
    """Cold start, warm-up and the layers of one loaded model; the row fields they fill."""
    backend = model.backend
    tensor = np.array(model.preprocess(frame)[0], copy=True)  # the preprocessor reuses its buffer
    started = time.perf_counter()
    model.infer(tensor)
    first_ms = (time.perf_counter() - started) * 1e3
    seed = int(spec.get("seed", 0))
    warm_up(lambda: model.infer(tensor), int(spec.get("warmup", 20)), float(spec.get("warmup_s", 2.0)))

    compute: List[float] = []

    def note_compute() -> None:
        value = getattr(backend, "last_compute_ms", None)
        if value is not None:
            compute.append(float(value))

    with TegrastatsSampler(int(spec.get("tegrastats_ms", 100))) as sampler:
        inference = measure(lambda: model.infer(tensor), spec, after=note_compute)
    power = sampler.power(len(inference))

    def end_to_end() -> Any:
        prepared, transform = model.preprocess(frame)
        return model.decode(model.infer(prepared), transform)

    warm_up(end_to_end, min(5, int(spec.get("warmup", 20))), float(spec.get("warmup_s", 2.0)))
    e2e = measure(end_to_end, spec)
    samples = {"inference": inference, "e2e": e2e}
    if compute:
        samples["compute"] = compute
    latency = {layer: summarize(values, includes=INCLUDES[layer], seed=seed) for layer, values in samples.items()}
    return {"status": "ok", "device": backend.device, "precision": precision_of(backend, tensor.dtype),
            "input_shape": list(tensor.shape), "backend_detail": backend.describe(),
            "cold_start_ms": {"load": load_ms, "first_inference": first_ms}, "latency_ms": latency,
            "samples_ms": samples, "power": power, "result_example": str(end_to_end())[:160]}


def main() -> int:
    """Read the spec on stdin, write the row on stdout (fd 1 is lent to stderr meanwhile). Exit 0 with a row."""
    result_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        spec = json.loads(sys.stdin.read())
        row = run_row(spec)
    except (ValueError, KeyError) as exc:
        row = {"model": "?", "backend": "?", "status": "failed", "reason": f"bad worker spec: {one_line(exc)}"}
    with os.fdopen(result_fd, "w", encoding="utf-8") as out:
        json.dump(row, out)
        out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
