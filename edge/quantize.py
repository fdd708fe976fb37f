"""Reduced-precision ONNX files: int8 (static post-training quantization to explicit Q/DQ) and fp16.

``quantize_file(source, output, QuantizeOptions(precision="int8", calib_images=folder))`` writes a
file that TensorRT 11 builds (it has no fp16/int8 builder flags: precision comes from the ONNX) and
that ONNX Runtime's CPU kernels run:

- int8: Q/DQ pairs calibrated on images fed through the model's own preprocessing (its edge config),
  weights per channel and symmetric. Two placements, because the two consumers want different things
  (measured on this 2-core AVX-512 x86, ResNet-50, ONNX Runtime 1.32):
    * target ``tensorrt``: signed int8 activations with zero point 0 (the only kind TensorRT accepts),
      only the inputs of Conv/ConvTranspose/Gemm/MatMul quantized, biases left in float (TensorRT fuses
      the rest itself). ONNX Runtime's CPU kernels fuse this form poorly: 0.8x of fp32.
    * target ``cpu``: unsigned int8 activations, every operator ONNX Runtime has int8 kernels for
      (QLinearConv, QLinearAdd, ...): 2.6x the speed of fp32 on ResNet-50.
  The quantizer is NVIDIA's Model Optimizer (``modelopt.onnx.quantization``) for target tensorrt when it
  is installed (its placement is TensorRT's own; it installs with a CUDA PyTorch, ~6 GB), else ONNX
  Runtime's quantization tools with the settings above; the choice is recorded in the file.
- fp16: float16 weights and activations, float32 kept at the inputs/outputs and in the operators where
  fp16 loses what matters (normalisations, softmax, reductions, exp/log/pow, NMS/TopK): ONNX Runtime's
  float16 converter with that block list.

Every file carries ``edge_quantization`` metadata (JSON): precision, target, quantizer and version, the
source's sha256 and, for int8, the calibration set's sha256 (image names and bytes, in order, and the
preprocessing), so a cache key or a reader can tell what it was made from. The same inputs give the
same bytes. Runs on Python 3.6+ (ONNX Runtime 1.10+); onnx and onnxruntime are imported lazily.
"""

import json
import logging
import os
import re
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

from edge.config import EdgeConfig
from edge.errors import EdgeError, MissingDependency

PathLike = Union[str, Path]
PRECISIONS = ("fp16", "int8")
TARGETS = ("tensorrt", "cpu")
QUANTIZERS = ("auto", "onnxruntime", "modelopt")
CALIB_METHODS = ("minmax", "entropy", "percentile")
MAX_CALIB_IMAGES = 500
METADATA_KEY = "edge_quantization"
MIN_ORT_QUANTIZE = (1, 13)  # older quantizers write wrong files (see _require_onnxruntime_tools)
MIN_OPSET = 13  # per-channel DequantizeLinear (its axis attribute) needs opset 13
TENSORRT_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
# fp16 keeps float32 here: the sums, exponentials and normalisations that overflow or lose their small
# terms in a 10-bit mantissa, and the selection operators whose ties flip.
KEEP_FLOAT32 = ("Softmax", "LogSoftmax", "LayerNormalization", "InstanceNormalization", "GroupNormalization",
                "BatchNormalization", "LpNormalization", "MeanVarianceNormalization", "ReduceMean", "ReduceSum",
                "ReduceSumSquare", "ReduceL2", "ReduceLogSumExp", "Exp", "Log", "Pow", "NonMaxSuppression",
                "TopK")
Report = Callable[[str], None]


@dataclass(frozen=True)
class QuantizeOptions:
    """What to make. calib_images: folder of images like the ones the model will see (int8 only);
    calib_count: how many of them, in natural order (None: all, up to 500; more asked than there are is an
    error); config: the model's edge config (None: the one embedded in the ONNX)."""

    precision: str
    target: str = "tensorrt"
    calib_images: Optional[Path] = None
    calib_count: Optional[int] = None
    calib_method: str = "minmax"
    quantizer: str = "auto"
    config: Optional[EdgeConfig] = None


