"""The task models end to end: ``python -m benchmarks.tasks [--models A,B] [--count N] [--json F] [--out DIR]``.

For every task model of the zoo (segment, keypoints, detect, embed) and the two-stage pipelines
(face_mesh, hands, digit_recognition), two paths are timed on the same input:

- ``e2e``: edge's Python API, ``model(image)``: preprocessing, the onnxruntime-cpu backend, decoding
  (for a pipeline: detector, crops, second model on each crop, mapping back; gallery matching for
  digit_recognition);
- ``bare``: ``onnxruntime.InferenceSession.run`` alone on the very tensor(s) edge's preprocessor made
  (a pipeline: the detector's tensor, then each crop's tensor), in a session of its own created with
  the session options edge's onnxruntime-cpu backend uses (same thread count, optimisation level).

e2e - bare is what edge adds around the runtime. The two run interleaved in blocks (``--block`` calls
of one, then of the other, the order reversed every round), so machine drift hits both alike; blocks
rather than single calls because two sessions alternating call by call wake each other's spinning
thread pools and slow both (1.2-1.8x, measured on a 2-core machine). The overlay rows time
``edge.overlay.Annotator().annotate`` on a fresh copy of a 1280x720 frame (the copy is not timed) for
a class map, 10 instance masks, 468 face-mesh keypoints and gallery identities; the target for
instance masks is a p50 of at most 3 ms.

Inputs: the shipped sample ``astronaut`` resized to 1280x720 (segmentation, detectors, face_mesh,
hands: no sample holds a hand, so hands times the palm detector and whatever crops it yields); the
landmark models run on a crop of the sample (the astronaut's face with a 25 % margin: hand_landmark_lite
too, it only times); digit_recognition runs on a 1280x720 ``demo://?scene=digits`` frame (the samples
hold no digits) and digit_embedder on one digit cut from it.
"""

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from edge.errors import EdgeError

from . import help_text
from .task_rows import CASES, FRAME_WH, OVERLAYS, build_case, inputs, measure_case, overlay_rows


# ---------------------------------------------------------------------------------------------- run, report
def environment(threads: Optional[int]) -> Dict[str, Any]:
    """What the numbers depend on: machine, runtime, threads."""
    import cv2
    import onnxruntime

    return {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
            "opencv": cv2.__version__, "numpy": np.__version__, "threads": threads, "load_average": load_average()}


