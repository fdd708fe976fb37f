"""``edge-bench startup``: the whole-process time of a one-image camera run against a bare script.

    edge-bench startup                            # the face model on astronaut.jpg, 15 runs of each
    edge-bench startup --runs 30 --json startup.json
    edge-bench startup --model digits --image edge/data/samples/coffee.jpg

Every run is a fresh ``python`` process, timed from start to exit: the camera app
(``python -m edge.camera --model M --source IMAGE --headless --output - --quiet``) and :data:`BARE_SCRIPT`,
which does the same work with nothing but OpenCV, NumPy and ONNX Runtime (read the image, resize and
normalise it as the model's embedded edge config says, ``session.run``, decode the best score, print one
JSON line). The two alternate (camera, bare, camera, ...) after one untimed run of each (bytecode and page
cache warm), so that drift on a busy machine hits both alike. Reported: the median of each with a 95 %
bootstrap interval, the difference of the medians with its interval, and the issue's target (camera within
+50 ms of the bare script). Then ``python -X importtime`` of both (three runs each, the median per module):
the modules the camera run imports and the bare script does not, grouped by package, largest first (the
candidates for lazy imports).
"""

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edge.errors import EdgeError

from .stats import bootstrap_medians, median_ci, percentiles

TARGET_MS = 50.0  # issue 14: a one-image run within +50 ms of the bare script
REPO_ROOT = Path(__file__).resolve().parent.parent

# The baseline: what a user would write with OpenCV and ONNX Runtime alone. The preprocessing parameters come
# from the model's embedded edge config through ONNX Runtime's metadata, so that any zoo model works.
BARE_SCRIPT = textwrap.dedent(r'''
    import json, sys
    import cv2
    import numpy as np
    import onnxruntime as ort

    model_path, image_path = sys.argv[1], sys.argv[2]
    image = cv2.imread(image_path)
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    config = json.loads(session.get_modelmeta().custom_metadata_map.get("edge_config", "{}"))
    pre = config.get("preprocess", {})
    spec = session.get_inputs()[0]
    nchw = config.get("input", {}).get("layout", "NCHW") == "NCHW"
    height, width = (spec.shape[2], spec.shape[3]) if nchw else (spec.shape[1], spec.shape[2])
    resized = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    if pre.get("color", "RGB") == "RGB":
        resized = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
    tensor = resized.astype(np.float32) * np.float32(pre.get("scale", 1 / 255))
    tensor = (tensor - np.float32(pre.get("mean", [0, 0, 0]))) / np.float32(pre.get("std", [1, 1, 1]))
    tensor = np.ascontiguousarray(tensor.transpose(2, 0, 1)[None] if nchw else tensor[None])
    outputs = session.run(None, {spec.name: tensor})
    scores = 1 / (1 + np.exp(-np.clip(outputs[-1].reshape(-1).astype(np.float64), -100, 100)))
    best = int(np.argmax(scores))
    print(json.dumps({"frame": 0, "best_index": best, "best_score": round(float(scores[best]), 4)}))
''')


def commands(model: Path, image: Path, python: str = sys.executable) -> Dict[str, List[str]]:
    """The two process command lines, by name: "camera" and "bare"."""
    camera = [python, "-m", "edge.camera", "--model", str(model), "--source", str(image), "--headless",
              "--output", "-", "--quiet"]
    return {"camera": camera, "bare": [python, "-c", BARE_SCRIPT, str(model), str(image)]}


