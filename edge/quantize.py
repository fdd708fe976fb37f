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

This module is the API and the order of the steps; edge/qdq_graph.py does the graph surgery (preparation,
the heads that stay float, clean-up) and edge/quantizers.py runs the quantizers.
"""

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Union

import numpy as np

from edge.config import EdgeConfig
from edge.errors import EdgeError, MissingDependency
from edge.qdq_graph import (
    MIN_OPSET,
    TENSORRT_OPS,
    float_biases,
    head_nodes,
    input_batch,
    opset_of,
    prepare,
    prune_opsets,
)
from edge.quantizers import (
    KEEP_FLOAT32,
    MIN_ORT_QUANTIZE,
    fp16_model,
    modelopt_int8,
    onnxruntime_int8,
    pre_process,
    require_onnxruntime_tools,
)

__all__ = ["PRECISIONS", "TARGETS", "QUANTIZERS", "CALIB_METHODS", "MAX_CALIB_IMAGES", "METADATA_KEY", "MIN_OPSET",
           "MIN_ORT_QUANTIZE", "TENSORRT_OPS", "KEEP_FLOAT32", "QuantizeOptions", "Quantized", "CalibrationSet",
           "check_options", "read_provenance", "graph_precision", "file_precision", "sibling_path", "sha256_file",
           "calibration_set", "choose_quantizer", "head_nodes", "quantize_file", "quantized_for"]

PathLike = Union[str, Path]
PRECISIONS = ("fp16", "int8")
TARGETS = ("tensorrt", "cpu")
QUANTIZERS = ("auto", "onnxruntime", "modelopt")
CALIB_METHODS = ("minmax", "entropy", "percentile")
MAX_CALIB_IMAGES = 500
METADATA_KEY = "edge_quantization"
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
                              quantizer_version=str(require_onnxruntime_tools("fp16 conversion", False).__version__),
                              float32_kept=sorted(KEEP_FLOAT32), io="float32")
            result = fp16_model(model, notes)
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


def _int8(model: Any, scratch: Path, options: QuantizeOptions, config: EdgeConfig, provenance: Dict[str, Any],
          notes: List[str], report: Optional[Report]) -> Any:
    import onnx

    quantizer = choose_quantizer(options)
    prepared_model = prepare(model, notes)
    input_name, batch = input_batch(prepared_model)
    calib = calibration_set(options.calib_images, options.calib_count, config, batch)
    _q(report, f"calibrating on {len(calib.paths)} images from {options.calib_images} ({options.calib_method}, "
               f"{quantizer}, target {options.target})")
    prepared = scratch / "prepared.onnx"
    onnx.save(prepared_model, str(prepared))
    if quantizer == "onnxruntime":
        prepared = pre_process(prepared, scratch / "optimized.onnx", notes)
    out = scratch / "int8.onnx"
    how = (onnxruntime_int8 if quantizer == "onnxruntime" else modelopt_int8)(
        prepared, out, calib, options, input_name, notes)
    provenance.update(how)
    provenance.update(target=options.target, calibration={
        "images": len(calib.paths), "sha256": calib.sha256, "method": options.calib_method,
        "preprocessing": "the model's edge config"})
    quantized = onnx.load(str(out))
    if options.target == "tensorrt":
        float_biases(quantized, notes)
    prune_opsets(quantized)
    nodes = [n.op_type for n in quantized.graph.node]
    notes.append(f"{nodes.count('QuantizeLinear')} QuantizeLinear / {nodes.count('DequantizeLinear')} "
                 f"DequantizeLinear nodes, opset {opset_of(quantized)}")
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
    require_onnxruntime_tools(f"{options.precision} conversion", quantization=options.precision == "int8")
    Path(folder).mkdir(parents=True, exist_ok=True)
    _q(report, f"{options.precision} model: quantizing {Path(source).name} (once; cached in {folder})")
    quantize_file(source, target, options, report)
    return target
