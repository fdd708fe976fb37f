"""Convert a trained model to ONNX, embed its edge config, and check the result.

SOURCE is one of: a PyTorch callable (package.module:build_model or path/to/file.py:build_model,
with --weights for a state_dict), a TorchScript file (.pt/.pth/.ts), a Keras file (.keras or
legacy .h5; Keras 3 on the torch backend), a TFLite file (.tflite), or an ONNX file (.onnx:
its edge config is added or replaced, the graph kept; --config and flags override the embedded
config, or for an Ultralytics / YOLOv5 export the one edge derives from its metadata).

Nested outputs (tuples, lists, dicts: torchvision detectors' [{"boxes", "scores", "labels"}],
Ultralytics' (y, [...])) become one ONNX output per tensor, named by their path (boxes, output0,
output1.0, ...; export/nested.py); --output-names renames them, --keep-outputs keeps some.

After conversion: onnx.checker, strict shape inference, optional onnxslim simplification, and a
parity run of the source framework against ONNX Runtime on random and real inputs (max abs and
relative error, cosine similarity, top-1 agreement), output by output, failing above the
precision's tolerance; outputs with a dynamic row count (detections) are compared as unordered
rows; NaN or Inf in an ONNX output fails it. The file is written only when every check passes,
and only when a CPU backend here (ONNX Runtime, else OpenCV) loads it: a graph with an operator
no backend here implements (a custom domain) is an error unless --allow-unloadable. The output
must be a regular file or absent (never a folder or a device); it gets the umask's mode.

A classifier whose graph already ends in Softmax/Sigmoid gets decoder activation "none" (its
outputs are probabilities); --activation overrides.

--opset defaults to 17: the newest opset TensorRT 8.5 (JetPack 5.1) parses — its ONNX parser
targets ONNX 1.12 — so one file serves JetPack 5, 6 and 7 boards. For an ONNX source, --opset lowers
the file's opset (--opset 13 for JetPack 4.6: TensorRT 8.2, ONNX Runtime 1.10; export/downgrade.py),
then checks it against the original, both on ONNX Runtime, on the same inputs (--precision tolerance;
the max abs is printed, 0 for the zoo models); without --opset the file keeps its opset. Opsets are
never raised.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from edge.config import EdgeConfig, load_config_file, merge, missing_config_error, missing_fields
from edge.errors import EdgeError
from edge.flags import add_model_fact_arguments, config_overrides

HELP = "convert PyTorch / TorchScript / Keras / TFLite / ONNX to a checked ONNX with the edge config"
DEFAULT_OPSET = 17


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``edge-export onnx``."""
    parser.add_argument("source", help="module:callable, file.py:callable, .pt/.ts, .keras, .h5, .tflite or .onnx")
    parser.add_argument("--output", type=Path, help="the .onnx to write (default: ./<source name>.onnx)")
    parser.add_argument("--weights", type=Path, help="PyTorch state_dict for a module:callable source")
    parser.add_argument("--input-shape", help="N,C,H,W (NCHW) or N,H,W,C (NHWC) for PyTorch sources")
    parser.add_argument("--input-name", default="input", help="name of the ONNX input (default: input)")
    parser.add_argument("--output-names", help="comma-separated names for the ONNX outputs, one per exported tensor "
                        "(nested outputs count their tensors: output0, output1.0, boxes, ...)")
    parser.add_argument("--keep-outputs", metavar="NAMES",
                        help="export only these outputs, by their default names (e.g. output0: only y of an "
                        "Ultralytics model returning (y, [p3, p4, p5]))")
    parser.add_argument("--activation", choices=["softmax", "sigmoid", "none"],
                        help="classify decoder activation (default: none when the graph already ends in "
                        "Softmax/Sigmoid, else softmax)")
    parser.add_argument("--dynamic-batch", action="store_true", help="make the batch dimension dynamic")
    parser.add_argument("--opset", type=int,
                        help=f"ONNX opset (default {DEFAULT_OPSET}: the newest TensorRT 8.5 on JetPack 5 parses); "
                        "for an .onnx source: lower its opset to this (13 for JetPack 4.6), default keep")
    parser.add_argument("--simplify", action="store_true", help="simplify with onnxslim (pip install onnxslim)")
    parser.add_argument("--precision", choices=["fp32", "fp16", "int8"], default="fp32",
                        help="tolerance of the parity check (default fp32)")
    parser.add_argument("--parity-samples", type=int, default=8, metavar="N",
                        help="random inputs for the parity check, besides the shipped sample images (default 8)")
    parser.add_argument("--no-parity", action="store_true", help="skip the parity check (not recommended)")
    parser.add_argument("--converter", choices=["auto", "tflite2onnx", "tf2onnx"], default="auto",
                        help="TFLite sources: auto (tflite2onnx; tf2onnx where tflite2onnx lacks an operator and "
                        "tf2onnx is installed), tflite2onnx, or tf2onnx (needs TensorFlow)")
    parser.add_argument("--allow-unloadable", action="store_true",
                        help="write the file even when no backend here loads it (custom operators that only the "
                        "target runtime implements, e.g. a TensorRT plugin)")
    add_model_fact_arguments(parser, "edge config (embedded in the file)", layout=True)


