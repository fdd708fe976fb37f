"""How close the camera loop comes to its own stages timed alone, measured in one run.

    edge-bench pipeline                                   # the face model on a 1280x720 clip, onnxruntime-cpu
    edge-bench pipeline --model resnet50 --frames 200 --size 1280x720 --json out.json

A clip is made from ``demo://`` frames (an .mp4 written by OpenCV), then, in this order: each stage is timed
alone on those frames (video decode by OpenCV's reader, preprocessing, inference, output decoding; each in its
own loop with nothing else running), the camera app runs on the clip (``--headless --output none
--summary-json``), and the stages are timed alone once more. Two figures come out:

- throughput: the pipeline's FPS as a share of the bound 1000 / (slowest stage's mean ms, timed alone: the
  mean, because throughput is frames over time and video decode is skewed - keyframes cost several times a
  median frame);
- latency: the pipeline's capture-to-result p50 as a multiple of the sum of the stages' p50s, timed alone.

The bound comes from stages timed alone, before and after, because the stage times the pipeline itself
reports are inflated by the contention being measured (a spinning inference pool slows the capture thread,
and the capture thread's time is then counted as capture). Both passes are kept; each stage's p50 is over
the samples of both.
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

STAGES = ("video decode", "preprocess", "infer", "output decode")
KEEP_FRAMES = 60  # decoded frames kept in memory for the other stages (720p BGR: 2.7 MB each)


def make_clip(folder: Path, frames: int, size: Tuple[int, int], seed: int = 0) -> Path:
    """``frames`` frames of demo:// at ``size`` (w, h) as an .mp4 (OpenCV's mp4v writer, 30 FPS)."""
    from edge.cv import require_cv2
    from edge.sources import open_source

    cv2 = require_cv2("edge-bench pipeline")
    path = folder / f"demo_{size[0]}x{size[1]}_{frames}.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, size)
    if not writer.isOpened():
        raise EdgeError("OpenCV cannot write an .mp4 here (no mp4v encoder)", fix="install opencv-python with "
                        "FFmpeg (pip install opencv-python)", where=str(path))
    try:
        with open_source(f"demo://?width={size[0]}&height={size[1]}&frames={frames}&seed={seed}") as source:
            for frame in source:
                writer.write(frame.image)
    finally:
        writer.release()
    return path


def _decode_alone(clip: Path) -> Tuple[List[float], List[np.ndarray]]:
    """ms per frame read by OpenCV's video reader, and the first KEEP_FRAMES frames."""
    from edge.cv import require_cv2

    cv2 = require_cv2("edge-bench pipeline")
    capture = cv2.VideoCapture(str(clip))
    times, kept = [], []
    try:
        while True:
            start = time.perf_counter()
            ok, image = capture.read()
            elapsed = (time.perf_counter() - start) * 1e3
            if not ok:
                break
            times.append(elapsed)
            if len(kept) < KEEP_FRAMES:
                kept.append(image)
    finally:
        capture.release()
    if not kept:
        raise EdgeError("the clip gave no frames", fix="check OpenCV's FFmpeg support", where=str(clip))
    return times, kept


def _loop(function: Any, items: Sequence[Any], count: int) -> Tuple[List[float], List[Any]]:
    """``function`` on items (cycled) ``count`` times: ms each, and the first len(items) results."""
    times, results = [], []
    for index in range(count):
        item = items[index % len(items)]
        start = time.perf_counter()
        result = function(item)
        times.append((time.perf_counter() - start) * 1e3)
        if index < len(items):
            results.append(result)
    return times, results


def stages_alone(model: Any, clip: Path, count: int,
                 inferers: Optional[Dict[int, Any]] = None) -> Tuple[Dict[str, List[float]], Optional[int]]:
    """Each stage timed alone on the clip's frames: ({stage: [ms, ...]}, threads of the inference kept).

    inferers: the model loaded with other intra-op thread counts ({threads: model}); inference alone is the
    fastest of them (by mean), because the bound must be the best each stage can do with the machine to itself.
    """
    decode_ms, frames = _decode_alone(clip)

    def preprocess(image: np.ndarray) -> Tuple[np.ndarray, Any]:
        tensor, transform = model.preprocess(image)
        return tensor.copy(), transform  # the preprocessor reuses its buffer

    pre_ms, prepared = _loop(preprocess, frames, count)
    candidates = dict(inferers) if inferers else {0: model}
    runs = {threads: _loop(lambda item, m=m: m.infer(item[0]), prepared, count) for threads, m in candidates.items()}
    best = min(runs, key=lambda threads: float(np.mean(runs[threads][0])))
    infer_ms, outputs = runs[best]
    pairs = list(zip(outputs, (transform for _, transform in prepared)))
    post_ms, _ = _loop(lambda item: model.decode(*item), pairs, count)
    return ({"video decode": decode_ms, "preprocess": pre_ms, "infer": infer_ms, "output decode": post_ms},
            best or None)


