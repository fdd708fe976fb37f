"""What the fake ONNX parser checks of QuantizeLinear / DequantizeLinear nodes, as TensorRT's does.

``check_qdq(fake, proto)`` walks the Q/DQ nodes in graph order and returns the first refusal as
(error code, description, node index, node name, operator) - the real importer stops at the first node it
cannot import - plus the warnings it logs and the nodes whose scale is not a build-time constant (the
parser takes those; the build then fails). Sources, quoted where a rule is applied:

- [importer] onnx-tensorrt ``onnxOpImporters.cpp`` ``QuantDequantLinearHelper`` (main branch, TensorRT 10.x/11;
  [importer 8] its 8.x form in ``builtin_op_importers.cpp``: three inputs required, no type warnings, shorter
  messages, same checks of scale and zero point):
  DQ input type UINT8 refused with ``checkNotInvalidType`` ("Found unsupported input type of UINT8"); a
  constant scale must satisfy x > 0 ("Scale coefficients must all be positive": NaN, 0 and negatives fail,
  +inf passes - the importer checks no more, so neither does the fake); a UINT8 zero point logs a
  warning and is taken as INT8, other types ("For zero_point with type ... TensorRT will use INT8 instead");
  a non-zero zero point is refused ("Non-zero zero point is not supported ..."; 8.x wording "TRT only supports
  symmetric quantization - zeroPt must be all zeros"); zero point and scale of equal volume; a 1-D scale
  with one coefficient per channel of the axis ("The number of scales is not equal to the number of output
  channels"), a scale of the input's rank for block quantization, else "Invalid rank for the scale tensor".
- [operators.md] onnx-tensorrt ``docs/operators.md``: DequantizeLinear "INT8, FP8 | x_zero_point must be
  zero", QuantizeLinear "y_zero_point must be 0"; "UINT8 is only supported as network input or output".
- [layers] TensorRT operator reference, Quantize.html / Dequantize.html (docs.nvidia.com/deeplearning/
  tensorrt/operators/docs/): "The scale tensor must be a build-time constant"; Dequantize input int8, float8
  or int4 (8.6.1: int8 only).

Close paraphrases, not verified on hardware: the INT32 DequantizeLinear refusal (a quantized bias; the
importer adds the layer and TensorRT's layer check refuses the INT32 input - here worded like the importer's
type check), the UINT8 refusal on 8.x (from [operators.md]: UINT8 only at the network's inputs and outputs),
the build-time line for a scale computed at run time, and the release that added each quantized type.
"""

from typing import Any, Dict, List, Optional, Tuple

import numpy as np

UINT8, INT8, INT32 = 2, 3, 6
FP8_E4M3FN, INT4, FP4 = 17, 22, 23
TYPE_NAMES = {1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64", 10: "FLOAT16",
              16: "BF16", 17: "FP8", 21: "UINT4", 22: "INT4", 23: "FP4"}
Refusal = Tuple[str, str, int, str, str]


def quantized_types(version: Tuple[int, int]) -> Tuple[int, ...]:
    """The quantized types a version's Q/DQ layers take [layers]: INT8 on 8.x; FP8 and INT4 from 10.0; FP4 from
    10.8 (the importer's checkQuantizationDatatype lists FP8, INT8, INT4 and FP4)."""
    return (INT8,) + ((FP8_E4M3FN, INT4) if version >= (10, 0) else ()) + ((FP4,) if version >= (10, 8) else ())


class _Graph:
    """Constants, element types, shapes and producers of an ONNX graph, as the importer sees them."""

    def __init__(self, proto: Any) -> None:
        import onnx
        from onnx import numpy_helper

        inferred = onnx.shape_inference.infer_shapes(proto)
        self.constants: Dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
        for node in proto.graph.node:  # a Constant node is imported as weights, like an initializer
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self.constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self.types = {t.name: t.data_type for t in proto.graph.initializer}
        self.shapes = {t.name: list(t.dims) for t in proto.graph.initializer}
        for info in list(inferred.graph.value_info) + list(proto.graph.input) + list(proto.graph.output):
            self.types.setdefault(info.name, info.type.tensor_type.elem_type)
            self.shapes.setdefault(info.name, [d.dim_value if d.HasField("dim_value") else -1
                                               for d in info.type.tensor_type.shape.dim])
        self.producer = {o: node.op_type for node in proto.graph.node for o in node.output}


def _refuse(code: str, desc: str, index: int, node: Any) -> Refusal:
    return code, desc, index, node.name, node.op_type


