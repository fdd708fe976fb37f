"""TFLite -> ONNX: the graph rewritten into plain operators, then converted by tflite2onnx or tf2onnx.

First ``tflite_fixes.rewrite_tflite`` turns what converters stumble on (sparse and float16 weights,
HARD_SWISH, MediaPipe's transposed-convolution custom op) into plain TFLite operators. Then:

- ``tflite2onnx`` (the "auto" choice; no TensorFlow needed): it rewrites the graph from NHWC to
  NCHW, so the model takes (N, 3, H, W) input; two of its gaps are closed here (a DEPTH_TO_SPACE
  converter, the spatial-only ``output_shape`` of ConvTranspose), and 4-D outputs it turned to
  NCHW get a Transpose back, so every output keeps the shape the TFLite model documents
  ((1, 256, 256, 1) for a mask) and parity compares like with like.
- ``tf2onnx``'s TFLite path (needs TensorFlow): NCHW input asked for with ``inputs_as_nchw``;
  its outputs keep TFLite's layout. "auto" uses it when tflite2onnx lacks an operator and
  tf2onnx is installed.

On the five MediaPipe models of the zoo both give the same parity against LiteRT (max abs error
equal to two or three significant digits, models/*/README.md), so "auto" prefers tflite2onnx and
TensorFlow is needed only for models tflite2onnx cannot convert.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from edge.errors import EdgeError, MissingDependency

from .tflite_fixes import UnreadableTFLite, custom_operators, rewrite_tflite, tflite_io_shapes

CONVERTERS = ("auto", "tflite2onnx", "tf2onnx")
TF2ONNX_FIX = "pip install tf2onnx tensorflow (Python >= 3.10), then convert again"
CUSTOM_FIX = ("a custom operator exists only in the runtime that registers it (MediaPipe registers its own) and "
              "no ONNX converter knows it: convert a variant of the model without it (e.g. MediaPipe's "
              "face_landmark for face_landmark_with_attention), or rebuild the graph without it")
LITERT_FIX = "pip install ai-edge-litert (the graph is rewritten into plain operators first), or "


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tflite_to_onnx(source: Path, destination: Path, converter: str = "auto", opset: int = 17,
                   report: Optional[List[str]] = None) -> Path:
    """Convert a .tflite file to ONNX at ``destination`` (a file written whole or not at all).

    converter: "auto" (tflite2onnx, else tf2onnx where tflite2onnx lacks an operator), "tflite2onnx"
    or "tf2onnx". opset: for tf2onnx only (tflite2onnx writes opset 11). report: gets one line on
    what was rewritten and one naming the converter used.
    """
    source, destination = Path(source), Path(destination)
    if converter not in CONVERTERS:
        raise EdgeError(f"unknown TFLite converter '{converter}'", fix="use one of " + ", ".join(CONVERTERS),
                        where="converter")
    if not source.is_file():
        raise EdgeError("TFLite file not found", fix="check the path", where=str(source))
    data = source.read_bytes()
    if data[4:8] != b"TFL3":
        raise EdgeError("not a TFLite flatbuffer (no TFL3 identifier)", fix="give a .tflite model file",
                        where=str(source))
    if converter != "tf2onnx" and _missing("tflite2onnx"):
        if converter == "auto" and not _missing("tf2onnx"):
            converter = "tf2onnx"
        else:
            raise MissingDependency("tflite2onnx", "TFLite export", "pip install tflite2onnx")
    rewritten, rewrites = _rewritten(data, str(source))
    if report is not None:
        done = ", ".join(f"{count} {what}" for what, count in rewrites.items())
        report.append(f"TFLite rewrite: {done or 'nothing to rewrite'}" if rewrites is not None else
                      "TFLite rewrite: skipped (pip install ai-edge-litert to rewrite sparse / float16 weights and "
                      "MediaPipe operators)")
    try:
        shapes = tflite_io_shapes(rewritten)
    except Exception:  # noqa: BLE001 - a damaged flatbuffer fails anywhere in the reader; the converter says so
        shapes = {"inputs": {}, "outputs": {}}
    partial = destination.with_name(destination.name + ".partial")
    fixed = destination.with_name(destination.name + ".rewritten.tflite")
    try:
        fixed.write_bytes(rewritten)
        if converter in ("auto", "tflite2onnx"):
            lacking = _run_tflite2onnx(fixed, partial, shapes, str(source))
            if lacking is not None:
                if converter == "tflite2onnx" or _missing("tf2onnx"):
                    fix = _litert_hint() + TF2ONNX_FIX + " (tf2onnx's TFLite path)"
                    if lacking == "CUSTOM":
                        lacking = "CUSTOM (" + (", ".join(custom_operators(rewritten)) or "?") + ")"
                        fix = CUSTOM_FIX
                    raise EdgeError(f"tflite2onnx has no converter for TFLite operator {lacking}", fix=fix,
                                    where=str(source))
                converter = "tf2onnx"
        if converter == "tf2onnx":
            _run_tf2onnx(fixed, partial, shapes, opset, str(source))
        partial.replace(destination)
        if report is not None:
            report.append(f"converter: {converter if converter != 'auto' else 'tflite2onnx'} {_version(converter)}")
    except OSError as exc:
        from edge.files import write_error

        unwritable = write_error(exc, "--output", "the converted model")
        if unwritable is not None:
            raise unwritable from None
        raise
    finally:
        for leftover in (fixed, partial):
            if leftover.exists():
                leftover.unlink()
    return destination


def _rewritten(data: bytes, where: str) -> Tuple[bytes, Optional[Dict[str, int]]]:
    """(flatbuffer, what was rewritten) after ``rewrite_tflite``; unchanged and None where LiteRT (its
    schema) is not installed: models without sparse, float16 or MediaPipe-only operators convert as they are."""
    if _missing("ai_edge_litert"):
        return data, None
    try:
        return rewrite_tflite(data, where)
    except UnreadableTFLite:
        return data, {}  # the converter reports what it makes of the file


def _version(converter: str) -> str:
    from importlib import metadata

    try:
        return metadata.version("tf2onnx" if converter == "tf2onnx" else "tflite2onnx")
    except metadata.PackageNotFoundError:
        return ""


def _litert_hint() -> str:
    return LITERT_FIX if _missing("ai_edge_litert") else ""


def _missing(module: str) -> bool:
    return importlib.util.find_spec(module) is None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:250]}" if text else type(exc).__name__


def _run_tflite2onnx(fixed: Path, partial: Path, shapes: Dict[str, Any], where: str) -> Optional[str]:
    """Convert with tflite2onnx and repair its output; returns the name of an operator it lacks, else None."""
    import tflite2onnx

    _register_depth_to_space()
    # tflite2onnx logs once per fused pattern and float16 tensor; parity is checked instead
    logging.getLogger("tflite2onnx").setLevel(logging.ERROR)
    try:
        tflite2onnx.convert(str(fixed), str(partial))
    except NotImplementedError as exc:  # its OpFactory: "Unsupported TFLite OP: 117 HARD_SWISH!"
        words = str(exc).rstrip("!").split()
        return words[-1] if words else "?"
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 - tflite2onnx raises anything on graphs it misreads
        raise EdgeError(f"tflite2onnx cannot convert this model ({_first_line(exc)})",
                        fix=_litert_hint() + TF2ONNX_FIX + "; or check the .tflite is complete (re-export it)",
                        where=where) from None
    _repair_tflite2onnx_graph(partial, shapes["outputs"])
    return None


def _repair_tflite2onnx_graph(path: Path, tflite_outputs: Dict[str, List[int]]) -> None:
    """ConvTranspose ``output_shape`` cut to (H, W) as ONNX defines it (tflite2onnx writes N, C, H, W);
    4-D outputs turned NCHW get a Transpose back to the TFLite model's (NHWC) shape."""
    import onnx

    model = onnx.load(str(path))
    for node in model.graph.node:
        for attribute in node.attribute:
            if node.op_type == "ConvTranspose" and attribute.name == "output_shape" and len(attribute.ints) == 4:
                spatial = list(attribute.ints)[2:]
                del attribute.ints[:]
                attribute.ints.extend(spatial)
    for output in model.graph.output:
        dims = [d.dim_value for d in output.type.tensor_type.shape.dim]
        want = tflite_outputs.get(output.name)
        if want is None or len(want) != 4 or dims == want or dims != [want[0], want[3], want[1], want[2]]:
            continue
        inner = output.name + "/nchw"
        for node in model.graph.node:
            node.output[:] = [inner if name == output.name else name for name in node.output]
            node.input[:] = [inner if name == output.name else name for name in node.input]
        model.graph.node.append(onnx.helper.make_node("Transpose", [inner], [output.name], perm=[0, 2, 3, 1],
                                                      name=output.name + "/nhwc"))
        for dim, value in zip(output.type.tensor_type.shape.dim, want):
            dim.dim_value = value
    onnx.save(model, str(path))


