"""Show what a model file is: I/O tensors, operators, size, an estimate of its FLOPs, edge config, provenance.

For an ONNX file: inputs and outputs, opset and IR version, producer, operator counts,
parameters (initializers), a FLOP estimate from ONNX shape inference, the embedded edge
config and the file's sha256. For a TensorRT plan (.plan, .engine, .trt): the sidecar JSON
written by the engine builder (edge config + build provenance), and the plan's I/O tensors
when TensorRT is installed here.

Examples:
  edge-export inspect model.onnx
  edge-export inspect model.plan --json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from edge.config import METADATA_KEY, EdgeConfig, load_json
from edge.errors import EdgeError
from edge.onnxfile import load_onnx, read_onnx
from edge.quantize import METADATA_KEY as QUANTIZATION_KEY

from ..tflite import sha256_file

HELP = "show a model's tensors, operators, parameters, FLOPs, edge config and provenance"
PLAN_SUFFIXES = (".plan", ".engine", ".trt")
NO_CONFIG = "none — add one with edge-export onnx MODEL --config edge.json"
CONFIG_KEYS = ("edge_config", "name", "task", "input", "preprocess", "outputs", "decoder", "labels")

# FLOP estimate: 1 per output element for these (activations, arithmetic, normalisation).
ELEMENTWISE = frozenset((
    "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Exp", "Log", "Abs", "Neg", "Reciprocal", "Max", "Min", "Sum",
    "Mean", "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Softplus",
    "Softsign", "Gelu", "Erf", "Mish", "Clip", "Sin", "Cos", "Floor", "Ceil", "Round", "Where", "Equal", "Less",
    "Greater", "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or", "BatchNormalization", "InstanceNormalization",
    "LayerNormalization", "Softmax", "LogSoftmax", "Dropout",
))
# 1 per input element (one accumulation each).
REDUCTIONS = frozenset(("GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin",
                        "ReduceProd", "ReduceL2", "ReduceL1", "ArgMax", "ArgMin"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``edge-export inspect``."""
    parser.add_argument("file", type=Path, help="an ONNX model, or a TensorRT plan (.plan/.engine/.trt)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def run(args: argparse.Namespace) -> int:
    """Inspect ``args.file`` and print the report."""
    report = inspect_file(args.file)
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


def inspect_file(path: Path) -> Dict[str, Any]:
    """The report for an ONNX file or a TensorRT plan, as a JSON-ready dict."""
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return inspect_onnx(path)
    if suffix in PLAN_SUFFIXES:
        return inspect_plan(path)
    raise EdgeError(f"cannot inspect '{suffix or path.name}' files",
                    fix="give an ONNX model (.onnx) or a TensorRT plan (" + ", ".join(PLAN_SUFFIXES) + ")",
                    where=str(path))


# ------------------------------------------------------------------------------------------- ONNX
def _config_section(data: Optional[Dict[str, Any]], where: str) -> Dict[str, Any]:
    """{"config": dict or None, "status": "valid" | "invalid: …" | NO_CONFIG}."""
    if data is None:
        return {"config": None, "status": NO_CONFIG}
    try:
        EdgeConfig.from_dict(data, where)
    except EdgeError as exc:
        return {"config": data, "status": f"invalid: {exc.what}"}
    return {"config": data, "status": "valid"}


def _derived_section(info: Any) -> Dict[str, Any]:
    """No embedded config: the one edge derives from Ultralytics / YOLOv5 metadata, as the runtime would."""
    from edge.autoconfig import derived_from, ultralytics_config
    from edge.model import complete_from_graph

    source = derived_from(info.metadata)
    if source is None:
        return {"config": None, "status": NO_CONFIG}
    try:
        data = complete_from_graph(ultralytics_config(info) or {}, info)
    except EdgeError as exc:
        return {"config": None, "status": f"none embedded; deriving one from {source} metadata fails: {exc.what}"}
    section = _config_section(data, str(info.path))
    section["status"] = f"derived from {source} metadata, none embedded; {section['status']}"
    return section


def inspect_onnx(path: Path) -> Dict[str, Any]:
    """Signature, operators, parameters, FLOP estimate, edge config and provenance of an ONNX file."""
    from onnx import helper

    model = load_onnx(path)
    info = read_onnx(path)
    try:
        embedded = info.embedded_config()
        config = _config_section(embedded, str(path)) if embedded is not None else _derived_section(info)
    except EdgeError as exc:
        config = {"config": None, "status": f"invalid: {exc.what}"}
    operators: Dict[str, int] = {}
    for node in model.graph.node:
        operators[node.op_type] = operators.get(node.op_type, 0) + 1
    count = nbytes = 0
    for init in model.graph.initializer:
        size = int(np.prod(init.dims, dtype=np.int64))
        count += size
        nbytes += size * np.dtype(helper.tensor_dtype_to_np_dtype(init.data_type)).itemsize
    return {
        "file": str(path), "format": "onnx", "ir_version": int(model.ir_version),
        "opset": {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import},
        "producer": " ".join(p for p in (model.producer_name, model.producer_version) if p) or "unknown",
        "inputs": [_tensor(t.name, t.shape, t.dtype.name) for t in info.inputs],
        "outputs": [_tensor(t.name, t.shape, t.dtype.name) for t in info.outputs],
        "operators": dict(sorted(operators.items(), key=lambda item: (-item[1], item[0]))),
        "parameters": {"count": count, "bytes": nbytes},
        "flops": estimate_flops(model),
        "edge_config": config["config"], "edge_config_status": config["status"],
        "precision": _precision(model, path),
        "provenance": {"sha256": sha256_file(path), "size_bytes": path.stat().st_size,
                       "metadata": {k: v for k, v in info.metadata.items()
                                    if k not in (METADATA_KEY, QUANTIZATION_KEY)}},
    }


def _precision(model: Any, path: Path) -> Dict[str, Any]:
    """What the file computes in, and how it was made when edge-export quantize wrote it."""
    from edge.quantize import graph_precision, read_provenance

    return {"computes_in": graph_precision(model), "quantization": read_provenance(path)}


def _precision_lines(report: Dict[str, Any]) -> List[str]:
    precision = report.get("precision") or {}
    made = precision.get("quantization")
    line = f"precision: {precision.get('computes_in', 'unknown')}"
    if not made:
        return [line]
    line += (f" (edge-export quantize: target {made.get('target')}, {made.get('quantizer')} "
             f"{made.get('quantizer_version')}, from {made.get('source')} sha256 "
             f"{str(made.get('source_sha256'))[:16]}...")
    calibration = made.get("calibration")
    if calibration:
        line += (f", calibrated on {calibration.get('images')} images ({calibration.get('method')}), set sha256 "
                 f"{str(calibration.get('sha256'))[:16]}...")
    return [line + ")"]


def _tensor(name: str, shape: Any, dtype: str) -> Dict[str, Any]:
    return {"name": name, "shape": list(shape), "dtype": dtype}


def _shapes(model: Any) -> Tuple[Dict[str, Tuple[int, ...]], bool]:
    """Shapes of every tensor that shape inference knows; dynamic dims count as 1 (flag returned)."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except (onnx.shape_inference.InferenceError, ValueError, RuntimeError):
        inferred = model
    shapes: Dict[str, Tuple[int, ...]] = {}
    dynamic = False
    graph = inferred.graph
    for value in list(graph.input) + list(graph.value_info) + list(graph.output):
        tensor_type = value.type.tensor_type
        if not tensor_type.HasField("shape"):
            continue
        dims = []
        for dim in tensor_type.shape.dim:
            dynamic = dynamic or not dim.HasField("dim_value")
            dims.append(int(dim.dim_value) if dim.HasField("dim_value") else 1)
        shapes[value.name] = tuple(dims)
    for init in graph.initializer:
        shapes[init.name] = tuple(int(d) for d in init.dims)
    return shapes, dynamic


def _node_flops(node: Any, shapes: Dict[str, Tuple[int, ...]]) -> Optional[int]:
    """FLOPs of one node (2 per multiply-accumulate), or None when its cost is not modelled or unknown."""
    def size(name: str) -> Optional[int]:
        shape = shapes.get(name)
        return None if shape is None else int(np.prod(shape, dtype=np.int64))

    op = node.op_type
    out = size(node.output[0]) if node.output else None
    if out is None:
        return None
    has_bias = len(node.input) > 2 and bool(node.input[2])
    if op in ("Conv", "ConvTranspose"):
        weight = shapes.get(node.input[1])
        # Conv: each output element sums Cin/group x kernel products. ConvTranspose (approximate):
        # each input element is scattered into Cout/group x kernel outputs.
        driver = out if op == "Conv" else size(node.input[0])
        if weight is None or driver is None:
            return None
        return 2 * driver * int(np.prod(weight[1:], dtype=np.int64)) + (out if has_bias else 0)
    if op in ("Gemm", "MatMul"):
        a = shapes.get(node.input[0])
        if not a:
            return None
        trans_a = any(attr.name == "transA" and attr.i for attr in node.attribute)
        depth = a[0] if (op == "Gemm" and trans_a) else a[-1]
        return 2 * out * depth + (out if op == "Gemm" and has_bias else 0)
    if op in ("MaxPool", "AveragePool", "LpPool"):
        kernel = next((list(attr.ints) for attr in node.attribute if attr.name == "kernel_shape"), None)
        return None if kernel is None else out * int(np.prod(kernel, dtype=np.int64))
    if op in REDUCTIONS:
        return size(node.input[0])
    if op in ELEMENTWISE:
        return out
    return None


def estimate_flops(model: Any) -> Dict[str, Any]:
    """An estimate of the FLOPs of one inference: per op type, total, and the ops not counted."""
    shapes, dynamic = _shapes(model)
    by_op: Dict[str, int] = {}
    not_counted: Dict[str, int] = {}
    for node in model.graph.node:
        flops = _node_flops(node, shapes)
        if flops is None:
            not_counted[node.op_type] = not_counted.get(node.op_type, 0) + 1
        else:
            by_op[node.op_type] = by_op.get(node.op_type, 0) + flops
    note = ("2 x MACs for Conv/ConvTranspose (approx.)/Gemm/MatMul plus bias adds, 1 per element for "
            "element-wise ops and reductions; data movement and unknown ops not counted")
    if dynamic:
        note += "; dynamic dimensions counted as 1"
    return {"total": sum(by_op.values()), "by_op": dict(sorted(by_op.items(), key=lambda item: -item[1])),
            "not_counted": dict(sorted(not_counted.items(), key=lambda item: (-item[1], item[0]))),
            "note": note}


# ------------------------------------------------------------------------------------------- plans
def plan_sidecar(path: Path) -> Optional[Path]:
    """The engine builder's sidecar for a plan: ``x.json`` beside ``x.plan`` (or ``x.plan.json``), if any."""
    for candidate in (path.with_suffix(".json"), path.with_name(path.name + ".json")):
        if candidate.is_file():
            return candidate
    return None


def inspect_plan(path: Path) -> Dict[str, Any]:
    """A TensorRT plan: its sidecar (config + build provenance) and, with TensorRT here, its I/O tensors."""
    if not path.is_file():
        raise EdgeError("engine file not found" if not path.exists() else "engine path is not a file",
                        fix="check the path (edge-export engine MODEL.onnx builds one)", where=str(path))
    report: Dict[str, Any] = {"file": str(path), "format": "tensorrt-plan",
                              "provenance": {"sha256": sha256_file(path), "size_bytes": path.stat().st_size}}
    sidecar = plan_sidecar(path)
    report["sidecar"] = None if sidecar is None else str(sidecar)
    if sidecar is None:
        report["sidecar_status"] = (f"none — {path.with_suffix('.json').name} not found, so the edge config and "
                                    "build provenance are unknown. Fix: rebuild with edge-export engine "
                                    "MODEL.onnx, which writes the sidecar, or copy it from the board that built it")
        report["edge_config"], report["edge_config_status"], report["build"] = None, NO_CONFIG, {}
    else:
        data = load_json(sidecar)
        nested = data.get("config", data.get("edge_config"))
        config = nested if isinstance(nested, dict) else {k: v for k, v in data.items() if k in CONFIG_KEYS} or None
        build = next((data[k] for k in ("provenance", "build") if isinstance(data.get(k), dict)), None)
        if build is None:
            build = {k: v for k, v in data.items() if k not in CONFIG_KEYS and k != "config"}
        report["sidecar_status"] = "found"
        section = _config_section(config, str(sidecar))
        report["edge_config"], report["edge_config_status"] = section["config"], section["status"]
        report["build"] = build
        expected = build.get("plan_sha256")
        if expected:
            report["sidecar_status"] = "found, plan sha256 " + (
                "matches" if expected == report["provenance"]["sha256"] else "DOES NOT MATCH: stale sidecar")
    report["tensors"], report["tensorrt"] = tensorrt_io(path)
    return report


def tensorrt_io(path: Path) -> Tuple[Optional[List[Dict[str, Any]]], str]:
    """The plan's I/O tensors read with TensorRT (named tensors from 8.5, binding indices on 8.2), or None and why
    not."""
    try:
        import tensorrt as trt
    except ImportError:
        return None, "not installed here, so the plan's own I/O tensors are not listed"
    try:  # untested off-board: needs TensorRT and a GPU
        runtime = trt.Runtime(trt.Logger(trt.Logger.ERROR))
        engine = runtime.deserialize_cuda_engine(path.read_bytes())
    except (RuntimeError, TypeError, ValueError) as exc:
        return None, f"TensorRT {trt.__version__} failed to read the plan ({exc})"
    if engine is None:
        return None, f"TensorRT {trt.__version__} cannot deserialize it (built by another TensorRT version or GPU?)"
    from edge.tensorrt.engine_io import engine_tensors

    return engine_tensors(trt, engine), f"read with TensorRT {trt.__version__}"


# ------------------------------------------------------------------------------------------- text
def _si(value: float, unit: str = "") -> str:
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:g} {unit}".rstrip()


