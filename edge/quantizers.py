"""The quantizers behind edge.quantize: ONNX Runtime's tools (quantize_static, QDQ; its preparation step;
the float16 converter) and NVIDIA ModelOpt, each quiet, in a scratch folder, with one-line errors."""

import logging
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import numpy as np

from edge.errors import EdgeError, MissingDependency
from edge.qdq_graph import TENSORRT_OPS, head_nodes, opset_of, sort_nodes

MIN_ORT_QUANTIZE = (1, 13)  # older quantizers write wrong files (see require_onnxruntime_tools)
# fp16 keeps float32 here: the sums, exponentials and normalisations that overflow or lose their small
# terms in a 10-bit mantissa, and the selection operators whose ties flip.
KEEP_FLOAT32 = ("Softmax", "LogSoftmax", "LayerNormalization", "InstanceNormalization", "GroupNormalization",
                "BatchNormalization", "LpNormalization", "MeanVarianceNormalization", "ReduceMean", "ReduceSum",
                "ReduceSumSquare", "ReduceL2", "ReduceLogSumExp", "Exp", "Log", "Pow", "NonMaxSuppression",
                "TopK")


@contextmanager
def quiet(*names: str) -> Iterator[None]:
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


def require_onnxruntime_tools(what: str, quantization: bool = True) -> Any:
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


def onnxruntime_int8(prepared: Path, output: Path, calib: Any, options: Any,
                      input_name: str, notes: List[str]) -> Dict[str, Any]:
    ort = require_onnxruntime_tools("int8 quantization")
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
    with quiet("root", "onnxruntime"), chdir_scratch():
        quantize_static(str(prepared), str(output), reader, **kwargs)
    if reader.fed == 0:
        raise EdgeError("no calibration batch was read", fix="add images", where=str(options.calib_images))
    return {"quantizer": "onnxruntime", "quantizer_version": str(ort.__version__),
            "activations": "int8 symmetric" if tensorrt else "uint8 asymmetric",
            "weights": "int8 symmetric per channel", "operators": list(TENSORRT_OPS) if tensorrt else "all with "
            "int8 kernels", "float_heads": heads}


def modelopt_int8(prepared: Path, output: Path, calib: Any, options: Any,
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
    with quiet("modelopt", "modelopt.onnx", "root"), chdir_scratch():
        quantize(str(prepared), **kwargs)
    import onnx

    opset = opset_of(onnx.load(str(output), load_external_data=False))
    if opset > 17:
        notes.append(f"ModelOpt wrote opset {opset}: TensorRT 10 and 11 parse it, 8.x (JetPack 4.6/5) does not; "
                     "there, build the float32 file with --precision int8 --calib-images (the builder flags)")
    return {"quantizer": "modelopt", "quantizer_version": str(getattr(modelopt, "__version__", "unknown")),
            "activations": "int8 symmetric", "weights": "int8 symmetric per channel",
            "operators": "ModelOpt's TensorRT placement"}


@contextmanager
def chdir_scratch() -> Iterator[None]:
    """Quantizers drop augmented models and caches in the working folder: run them in a scratch one."""
    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="edge-quantize-") as scratch:
        os.chdir(scratch)
        try:
            yield
        finally:
            os.chdir(here)


def fp16_model(model: Any, notes: List[str]) -> Any:
    require_onnxruntime_tools("fp16 conversion", quantization=False)
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
    sort_nodes(converted.graph)
    return converted


def pre_process(prepared: Path, optimized: Path, notes: List[str]) -> Path:
    """ONNX Runtime's preparation for quantization: shape inference and its basic graph optimizations
    (Conv+BatchNorm folding, constant folding; standard operators only). quant_pre_process where it exists
    (ONNX Runtime 1.13+), else the same basic optimizations through a session and onnx's shape inference."""
    require_onnxruntime_tools("int8 quantization")
    try:
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        return basic_optimizations(prepared, optimized, notes)
    try:
        with quiet("root", "onnxruntime"):
            quant_pre_process(str(prepared), str(optimized), skip_symbolic_shape=False)
    except Exception:  # noqa: BLE001 - symbolic shape inference gives up on some graphs; ONNX's is enough
        with quiet("root", "onnxruntime"):
            quant_pre_process(str(prepared), str(optimized), skip_symbolic_shape=True)
    return optimized


def basic_optimizations(prepared: Path, optimized: Path, notes: List[str]) -> Path:
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