def _register_depth_to_space() -> None:
    """Teach tflite2onnx DEPTH_TO_SPACE: ONNX DepthToSpace in DCR mode is TFLite's on NCHW data."""
    import tflite
    from tflite2onnx.layout import Layout
    from tflite2onnx.op.common import Operator, OpFactory

    code = tflite.BuiltinOperator.DEPTH_TO_SPACE
    if code in OpFactory.registry:
        return

    class DepthToSpace(Operator):
        TypeMapping = {code: "DepthToSpace"}

        def __init__(self, TFactory: Any, index: int) -> None:  # noqa: N803 - tflite2onnx's signature
            super().__init__(TFactory, index)
            self.attrs["blocksize"] = 0
            self.attrs["mode"] = "DCR"
            self.setInited()

        @property
        def type(self) -> str:
            return "DepthToSpace"

        def parse(self) -> None:
            self.parseInput(0, Layout("NHWC", "NCHW"))
            self.parseOutput(0, Layout("NHWC", "NCHW"))
            table = self.tflite.BuiltinOptions()
            options = tflite.DepthToSpaceOptions()
            options.Init(table.Bytes, table.Pos)
            self.attrs["blocksize"] = options.BlockSize()
            self.setParsed()

        def propagatableTensors(self) -> list:  # noqa: N802 - tflite2onnx's name
            return []

        def transform(self) -> None:
            pass

    OpFactory.register(DepthToSpace)