def source_kind(source: str) -> str:
    """'pytorch', 'torchscript', 'keras', 'tflite' or 'onnx', from the SOURCE argument."""
    suffix = Path(source).suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix == ".tflite":
        return "tflite"
    if suffix in (".keras", ".h5", ".hdf5"):
        return "keras"
    if suffix in (".pt", ".pth", ".ts", ".torchscript") and ":" not in source:
        return "torchscript"
    if ":" in source:
        return "pytorch"
    raise EdgeError(f"cannot tell what kind of model '{source}' is",
                    fix="give module:callable, file.py:callable, a .pt/.ts TorchScript, .keras, .h5, .tflite or "
                    ".onnx file", where="SOURCE")


def requested_config(args: argparse.Namespace) -> Dict[str, Any]:
    """The partial edge config from --config and the flags (flags win)."""
    data: Dict[str, Any] = load_config_file(Path(args.config)) if args.config else {}
    return merge(data, config_overrides(args))


def convert(args: argparse.Namespace, kind: str, partial: Dict[str, Any], scratch: Path,
            report: Optional[List[str]] = None) -> Tuple[Path, Any, str]:
    """Write the bare ONNX into ``scratch``; returns (path, parity runner or None, framework name).
    Lines worth printing (the TFLite rewrite and converter) are appended to ``report``."""
    if kind != "tflite" and getattr(args, "converter", "auto") != "auto":
        raise EdgeError(f"--converter applies to TFLite sources, not to a {kind} source", fix="drop it",
                        where="export onnx")
    destination = scratch / "converted.onnx"
    opset = args.opset or DEFAULT_OPSET
    outputs = _names(args.output_names)
    keep = _names(args.keep_outputs)
    if kind in ("pytorch", "torchscript", "keras"):
        from ..pytorch import input_shape_from, pytorch_runner, pytorch_to_onnx

        if kind == "keras":
            from ..keras import keras_input_shape, keras_runner, load_keras

            module = load_keras(Path(args.source))
            shape = input_shape_from(args.input_shape, None) if args.input_shape else keras_input_shape(module)
            kept = pytorch_to_onnx(module, destination, shape, opset=opset, dynamic_batch=args.dynamic_batch,
                                   input_name=args.input_name, output_names=outputs, keep_outputs=keep)
            return destination, keras_runner(module, kept), "Keras"
        from ..pytorch import load_pytorch

        module = load_pytorch(args.source, args.weights)
        shape = input_shape_from(args.input_shape, (partial.get("input") or {}).get("shape"))
        kept = pytorch_to_onnx(module, destination, shape, opset=opset, dynamic_batch=args.dynamic_batch,
                               input_name=args.input_name, output_names=outputs, keep_outputs=keep)
        return destination, pytorch_runner(module, kept), "PyTorch"
    if args.weights or args.input_shape or args.dynamic_batch or args.output_names or args.keep_outputs:
        raise EdgeError(f"--weights, --input-shape, --dynamic-batch, --output-names and --keep-outputs apply to "
                        f"PyTorch and Keras, not to a {kind} source", fix="drop them", where="export onnx")
    if kind == "tflite":
        from ..tflite import tflite_runner, tflite_to_onnx

        tflite_to_onnx(Path(args.source), destination, converter=getattr(args, "converter", "auto"),
                       opset=opset, report=report)
        return destination, tflite_runner(Path(args.source)), "TFLite"
    return Path(args.source), None, "ONNX"


def _names(text: Optional[str]) -> Optional[List[str]]:
    return [n.strip() for n in text.split(",")] if text else None


