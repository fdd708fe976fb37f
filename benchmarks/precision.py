"""``edge-bench precision``: fp32 vs fp16 vs int8 of the standard models on ONNX Runtime CPU, speed and accuracy.

    edge-bench precision                                  # face, digits, resnet50
    edge-bench precision --models digits,face --count 50 --out /tmp/prec
    edge-bench precision --calib-images frames/ --threads 2

For each model, edge.quantize writes an fp16 file, an int8 file for target ``cpu`` (the CPU rows) and
an int8 file for target ``tensorrt`` (what a Jetson builds; its CPU cost is shown, not hidden). All
four run through edge's onnxruntime-cpu backend in ONE process: ``model.infer`` on the same tensor,
timed in interleaved blocks (``--block`` calls of one, then the next, the order reversed every round),
so drift hits every precision alike. Latency: p50 with a bootstrap 95% interval; speed-up over fp32:
the median of the per-block ratios (fp32 block median / this block median, blocks of the same round
pair) with a bootstrap 95% interval of that median. Accuracy, through the full edge pipeline:
digits held-out accuracy (scikit-learn's digits, the split of models/digits/train.py; without
scikit-learn, digit crops of ``demo://?scene=digits`` with their truth classes); face recall and
precision at IoU 0.5 against truth (the astronaut sample and held-out ``demo://`` frames, seed 1) and
the mean IoU of each precision's boxes against fp32's; resnet50 (generated weights: agreement, not
accuracy) top-1 agreement with fp32 and the cosine of its outputs to fp32's (the light zoo's weights are
constants, so every output ties: the table says "degenerate" then). Calibration (unless
--calib-images): 40 ``demo://`` frames (seed 0) plus the shipped samples; digits: the training split
rendered as train.py renders it (or ``demo://?scene=digits`` crops).
"""

import argparse
import datetime
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edge.errors import EdgeError

from . import help_text
from .precision_data import (
    EVAL_FRAMES,
    digits_accuracy,
    digits_eval_set,
    face_accuracy,
    light_agreement,
    scene_eval_set,
    write_calibration,
)
from .stats import block_medians, median_ci, paired_ratio, percentiles
from .task_rows import blocked_us

DEFAULT_MODELS = ("face", "digits", "resnet50")
#: (row label, precision, int8 target): the rows of every model, fp32 first (the baseline)
VARIANTS: Tuple[Tuple[str, str, Optional[str]], ...] = (
    ("fp32", "fp32", None), ("fp16", "fp16", None), ("int8 cpu", "int8", "cpu"),
    ("int8 tensorrt-placement", "int8", "tensorrt"))
#: what the accuracy of a model means, by its short name ("face", "digits"; any other is a light zoo classifier)
SET_NOTES = {
    "face": "; precision counts every box off the truth: the detector also boxes the cat's face in the demo "
            "background, and faces the truth leaves out (under 1/8 of the frame)",
    "digits": "",
}
LIGHT_NOTE = "; generated weights: agreement, not accuracy"
RESAMPLES = 2000

def paired_speedup(base_us: np.ndarray, other_us: np.ndarray, block: int, seed: int = 0,
                   resamples: int = RESAMPLES) -> Dict[str, Any]:
    """Speed-up of ``other`` over ``base`` from samples taken in paired blocks (blocked_us): the median of the
    per-block ratios median(base block) / median(other block), and a percentile-bootstrap 95% interval of it
    (``benchmarks.stats.paired_ratio``, which the suite's speed-ups use too)."""
    base, other = np.asarray(base_us, np.float64), np.asarray(other_us, np.float64)
    if base.shape != other.shape or base.size == 0 or block < 1:
        raise ValueError(f"paired samples must have one shape and a block >= 1 (got {base.shape}, {other.shape}, "
                         f"block {block})")
    paired = paired_ratio(block_medians(base, block), block_medians(other, block), seed=seed, resamples=resamples)
    return {"point": paired["ratio"], "ci95": paired["ci95"], "blocks": paired["blocks"]}