def thread_candidates(threads: Optional[int], cores: int) -> List[int]:
    """Intra-op thread counts inference alone is timed with: the one given, else 1, the camera app's budget
    (every core less its two threads) and every core."""
    if threads:
        return [threads]
    return sorted({1, max(1, cores - 2), cores})


def run_pipeline(model: str, backend: str, clip: Path, threads: Optional[int],
                 config: Optional[Path] = None) -> Dict[str, Any]:
    """The camera app on the clip: its --summary-json."""
    with tempfile.TemporaryDirectory() as scratch:
        summary = Path(scratch) / "summary.json"
        command = [sys.executable, "-m", "edge.camera", "--model", model, "--backend", backend, "--source",
                   str(clip), "--headless", "--output", "none", "--quiet", "--summary-json", str(summary)]
        command += ["--threads", str(threads)] if threads else []
        command += ["--config", str(config)] if config else []
        root = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                              env=env, timeout=900)
        if done.returncode != 0 or not summary.is_file():
            last = next((line for line in reversed(done.stderr.strip().splitlines()) if line.strip()), "no output")
            raise EdgeError(f"the camera app exited with {done.returncode}: {last.strip()[:300]}",
                            fix="run the same command by hand to see why")
        return json.loads(summary.read_text(encoding="utf-8"))


def efficiency(alone: Dict[str, List[float]], summary: Dict[str, Any]) -> Dict[str, Any]:
    """The two figures from stage samples timed alone and the pipeline's summary."""
    p50 = {stage: float(np.median(alone[stage])) for stage in STAGES}
    mean = {stage: float(np.mean(alone[stage])) for stage in STAGES}
    slowest = max(mean, key=lambda stage: mean[stage])
    bound_fps = 1000.0 / mean[slowest]  # throughput follows the mean (video decode spikes at keyframes)
    latency = ((summary.get("stages") or {}).get("latency") or {}).get("p50_ms")
    total = sum(p50.values())
    return {"alone_p50_ms": {k: round(v, 4) for k, v in p50.items()},
            "alone_mean_ms": {k: round(v, 4) for k, v in mean.items()}, "slowest_alone": slowest,
            "bound_fps": round(bound_fps, 1), "pipeline_fps": summary.get("fps"),
            "throughput_share": round(float(summary.get("fps") or 0.0) / bound_fps, 4),
            "latency_p50_ms": latency, "sum_alone_p50_ms": round(total, 4),
            "latency_multiple": None if latency is None else round(float(latency) / total, 3),
            "pipeline_stages_p50_ms": {name: stage.get("p50_ms") for name, stage in
                                       (summary.get("stages") or {}).items()}}


def measure(model: str, backend: str = "onnxruntime-cpu", frames: int = 300, size: Tuple[int, int] = (1280, 720),
            threads: Optional[int] = None, config: Optional[Path] = None) -> Dict[str, Any]:
    """Clip, stages alone, pipeline, stages alone again: the efficiency dict (with the clip's facts)."""
    from contextlib import ExitStack

    from edge.cpu_budget import usable_cores
    from edge.model import Model

    with tempfile.TemporaryDirectory() as scratch, ExitStack() as stack:
        clip = make_clip(Path(scratch), frames, size)
        overrides = json.loads(config.read_text(encoding="utf-8")) if config else None
        inferers = {count: stack.enter_context(Model(model, backend=backend, threads=count, config=overrides))
                    for count in thread_candidates(threads, usable_cores())}
        loaded = next(iter(inferers.values()))
        before, best_before = stages_alone(loaded, clip, min(frames, 200), inferers)
        summary = run_pipeline(model, backend, clip, threads, config)
        after, best_after = stages_alone(loaded, clip, min(frames, 200), inferers)
        device = loaded.describe()
    alone = {stage: before[stage] + after[stage] for stage in STAGES}
    result = efficiency(alone, summary)
    result.update(model=model, backend=backend, model_described=device, frames=summary.get("frames"),
                  clip={"frames": frames, "size": list(size), "codec": "mp4v"},
                  threads=summary.get("threads"), infer_threads_alone=[best_before, best_after],
                  preprocess_on=summary.get("preprocess_on"), cpu_ms_per_frame=summary.get("cpu_ms_per_frame"),
                  cpu_busy=summary.get("cpu_busy"))
    return result