@dataclass
class Quantized:
    """A written file, what it is (the provenance stored in it) and notes for the report."""

    path: Path
    provenance: Dict[str, Any]
    notes: List[str] = field(default_factory=list)


def _q(report: Optional[Report], line: str) -> None:
    if report is not None:
        report(line)


def check_options(options: QuantizeOptions) -> None:
    """One-line errors for options that cannot work, before any model is read."""
    if options.precision not in PRECISIONS:
        raise EdgeError(f"unknown precision '{options.precision}'", fix="use fp16 or int8", where="--precision")
    if options.target not in TARGETS:
        raise EdgeError(f"unknown target '{options.target}'", fix="use tensorrt or cpu", where="--target")
    if options.quantizer not in QUANTIZERS:
        raise EdgeError(f"unknown quantizer '{options.quantizer}'", fix="use auto, onnxruntime or modelopt",
                        where="--quantizer")
    if options.calib_method not in CALIB_METHODS:
        raise EdgeError(f"unknown calibration method '{options.calib_method}'",
                        fix="use minmax, entropy or percentile", where="--calib-method")
    if options.precision == "fp16":
        return
    if options.calib_images is None:
        raise EdgeError("int8 needs calibration images", fix="pass --calib-images FOLDER with a few hundred images "
                        "like the ones the model will see (e.g. frames saved from the camera)", where="--calib-images")
    if options.calib_count is not None and options.calib_count < 1:
        raise EdgeError(f"--calib-count must be at least 1, got {options.calib_count}", fix="e.g. --calib-count 200",
                        where="--calib-count")
    if options.quantizer == "modelopt" and options.target != "tensorrt":
        raise EdgeError("NVIDIA ModelOpt places Q/DQ for TensorRT only", fix="use --target tensorrt, or "
                        "--quantizer onnxruntime for the cpu target", where="--quantizer")


# --- what a file is ---------------------------------------------------------------------------------------------