def load_average() -> Optional[float]:
    """The 1-minute load average (other work on the machine shows in it), or None where the OS has none."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def check_names(names: Optional[Sequence[str]], known: Sequence[str], flag: str) -> List[str]:
    """The names asked for, in the order given (all of ``known`` for None); an unknown one is an EdgeError."""
    if names is None:
        return list(known)
    for name in names:
        if name not in known:
            raise EdgeError(f"unknown name '{name}'", fix=f"use one or more of: {', '.join(known)}", where=flag)
    if not names:
        raise EdgeError("no names given", fix=f"use one or more of: {', '.join(known)}", where=flag)
    return list(dict.fromkeys(names))


def run(models: Optional[Sequence[str]] = None, count: int = 200, block: int = 10,
        overlays: Optional[Sequence[str]] = OVERLAYS, threads: Optional[int] = None, warmup: int = 20,
        progress: Optional[Callable[[str], None]] = None) -> Dict[str, Any]:
    """Every row asked for: {"count", "block", "environment", "rows": [...], "overlays": [...]}."""
    names = check_names(models, list(CASES), "--models")
    overlay_names = check_names(overlays, OVERLAYS, "--overlays") if overlays else []
    if count < 1 or block < 1 or warmup < 0:
        raise EdgeError(f"counts must be positive (count {count}, block {block}, warmup {warmup})",
                        fix="pass e.g. --count 200 --block 10", where="--count")
    load_before = load_average()
    images = inputs()
    rows = []
    for name in names:
        if progress:
            progress(name)
        case = build_case(name, images, threads)
        try:
            rows.append(measure_case(case, count, block, warmup))
        finally:
            case.close()
    if overlay_names and progress:
        progress("overlays")
    overlay = overlay_rows(images, count, overlay_names, threads, warmup) if overlay_names else []
    env = environment(threads)
    env["load_average"] = [load_before, env["load_average"]]  # at the start and at the end
    return {"benchmark": "tasks", "count": count, "block": block, "warmup": warmup,
            "frame_wh": list(FRAME_WH), "environment": env, "rows": rows, "overlays": overlay}


def report(results: Dict[str, Any]) -> str:
    """Markdown tables of :func:`run`'s results."""
    env = results["environment"]
    lines = [f"{env['processor']}, {env['cpu_count']} CPUs, onnxruntime {env['onnxruntime']} CPU, "
             f"threads {env['threads'] or 'default'}; {results['count']} calls per path, interleaved in blocks "
             f"of {results['block']}"]
    loads = [value for value in env.get("load_average") or [] if value is not None]
    if loads:
        lines[0] += f"; 1-min load average {' -> '.join(format(v, 'g') for v in loads)} (start -> end)"
    lines.append("")
    if results["rows"]:
        lines += ["| model / pipeline | task | input | found | e2e p50 ms | e2e p95 ms | bare ORT p50 ms | "
                  "bare ORT p95 ms | edge - bare p50 ms (paired) | edge stages p50 ms |",
                  "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
        for row in results["rows"]:
            stages = " · ".join(f"{key.replace('_', ' ')} {value:.2f}"
                                for key, value in row["edge_stages_p50_ms"].items())
            runs = f" ({row['bare_runs']} runs)" if row["kind"] == "pipeline" else ""
            lines.append(f"| {row['name']} | {row['task']} | {row['input']} | {row['found']} | "
                         f"{row['e2e']['p50_ms']:.2f} | {row['e2e']['p95_ms']:.2f} | "
                         f"{row['bare']['p50_ms']:.2f}{runs} | "
                         f"{row['bare']['p95_ms']:.2f} | {row['overhead_paired_ms']:+.2f} | {stages} |")
        lines.append("")
    if results["overlays"]:
        lines += ["| overlay (Annotator().annotate) | what | frame | p50 ms | p95 ms | target |",
                  "|---|---|---|---:|---:|---|"]
        for row in results["overlays"]:
            target = ""
            if "target_p50_ms" in row:
                target = f"p50 <= {row['target_p50_ms']:g} ms: {'met' if row['meets_target'] else 'MISSED'}"
            lines.append(f"| {row['name']} | {row['what']} | {row['frame_wh'][0]}x{row['frame_wh'][1]} | "
                         f"{row['p50_ms']:.2f} | {row['p95_ms']:.2f} | {target} |")
    return "\n".join(lines).rstrip() + "\n"


def _names(text: str) -> List[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def main(argv: Optional[List[str]] = None) -> int:
    """Measure and print the tables (JSON with --json, both files with --out)."""
    parser = argparse.ArgumentParser(prog=f"python -m {__package__}.tasks", description=help_text(__doc__))
    parser.add_argument("--models", type=_names, metavar="A,B",
                        help=f"rows to run (default all): {', '.join(CASES)}")
    parser.add_argument("--overlays", type=_names, metavar="A,B",
                        help=f"overlay rows (default all): {', '.join(OVERLAYS)}")
    parser.add_argument("--no-overlays", action="store_true", help="skip the overlay rows")
    parser.add_argument("--count", type=int, default=200, help="timed calls per path (default 200)")
    parser.add_argument("--block", type=int, default=10, help="calls per block of the A/B interleaving (default 10)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed calls per path first (default 20)")
    parser.add_argument("--threads", type=int, help="intra-op threads for edge and the bare sessions "
                                                    "(default: onnxruntime's)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    parser.add_argument("--out", type=Path, metavar="DIR", help="also write tasks.md and tasks.json to this folder")
    args = parser.parse_args(argv)
    try:
        if args.threads is not None and args.threads < 1:
            raise EdgeError(f"--threads must be at least 1, got {args.threads}", fix="pass e.g. --threads 2",
                            where="--threads")
        for flag, value, least in (("--count", args.count, 1), ("--block", args.block, 1),
                                   ("--warmup", args.warmup, 0)):
            if value < least:
                raise EdgeError(f"{flag} must be at least {least}, got {value}", fix=f"pass e.g. {flag} 10",
                                where=flag)
        overlays = None if args.no_overlays else args.overlays or OVERLAYS
        check_names(args.models, list(CASES), "--models")  # a typo fails before minutes of timing
        if overlays:
            check_names(overlays, OVERLAYS, "--overlays")
        results = run(args.models, args.count, args.block, overlays, args.threads, args.warmup,
                      progress=lambda name: print(f"timing {name} ...", file=sys.stderr, flush=True))
    except EdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = report(results)
    print(text, end="")
    payload = json.dumps(results, indent=2)
    try:
        if args.json:
            args.json.write_text(payload)
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "tasks.json").write_text(payload)
            (args.out / "tasks.md").write_text(text)
    except OSError as exc:
        print(f"error: cannot write the results ({exc.strerror or exc}). Fix: pick another --json / --out.",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
