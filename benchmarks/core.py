"""The core runtime's targets, measured: ``python -m benchmarks.core [--json out.json]``.

1. Runtime overhead around ONNX Runtime: ``Model.infer`` (the edge backend call with its input
   checks and timing) against a bare ``InferenceSession.run`` on the same session and the same
   prepared input, interleaved, on ResNet-50 (onnx's light_resnet50 graph, generated weights)
   at 224x224 and the shipped BlazeFace; and the wrapper alone around a backend that does nothing.
2. Preprocessing a 1280x720 BGR frame to the model input against ``cv2.dnn.blobFromImage``
   doing the same resize, scale and channel swap.
3. ``python -m edge.camera --source demo:// --headless`` in a subprocess: throughput against
   1 / (p50 of its slowest stage), peak resident memory, and spawn-to-first-result time.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from . import help_text
from .stats import brief
from .timing import empty_call_overhead_us, interleaved_us

IMAGENET = {"task": "classify", "preprocess": {"color": "RGB", "resize": "center_crop", "scale": 1 / 255,
                                               "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}}


def resnet50_path() -> Path:
    """onnx's light_resnet50.onnx: the real ResNet-50 graph with generated weights."""
    import onnx

    return Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / "light_resnet50.onnx"


def runtime_overhead(model_path: Optional[Path], config: Optional[Dict[str, Any]], count: int,
                     threads: Optional[int]) -> Dict[str, Any]:
    """Model.infer vs a bare InferenceSession.run on the same input (interleaved samples)."""
    from edge.model import Model

    model = Model(model_path, backend="onnxruntime-cpu", threads=threads, config=config)
    frame = (np.random.default_rng(0).random((720, 1280, 3)) * 255).astype(np.uint8)
    tensor = model.preprocess(frame)[0].copy()
    # The same session for both: two sessions would each keep a spinning thread pool and slow
    # each other down on a small machine, which is not the runtime's cost.
    session = model.backend._session
    feeds = {model.config.input.name: tensor}
    names = [o.name for o in session.get_outputs()]
    edge_us, bare_us = interleaved_us([lambda: model.infer(tensor), lambda: session.run(names, feeds)], count)
    model.close()
    edge_p50, bare_p50 = float(np.median(edge_us)), float(np.median(bare_us))
    return {"model": model.path.name, "edge": brief(edge_us), "bare": brief(bare_us),
            "overhead_p50_us": edge_p50 - bare_p50, "overhead_p50_pct": 100 * (edge_p50 - bare_p50) / bare_p50,
            "paired_median_diff_us": float(np.median(edge_us - bare_us))}


def wrapper_cost(count: int) -> Dict[str, Any]:
    """The backend wrapper alone (input checks, timing, output dict) around a hook that does nothing."""
    from edge.backends.base import Backend
    from edge.zoo import resolve_model

    class NullBackend(Backend):
        name = "null"

        def _prepare(self) -> None:
            pass

        def _infer(self, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
            return feeds

    backend = NullBackend(resolve_model(None)).prepare()
    feeds = {backend.inputs[0].name: np.zeros(backend.inputs[0].shape, np.float32)}
    wrapped, bare = interleaved_us([lambda: backend.infer(feeds), lambda: backend._infer(feeds)], count)
    return {"wrapped": brief(wrapped), "bare": brief(bare),
            "cost_p50_us": float(np.median(wrapped) - np.median(bare))}


def preprocessing(count: int) -> List[Dict[str, Any]]:
    """Preprocessor vs cv2.dnn.blobFromImage on a 1280x720 frame: same resize, scale, channel swap."""
    import cv2

    from edge.config import InputSpec, PreprocessSpec
    from edge.preprocess import Preprocessor

    frame = (np.random.default_rng(1).random((720, 1280, 3)) * 255).astype(np.uint8)
    rows = []
    for size in (224, 128):
        for resize in ("stretch", "letterbox"):
            pre = Preprocessor(InputSpec("x", (1, 3, size, size)),
                               PreprocessSpec(color="RGB", resize=resize, scale=1 / 255, mean=(0, 0, 0), std=(1, 1, 1)))
            def blob(size_wh=(size, size)):
                return cv2.dnn.blobFromImage(frame, 1 / 255, size_wh, (0, 0, 0), swapRB=True, crop=False)

            ours, theirs = interleaved_us([lambda pre=pre: pre(frame), blob], count)
            rows.append({"size": size, "resize": resize, "edge": brief(ours), "blobFromImage": brief(theirs),
                         "ratio_p50": float(np.median(ours) / np.median(theirs))})
    return rows


def camera_run(frames: int, threads: Optional[int]) -> Dict[str, Any]:
    """The camera app on demo:// headless, in a subprocess: throughput, memory, first result."""
    with tempfile.TemporaryDirectory() as scratch:
        summary_path = Path(scratch) / "summary.json"
        command = [sys.executable, "-m", "edge.camera", "--source", "demo://", "--headless", "--quiet",
                   "--max-frames", str(frames), "--summary-json", str(summary_path)]
        if threads:
            command += ["--threads", str(threads)]
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
        spawned = time.perf_counter()
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, env=env)
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
        summary = json.loads(summary_path.read_text())
    slowest = summary["stages"][summary["slowest_stage"]]["p50_ms"]
    ceiling_fps = 1000.0 / slowest
    return {"frames": summary["frames"], "fps": summary["fps"], "slowest_stage": summary["slowest_stage"],
            "slowest_p50_ms": slowest, "ceiling_fps": ceiling_fps, "fps_vs_ceiling": summary["fps"] / ceiling_fps,
            "peak_rss_mb": summary["peak_rss_mb"],
            "spawn_to_first_result_s": summary["first_result_at_perf_counter_s"] - spawned,
            "stages": summary["stages"]}