def read_provenance(path: PathLike) -> Optional[Dict[str, Any]]:
    """The ``edge_quantization`` metadata of an ONNX file written here, or None."""
    from edge.onnxfile import read_onnx

    text = read_onnx(path).metadata.get(METADATA_KEY)
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def graph_precision(model: Any) -> str:
    """int8 when the graph has Q/DQ nodes, fp16 when it computes in float16, else fp32."""
    ops = {node.op_type for node in model.graph.node}
    if {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul"} & ops:
        return "int8"
    float16 = 10
    if any(t.data_type == float16 for t in model.graph.initializer) or any(
            v.type.tensor_type.elem_type == float16 for v in list(model.graph.input) + list(model.graph.value_info)):
        return "fp16"
    return "fp32"


def file_precision(path: PathLike) -> str:
    """The precision an ONNX file computes in (its provenance, else its graph): fp32, fp16 or int8."""
    provenance = read_provenance(path)
    if provenance and provenance.get("precision") in PRECISIONS:
        return str(provenance["precision"])
    from edge.onnxfile import load_onnx

    return graph_precision(load_onnx(path))


def sibling_path(source: PathLike, precision: str) -> Path:
    """Where ``edge-export quantize`` writes by default: ``face.onnx`` -> ``face.int8.onnx``."""
    source = Path(source)
    return source.with_name(f"{source.stem}.{precision}.onnx")


def sha256_file(path: PathLike) -> str:
    """sha256 of a file's bytes, read in blocks."""
    import hashlib

    digest = hashlib.sha256()
    with open(str(path), "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- calibration ----------------------------------------------------------------------------------------------

@dataclass
class CalibrationSet:
    """The images that calibrate, in order, and the sha256 over their names, bytes and preprocessing."""

    paths: List[Path]
    sha256: str
    config: EdgeConfig
    batch: int = 1

    def batches(self) -> Iterator[np.ndarray]:
        """Preprocessed batches (batch images each; a last partial batch is dropped), decoded one at a time;
        an image that does not decode is a one-line error naming it."""
        from edge.cv import require_cv2
        from edge.preprocess import Preprocessor

        cv2 = require_cv2("int8 calibration")
        preprocess = Preprocessor.from_config(self.config)
        pending: List[np.ndarray] = []
        for path in self.paths:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None or image.size == 0:
                raise EdgeError("a calibration image does not decode", fix="remove or replace it (OpenCV cannot "
                                "read it: truncated, or not an image)", where=str(path))
            tensor, _ = preprocess(image)
            pending.append(np.array(tensor[0], copy=True))
            if len(pending) == self.batch:
                yield np.stack(pending)
                pending = []


def calibration_set(folder: PathLike, count: Optional[int], config: EdgeConfig, batch: int = 1) -> CalibrationSet:
    """The calibration images of ``folder`` (natural order, ``count`` of them or all up to 500)."""
    from edge.tensorrt.cache import calibration_set_sha256
    from edge.tensorrt.calibrator import calibration_images

    limit = MAX_CALIB_IMAGES if count is None else int(count)
    paths = calibration_images(folder, max(limit, 1))
    if count is not None and len(paths) < count:
        raise EdgeError(f"{len(paths)} images in the calibration folder, fewer than the {count} asked",
                        fix=f"add images, or pass --calib-count {len(paths)}", where=str(folder))
    if len(paths) < batch:
        raise EdgeError(f"{len(paths)} calibration images, fewer than one batch of {batch} (the model's fixed batch)",
                        fix="add images", where=str(folder))

    class _Set:
        images, max_images = Path(folder), limit

    _Set.config = config  # type: ignore[attr-defined]
    return CalibrationSet(paths, str(calibration_set_sha256(_Set)), config, batch)


# --- the steps ------------------------------------------------------------------------------------------------

def _opset(model: Any) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def prepare(model: Any, notes: List[str]) -> Any:
    """The graph a quantizer can work on: opset >= 13 (per-channel Q/DQ), IR >= 7, initializers no longer
    listed as graph inputs (IR 3 files list them), unused inputs and initializers dropped."""
    import onnx
    from onnx import version_converter

    opset = _opset(model)
    if opset < MIN_OPSET:
        try:
            model = version_converter.convert_version(model, MIN_OPSET)
        except Exception as exc:  # noqa: BLE001 - the converter raises bare errors with C++ messages
            raise EdgeError(f"cannot raise the model from opset {opset} to {MIN_OPSET} for per-channel Q/DQ "
                            f"({str(exc).splitlines()[0][:200]})", fix="re-export the model at opset 13 or newer "
                            "(edge-export onnx ... --opset 17)") from None
        notes.append(f"opset raised from {opset} to {MIN_OPSET} (per-channel Q/DQ needs it)")
    model.ir_version = max(int(model.ir_version), 7)
    used = {name for node in model.graph.node for name in node.input}
    used |= {o.name for o in model.graph.output}
    kept = [t for t in model.graph.initializer if t.name in used]
    weights = {t.name for t in kept}
    inputs = [v for v in model.graph.input if v.name not in weights and v.name in used]
    dropped = [v.name for v in model.graph.input if v.name not in weights and v.name not in used]
    if len(kept) != len(model.graph.initializer):
        _replace(model.graph.initializer, kept)
    if len(inputs) != len(model.graph.input):
        _replace(model.graph.input, inputs)
    if dropped:
        notes.append(f"unused graph input dropped: {', '.join(dropped)}")
    onnx.checker.check_model(model)
    return model


def _replace(repeated: Any, items: List[Any]) -> None:
    copies = [type(item)() for item in items]
    for copy_, item in zip(copies, items):
        copy_.CopyFrom(item)
    del repeated[:]
    repeated.extend(copies)


@contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """Quantizers log every step at INFO (and modelopt an ERROR for a missing GPU): keep them at WARNING."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL if lg.name.startswith("modelopt") else logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _require_onnxruntime_tools(what: str, quantization: bool = True) -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise MissingDependency("onnxruntime", what, "pip install onnxruntime") from None
    if not quantization:
        return onnxruntime
    version = tuple(int(p) for p in re.findall(r"\d+", str(onnxruntime.__version__))[:2])
    if version < MIN_ORT_QUANTIZE:
        raise EdgeError(f"ONNX Runtime {onnxruntime.__version__}'s quantizer writes wrong int8 files (checked: the "
                        "face detector quantized by 1.10 for the CPU finds 22 faces where fp32 finds one; 1.10 runs "
                        "a file quantized by 1.13+ correctly)",
                        fix="quantize on a machine with ONNX Runtime >= 1.13 (edge-export quantize MODEL.onnx "
                        "--precision int8 --calib-images DIR) and copy the MODEL.int8.onnx it writes beside the model")
    try:
        from onnxruntime import quantization  # noqa: F401
    except ImportError as exc:  # ONNX Runtime 1.10's tools import six, which its wheel does not require
        missing = getattr(exc, "name", None) or "onnxruntime.quantization"
        raise MissingDependency(missing, f"{what} (ONNX Runtime {onnxruntime.__version__}'s quantization tools)",
                                f"pip install {missing}" if missing != "onnxruntime.quantization"
                                else "pip install -U onnxruntime") from None
    return onnxruntime


def choose_quantizer(options: QuantizeOptions) -> str:
    """onnxruntime or modelopt: modelopt only for target tensorrt, and for auto only when it is installed."""
    if options.quantizer != "auto":
        if options.quantizer == "modelopt" and not _modelopt_installed():
            raise MissingDependency("nvidia-modelopt", "--quantizer modelopt",
                                    "pip install 'nvidia-modelopt[onnx]', or use --quantizer onnxruntime")
        return options.quantizer
    if options.target == "tensorrt" and _modelopt_installed():
        return "modelopt"
    return "onnxruntime"


def _modelopt_installed() -> bool:
    """Found without importing it: importing modelopt.onnx patches ONNX Runtime's quantization classes for the
    rest of the process (ONNX Runtime's own quantize_static then fails), so it is imported only to be used."""
    from edge.settings import modelopt_disabled

    if modelopt_disabled():  # lets tests (and users) pick ONNX Runtime's tools with modelopt present
        return False
    import importlib.util

    try:
        return importlib.util.find_spec("modelopt") is not None and importlib.util.find_spec("onnx_graphsurgeon") \
            is not None
    except (ImportError, ValueError):
        return False


# Operators that carry a head's values to the graph outputs unchanged in meaning (layout, joins, activations).
_PASSTHROUGH = ("Reshape", "Transpose", "Concat", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Softmax",
                "Sigmoid", "Split", "Slice", "Gather", "Cast", "Add", "Mul", "Relu", "Clip", "Tanh")


def head_nodes(model: Any) -> List[str]:
    """The compute nodes (Conv/ConvTranspose/Gemm/MatMul) whose outputs reach a graph output through only
    layout, join and activation operators (the heads), and those operators. They stay float: their outputs
    are the raw scores and box offsets, and one int8 step over a range of logits spanning tens of units
    moves a near-threshold score onto the threshold (seen: the face detector's background anchors at
    exactly 0.5)."""
    producer = {o: node for node in model.graph.node for o in node.output}
    heads: List[str] = []
    seen = set()
    stack = [o.name for o in model.graph.output]
    while stack:
        name = stack.pop()
        node = producer.get(name)
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if node.op_type in TENSORRT_OPS:
            heads.append(node.name)
        elif node.op_type in _PASSTHROUGH:
            heads.append(node.name)  # between a head and an output: quantizing it would re-quantize the scores
            stack.extend(i for i in node.input if i in producer)
    return sorted(set(heads))


def _onnxruntime_int8(prepared: Path, output: Path, calib: CalibrationSet, options: QuantizeOptions,
                      input_name: str, notes: List[str]) -> Dict[str, Any]:
    ort = _require_onnxruntime_tools("int8 quantization")
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    methods = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
    method = getattr(CalibrationMethod, methods[options.calib_method], None)
    if method is None:
        raise EdgeError(f"ONNX Runtime {ort.__version__} has no {options.calib_method} calibration",
                        fix="use --calib-method minmax", where="--calib-method")
    tensorrt = options.target == "tensorrt"
    extra = {"ActivationSymmetric": tensorrt, "WeightSymmetric": True}
    if tensorrt:
        extra["QuantizeBias"] = False  # TensorRT dequantizes only int8 tensors; it adds the float bias itself

    class Reader(CalibrationDataReader):
        """ONNX Runtime's calibration protocol over the calibration set."""

        def __init__(self) -> None:
            self.fed = 0
            self._batches = iter(calib.batches())

        def get_next(self) -> Optional[Dict[str, np.ndarray]]:
            batch = next(self._batches, None)
            if batch is None:
                return None
            self.fed += len(batch)
            return {input_name: batch}

        def rewind(self) -> None:
            self._batches = iter(calib.batches())

    reader = Reader()
    import onnx

    heads = head_nodes(onnx.load(str(prepared)))
    if heads:
        notes.append(f"kept in float: the {len(heads)} nodes from the heads to the outputs")
    kwargs = dict(quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=False,
                  activation_type=QuantType.QInt8 if tensorrt else QuantType.QUInt8, weight_type=QuantType.QInt8,
                  op_types_to_quantize=list(TENSORRT_OPS) if tensorrt else None, calibrate_method=method,
                  nodes_to_exclude=heads,
                  extra_options=extra)
    with _quiet("root", "onnxruntime"), _chdir_scratch():
        quantize_static(str(prepared), str(output), reader, **kwargs)
    if reader.fed == 0:
        raise EdgeError("no calibration batch was read", fix="add images", where=str(options.calib_images))
    return {"quantizer": "onnxruntime", "quantizer_version": str(ort.__version__),
            "activations": "int8 symmetric" if tensorrt else "uint8 asymmetric",
            "weights": "int8 symmetric per channel", "operators": list(TENSORRT_OPS) if tensorrt else "all with "
            "int8 kernels", "float_heads": heads}


def _modelopt_int8(prepared: Path, output: Path, calib: CalibrationSet, options: QuantizeOptions,
                   input_name: str, notes: List[str]) -> Dict[str, Any]:
    try:
        import modelopt
        from modelopt.onnx.quantization import quantize
    except Exception as exc:  # noqa: BLE001 - installed but broken (its CUDA or onnx pieces): say which
        raise EdgeError(f"NVIDIA ModelOpt is installed but does not import ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:160] if str(exc) else ''})",
                        fix="reinstall it (pip install -U 'nvidia-modelopt[onnx]') or use --quantizer onnxruntime",
                        where="--quantizer") from None
    data = np.concatenate(list(calib.batches()))
    method = {"minmax": "max", "entropy": "entropy"}.get(options.calib_method)
    if method is None:
        raise EdgeError("NVIDIA ModelOpt calibrates with max or entropy", fix="use --calib-method minmax or "
                        "entropy, or --quantizer onnxruntime", where="--calib-method")
    import inspect

    # high_precision_dtype fp32: modelopt's default (fp16) makes a file ONNX Runtime's CPU runs in casts.
    kwargs = dict(quantize_mode="int8", calibration_data={input_name: data}, calibration_method=method,
                  calibration_eps=["cpu"], high_precision_dtype="fp32", output_path=str(output))
    if "log_level" in inspect.signature(quantize).parameters:  # it logs each step, and a missing GPU as ERROR
        kwargs["log_level"] = "CRITICAL"
    with _quiet("modelopt", "modelopt.onnx", "root"), _chdir_scratch():
        quantize(str(prepared), **kwargs)
    import onnx

    opset = _opset(onnx.load(str(output), load_external_data=False))
    if opset > 17:
        notes.append(f"ModelOpt wrote opset {opset}: TensorRT 10 and 11 parse it, 8.x (JetPack 4.6/5) does not; "
                     "there, build the float32 file with --precision int8 --calib-images (the builder flags)")
    return {"quantizer": "modelopt", "quantizer_version": str(getattr(modelopt, "__version__", "unknown")),
            "activations": "int8 symmetric", "weights": "int8 symmetric per channel",
            "operators": "ModelOpt's TensorRT placement"}


@contextmanager
def _chdir_scratch() -> Iterator[None]:
    """Quantizers drop augmented models and caches in the working folder: run them in a scratch one."""
    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="edge-quantize-") as scratch:
        os.chdir(scratch)
        try:
            yield
        finally:
            os.chdir(here)


def _fp16(model: Any, notes: List[str]) -> Any:
    _require_onnxruntime_tools("fp16 conversion", quantization=False)
    try:
        from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16
    except ImportError:
        raise MissingDependency("onnxruntime.transformers", "fp16 conversion", "pip install -U onnxruntime") from None
    import warnings

    block = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(KEEP_FLOAT32))
    kept = sorted({n.op_type for n in model.graph.node} & set(KEEP_FLOAT32))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        converted = convert_float_to_float16(model, keep_io_types=True, op_block_list=block)
    clipped = [str(w.message) for w in caught if "truncated" in str(w.message) or "clip" in str(w.message).lower()]
    if clipped:
        notes.append("some float32 weights lie outside float16's range and were clipped (" + clipped[0][:120] + ")")
    if kept:
        notes.append("kept in float32: " + ", ".join(kept))
    _sort_nodes(converted.graph)
    return converted


def _sort_nodes(graph: Any) -> None:
    """Put the nodes in topological order, keeping the original order among ready nodes (the float16
    converter appends the Casts of graph inputs after the nodes that read them)."""
    produced = {o for node in graph.node for o in node.output}
    ready = {v.name for v in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        rest = []
        for node in pending:
            if all(name in ready or name not in produced for name in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):  # a cycle: leave the graph as it was for the checker to name
            return
        pending = rest
    _replace(graph.node, ordered)


def _input_batch(model: Any) -> Tuple[str, int]:
    weights = {t.name for t in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in weights]
    if len(inputs) != 1:
        raise EdgeError(f"int8 calibration from images feeds one input, the model has {len(inputs)} "
                        f"({', '.join(v.name for v in inputs)})", fix="quantize multi-input models with NVIDIA "
                        "ModelOpt and your own calibration data")
    dims = inputs[0].type.tensor_type.shape.dim
    batch = dims[0].dim_value if dims and dims[0].HasField("dim_value") and dims[0].dim_value > 0 else 1
    return inputs[0].name, int(batch)


def quantize_file(source: PathLike, output: PathLike, options: QuantizeOptions,
                  report: Optional[Report] = None) -> Quantized:
    """Write ``source`` at ``options.precision`` to ``output`` (atomically; nothing is written on error)."""
    from edge.onnxfile import OnnxInfo, canonicalize, load_onnx, save_atomic, write_metadata

    check_options(options)
    source, output = Path(source), Path(output)
    model = load_onnx(source)
    where = str(source)
    before = graph_precision(model)
    if before != "fp32":
        raise EdgeError(f"the model is already {before}", fix="quantize the float32 model it was made from",
                        where=where)
    metadata = {p.key: p.value for p in model.metadata_props}
    config = options.config
    if config is None and options.precision == "int8":
        embedded = OnnxInfo(source, (), (), metadata, 0).embedded_config()
        if embedded is None:
            raise EdgeError("int8 calibration needs the model's preprocessing (its edge config)",
                            fix="embed one first (edge-export onnx MODEL.onnx --config edge.json) or pass --config",
                            where=where)
        config = EdgeConfig.from_dict(embedded, where=where)
    notes: List[str] = []
    provenance: Dict[str, Any] = {"precision": options.precision, "source": source.name,
                                  "source_sha256": sha256_file(source)}
    from onnx.external_data_helper import load_external_data_for_model, uses_external_data

    if any(uses_external_data(t) for t in model.graph.initializer):
        load_external_data_for_model(model, str(source.resolve().parent))
    with tempfile.TemporaryDirectory(prefix="edge-quantize-") as scratch:
        staged = Path(scratch) / "quantized.onnx"
        if options.precision == "fp16":
            provenance.update(target="tensorrt and cpu", quantizer="onnxruntime float16 converter",
                              quantizer_version=str(_require_onnxruntime_tools("fp16 conversion", False).__version__),
                              float32_kept=sorted(KEEP_FLOAT32), io="float32")
            result = _fp16(model, notes)
        else:
            assert config is not None
            result = _int8(model, Path(scratch), options, config, provenance, notes, report)
        canonicalize(result)
        write_metadata(result, dict(metadata))
        write_metadata(result, {METADATA_KEY: json.dumps(provenance, sort_keys=True)})
        import onnx

        try:
            onnx.checker.check_model(result)
        except onnx.checker.ValidationError as exc:
            raise EdgeError(f"the {options.precision} model fails onnx.checker ({str(exc).splitlines()[0][:200]})",
                            fix="report this with the model; try --quantizer onnxruntime", where=where) from None
        save_atomic(result, staged)
        from edge.files import replace_file

        replace_file(staged, output)
    return Quantized(output, provenance, notes)


def _prune_opsets(model: Any) -> None:
    """Drop opset imports of domains no node uses: ONNX Runtime's optimizer adds every domain it knows
    (ai.onnx.ml 5, com.microsoft.nchwc, ...), and an older runtime refuses a file naming one it does not."""
    used = {node.domain or "" for node in model.graph.node}
    kept = [o for o in model.opset_import if (o.domain or "") in used or o.domain in ("", "ai.onnx")]
    if len(kept) != len(model.opset_import):
        _replace(model.opset_import, kept)


def _float_biases(model: Any, notes: List[str]) -> None:
    """Fold DequantizeLinear nodes of constant int32 tensors (quantized biases) into float initializers:
    TensorRT dequantizes only int8 (its parser refuses an INT32 input), and ONNX Runtime before 1.13 ignores
    the QuantizeBias=False option."""
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    folded, kept_nodes, new_inits = 0, [], []
    for node in model.graph.node:
        x = inits.get(node.input[0]) if node.op_type == "DequantizeLinear" and node.input else None
        if x is None or x.data_type != 6 or node.input[1] not in inits:  # 6: INT32
            kept_nodes.append(node)
            continue
        values = numpy_helper.to_array(x).astype(np.float64)
        scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float64)
        zero = numpy_helper.to_array(inits[node.input[2]]).astype(np.float64) if len(node.input) > 2 and \
            node.input[2] in inits else 0.0
        new_inits.append(numpy_helper.from_array(((values - zero) * scale).astype(np.float32), node.output[0]))
        folded += 1
    if not folded:
        return
    _replace(model.graph.node, kept_nodes)
    used = {name for node in kept_nodes for name in node.input}
    _replace(model.graph.initializer, [t for t in model.graph.initializer if t.name in used] + new_inits)
    notes.append(f"{folded} int32 bias DequantizeLinear folded back to float (TensorRT adds float biases itself)")


def _pre_process(prepared: Path, optimized: Path, notes: List[str]) -> Path:
    """ONNX Runtime's preparation for quantization: shape inference and its basic graph optimizations
    (Conv+BatchNorm folding, constant folding; standard operators only). quant_pre_process where it exists
    (ONNX Runtime 1.13+), else the same basic optimizations through a session and onnx's shape inference."""
    _require_onnxruntime_tools("int8 quantization")
    try:
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        return _basic_optimizations(prepared, optimized, notes)
    try:
        with _quiet("root", "onnxruntime"):
            quant_pre_process(str(prepared), str(optimized), skip_symbolic_shape=False)
    except Exception:  # noqa: BLE001 - symbolic shape inference gives up on some graphs; ONNX's is enough
        with _quiet("root", "onnxruntime"):
            quant_pre_process(str(prepared), str(optimized), skip_symbolic_shape=True)
    return optimized


def _basic_optimizations(prepared: Path, optimized: Path, notes: List[str]) -> Path:
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(optimized)
    options.log_severity_level = 3
    ort.InferenceSession(str(prepared), options, providers=["CPUExecutionProvider"])
    model = onnx.shape_inference.infer_shapes(onnx.load(str(optimized)))
    onnx.save(model, str(optimized))
    notes.append(f"ONNX Runtime {ort.__version__} has no quant_pre_process: prepared with its basic graph "
                 "optimizations and onnx's shape inference")
    return optimized


def _int8(model: Any, scratch: Path, options: QuantizeOptions, config: EdgeConfig, provenance: Dict[str, Any],
          notes: List[str], report: Optional[Report]) -> Any:
    import onnx

    quantizer = choose_quantizer(options)
    prepared_model = prepare(model, notes)
    input_name, batch = _input_batch(prepared_model)
    calib = calibration_set(options.calib_images, options.calib_count, config, batch)
    _q(report, f"calibrating on {len(calib.paths)} images from {options.calib_images} ({options.calib_method}, "
               f"{quantizer}, target {options.target})")
    prepared = scratch / "prepared.onnx"
    onnx.save(prepared_model, str(prepared))
    if quantizer == "onnxruntime":
        prepared = _pre_process(prepared, scratch / "optimized.onnx", notes)
    out = scratch / "int8.onnx"
    how = (_onnxruntime_int8 if quantizer == "onnxruntime" else _modelopt_int8)(
        prepared, out, calib, options, input_name, notes)
    provenance.update(how)
    provenance.update(target=options.target, calibration={
        "images": len(calib.paths), "sha256": calib.sha256, "method": options.calib_method,
        "preprocessing": "the model's edge config"})
    quantized = onnx.load(str(out))
    if options.target == "tensorrt":
        _float_biases(quantized, notes)
    _prune_opsets(quantized)
    nodes = [n.op_type for n in quantized.graph.node]
    notes.append(f"{nodes.count('QuantizeLinear')} QuantizeLinear / {nodes.count('DequantizeLinear')} "
                 f"DequantizeLinear nodes, opset {_opset(quantized)}")
    return quantized


def quantized_for(source: PathLike, options: QuantizeOptions, folder: PathLike,
                  report: Optional[Report] = None) -> Path:
    """A cached quantized copy of ``source`` in ``folder``, made once per (source bytes, options, calibration
    set) and reused after: for backends asked for a precision the file does not have."""
    import hashlib

    check_options(options)
    parts = [sha256_file(source), options.precision, options.target, options.calib_method, options.quantizer]
    if options.precision == "int8":
        from edge.tensorrt.cache import calibration_set_sha256

        class _Set:
            images, max_images = options.calib_images, options.calib_count or MAX_CALIB_IMAGES
            config = options.config

        parts.append(str(calibration_set_sha256(_Set)))
    key = hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:20]
    target = Path(folder) / f"{Path(source).stem}.{options.precision}.{key}.onnx"
    if target.is_file():
        _q(report, f"{options.precision} model: cached {target}")
        return target
    _require_onnxruntime_tools(f"{options.precision} conversion", quantization=options.precision == "int8")
    Path(folder).mkdir(parents=True, exist_ok=True)
    _q(report, f"{options.precision} model: quantizing {Path(source).name} (once; cached in {folder})")
    quantize_file(source, target, options, report)
    return target
