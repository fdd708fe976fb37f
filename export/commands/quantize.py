"""Make a fp16 or int8 copy of an ONNX model, check it against the float32 file, and write it.

int8: static post-training quantization to explicit Q/DQ (what TensorRT 11 builds, having no INT8
builder flag or calibrator), calibrated on --calib-images through the model's own preprocessing
(its embedded edge config, or --config), weights per channel. --target picks the placement:
  tensorrt  signed int8 activations with zero point 0 on the inputs of Conv/ConvTranspose/Gemm/MatMul
            (the only Q/DQ TensorRT accepts); NVIDIA ModelOpt places them when it is installed, else
            ONNX Runtime's tools. Runs on the CPU too, but slowly (ResNet-50 here: 0.8x of fp32).
  cpu       unsigned activations on every operator ONNX Runtime has int8 kernels for (ResNet-50 here:
            2.3x the speed of fp32 on ONNX Runtime CPU). TensorRT refuses this form.
The heads (the layers that feed the outputs) stay float in both.
fp16: float16 weights and activations, float32 kept at the inputs and outputs and in normalisations,
softmax, reductions and exp/log/pow (the strongly typed form TensorRT 11 builds); no calibration.

Then: onnx.checker, a parity run against the float32 file on ONNX Runtime (random frames and the shipped
samples through the model's preprocessing; the precision's tolerance, see edge-export verify), and the task
metric: both files through the whole pipeline on the samples and on demo:// frames with ground truth
(detect: boxes vs fp32 and recall/precision vs truth; classify: top-1 agreement, and accuracy on
--eval-images, a folder per class). The file is
written (default: MODEL.int8.onnx / MODEL.fp16.onnx beside the model) only when the parity passes; its
metadata records the precision, target, quantizer and the sha256 of the source and of the calibration set.
The same inputs give byte-identical files.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Tuple

from edge.errors import EdgeError

HELP = "make a fp16 or int8 (Q/DQ) copy of an ONNX model, checked against the float32 file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``edge-export quantize``."""
    from edge.quantize import CALIB_METHODS, MAX_CALIB_IMAGES, QUANTIZERS, TARGETS

    parser.add_argument("model", type=Path, help="the float32 .onnx (with its edge config embedded, or --config)")
    parser.add_argument("--precision", required=True, choices=["fp16", "int8"], help="what to make")
    parser.add_argument("--output", type=Path, help="the .onnx to write (default: MODEL.int8.onnx / MODEL.fp16.onnx)")
    parser.add_argument("--target", choices=TARGETS, default="tensorrt",
                        help="int8 placement: tensorrt (default; what TensorRT builds) or cpu (what ONNX Runtime's "
                        "CPU kernels run fast)")
    parser.add_argument("--calib-images", type=Path, metavar="DIR",
                        help="int8: a folder of images like the ones the model will see (a few hundred)")
    parser.add_argument("--calib-count", type=int, metavar="N",
                        help=f"int8: use the first N images (natural order; default all, up to {MAX_CALIB_IMAGES}); "
                        "fewer in the folder is an error")
    parser.add_argument("--calib-method", choices=CALIB_METHODS, default="minmax",
                        help="int8 activation ranges: minmax (default), entropy or percentile")
    parser.add_argument("--quantizer", choices=QUANTIZERS, default="auto",
                        help="int8: auto (NVIDIA ModelOpt for --target tensorrt when installed, else ONNX Runtime), "
                        "onnxruntime or modelopt")
    parser.add_argument("--config", type=Path, help="edge config JSON over the model's own (embedded, or derived "
                        "from an Ultralytics export's metadata)")
    parser.add_argument("--parity-samples", type=int, default=8, metavar="N",
                        help="random inputs for the parity check, besides the shipped sample images (default 8)")
    parser.add_argument("--no-parity", action="store_true", help="write even when the parity check fails")
    parser.add_argument("--eval-source", metavar="URI", default="default",
                        help="frames for the task metric (default: demo:// for a face detector, "
                        "demo://?scene=digits for a digit detector, else none); 'none' to skip")
    parser.add_argument("--eval-images", type=Path, metavar="DIR",
                        help="classifiers: labelled images for the accuracy of both files (one sub-folder per "
                        "class, named by label or class id)")
    parser.add_argument("--eval-frames", type=int, default=60, metavar="N",
                        help="frames of --eval-source for the task metric (default 60)")


def _model_config(args: argparse.Namespace) -> "object":
    """The model's edge config as the runtime resolves it: embedded, derived from another tool's metadata (an
    Ultralytics export), a sidecar, or --config; completed from the graph."""
    from edge.model import resolve_config
    from edge.onnxfile import read_onnx

    info = read_onnx(args.model)  # a missing or broken file: its own one-line error
    try:
        return resolve_config(info, config_file=args.config)
    except EdgeError as exc:  # the camera app's fix names its own flags; here the config comes from a file
        raise EdgeError(exc.what, fix="embed one (edge-export onnx MODEL.onnx --config edge.json) or pass --config "
                        "edge.json (its preprocessing is needed to calibrate and check the model)",
                        where=exc.where) from None