def _counts(items: Dict[str, int], formatter: Any = str) -> str:
    return ", ".join(f"{name} {formatter(value)}" for name, value in items.items()) or "none"


def _pretty(value: Any, level: int = 1) -> str:
    """JSON with objects indented, except those (and lists) that fit on one short line."""
    flat = json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict) and value and (level == 1 or len(flat) > 90):
        pad = "  " * level
        body = ",\n".join(f"{pad}{json.dumps(k)}: {_pretty(v, level + 1)}" for k, v in value.items())
        return "{\n" + body + "\n" + "  " * (level - 1) + "}"
    return flat


def _tensor_lines(tensors: List[Dict[str, Any]], aligned_with: List[Dict[str, Any]]) -> List[str]:
    """One line per tensor: [mode] name shape dtype, in columns shared by ``aligned_with``."""
    def label(t: Dict[str, Any]) -> str:
        return (t.get("mode", "") + " " + t["name"]).strip()

    name_w = max(len(label(t)) for t in aligned_with)
    shape_w = max(len(json.dumps(t["shape"])) for t in aligned_with)
    return [f"  {label(t).ljust(name_w)}  {json.dumps(t['shape']).ljust(shape_w)}  {t['dtype']}" for t in tensors]


def _config_lines(report: Dict[str, Any]) -> List[str]:
    if report["edge_config"] is None:
        return [f"edge config: {report['edge_config_status']}"]
    config = report["edge_config"]
    ordered = {k: config[k] for k in CONFIG_KEYS if k in config}
    ordered.update((k, v) for k, v in config.items() if k not in ordered)
    text = _pretty(ordered)
    return [f"edge config ({report['edge_config_status']}):"] + ["  " + line for line in text.splitlines()]