def time_variants(calls: Sequence[Callable[[], Any]], count: int, block: int, warmup: int,
                  seed: int = 0) -> List[Dict[str, Any]]:
    """Latency of each call (the first is the baseline) in interleaved blocks, and its paired speed-up."""
    samples = blocked_us(calls, count, block, warmup)
    out = []
    for us in samples:
        lo, hi = median_ci(us / 1e3, seed=seed, resamples=RESAMPLES)
        p50, p95 = percentiles(us / 1e3, [50, 95])
        out.append({"latency": {"p50_ms": p50, "p50_ci95_ms": [lo, hi], "p95_ms": p95, "n": int(us.size)},
                    "speedup": paired_speedup(samples[0], us, block, seed)})
    return out


# ---------------------------------------------------------------------------------------------- accuracy
def make_variants(spec: Any, calib: Path, folder: Path) -> List[Dict[str, Any]]:
    """The fp32 source and its fp16 / int8 cpu / int8 tensorrt files (written to ``folder``), with provenance."""
    from edge.config import EdgeConfig
    from edge.quantize import QuantizeOptions, quantize_file

    config = EdgeConfig.from_dict(spec.config) if spec.config else None
    out = []
    for label, precision, target in VARIANTS:
        if precision == "fp32":
            out.append({"precision": label, "path": spec.path, "provenance": {}, "notes": []})
            continue
        options = QuantizeOptions(precision, target=target or "tensorrt", config=config,
                                  calib_images=calib if precision == "int8" else None)
        try:
            made = quantize_file(spec.path, folder / f"{spec.name}.{label.replace(' ', '_')}.onnx", options)
        except EdgeError as exc:  # e.g. no quantization tools in this ONNX Runtime: a skipped row, not a lost run
            out.append({"precision": label, "path": None, "skipped": str(exc)})
            continue
        except ImportError as exc:  # edge.quantize imports ONNX Runtime's quantization tools unguarded for int8
            out.append({"precision": label, "path": None, "skipped": f"ONNX Runtime's quantization tools do not "
                        f"import here ({exc}). Fix: pip install -U onnxruntime (and what it names)"})
            continue
        out.append({"precision": label, "path": made.path, "provenance": made.provenance, "notes": made.notes})
    return out


