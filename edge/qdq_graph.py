"""Graph surgery for edge.quantize: the ONNX model a quantizer can work on, the layers that stay float, and the
clean-up after it (float biases for TensorRT, unused opset imports, topological order). onnx is imported lazily."""

from typing import Any, List, Tuple

import numpy as np

from edge.errors import EdgeError

MIN_OPSET = 13  # per-channel DequantizeLinear (its axis attribute) needs opset 13
TENSORRT_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def opset_of(model: Any) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def prepare(model: Any, notes: List[str]) -> Any:
    """The graph a quantizer can work on: opset >= 13 (per-channel Q/DQ), IR >= 7, initializers no longer
    listed as graph inputs (IR 3 files list them), unused inputs and initializers dropped."""
    import onnx
    from onnx import version_converter

    opset = opset_of(model)
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
        replace_items(model.graph.initializer, kept)
    if len(inputs) != len(model.graph.input):
        replace_items(model.graph.input, inputs)
    if dropped:
        notes.append(f"unused graph input dropped: {', '.join(dropped)}")
    onnx.checker.check_model(model)
    return model


def replace_items(repeated: Any, items: List[Any]) -> None:
    copies = [type(item)() for item in items]
    for copy_, item in zip(copies, items):
        copy_.CopyFrom(item)
    del repeated[:]
    repeated.extend(copies)


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


def sort_nodes(graph: Any) -> None:
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
    replace_items(graph.node, ordered)


def input_batch(model: Any) -> Tuple[str, int]:
    weights = {t.name for t in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in weights]
    if len(inputs) != 1:
        raise EdgeError(f"int8 calibration from images feeds one input, the model has {len(inputs)} "
                        f"({', '.join(v.name for v in inputs)})", fix="quantize multi-input models with NVIDIA "
                        "ModelOpt and your own calibration data")
    dims = inputs[0].type.tensor_type.shape.dim
    batch = dims[0].dim_value if dims and dims[0].HasField("dim_value") and dims[0].dim_value > 0 else 1
    return inputs[0].name, int(batch)


def prune_opsets(model: Any) -> None:
    """Drop opset imports of domains no node uses: ONNX Runtime's optimizer adds every domain it knows
    (ai.onnx.ml 5, com.microsoft.nchwc, ...), and an older runtime refuses a file naming one it does not."""
    used = {node.domain or "" for node in model.graph.node}
    kept = [o for o in model.opset_import if (o.domain or "") in used or o.domain in ("", "ai.onnx")]
    if len(kept) != len(model.opset_import):
        replace_items(model.opset_import, kept)


def float_biases(model: Any, notes: List[str]) -> None:
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
    replace_items(model.graph.node, kept_nodes)
    used = {name for node in kept_nodes for name in node.input}
    replace_items(model.graph.initializer, [t for t in model.graph.initializer if t.name in used] + new_inits)
    notes.append(f"{folded} int32 bias DequantizeLinear folded back to float (TensorRT adds float biases itself)")