def render(report: Dict[str, Any]) -> str:
    """The human-readable form of an inspect report."""
    prov = report["provenance"]
    if report["format"] == "onnx":
        opset = ", ".join(f"{domain} {version}" for domain, version in report["opset"].items())
        flops = report["flops"]
        lines = [f"{report['file']}: ONNX, IR version {report['ir_version']}, opset {opset}, "
                 f"producer {report['producer']}", "inputs:"]
        both = report["inputs"] + report["outputs"]
        lines += _tensor_lines(report["inputs"], both) + ["outputs:"] + _tensor_lines(report["outputs"], both)
        lines += [f"operators ({sum(report['operators'].values())} nodes): {_counts(report['operators'])}",
                  f"parameters: {report['parameters']['count']:,} "
                  f"({_si(report['parameters']['bytes'], 'B')} in initializers)",
                  f"FLOPs (estimate): {_si(flops['total'])} per inference",
                  f"  by op: {_counts(flops['by_op'], _si)}",
                  f"  not counted: {_counts(flops['not_counted'])}",
                  f"  how: {flops['note']}"]
        lines += _precision_lines(report) + _config_lines(report)
        other = ", ".join(f"{k}={v[:40]!r}" for k, v in prov["metadata"].items()) or "none"
        lines += ["provenance:", f"  sha256 {prov['sha256']}", f"  size {prov['size_bytes']:,} bytes",
                  f"  other metadata_props: {other}"]
        return "\n".join(lines)
    lines = [f"{report['file']}: TensorRT plan, {prov['size_bytes']:,} bytes, sha256 {prov['sha256']}",
             f"sidecar: {report['sidecar'] or ''}{' — ' if report['sidecar'] else ''}{report['sidecar_status']}"]
    if report["build"]:
        lines.append("build provenance:")
        lines += [f"  {key}: {value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)}"
                  for key, value in report["build"].items()]
    if report["sidecar"]:
        lines += _config_lines(report)
    lines.append(f"TensorRT: {report['tensorrt']}")
    if report["tensors"]:
        lines += _tensor_lines(report["tensors"], report["tensors"])
    return "\n".join(lines)
