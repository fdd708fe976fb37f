"""``edge-bench streams``: many ``demo://`` streams through one model, batched vs round-robin, and one
process a stream.

    edge-bench streams                                 # 1, 2, 4, 8 streams; 4 batched vs 4 processes
    edge-bench streams --streams 1,4 --frames 60 --processes 0 --json streams.json

Each stream is ``demo://?seed=K`` (K = 0, 1, ...), its frames rendered before the clock starts and replayed
by a source that stamps each frame when it is read (so that the scene renderer, which costs more than the
model on a small CPU, is not what is measured). A row runs every stream to ``--frames`` results through
:func:`edge.streams.run_streams`: "batched" puts every ready stream's frame in one inference call,
"round-robin" one frame a call; "processes" runs the same streams as that many separate processes, one
stream each, started together. Throughput is results per second over the run, all streams together;
latency is capture to result (p50, p95 over every frame). The model is the shipped face detector
re-exported with a dynamic batch (:func:`dynamic_batch_copy`) unless ``--model`` gives another.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edge.errors import EdgeError

from .stats import percentiles

DEFAULT_STREAMS = (1, 2, 4, 8)
FRAME_WH = (640, 360)


# ------------------------------------------------------------------------------ a dynamic-batch model
def dynamic_batch_copy(source: Path, target: Path, check_batch: int = 3) -> Path:
    """Write ``source`` with a dynamic batch (dimension 0 of the input and outputs named "N") to ``target``.

    A Reshape whose target shape starts with a literal 1 gets 0 there (ONNX: copy the input's dimension), so
    graphs that flatten per image (the MediaPipe detectors) take any batch. Checked with ONNX Runtime:
    a batch of ``check_batch`` must equal the frames run one by one within 1e-5, else EdgeError.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    for value in list(graph.input) + list(graph.output):
        if value.name not in initializers:
            value.type.tensor_type.shape.dim[0].dim_param = "N"
    del graph.value_info[:]  # inferred shapes with the old batch would contradict the new one
    for node in graph.node:
        if node.op_type == "Reshape" and node.input[1] in initializers:
            shape = numpy_helper.to_array(initializers[node.input[1]]).copy()
            if shape.size and shape[0] == 1:
                shape[0] = 0
                initializers[node.input[1]].CopyFrom(numpy_helper.from_array(shape, node.input[1]))
    onnx.save(model, str(target))
    _check_same_per_frame(source, target, check_batch)
    return target


def _check_same_per_frame(source: Path, target: Path, batch: int) -> None:
    """EdgeError unless ``target`` on a batch equals ``source`` frame by frame (random inputs, 1e-5)."""
    import onnxruntime as ort

    def session(path: Path) -> Any:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    one, many = session(source), session(target)
    spec = one.get_inputs()[0]
    images = np.random.default_rng(0).random((batch,) + tuple(spec.shape[1:])).astype(np.float32)
    try:
        batched = many.run(None, {spec.name: images})
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime's own error types; reported as one line
        raise EdgeError(f"the dynamic-batch copy does not run on a batch of {batch} ({exc})",
                        fix="re-export the model from its framework with a dynamic batch", where=str(source)) from None
    for index in range(batch):
        for got, want in zip(batched, one.run(None, {spec.name: images[index:index + 1]})):
            if not np.allclose(got[index:index + 1], want, atol=1e-5, rtol=0):
                raise EdgeError("the dynamic-batch copy differs from the model frame by frame",
                                fix="re-export the model from its framework with a dynamic batch", where=str(source))


# ------------------------------------------------------------------------------ pre-rendered demo:// streams
def demo_uri(seed: int, size_wh: Tuple[int, int] = FRAME_WH) -> str:
    """The demo:// URI of stream ``seed``."""
    return f"demo://?seed={seed}&width={size_wh[0]}&height={size_wh[1]}"


def render(uri: str, count: int) -> List[Tuple[np.ndarray, Dict[str, Any]]]:
    """The first ``count`` frames of a source (images and truth)."""
    from edge.sources import open_source

    with open_source(uri) as source:
        return [(frame.image, frame.truth) for frame, _ in zip(source, range(count))]


def replay_opener(frames: Dict[str, List[Tuple[np.ndarray, Dict[str, Any]]]]) -> Any:
    """An opener for :func:`edge.streams.run_streams` that replays pre-rendered frames by URI."""
    from edge.sources.base import Grabbed, Source, now_s

    class ReplaySource(Source):
        """The rendered frames of one URI, each stamped when it is read; ends after the last."""

        def __init__(self, uri: str) -> None:
            super().__init__(uri)
            self._frames = frames[uri]
            self._next = 0

        def _grab(self, timeout_s: Optional[float]) -> Optional[Grabbed]:
            if self._next >= len(self._frames):
                self._end("end of replay")
                return None
            image, truth = self._frames[self._next]
            self._next += 1
            return image, now_s(), truth

    return ReplaySource


# ------------------------------------------------------------------------------ measuring
def measure(model: Any, uris: Sequence[str], frames: Dict[str, Any], batch: Optional[int]) -> Dict[str, Any]:
    """One row: every stream to its last frame through ``model`` in one process (batch None: batched, 1:
    round-robin); throughput over the run and capture-to-result latency over every frame."""
    from edge.streams import batch_size, run_streams

    size = batch_size(model, len(uris), batch)
    tensor, transforms = model.preprocess_batch([frames[uris[0]][0][0]] * size)  # warm-up at this batch size
    model.decode_batch(model.infer(tensor), transforms)
    latencies: List[float] = []
    start = time.perf_counter()
    for item in run_streams(list(uris), model, batch=batch, opener=replay_opener(frames)):
        latencies.append(item.latency_ms)
    elapsed_s = time.perf_counter() - start
    return _row(len(uris), "batched" if size > 1 else "round-robin", size, latencies, elapsed_s)


def _row(streams: int, mode: str, batch: int, latencies: Sequence[float], elapsed_s: float) -> Dict[str, Any]:
    p50, p95 = percentiles(latencies, (50, 95))
    fps = len(latencies) / elapsed_s if elapsed_s > 0 else 0.0
    return {"streams": streams, "mode": mode, "batch": batch, "frames": len(latencies),
            "elapsed_s": round(elapsed_s, 3), "fps": round(fps, 1), "fps_per_stream": round(fps / streams, 1),
            "latency_p50_ms": round(p50, 2), "latency_p95_ms": round(p95, 2)}


def measure_processes(model_path: Path, backend: str, seeds: Sequence[int], frames: int) -> Dict[str, Any]:
    """One row: one process a stream, started together (each renders and loads first, then all go at once)."""
    command = [sys.executable, "-m", f"{__package__}.streams", "--worker", "--model", str(model_path),
               "--backend", backend, "--frames", str(frames)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                                     os.environ.get("PYTHONPATH")])))
    workers = [subprocess.Popen(command + ["--seed", str(seed)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                env=env, universal_newlines=True) for seed in seeds]
    try:
        for worker in workers:
            if worker.stdout.readline().strip() != "ready":
                raise EdgeError("a benchmark worker process failed before it was ready",
                                fix="run edge-bench streams --worker --seed 0 to see its error", where="--processes")
        for worker in workers:
            worker.stdin.write("go\n")
            worker.stdin.flush()
        reports = [json.loads(worker.stdout.readline()) for worker in workers]
    finally:
        for worker in workers:
            worker.stdin.close()
            worker.wait(timeout=60)
    latencies = [value for report in reports for value in report["latencies_ms"]]
    # perf_counter is CLOCK_MONOTONIC on Linux: comparable across the processes
    elapsed_s = max(r["end_s"] for r in reports) - min(r["start_s"] for r in reports)
    return _row(len(seeds), "processes", 1, latencies, elapsed_s)


def _worker(args: argparse.Namespace) -> int:
    """One stream in its own process: render, load, say ready, wait for go, run, report JSON on stdout."""
    from edge.model import Model

    uri = demo_uri(args.seed)
    frames = {uri: render(uri, args.frames)}
    with Model(args.model, backend=args.backend) as model:
        model(frames[uri][0][0])  # warm-up, as measure() does
        print("ready", flush=True)
        sys.stdin.readline()
        start = time.perf_counter()
        row = measure_in_process(model, uri, frames)
        print(json.dumps(dict(row, start_s=start, end_s=time.perf_counter())), flush=True)
    return 0


def measure_in_process(model: Any, uri: str, frames: Dict[str, Any]) -> Dict[str, Any]:
    """A worker's stream: its latencies (ms) in order."""
    from edge.streams import run_streams

    return {"latencies_ms": [item.latency_ms for item in run_streams([uri], model, opener=replay_opener(frames))]}


# ------------------------------------------------------------------------------ the table
def format_table(rows: Sequence[Dict[str, Any]], title: str) -> str:
    """The rows as a text table."""
    lines = [title, f"{'streams':>7}  {'mode':<12}{'batch':>5}{'frames':>8}{'FPS':>9}{'FPS/stream':>12}"
                    f"{'p50 ms':>9}{'p95 ms':>9}  FPS of each run"]
    for row in rows:
        every = " ".join(f"{fps:.0f}" for fps in row.get("runs", []))
        lines.append(f"{row['streams']:>7}  {row['mode']:<12}{row['batch']:>5}{row['frames']:>8}{row['fps']:>9.1f}"
                     f"{row['fps_per_stream']:>12.1f}{row['latency_p50_ms']:>9.2f}{row['latency_p95_ms']:>9.2f}"
                     f"  {every}".rstrip())
    return "\n".join(lines)


def run(model_path: Path, backend: str, counts: Sequence[int], frames: int, processes: int,
        repeat: int = 1) -> List[Dict[str, Any]]:
    """Every row: each stream count batched and round-robin, then ``processes`` streams batched and as
    processes. Each row runs ``repeat`` times, in rounds (so that a change in the machine's load touches every
    row alike), and keeps the run of median throughput; ``runs`` lists every run's FPS."""
    from edge.model import Model

    uris = [demo_uri(seed) for seed in range(max(list(counts) + [processes]))]
    rendered = {uri: render(uri, frames) for uri in uris}
    configs = [(count, batch, "scaling") for count in counts for batch in (None, 1) if count > 1 or batch == 1]
    configs += [(processes, None, "processes"), (processes, 0, "processes")] if processes else []
    runs: Dict[Tuple[int, Optional[int], str], List[Dict[str, Any]]] = {config: [] for config in configs}
    with Model(model_path, backend=backend) as model:
        if model.batch_limit == 1:
            raise EdgeError("the model has a fixed batch, so batched and round-robin would be the same",
                            fix="give a model with a dynamic batch (see dynamic_batch_copy)", where=str(model_path))
        for _ in range(repeat):
            for count, batch, part in configs:
                row = (measure_processes(model_path, backend, list(range(count)), frames) if batch == 0
                       else measure(model, uris[:count], rendered, batch))  # batch 0: one process a stream
                runs[(count, batch, part)].append(dict(row, part=part))
    return [_median_run(rows) for rows in runs.values()]


def _median_run(rows: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """The run of median throughput, with every run's FPS."""
    ranked = sorted(rows, key=lambda row: row["fps"])
    return dict(ranked[len(ranked) // 2], runs=[row["fps"] for row in rows])


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``edge-bench streams``."""
    parser = argparse.ArgumentParser(prog="edge-bench streams", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a dynamic-batch .onnx (default: the face detector, re-exported with one)")
    parser.add_argument("--backend", default="onnxruntime-cpu", help="backend (default: onnxruntime-cpu)")
    parser.add_argument("--streams", default=",".join(str(n) for n in DEFAULT_STREAMS),
                        help="stream counts, comma-separated (default: 1,2,4,8)")
    parser.add_argument("--frames", type=int, default=120, help="frames per stream (default: 120)")
    parser.add_argument("--processes", type=int, default=4,
                        help="also run this many streams batched vs as separate processes (0: skip; default 4)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each row; the median is shown (default 3)")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``edge-bench streams``; the exit code."""
    args = build_parser().parse_args(argv)
    try:
        if args.frames < 2:
            raise EdgeError(f"--frames {args.frames} is too few", fix="give 2 or more", where="--frames")
        if args.worker:
            return _worker(args)
        try:
            counts = [int(part) for part in args.streams.split(",") if part.strip()]
        except ValueError:
            counts = []
        if not counts or min(counts) < 1:
            raise EdgeError(f"cannot read stream counts {args.streams!r}", fix="e.g. --streams 1,2,4,8",
                            where="--streams")
        with tempfile.TemporaryDirectory(prefix="edge-streams-") as folder:
            model_path = Path(args.model) if args.model else _default_model(Path(folder))
            rows = run(model_path, args.backend, counts, args.frames, args.processes, max(1, args.repeat))
    except EdgeError as exc:
        print(f"edge-bench streams: {exc}", file=sys.stderr)
        return 2
    scaling = [row for row in rows if row.get("part") != "processes"]
    size = f"{FRAME_WH[0]}x{FRAME_WH[1]}"
    print(format_table(scaling, f"{args.frames} frames a stream of demo:// ({size}, pre-rendered), "
                                f"{model_path.name} on {args.backend}, {os.cpu_count()} CPUs, "
                                f"median of {max(1, args.repeat)} runs"))
    if len(scaling) < len(rows):
        print(format_table([row for row in rows if row.get("part") == "processes"],
                           f"\n{args.processes} streams: batched in one process vs one process a stream"))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


def _default_model(folder: Path) -> Path:
    """The shipped face detector with a dynamic batch, written into ``folder``."""
    from edge.zoo import resolve_model

    source = resolve_model(None)
    return dynamic_batch_copy(source, folder / f"{source.stem}_dynamic_batch.onnx")


if __name__ == "__main__":
    sys.exit(main())