def child_env() -> Dict[str, str]:
    """The environment of every run: this one, with the repository on PYTHONPATH (a checkout runs uninstalled)
    and bytecode caching on, as an installed package has it (else every run compiles edge's modules anew)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    return env


def run_once(command: Sequence[str], env: Dict[str, str]) -> Tuple[float, str]:
    """Run ``command`` to its end: (wall time in ms from spawn to exit, its stderr). EdgeError when it fails."""
    started = time.perf_counter()
    process = subprocess.run(list(command), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                             cwd=str(REPO_ROOT), universal_newlines=True)
    elapsed_ms = (time.perf_counter() - started) * 1e3
    if process.returncode != 0:
        tail = (process.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise EdgeError(f"a timed run exited with code {process.returncode}: {tail}",
                        fix="run the command by hand to see why", where=" ".join(command[:4]))
    return elapsed_ms, process.stderr


def alternate(runs: Dict[str, List[str]], count: int, env: Dict[str, str]) -> Dict[str, List[float]]:
    """``count`` wall times (ms) of each command, taken in turn (A B A B ...) after one untimed run of each."""
    for command in runs.values():
        run_once(command, env)
    samples: Dict[str, List[float]] = {name: [] for name in runs}
    for _ in range(count):
        for name, command in runs.items():
            samples[name].append(run_once(command, env)[0])
    return samples


def compare(samples: Dict[str, List[float]], seed: int = 0, resamples: int = 2000) -> Dict[str, Any]:
    """Medians (ms) with 95 % intervals, and camera - bare with the interval of the difference of medians."""
    out: Dict[str, Any] = {}
    for name, values in samples.items():
        out[name] = {"p50_ms": float(np.median(values)), "p50_ci95_ms": list(median_ci(values, seed=seed)),
                     "min_ms": float(min(values)), "n": len(values)}
    rng = np.random.default_rng(seed)
    differences = (bootstrap_medians(samples["camera"], rng, resamples)
                   - bootstrap_medians(samples["bare"], rng, resamples))
    extra = out["camera"]["p50_ms"] - out["bare"]["p50_ms"]
    out["extra_ms"] = extra
    out["extra_ci95_ms"] = percentiles(differences, [2.5, 97.5])
    # each camera run against the bare run right after it: robust to drift in the machine's load
    out["paired_extra_ms"] = float(np.median(np.subtract(samples["camera"], samples["bare"])))
    out["target_ms"] = TARGET_MS
    out["meets_target"] = extra <= TARGET_MS
    return out


def parse_importtime(text: str) -> Dict[str, int]:
    """Self time (us) by module from ``python -X importtime``'s stderr (other lines are ignored)."""
    times: Dict[str, int] = {}
    for line in text.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = line[len("import time:"):].split("|")
        if len(parts) != 3 or not parts[0].strip().isdigit():
            continue  # the header line
        name = parts[2].strip()
        times[name] = times.get(name, 0) + int(parts[0])
    return times


def package_of(module: str) -> str:
    """The group a module's import time is counted under: ``edge.x`` for edge's own, else the top package."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "edge" else parts[0]


def extra_imports(camera: Dict[str, int], bare: Dict[str, int], top: int = 12) -> List[Dict[str, Any]]:
    """The packages the camera run imports beyond the bare script's: self time summed (ms), largest first."""
    groups: Dict[str, List[str]] = {}
    for module in camera:
        if module not in bare:
            groups.setdefault(package_of(module), []).append(module)
    rows = [{"package": name, "self_ms": sum(camera[m] for m in modules) / 1e3, "modules": len(modules)}
            for name, modules in groups.items()]
    rows.sort(key=lambda row: -row["self_ms"])
    return rows[:top]


def median_importtime(samples: Sequence[Dict[str, int]]) -> Dict[str, int]:
    """Per module, the median self time (us) over several ``-X importtime`` runs (0 in a run that lacks it)."""
    names = sorted(set().union(*samples)) if samples else []
    return {name: int(np.median([sample.get(name, 0) for sample in samples])) for name in names}


def importtime_report(runs: Dict[str, List[str]], env: Dict[str, str], top: int, repeat: int = 3) -> Dict[str, Any]:
    """``-X importtime`` of both commands, ``repeat`` times each: median totals (ms) and the camera run's extra
    packages."""
    found = {}
    for name, command in runs.items():
        traced = [command[0], "-X", "importtime"] + list(command[1:])
        found[name] = median_importtime([parse_importtime(run_once(traced, env)[1]) for _ in range(repeat)])
    return {"camera_total_ms": sum(found["camera"].values()) / 1e3, "bare_total_ms": sum(found["bare"].values()) / 1e3,
            "extra": extra_imports(found["camera"], found["bare"], top), "runs": repeat,
            "onnx_imported": "onnx" in found["camera"]}