def measure_model(key: str, spec: Any, calib: Path, calib_what: str, folder: Path, options: Dict[str, Any],
                  data: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The rows of one model: one per precision, timed together, each with its accuracy against fp32's."""
    from edge.model import Model
    from edge.samples import load_sample

    made = make_variants(spec, calib, folder)
    variants = [variant for variant in made if variant["path"] is not None]
    models: List[Any] = []
    try:
        for variant in variants:
            models.append(Model(variant["path"], backend="onnxruntime-cpu", threads=options["threads"],
                                config=spec.config))
        image = data["images"][0] if key == "digits" else load_sample("astronaut")
        tensors = [model.preprocess(image)[0].copy() for model in models]  # the preprocessor reuses its buffer
        calls = [lambda m=model, t=tensor: m.infer(t) for model, tensor in zip(models, tensors)]
        timed = time_variants(calls, options["count"], options["block"], options["warmup"], options["seed"])
        measure = {"face": face_accuracy, "digits": digits_accuracy}.get(key, light_agreement)
        accuracy = measure(models, data)
    finally:
        for model in models:
            model.close()
    measured = iter(zip(timed, accuracy))
    rows = []
    for variant in made:  # VARIANTS' order, skipped rows in their place
        if variant["path"] is None:
            rows.append({"model": key, "precision": variant["precision"], "status": "skipped",
                         "reason": variant["skipped"]})
            continue
        timing, acc = next(measured)
        provenance = variant["provenance"]
        rows.append(dict({"model": key, "file": Path(variant["path"]).name, "precision": variant["precision"],
                          "status": "ok", "size_mb": Path(variant["path"]).stat().st_size / 1e6,
                          "quantizer": provenance.get("quantizer"), "notes": variant["notes"],
                          "calibration": dict(provenance["calibration"], what=calib_what)
                          if "calibration" in provenance else None,
                          "accuracy": dict(acc, set=data["what"])}, **timing))
    return rows


# ---------------------------------------------------------------------------------------------- run, report
def run(models: Sequence[str] = DEFAULT_MODELS, count: int = 200, block: int = 10, warmup: int = 10,
        threads: Optional[int] = None, calib_images: Optional[Path] = None, frames: int = EVAL_FRAMES,
        seed: int = 0, progress: Optional[Callable[[str], None]] = None) -> Dict[str, Any]:
    """Every row asked for: {"benchmark": "precision", "environment", "calibration", "rows": [...]}."""
    from .suite import ALIASES, select_models
    from .tasks import environment, load_average

    keys = list(dict.fromkeys(ALIASES.get(name, name) for name in models))  # blazeface -> face, once
    if not keys:
        raise EdgeError("no models given", fix=f"use some of: {', '.join(DEFAULT_MODELS)}", where="--models")
    try:
        specs = select_models(keys)
    except ValueError as exc:
        raise EdgeError(str(exc), fix=f"use some of: {', '.join(DEFAULT_MODELS)}", where="--models") from None
    if calib_images is not None and not Path(calib_images).is_dir():
        raise EdgeError("no such folder", fix="pass a folder of images like the models will see",
                        where=f"--calib-images {calib_images}")
    options = {"count": count, "block": block, "warmup": warmup, "threads": threads, "seed": seed}
    load_before = load_average()
    rows: List[Dict[str, Any]] = []
    calibration: Dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="edge-precision-") as scratch:
        sets: Dict[str, Dict[str, Any]] = {}
        for key, spec in zip(keys, specs):
            kind = "digits" if key == "digits" else "scene"
            if progress:
                progress(f"{key}: calibration set, quantizing, timing {count} calls x {len(VARIANTS)} precisions")
            if calib_images is not None:
                calib, calibration[kind] = Path(calib_images), f"--calib-images {calib_images}"
            else:
                calib = Path(scratch) / f"calib_{kind}"
                if kind not in calibration:
                    calibration[kind] = write_calibration(kind, calib)
            if kind not in sets:
                sets[kind] = digits_eval_set() if kind == "digits" else scene_eval_set(frames)
            rows += measure_model(key, spec, calib, calibration[kind], Path(scratch), options, sets[kind])
    env = environment(threads)
    env["load_average"] = [load_before, env["load_average"]]  # other work on the machine, at the start and end
    return {"benchmark": "precision", "count": count, "block": block, "warmup": warmup, "seed": seed,
            "environment": env, "calibration": calibration, "rows": rows}


def _accuracy_cell(row: Dict[str, Any]) -> str:
    acc = row["accuracy"]
    if row["precision"] == "fp32":
        text = f"{acc['metric']} {acc['value']:.1f}{acc['unit']} (reference)"
    else:
        text = f"{acc['metric']} {acc['fp32']:.1f} -> {acc['value']:.1f}{acc['unit']} ({acc['delta']:+.1f})"
    if "precision_pct" in acc:
        text += (f"; precision {acc['precision_fp32_pct']:.1f} -> {acc['precision_pct']:.1f}%; "
                 f"IoU vs fp32 mean {acc['mean_iou_vs_fp32']:.3f}, astronaut {acc['astronaut_iou_vs_fp32']:.3f}")
    if "cosine_mean" in acc:
        text += (f"; output cosine mean {acc['cosine_mean']:.4f} (min {acc['cosine_min']:.4f}); fp32 top-1: "
                 f"{acc['fp32_distinct_top1']} distinct class(es)")
        if acc["fp32_outputs_tie"]:
            text += ", its outputs all tie (constant weights): degenerate"
    return text