def text(result: Dict[str, Any]) -> str:
    """The report: one line per stage alone, then the two figures."""
    lines = [f"{result['model']} on {result['backend']}, a {result['clip']['size'][0]}x{result['clip']['size'][1]} "
             f"clip of {result['clip']['frames']} frames ({result['clip']['codec']}):",
             "  stages timed alone (p50 / mean ms): " + ", ".join(
                 f"{k} {v:.3f} / {result['alone_mean_ms'][k]:.3f}" for k, v in result["alone_p50_ms"].items())
             + _threads_said(result),
             f"  pipeline: {result['pipeline_fps']:.1f} FPS = {100 * result['throughput_share']:.0f} % of the bound "
             f"{result['bound_fps']:.0f} FPS (slowest stage alone: {result['slowest_alone']})"]
    if result.get("cpu_busy") is not None:
        cores = (result.get("threads") or {}).get("cores")
        lines.append(f"  the run kept {cores} cores {100 * result['cpu_busy']:.0f} % busy "
                     f"({result['cpu_ms_per_frame']:.2f} ms of CPU a frame, every thread of the process)")
    if result.get("latency_multiple") is not None:
        lines.append(f"  capture-to-result p50 {result['latency_p50_ms']:.2f} ms = {result['latency_multiple']:.2f}x "
                     f"the sum of the stages alone ({result['sum_alone_p50_ms']:.2f} ms)")
    inside = ", ".join(f"{k} {v:.3f}" for k, v in result["pipeline_stages_p50_ms"].items() if v is not None)
    lines.append(f"  stages inside the pipeline (p50 ms): {inside}")
    placed = result.get("preprocess_on")
    if placed:
        lines.append(f"  preprocessed on the capture thread {placed['capture']} frames, on the inference thread "
                     f"{placed['inference']} ({placed['moves']} move{'s' if placed['moves'] != 1 else ''})")
    return "\n".join(lines)


def _threads_said(result: Dict[str, Any]) -> str:
    """How many intra-op threads the fastest inference alone had, and the app's choice in the pipeline."""
    alone = sorted({count for count in result.get("infer_threads_alone") or () if count})
    inside = (result.get("threads") or {}).get("inference")
    if not alone:
        return ""
    said = f" (inference alone: fastest on {'/'.join(map(str, alone))} thread{'s' if alone != [1] else ''}"
    return said + (f"; in the pipeline: {inside})" if inside else ")")


def _size(value: str) -> Tuple[int, int]:
    try:
        width, height = (int(part) for part in value.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not WIDTHxHEIGHT (e.g. 1280x720)") from None
    return width, height


def build_parser() -> argparse.ArgumentParser:
    """Flags of ``edge-bench pipeline``."""
    from edge.flags import program_name

    parser = argparse.ArgumentParser(prog=program_name(__package__, "edge-bench") + " pipeline",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="face_detection_short_range", help="a .onnx or zoo name (default: face)")
    parser.add_argument("--backend", default="onnxruntime-cpu", help="edge backend (default onnxruntime-cpu)")
    parser.add_argument("--frames", type=int, default=300, help="frames in the clip (default 300)")
    parser.add_argument("--size", type=_size, default=(1280, 720), help="clip size WxH (default 1280x720)")
    parser.add_argument("--threads", type=int, help="inference threads (default: the app's choice)")
    parser.add_argument("--config", type=Path, help="edge config JSON for a model without one embedded")
    parser.add_argument("--json", type=Path, help="also write the result as JSON here")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Measure, print, optionally write JSON; user errors as one line and exit 2."""
    args = build_parser().parse_args(argv)
    if args.frames < 10:
        print("error: --frames must be at least 10", file=sys.stderr)
        return 2
    try:
        result = measure(args.model, args.backend, args.frames, args.size, args.threads, args.config)
    except EdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(text(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