def finish_config(partial: Dict[str, Any], onnx_path: Path, where: str, activation: Optional[str] = None,
                  report: Optional[List[str]] = None) -> EdgeConfig:
    """Complete the config from the graph, validate it against the graph and its decoder.

    activation: --activation; without it a classifier whose graph ends in Softmax/Sigmoid gets
    activation none (export/activation.py). Lines worth printing are appended to ``report``.
    """
    from edge.autoconfig import check_input_size
    from edge.decoders import build_decoder
    from edge.model import check_against_graph, complete_from_graph
    from edge.onnxfile import load_onnx, read_onnx

    from ..activation import resolve_activation

    info = read_onnx(onnx_path)
    data = complete_from_graph(merge(_starting_config(info, partial), partial), info)
    check_input_size(info, data)
    lines = resolve_activation(data, load_onnx(onnx_path).graph, activation, where)
    if report is not None:
        report += lines
    missing = missing_fields(data)
    if missing:
        raise missing_config_error(missing, where, exporting=True)
    config = EdgeConfig.from_dict(data, where)
    check_against_graph(config, info)
    labels = list(config.labels) if config.labels is not None else None
    decoder = build_decoder(config.decoder, labels=labels, input_wh=config.input.size_wh, where=where)
    decoder.check_outputs({o.name: o.shape for o in info.outputs})
    return config


def _starting_config(info: Any, partial: Dict[str, Any]) -> Dict[str, Any]:
    """The file's embedded edge config, else the one edge derives from its metadata (an Ultralytics export).

    A decoder of another type in ``partial`` replaces the derived decoder instead of mixing fields.
    """
    from edge.autoconfig import ultralytics_config

    existing = info.embedded_config()
    if existing is None:
        existing = ultralytics_config(info, {key for key, value in partial.items() if value is not None}) or {}
    decoder, derived = partial.get("decoder"), existing.get("decoder")
    other_type = isinstance(decoder, dict) and decoder.get("type") not in (None, (derived or {}).get("type"))
    if other_type and isinstance(derived, dict):
        existing = {key: value for key, value in existing.items() if key != "decoder"}
    return existing


def run(args: argparse.Namespace) -> int:
    """Convert, check, write; prints one short report."""
    from edge.files import check_writable_target, replace_file
    from edge.onnxfile import canonicalize, load_onnx, save_atomic, write_metadata

    from ..checks import simplify, structural_checks
    from ..tflite import sha256_file

    kind = source_kind(args.source)
    output = args.output or Path(Path(args.source.split(":")[0]).stem + ".onnx")
    target = check_writable_target(output)  # a folder, a device, a FIFO: refused before any work; links followed
    if not target.parent.resolve().is_dir():
        raise EdgeError("output folder does not exist", fix=f"mkdir -p {output.parent}", where=str(output))
    if args.opset is not None and (args.opset < 7 or args.opset > 23):
        raise EdgeError(f"opset {args.opset} is outside 7..23", fix=f"use --opset {DEFAULT_OPSET}", where="--opset")
    partial = requested_config(args)
    report: List[str] = []
    with _scratch_folder(target) as scratch:
        converted, runner, framework = convert(args, kind, partial, Path(scratch), report)
        config = finish_config(partial, converted, str(args.source), args.activation, report)
        model = load_onnx(converted)
        _inline_external_data(model, converted)
        lowered = False
        if kind == "onnx" and args.opset is not None:
            from ..downgrade import default_opset, lower_opset

            before = default_opset(model)
            model, lines = lower_opset(model, args.opset, str(args.source))
            lowered, report = default_opset(model) != before, report + lines
        report += structural_checks(model, str(args.source))
        if args.simplify:
            before = len(model.graph.node)
            model = simplify(model)
            report.append(f"onnxslim: {before} -> {len(model.graph.node)} nodes")
        write_metadata(model, {"edge_config": config.to_json()})
        canonicalize(model)
        staged = Path(scratch) / "final.onnx"
        with _write_errors(output):
            save_atomic(model, staged)
        loadable, load_lines = _load_check(staged, str(args.source), args.allow_unloadable)
        report += load_lines
        parity_report = _parity(args, runner, framework, config, staged, kind, lowered) if loadable else (
            ["parity: not possible (no backend here loads the file)"], True)
        report += parity_report[0]
        if not parity_report[1]:
            print("\n".join(report))
            print(f"not written: {output} (the exported model fails the parity check against the {framework} model; "
                  "--no-parity writes it anyway)")
            return 1
        with _write_errors(output):
            replace_file(staged, output)
    from edge.onnxfile import read_onnx

    size_kib = output.stat().st_size / 1024
    print(f"wrote {output} ({size_kib:.0f} KiB, opset {read_onnx(output).opset}, sha256 {sha256_file(output)})")
    print("\n".join(report + [f"edge config: {_describe(config)}"]))
    return 0