def report(results: Dict[str, Any]) -> str:
    """The Markdown table of :func:`run`'s results, with what the numbers depend on above it."""
    env = results["environment"]
    lines = [f"{env['processor']}, {env['cpu_count']} CPUs, onnxruntime {env['onnxruntime']} CPU (edge's "
             f"onnxruntime-cpu backend), threads {env['threads'] or 'default'}; model.infer on one tensor, "
             f"{results['count']} calls per precision interleaved in blocks of {results['block']}; "
             "[95% bootstrap intervals]; speed-up = median of paired per-block ratios"]
    loads = [value for value in env.get("load_average") or [] if value is not None]
    if loads:
        lines[0] += f"; 1-min load average {' -> '.join(format(v, 'g') for v in loads)} (start -> end)"
    lines.append("")
    models = list(dict.fromkeys(row["model"] for row in results["rows"]))
    for kind, what in results["calibration"].items():
        users = [model for model in models if (model == "digits") == (kind == "digits")]
        lines.append(f"- int8 calibration ({', '.join(users)}): {what}")
    sets = {row["model"]: row["accuracy"]["set"] for row in results["rows"] if row["status"] == "ok"}
    for model, what in sets.items():
        lines.append(f"- accuracy set ({model}): {what}{SET_NOTES.get(model, LIGHT_NOTE)}")
    lines += ["", "| model | precision | file MB | p50 ms [95%] | speed-up vs fp32 [95%] | "
              "accuracy: fp32 -> this precision (delta) |", "|---|---|---:|---:|---:|---|"]
    for row in results["rows"]:
        if row["status"] != "ok":
            lines.append(f"| {row['model']} | {row['precision']} | | | | {row['status']}: {row['reason']} |")
            continue
        lat, up = row["latency"], row["speedup"]
        lines.append(f"| {row['model']} | {row['precision']} | {row['size_mb']:.2f} | {lat['p50_ms']:.3f} "
                     f"[{lat['p50_ci95_ms'][0]:.3f}, {lat['p50_ci95_ms'][1]:.3f}] | {up['point']:.2f}x "
                     f"[{up['ci95'][0]:.2f}, {up['ci95'][1]:.2f}] | {_accuracy_cell(row)} |")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    """The sub-command's flags."""
    from .__main__ import names, positive_int

    parser = argparse.ArgumentParser(prog="edge-bench precision", description=help_text(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=names, default=list(DEFAULT_MODELS), metavar="A,B",
                        help=f"standard models (default {','.join(DEFAULT_MODELS)})")
    parser.add_argument("--count", type=positive_int, default=200, help="timed calls per precision (default 200)")
    parser.add_argument("--block", type=positive_int, default=10, help="calls per block of the interleaving (10)")
    parser.add_argument("--warmup", type=positive_int, default=10, help="untimed calls per precision first (10)")
    parser.add_argument("--threads", type=positive_int, help="intra-op threads (default: onnxruntime's)")
    parser.add_argument("--frames", type=positive_int, default=EVAL_FRAMES,
                        help=f"held-out demo:// frames for the face / resnet50 accuracy (default {EVAL_FRAMES})")
    parser.add_argument("--calib-images", type=Path, metavar="DIR",
                        help="int8 calibration images for every model (default: made here, see above)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap intervals")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="results folder (default benchmarks/results/precision-<UTC time>/)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Measure, print the table, write results.json and precision.md; 2 for a user error."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        results = run(args.models, args.count, args.block, args.warmup, args.threads, args.calib_images,
                      args.frames, args.seed, progress=lambda line: print(line, file=sys.stderr, flush=True))
    except EdgeError as exc:
        print(f"edge-bench precision: {exc}", file=sys.stderr)
        return 2
    import json

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or Path("benchmarks") / "results" / f"precision-{stamp}"
    text = report(results)
    print(text, end="")
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
        (out / "precision.md").write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"edge-bench precision: cannot write to {out} ({exc.strerror or exc}). Fix: pick another --out",
              file=sys.stderr)
        return 2
    print(f"wrote {out / 'results.json'}, {out / 'precision.md'}", file=sys.stderr)
    skipped = [f"{row['model']} {row['precision']}" for row in results["rows"] if row["status"] != "ok"]
    if skipped:
        print(f"edge-bench precision: {len(skipped)} rows skipped ({', '.join(skipped)}); their reasons are in the "
              "table", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