def run(args: argparse.Namespace) -> int:
    """Quantize into a scratch file, check it, then move it into place; prints the report."""
    import tempfile

    from edge.files import check_writable_target, replace_file
    from edge.onnxfile import read_onnx
    from edge.quantize import QuantizeOptions, check_options, quantize_file, sibling_path

    from ..commands.onnx import _write_errors

    output = args.output or sibling_path(args.model, args.precision)
    options = QuantizeOptions(args.precision, target=args.target, calib_images=args.calib_images,
                              calib_count=args.calib_count, calib_method=args.calib_method, quantizer=args.quantizer,
                              config=_model_config(args))
    check_options(options)
    if args.eval_frames < 0:
        raise EdgeError("--eval-frames must be 0 or more", fix="e.g. --eval-frames 60", where="--eval-frames")
    target = check_writable_target(output)
    if not target.parent.resolve().is_dir():
        raise EdgeError("output folder does not exist", fix=f"mkdir -p {output.parent}", where=str(output))
    if target.resolve() == Path(args.model).resolve():
        raise EdgeError("the output would replace the float32 model", fix="give another --output",
                        where=str(output))
    config = options.config
    with _write_errors(output):
        scratch = tempfile.TemporaryDirectory(dir=str(target.parent.resolve()))
    with scratch as folder:
        staged = Path(folder) / "quantized.onnx"
        with _write_errors(output):
            made = quantize_file(args.model, staged, options, report=print)
        report = [f"{args.precision}: " + _describe(made.provenance)] + [f"  {note}" for note in made.notes]
        parity_lines, passed = _parity(args, config, staged)
        metric = _task_metric(args, config, staged)
        if args.precision == "int8" and metric.figures and parity_lines[-1].startswith("  verdict: "):
            # int8 moves every raw value by a quantization step (a detector's background logits by tens of
            # units): the decisions are the check, the element-wise rows are information.
            parity_lines[-1] = (f"  element-wise: {'pass' if passed else 'outside the int8 tolerance'} "
                                "(information for int8: the task metric below decides)")
            passed = metric.passed
        report += parity_lines + metric.lines
        if not passed and not args.no_parity:
            print("\n".join(report))
            check = "task metric" if args.precision == "int8" and metric.figures else "parity check"
            print(f"not written: {output} (the {args.precision} model fails the {check} against the float32 "
                  "model; try more or better calibration images, --calib-method entropy, or --no-parity)")
            return 1
        with _write_errors(output):
            replace_file(staged, output)
    from edge.quantize import sha256_file

    size_kib = output.stat().st_size / 1024
    source_kib = Path(args.model).stat().st_size / 1024
    print(f"wrote {output} ({size_kib:.0f} KiB, fp32 {source_kib:.0f} KiB; opset {read_onnx(output).opset}, "
          f"sha256 {sha256_file(output)})")
    print("\n".join(report))
    return 0


def _describe(provenance: dict) -> str:
    parts = [f"target {provenance.get('target')}",
             f"{provenance.get('quantizer')} {provenance.get('quantizer_version')}"]
    calibration = provenance.get("calibration")
    if calibration:
        parts.append(f"calibrated on {calibration['images']} images ({calibration['method']}, set sha256 "
                     f"{calibration['sha256'][:16]}...)")
    if provenance.get("activations"):
        parts.append(f"activations {provenance['activations']}, weights {provenance['weights']}")
    return "; ".join(parts)


def _parity(args: argparse.Namespace, config: "object", staged: Path) -> Tuple[List[str], bool]:
    """The reduced file against the float32 one, both on ONNX Runtime CPU, at the precision's tolerance."""
    from edge.backends import BACKENDS
    from edge.onnxfile import read_onnx

    from ..checks import parity, parity_inputs
    from ..downgrade import onnxruntime_runner

    if BACKENDS["onnxruntime-cpu"].unavailable_reason() is not None:
        return ["parity: skipped, ONNX Runtime is not installed (pip install onnxruntime)"], True
    names = [o.name for o in read_onnx(staged).outputs]
    inputs = parity_inputs(config, max(1, args.parity_samples), seed=0)
    if args.precision == "int8":
        # Random frames drive activations past the calibrated ranges by design (they are not images); int8 is
        # judged on images: the shipped samples and frames of the evaluation source.
        inputs = {"real": inputs["real"] + _eval_inputs(args, config)}
    with onnxruntime_runner(Path(args.model)) as runner:
        result = parity(staged, runner, "the float32 model", inputs, args.precision, names)
    return result.lines(), result.passed


def _eval_inputs(args: argparse.Namespace, config: "object") -> list:
    """Up to --parity-samples frames of the evaluation source, preprocessed, for the int8 parity check."""
    from edge.preprocess import Preprocessor

    from ..taskmetric import default_eval_source, eval_frames

    uri = default_eval_source(config) if args.eval_source == "default" else args.eval_source
    if uri in (None, "none"):
        uri = "demo://"  # any natural-looking frames beat none; the task metric says which source it used
    preprocess = Preprocessor.from_config(config)
    return [preprocess(frame.image)[0].copy() for frame in eval_frames(uri, max(1, args.parity_samples))]


def _task_metric(args: argparse.Namespace, config: "object", staged: Path) -> "object":
    from ..taskmetric import task_metric

    source = None if args.eval_source == "none" else args.eval_source
    return task_metric(Path(args.model), staged, config, args.precision, source, args.eval_frames,
                       args.eval_images)