def environment() -> Dict[str, Any]:
    """What the numbers were measured on."""
    import cv2
    import onnxruntime

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
            "onnxruntime": onnxruntime.__version__, "opencv": cv2.__version__,
            "harness_empty_call_us": empty_call_overhead_us()}


def report(results: Dict[str, Any]) -> str:
    """Markdown tables of the results."""
    lines = ["| runtime overhead | edge p50 µs | bare ORT p50 µs | overhead p50 | paired median |",
             "|---|---:|---:|---:|---:|"]
    for row in results["overhead"]:
        lines.append(f"| {row['model']} | {row['edge']['p50_us']:.1f} | {row['bare']['p50_us']:.1f} | "
                     f"{row['overhead_p50_us']:+.1f} µs ({row['overhead_p50_pct']:+.2f}%) | "
                     f"{row['paired_median_diff_us']:+.1f} µs |")
    lines.append(f"| backend wrapper alone (null model) | {results['wrapper']['wrapped']['p50_us']:.2f} | "
                 f"{results['wrapper']['bare']['p50_us']:.2f} | {results['wrapper']['cost_p50_us']:+.2f} µs | |")
    lines += ["", "| preprocess 1280x720 | edge p50 µs | blobFromImage p50 µs | ratio |", "|---|---:|---:|---:|"]
    for row in results["preprocess"]:
        lines.append(f"| {row['size']}x{row['size']} {row['resize']} | {row['edge']['p50_us']:.1f} | "
                     f"{row['blobFromImage']['p50_us']:.1f} | {row['ratio_p50']:.2f} |")
    cam = results["camera"]
    lines += ["", f"camera demo:// headless, {cam['frames']} frames: {cam['fps']:.1f} FPS = "
              f"{100 * cam['fps_vs_ceiling']:.0f}% of 1/p50({cam['slowest_stage']} {cam['slowest_p50_ms']:.2f} ms) "
              f"= {cam['ceiling_fps']:.1f} FPS; peak RSS {cam['peak_rss_mb']:.0f} MB; first result "
              f"{cam['spawn_to_first_result_s']:.2f} s after spawn",
              f"environment: {results['environment']}"]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    """Run all three measurements and print Markdown (and JSON with --json)."""
    parser = argparse.ArgumentParser(prog=f"python -m {__package__}.core", description=help_text(__doc__))
    parser.add_argument("--count", type=int, default=300, help="samples per measurement (default 300)")
    parser.add_argument("--frames", type=int, default=300, help="frames for the camera run (default 300)")
    parser.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads (default: ORT's choice)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    args = parser.parse_args(argv)
    results = {
        "environment": environment(),
        "overhead": [runtime_overhead(resnet50_path(), IMAGENET, max(50, args.count // 3), args.threads),
                     runtime_overhead(None, None, args.count * 3, args.threads)],
        "wrapper": wrapper_cost(args.count * 30),
        "preprocess": preprocessing(args.count * 2),
        "camera": camera_run(args.frames, args.threads),
    }
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
