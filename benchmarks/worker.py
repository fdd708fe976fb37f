"""One benchmark row in a fresh process: ``python -m benchmarks.worker --serve`` (what the suite runs) loads a
row's model and measures it in blocks when the suite asks, so the rows of a model are interleaved across
their processes; ``python -m benchmarks.worker`` (no flag) reads a JSON spec on stdin and writes one
edgebench/2 row (plus its raw samples) as JSON on stdout, measured alone.

A fresh process per row makes cold start and peak memory that row's own, and a crash fails that
row only. The protocol, per row:

1. cold start: ``load`` = model + backend creation (session or engine), ``first_inference``;
2. warm-up: ``warmup`` calls of each layer, cut short after ``warmup_s`` seconds;
3. blocks: ``Backend.infer`` on a prepared tensor (the inference layer: host to host, so copies
   included on a GPU backend) and preprocess + inference + decode of a 1280x720 frame of the
   ``demo://`` scene (the e2e layer), ``calls`` samples each (or ``seconds`` of them); the compute
   layer from the backend's ``last_compute_ms`` (CUDA events) where it has one;
4. finish: on a Jetson, tegrastats over a window of ``count`` inference calls (power, throttling) and
   the clocks against the start; peak host memory (VmHWM).

Spec keys: model, path, backend, config (dict or null), model_note, baseline, threads, count,
seconds, warmup, warmup_s, seed, tegrastats_ms, spinning (False: ONNX Runtime's intra-op pool does not
busy-wait between calls, so a row waiting for its turn leaves the cores to the row being measured).
Anything printed by libraries goes to stderr: the worker moves fd 1 to fd 2 while it runs, so stdout
carries only the protocol.
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
        options = {"spinning": False} if spec.get("spinning") is False and backend.startswith("onnxruntime") else None
        return Model(spec["path"], backend=backend, threads=spec.get("threads"), config=spec.get("config"),
                     backend_options=options)
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
    """Measure one (model, backend) row alone (one block per layer); a failure becomes a failed row with its
    one-line reason. The suite measures rows in interleaved blocks through :func:`serve` instead."""
    session = RowSession(spec)
    if not session.start():
        return session.row
    count = int(spec.get("count", 200))
    try:
        samples = session.block(count if not spec.get("seconds") else None, ["inference", "e2e"],
                                seconds=spec.get("seconds"))
    except Exception as exc:  # noqa: BLE001 - a backend that breaks mid-run fails its row only
        if not isinstance(exc, EdgeError):
            traceback.print_exc()
        session.close()
        session.row["reason"] = one_line(exc)
        return session.row
    row = session.finish()
    seed = int(spec.get("seed", 0))
    row.update(status="ok", samples_ms=samples,
               latency_ms={layer: summarize(values, includes=INCLUDES[layer], seed=seed)
                           for layer, values in samples.items()})
    return row


class RowSession:
    """One row's model in this process: loaded and warmed up by :meth:`start`, measured in blocks by
    :meth:`block`, closed by :meth:`finish` (power window on a Jetson, clocks, peak memory)."""

    def __init__(self, spec: Dict[str, Any]) -> None:
        self.spec = spec
        self.row = base_row(spec)
        self.model: Any = None
        self.calls: Dict[str, Callable[[], Any]] = {}
        self.compute: List[float] = []
        self.clocks_before: Optional[Dict[str, Any]] = None

    def start(self) -> bool:
        """Load (cold start), first inference, warm-up of both layers; False with a failed row when it breaks."""
        spec = self.spec
        self.clocks_before = clock_snapshot() if on_jetson() else None
        try:
            frame = demo_frame(seed=int(spec.get("seed", 0)))
            started = time.perf_counter()
            self.model = load_model(spec)
            load_ms = getattr(self.model, "torch_load_ms", None) or (time.perf_counter() - started) * 1e3
            self.row.update(prepare(self.model, frame, spec, load_ms, self.calls))
        except Exception as exc:  # noqa: BLE001 - any load failure is this row's result, the suite goes on
            if not isinstance(exc, EdgeError):
                traceback.print_exc()
            self.row["reason"] = one_line(exc)
            self.close()
            return False
        return True

    def block(self, calls: Optional[int], layers: List[str], seconds: Optional[float] = None) -> Dict[str, List[float]]:
        """``calls`` timed calls (or ``seconds`` of them) of each layer in ``layers``' order: {layer: [ms]}
        (+ ``compute`` from the backend's own timing where it has one)."""
        backend = self.model.backend
        compute: List[float] = []

        def note_compute() -> None:
            value = getattr(backend, "last_compute_ms", None)
            if value is not None:
                compute.append(float(value))

        out: Dict[str, List[float]] = {}
        for layer in layers:
            spec = {"count": calls, "seconds": seconds, "seed": self.spec.get("seed", 0)}
            out[layer] = measure(self.calls[layer], spec, after=note_compute if layer == "inference" else None)
        if compute:
            out["compute"] = compute
        return out

    def finish(self) -> Dict[str, Any]:
        """The row's closing fields: power over a window of inference calls (tegrastats, Jetson only), whether
        clocks and throttling stayed put, and the process's peak host memory. Closes the model."""
        from edge.stats import peak_rss_mb

        with TegrastatsSampler(int(self.spec.get("tegrastats_ms", 100))) as sampler:
            calls = int(self.spec.get("count", 200)) if sampler.available else 0
            for _ in range(calls):
                self.calls["inference"]()
        power = sampler.power(calls) if calls else None
        self.close()
        self.row["power"] = power
        # Host only: no backend here reports a peak of GPU (or Jetson nvmap) memory, so none is claimed.
        self.row["memory_mb"] = {"host_peak": peak_rss_mb()}
        throttled = bool((power or {}).get("throttled"))
        self.row["stable"] = run_stability(self.clocks_before, clock_snapshot() if on_jetson() else None,
                                           [throttled])
        return self.row

    def close(self) -> None:
        """Release the model (idempotent)."""
        if self.model is not None:
            self.model.close()
            self.model = None


def prepare(model: Any, frame: np.ndarray, spec: Dict[str, Any], load_ms: float,
            calls: Dict[str, Callable[[], Any]]) -> Dict[str, Any]:
    """Cold start and warm-up of a loaded model; fills ``calls`` with the layers' callables and returns the
    row fields known before anything is timed."""
    backend = model.backend
    tensor = np.array(model.preprocess(frame)[0], copy=True)  # the preprocessor reuses its buffer
    started = time.perf_counter()
    model.infer(tensor)
    first_ms = (time.perf_counter() - started) * 1e3

    def end_to_end() -> Any:
        prepared, transform = model.preprocess(frame)
        return model.decode(model.infer(prepared), transform)

    calls["inference"] = lambda: model.infer(tensor)
    calls["e2e"] = end_to_end
    warm_up(calls["inference"], int(spec.get("warmup", 20)), float(spec.get("warmup_s", 2.0)))
    warm_up(end_to_end, min(5, int(spec.get("warmup", 20))), float(spec.get("warmup_s", 2.0)))
    return {"device": backend.device, "precision": precision_of(backend, tensor.dtype),
            "input_shape": list(tensor.shape), "backend_detail": backend.describe(),
            "cold_start_ms": {"load": load_ms, "first_inference": first_ms},
            "result_example": str(end_to_end())[:160]}


def serve(read_line: Callable[[], str], write: Callable[[Dict[str, Any]], None]) -> None:
    """The interleaved protocol, one JSON object a line: the spec in, ``{"ready": true|false, "row"}`` out; then
    ``{"block": calls | null, "seconds": s | null, "layers": [...]}`` -> ``{"samples": {layer: [ms]}}`` (or
    ``{"error": reason}``) as many times as the suite asks; ``{"finish": true}`` -> ``{"row": closing fields}``.
    The model stays loaded in between, waiting on the pipe (ONNX Runtime with spinning off: see load_model)."""
    session = RowSession(json.loads(read_line()))
    ready = session.start()
    write({"ready": ready, "row": session.row})
    if not ready:
        return
    while True:
        line = read_line()
        if not line.strip():
            session.close()  # the suite went away
            return
        command = json.loads(line)
        if command.get("finish"):
            write({"row": session.finish()})
            return
        try:
            write({"samples": session.block(command.get("block"), command["layers"], command.get("seconds"))})
        except Exception as exc:  # noqa: BLE001 - this row fails, the suite's other rows go on
            if not isinstance(exc, EdgeError):
                traceback.print_exc()
            write({"error": one_line(exc)})
            session.close()
            return


def main() -> int:
    """Read the spec on stdin, write the row on stdout (fd 1 is lent to stderr meanwhile). Exit 0 with a row.
    ``--serve``: the interleaved protocol of :func:`serve` on the same pipes."""
    result_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    with os.fdopen(result_fd, "w", encoding="utf-8") as out:
        def write(message: Dict[str, Any]) -> None:
            out.write(json.dumps(message) + "\n")
            out.flush()

        if sys.argv[1:] == ["--serve"]:
            try:
                serve(sys.stdin.readline, write)
            except (ValueError, KeyError) as exc:
                write({"ready": False, "row": {"model": "?", "backend": "?", "status": "failed",
                                               "reason": f"bad worker message: {one_line(exc)}"}})
            return 0
        try:
            spec = json.loads(sys.stdin.read())
            row = run_row(spec)
        except (ValueError, KeyError) as exc:
            row = {"model": "?", "backend": "?", "status": "failed", "reason": f"bad worker spec: {one_line(exc)}"}
        write(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