def _check_node(version: Tuple[int, int], graph: _Graph, index: int, node: Any,
                warnings: List[str]) -> Optional[Refusal]:
    is_dq, old = node.op_type == "DequantizeLinear", version < (10, 0)
    if old and len([name for name in node.input if name]) != 3:  # [importer 8]
        return _refuse("INVALID_NODE", "This version of TensorRT requires 3 inputs for the DequantizeLinear "
                       "operator.", index, node)
    data = node.input[0]
    data_type = graph.types.get(data, 0)
    # [importer] checkNotInvalidType(inputs.at(0), {"UINT8"}): the tensor's TensorRT type - a QuantizeLinear
    # upstream made it INT8, so only UINT8 weights, inputs or casts reach this check
    if is_dq and data_type == UINT8 and graph.producer.get(data) != "QuantizeLinear":
        return _refuse("UNSUPPORTED_NODE", "Found unsupported input type of UINT8", index, node)
    scale = graph.constants.get(node.input[1])
    if scale is not None:
        if scale.size == 0:
            return _refuse("INVALID_NODE", "Cannot have scale with no coefficients.", index, node)
        if not bool(np.all(scale.astype(np.float64) > 0)):  # [importer] x > 0 for each: NaN, 0 and negatives fail
            return _refuse("INVALID_NODE", "Scale coefficients must all be positive", index, node)
    scale_size = int(scale.size) if scale is not None else 0
    zero_name = node.input[2] if len(node.input) > 2 else ""
    if zero_name:
        zero_type = graph.types.get(zero_name, 0)
        if old:  # [importer 8] logs no type warning
            pass
        elif zero_type == UINT8:  # [importer] UINT8 quantization only on DLA: taken as INT8, with this warning
            warnings.append("TensorRT supports QuantizeLinear/DequantizeLinear with UINT8 zero_point only on DLA "
                            "(version >= 3.16). Defaulting to INT8 instead. To import as UINT8, set the "
                            "kIMPORT_UINT8_QUANTIZATION flag.")
        elif zero_type not in quantized_types(version):
            warnings.append(f"For zero_point with type {TYPE_NAMES.get(zero_type, zero_type)} TensorRT will use "
                            "INT8 instead.")
        zero = graph.constants.get(zero_name)
        if zero is not None and zero_type != FP8_E4M3FN:
            if np.any(zero.astype(np.float64) != 0):  # [importer] shiftIsAllZeros; [operators.md] must be 0
                desc = ("Non-zero zero point is not supported. Please set kENABLE_UINT8_AND_ASYMMETRIC_"
                        "QUANTIZATION_DLAto enable asymmetric quantization if it is on DLA." if version >= (10, 0)
                        else "TRT only supports symmetric quantization - zeroPt must be all zeros")
                return _refuse("INVALID_NODE", desc, index, node)
            if scale is not None and zero.size != scale_size:
                return _refuse("INVALID_NODE", "The scale and zero-point must have the same size" if old else
                               f"The scale and zero point must have the same volume. Size of zero point = {zero.size}"
                               f", size of the scale = {scale_size}.", index, node)
    if is_dq and data_type not in quantized_types(version) + (UINT8,):  # [operators.md] INT8, FP8; [layers]
        return _refuse("UNSUPPORTED_NODE", f"Found unsupported input type of {TYPE_NAMES.get(data_type, data_type)}",
                       index, node)
    return _check_axis(graph, index, node, scale, old)


def _check_axis(graph: _Graph, index: int, node: Any, scale: Optional[np.ndarray], old: bool) -> Optional[Refusal]:
    """[importer] per tensor (one coefficient), per channel (1-D, one per channel of ``axis``) or blocked."""
    if scale is None or scale.size == 1:
        return None
    dims = graph.shapes.get(node.input[0], [])
    axis = next((a.i for a in node.attribute if a.name == "axis"), len(dims) if old else 1)
    axis = axis + len(dims) if axis < 0 else 0 if old and axis == len(dims) else axis  # [importer 8]: rank -> 0
    if scale.ndim == 1:
        channels = dims[axis] if 0 <= axis < len(dims) else -1
        if channels >= 0 and channels != scale.size:
            counts = "" if old else f" Number of output channels = {channels}, number of scales = {scale.size}."
            return _refuse("INVALID_NODE", "The number of scales is not equal to the number of output channels."
                           + counts, index, node)
        return None
    if scale.ndim != len(dims):
        return _refuse("INVALID_NODE", f"Invalid rank for the scale tensor. Rank = {scale.ndim}.", index, node)
    return None


def check_qdq(fake: Any, proto: Any) -> Tuple[Optional[Refusal], List[str], List[str]]:
    """(first refusal or None, warnings logged, names of Q/DQ nodes whose scale is computed at run time)."""
    nodes = [(i, n) for i, n in enumerate(proto.graph.node) if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    if not nodes:
        return None, [], []
    graph, warnings = _Graph(proto), []
    for index, node in nodes:
        refusal = _check_node(fake.version, graph, index, node, warnings)
        if refusal is not None:
            return refusal, warnings, []
    # [layers] "The scale tensor must be a build-time constant": the importer takes a computed one as a tensor
    runtime_scales = [n.name or f"(node {i})" for i, n in nodes if n.input[1] not in graph.constants]
    return None, list(dict.fromkeys(warnings)), runtime_scales