def _inline_external_data(model: Any, source: Path) -> None:
    """Pull weights kept in separate files (checked present by load_onnx) into ``model``: the written
    file stands alone in any folder."""
    from onnx.external_data_helper import load_external_data_for_model, uses_external_data

    if any(uses_external_data(t) for t in model.graph.initializer):
        load_external_data_for_model(model, str(source.resolve().parent))


@contextlib.contextmanager
def _scratch_folder(output: Path) -> Iterator[str]:
    """A temporary folder beside ``output`` (same file system: the final move is a rename)."""
    with _write_errors(output):
        scratch = tempfile.TemporaryDirectory(dir=str(output.parent.resolve()))
    with scratch as path:
        yield path


@contextlib.contextmanager
def _write_errors(output: Path) -> Iterator[None]:
    """A failed write (disk full, read-only file system, quota) as one line instead of a traceback."""
    from edge.files import write_error

    try:
        yield
    except OSError as exc:
        error = write_error(exc, str(output), "the model")
        if error is None:
            raise
        raise error from None


def _load_check(staged: Path, where: str, allow: bool) -> Tuple[bool, List[str]]:
    """Whether a CPU backend here loads the file (ONNX Runtime, else OpenCV); EdgeError unless ``allow``."""
    from edge.backends import BACKENDS

    reasons = []
    for name in ("onnxruntime-cpu", "opencv"):
        cls = BACKENDS[name]
        if cls.unavailable_reason() is not None:
            continue
        try:
            with cls(staged, threads=1).prepare():
                return True, [f"load check: ok ({name})"]
        except EdgeError as exc:
            reasons.append(f"{name}: {exc.what}".replace(str(staged), "the file"))
        break  # OpenCV only stands in when ONNX Runtime is not installed (it logs its own errors to stderr)
    if not reasons:
        return False, ["load check: skipped, neither ONNX Runtime nor OpenCV is installed"]
    detail = "; ".join(reasons)[:400]
    if allow:
        return False, [f"load check: no backend here loads it ({detail}); written anyway (--allow-unloadable)"]
    raise EdgeError(f"no backend here can load the exported model ({detail})",
                    fix="pass --allow-unloadable if the target runtime implements these operators (a TensorRT "
                    "plugin), else replace them in the model", where=where)


def _parity(args: argparse.Namespace, runner: Optional[Any], framework: str, config: EdgeConfig, staged: Path,
            kind: str, lowered: bool = False) -> Tuple[List[str], bool]:
    from ..checks import parity, parity_inputs

    if args.no_parity:
        return ["parity: skipped (--no-parity)"], True
    if kind == "onnx" and lowered:
        return _lowered_parity(args, config, staged)
    if kind == "onnx":
        return ["parity: not applicable (the source is the ONNX graph itself)"], True
    if runner is None:
        return [f"parity: skipped, no {framework} interpreter installed (pip install ai-edge-litert)"], True
    from edge.onnxfile import read_onnx

    names = [o.name for o in read_onnx(staged).outputs]
    inputs = parity_inputs(config, max(1, args.parity_samples), seed=0)
    transpose = (0, 2, 3, 1) if kind == "tflite" and config.input.layout == "NCHW" else None
    result = parity(staged, runner, framework, inputs, args.precision, names, transpose_input=transpose)
    return result.lines(), result.passed


def _lowered_parity(args: argparse.Namespace, config: EdgeConfig, staged: Path) -> Tuple[List[str], bool]:
    """The lowered file against the original, both on ONNX Runtime, on the same inputs."""
    from edge.backends import BACKENDS
    from edge.onnxfile import read_onnx

    from ..checks import parity, parity_inputs
    from ..downgrade import onnxruntime_runner

    if BACKENDS["onnxruntime-cpu"].unavailable_reason() is not None:
        return ["parity: skipped, ONNX Runtime is not installed (pip install onnxruntime)"], True
    original = Path(args.source)
    names = [o.name for o in read_onnx(staged).outputs]
    inputs = parity_inputs(config, max(1, args.parity_samples), seed=0)
    with onnxruntime_runner(original) as runner:
        result = parity(staged, runner, f"the original (opset {read_onnx(original).opset})", inputs, args.precision,
                        names)
    return result.lines(), result.passed


def _describe(config: EdgeConfig) -> str:
    pre = config.preprocess
    labels = f", {len(config.labels)} labels" if config.labels else ""
    shape = "x".join(str(d) if isinstance(d, int) else "N" for d in config.input.shape)
    return (f"{config.task}, {shape} {config.input.layout} {pre.color}, {pre.resize}, scale {pre.scale:.6g}, "
            f"mean {list(pre.mean)}, std {list(pre.std)}{labels}, decoder {config.decoder.get('type')}")