def _run_tf2onnx(fixed: Path, partial: Path, shapes: Dict[str, Any], opset: int, where: str) -> None:
    """Convert with tf2onnx's TFLite path, NCHW input; an invalid result (operators it left unconverted) is
    an error, not a file."""
    if _missing("tf2onnx"):
        raise MissingDependency("tf2onnx", "TFLite export with tf2onnx", TF2ONNX_FIX)
    import onnx

    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    # TensorFlow's C++ start-up lines (CPU features, no CUDA driver) are noise in a one-line report;
    # setdefault keeps a level the user chose
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TensorFlow's deprecation notice for tf.lite.Interpreter
            from tf2onnx.convert import from_tflite

            from_tflite(str(fixed), opset=opset, inputs_as_nchw=list(shapes["inputs"]), output_path=str(partial))
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 - tf2onnx and TensorFlow raise anything on graphs they misread
        raise EdgeError(f"tf2onnx cannot convert this model ({_first_line(exc)})",
                        fix="convert with tflite2onnx (converter auto), or report the model", where=where) from None
    model = onnx.load(str(partial))
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError:
        known = {schema.name for schema in onnx.defs.get_all_schemas()}
        left = sorted({n.op_type for n in model.graph.node if n.domain in ("", "ai.onnx") and n.op_type not in known})
        raise EdgeError("tf2onnx left operators it cannot convert in the graph "
                        f"({', '.join(left) or 'see onnx.checker'})",
                        fix=CUSTOM_FIX if any(name.startswith("TFL_") for name in left) else
                        "convert with tflite2onnx (converter auto)", where=where) from None


def tflite_runner(path: Path) -> Optional[Callable[[np.ndarray], List[np.ndarray]]]:
    """A function running the TFLite interpreter (LiteRT, tflite-runtime or TensorFlow), or None
    when none is installed. It takes NHWC batches: TFLite's own layout."""
    interpreter_class = None
    for module_name in ("ai_edge_litert.interpreter", "tflite_runtime.interpreter", "tensorflow.lite"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        interpreter_class = getattr(module, "Interpreter", None)
        if interpreter_class is not None:
            break
    if interpreter_class is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TensorFlow's own deprecation notice for tf.lite
        interpreter = interpreter_class(model_path=str(path))
    try:
        interpreter.allocate_tensors()
    except RuntimeError as exc:  # a custom operator only MediaPipe's runtime registers
        raise EdgeError(f"the TFLite interpreter cannot run this model ({_first_line(exc)})",
                        fix="pass --no-parity to convert without the check", where=str(path)) from None
    input_index = interpreter.get_input_details()[0]["index"]
    outputs = interpreter.get_output_details()

    def run(batch: np.ndarray) -> List[np.ndarray]:
        interpreter.set_tensor(input_index, np.ascontiguousarray(batch, dtype=np.float32))
        interpreter.invoke()
        return [interpreter.get_tensor(o["index"]).copy() for o in outputs]

    run.output_names = [o["name"] for o in outputs]  # type: ignore[attr-defined]
    return run