def text_report(result: Dict[str, Any]) -> str:
    """The report as lines of text."""
    timing = result["timing"]
    lines = [f"one-image run, whole process, {timing['camera']['n']} runs each, alternating:"]
    for name in ("camera", "bare"):
        row = timing[name]
        lo, hi = row["p50_ci95_ms"]
        lines.append(f"  {name:<7} p50 {row['p50_ms']:7.1f} ms  (95% CI {lo:.1f}-{hi:.1f}; min {row['min_ms']:.1f})")
    lo, hi = timing["extra_ci95_ms"]
    verdict = "meets" if timing["meets_target"] else "misses"
    lines.append(f"  camera - bare: {timing['extra_ms']:+.1f} ms (95% CI {lo:+.1f} to {hi:+.1f}; median of paired "
                 f"runs {timing['paired_extra_ms']:+.1f}); {verdict} the +{timing['target_ms']:.0f} ms target")
    imports = result.get("imports")
    if imports:
        lines.append(f"imports (-X importtime, median of {imports['runs']} runs): camera "
                     f"{imports['camera_total_ms']:.1f} ms, bare {imports['bare_total_ms']:.1f} ms; "
                     f"onnx imported: {'yes' if imports['onnx_imported'] else 'no'}")
        lines.append("  beyond the bare script's, by package (self time):")
        lines.extend(f"  {row['self_ms']:7.2f} ms  {row['package']} ({row['modules']} modules)"
                     for row in imports["extra"])
    lines.append("commands: " + " ".join(result["commands"]["camera"][1:]) + " | python -c BARE_SCRIPT MODEL IMAGE")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The flags of ``edge-bench startup``."""
    parser = argparse.ArgumentParser(prog="edge-bench startup", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="zoo name or .onnx file (default: the built-in face detector)")
    parser.add_argument("--image", type=Path, help="the image to run on (default: edge/data/samples/astronaut.jpg)")
    parser.add_argument("--runs", type=int, default=15, help="timed runs of each command (default 15)")
    parser.add_argument("--top", type=int, default=12, help="packages listed from -X importtime (default 12)")
    parser.add_argument("--no-imports", action="store_true", help="skip the -X importtime runs")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap intervals")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    return parser


def measure(model: Optional[str], image: Optional[Path], runs: int, top: int = 12, imports: bool = True,
            seed: int = 0) -> Dict[str, Any]:
    """The whole benchmark: timings, and (``imports``) the import report. EdgeError for a bad model or image."""
    from edge.samples import sample_path
    from edge.zoo import resolve_model

    model_path = resolve_model(model).resolve()
    image_path = (image or sample_path("astronaut")).resolve()
    if not image_path.is_file():
        raise EdgeError("image not found", fix="give an image file", where=f"--image {image_path}")
    if runs < 2:
        raise EdgeError(f"--runs {runs} is too few for an interval", fix="use --runs 5 or more", where="--runs")
    env = child_env()
    runs_by_name = commands(model_path, image_path)
    result: Dict[str, Any] = {"commands": runs_by_name, "model": str(model_path), "image": str(image_path)}
    result["timing"] = compare(alternate(runs_by_name, runs, env), seed=seed)
    if imports:
        result["imports"] = importtime_report(runs_by_name, env, top)
    return result


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the benchmark and print its report; 2 for a user error."""
    args = build_parser().parse_args(argv)
    try:
        result = measure(args.model, args.image, args.runs, args.top, imports=not args.no_imports, seed=args.seed)
    except EdgeError as exc:
        print(f"edge-bench startup: {exc}", file=sys.stderr)
        return 2
    print(text_report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0
