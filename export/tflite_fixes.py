"""Rewrite a TFLite flatbuffer into plain operators that ONNX converters know.

MediaPipe's models carry things tflite2onnx and tf2onnx stumble on, none of which changes what
the model computes; each rewrite produces a TFLite model that LiteRT still runs, so it is checked
against the original by the same interpreter:

- sparse weights (``DENSIFY`` of a constant): densified here from the tensor's sparsity
  parameters (traversal order, block map, dense / CSR dimensions; TFLite schema);
- float16 weights (``DEQUANTIZE`` of a float16 constant): widened to float32 constants, which is
  what LiteRT does at load; tflite2onnx otherwise hands a PReLU slope through a Dequantize node
  and fails (IndexError) propagating NHWC to its 3-D shape;
- ``HARD_SWISH``: x * relu6(x + 3) / 6 as ADD (fused RELU6), MUL, MUL;
- MediaPipe's custom ``Convolution2DTransposeBias``: the builtin ``TRANSPOSE_CONV`` and an ADD
  of the bias;
- a paddings constant shared by several PADs: one copy per PAD (tflite2onnx edits it in place).

The flatbuffer is read and written with the schema module that LiteRT (``ai-edge-litert``)
ships, so nothing here needs TensorFlow.
"""

from __future__ import annotations

import importlib
import struct
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from edge.errors import EdgeError, MissingDependency

# TFLite TensorType -> numpy dtype, for the constant types the rewrites read or write
_NUMPY_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 9: np.int8, 7: np.int16}
_FLOAT32 = 0
_TRANSPOSE_BIAS = "Convolution2DTransposeBias"


class UnreadableTFLite(EdgeError):
    """The flatbuffer does not unpack as a TFLite model."""


def _schema() -> Any:
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError:
        raise MissingDependency("ai-edge-litert", "rewriting a TFLite graph before conversion",
                                "pip install ai-edge-litert") from None
    return schema_py_generated


def _reader() -> Any:
    """A generated TFLite schema reader: LiteRT's, else the ``tflite`` package tflite2onnx brings."""
    for name in ("ai_edge_litert.schema_py_generated", "tflite"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise MissingDependency("ai-edge-litert", "TFLite export", "pip install ai-edge-litert")


def tflite_io_shapes(data: bytes) -> Dict[str, Dict[str, List[int]]]:
    """{"inputs": {name: shape}, "outputs": {name: shape}} of the first subgraph, in graph order."""
    schema = _reader()
    model = schema.Model.GetRootAsModel(bytearray(data), 0)
    graph = model.Subgraphs(0)

    def named(indices: Any) -> Dict[str, List[int]]:
        tensors = [graph.Tensors(int(i)) for i in indices]
        return {t.Name().decode(): [int(d) for d in t.ShapeAsNumpy()] for t in tensors}

    return {"inputs": named(graph.InputsAsNumpy()), "outputs": named(graph.OutputsAsNumpy())}


def custom_operators(data: bytes) -> List[str]:
    """Names of the custom operators the model's operator table lists (MediaPipe's, e.g.
    Landmarks2TransformMatrix), sorted; empty when it has none or cannot be read."""
    try:
        model = _reader().Model.GetRootAsModel(bytearray(data), 0)
        codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
        return sorted({c.CustomCode().decode() for c in codes if c.CustomCode()})
    except Exception:  # noqa: BLE001 - only a hint for an error message
        return []


class _Graph:
    """One subgraph of an unpacked model, with helpers to add constants and operators."""

    def __init__(self, schema: Any, model: Any, subgraph: Any) -> None:
        self.schema, self.model, self.subgraph = schema, model, subgraph
        self.names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}

    def op_name(self, op: Any) -> str:
        code = self.model.operatorCodes[op.opcodeIndex]
        number = max(code.builtinCode, code.deprecatedBuiltinCode)
        if number == self.schema.BuiltinOperator.CUSTOM:
            custom = code.customCode
            return "CUSTOM:" + (custom.decode() if isinstance(custom, bytes) else str(custom))
        return self.names.get(number, str(number))

    def constant(self, index: int) -> Optional[np.ndarray]:
        """The value of tensor ``index`` if it is a constant (dense, in the file), else None."""
        tensor = self.subgraph.tensors[index]
        buffer = self.model.buffers[tensor.buffer] if tensor.buffer else None
        if buffer is None or buffer.data is None or len(buffer.data) == 0 or tensor.sparsity is not None:
            return None
        dtype = _NUMPY_TYPES.get(tensor.type)
        if dtype is None:
            return None
        return np.frombuffer(np.asarray(buffer.data, dtype=np.uint8).tobytes(), dtype=dtype).reshape(
            [int(d) for d in tensor.shape])

    def set_constant(self, index: int, value: np.ndarray) -> None:
        """Make tensor ``index`` a constant holding ``value`` (its type follows the array's dtype)."""
        types = {np.dtype(v): k for k, v in _NUMPY_TYPES.items()}
        tensor = self.subgraph.tensors[index]
        tensor.type = types[value.dtype]
        tensor.shape = [int(d) for d in value.shape]
        tensor.sparsity = None
        tensor.quantization = None
        self.model.buffers.append(self.schema.BufferT(data=np.frombuffer(value.tobytes(), dtype=np.uint8)))
        tensor.buffer = len(self.model.buffers) - 1

    def new_tensor(self, name: str, shape: List[int], value: Optional[np.ndarray] = None) -> int:
        """A new float32 tensor (a constant when ``value`` is given); returns its index."""
        tensor = self.schema.TensorT()
        tensor.name, tensor.shape, tensor.type, tensor.buffer = name.encode(), list(shape), _FLOAT32, 0
        self.subgraph.tensors.append(tensor)
        index = len(self.subgraph.tensors) - 1
        if value is not None:
            self.set_constant(index, value)
        return index

    def opcode(self, name: str) -> int:
        """The index of builtin ``name`` in the model's operator codes, added when missing."""
        number = getattr(self.schema.BuiltinOperator, name)
        for i, code in enumerate(self.model.operatorCodes):
            if max(code.builtinCode, code.deprecatedBuiltinCode) == number:
                return i
        code = self.schema.OperatorCodeT()
        code.builtinCode, code.deprecatedBuiltinCode, code.version = number, min(number, 127), 1
        self.model.operatorCodes.append(code)
        return len(self.model.operatorCodes) - 1

    def new_op(self, name: str, inputs: List[int], outputs: List[int], options: Any = None) -> Any:
        op = self.schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = self.opcode(name), list(inputs), list(outputs)
        if options is not None:
            op.builtinOptionsType = getattr(self.schema.BuiltinOptions, type(options).__name__[:-1])
            op.builtinOptions = options
        return op


def densify(values: np.ndarray, shape: List[int], sparsity: Any) -> np.ndarray:
    """The dense tensor of ``shape`` from TFLite sparse storage.

    values: the stored (non-zero) elements in traversal order; sparsity: SparsityParametersT
    (traversal_order over the dims then the block dims, block_map, one DimensionMetadata per
    traversed dim: DENSE with dense_size, or SPARSE_CSR with array_segments / array_indices).
    """
    order = [int(d) for d in sparsity.traversalOrder]
    block_map = [int(d) for d in (sparsity.blockMap if sparsity.blockMap is not None else [])]
    levels = sparsity.dimMetadata
    rank = len(shape)
    if len(order) != rank + len(block_map) or len(levels) != len(order):
        raise ValueError(f"sparsity of {len(order)} traversed dims does not fit shape {shape}")
    block_size = {block_map[b]: int(levels[order.index(rank + b)].denseSize) for b in range(len(block_map))}
    # coordinates of every stored element, level by level: positions[k] = storage position at level k
    coords = np.zeros((1, len(order)), dtype=np.int64)
    positions = np.zeros(1, dtype=np.int64)
    for level, meta in enumerate(levels):
        if meta.format == 0:  # DENSE
            size = int(meta.denseSize)
            new_positions = (positions[:, None] * size + np.arange(size)[None, :]).reshape(-1)
            picked = np.tile(np.arange(size), len(positions))
            coords = np.repeat(coords, size, axis=0)
        else:  # SPARSE_CSR
            segments = np.asarray(meta.arraySegments.values, dtype=np.int64)
            indices = np.asarray(meta.arrayIndices.values, dtype=np.int64)
            starts, ends = segments[positions], segments[positions + 1]
            counts = ends - starts
            new_positions = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends)]) if len(counts) else \
                np.zeros(0, dtype=np.int64)
            picked = indices[new_positions]
            coords = np.repeat(coords, counts, axis=0)
        coords[:, level] = picked
        positions = new_positions
    if len(positions) != values.size:
        raise ValueError(f"sparse tensor stores {values.size} values, its index describes {len(positions)}")
    dense = np.zeros(shape, dtype=values.dtype)
    full = np.zeros((len(positions), rank), dtype=np.int64)
    for level, dim in enumerate(order):
        if dim < rank:
            full[:, dim] += coords[:, level] * block_size.get(dim, 1)
        else:
            full[:, block_map[dim - rank]] += coords[:, level]
    dense[tuple(full.T)] = values.reshape(-1)[positions]
    return dense


def _sparse_constant(graph: _Graph, index: int) -> Optional[np.ndarray]:
    tensor = graph.subgraph.tensors[index]
    buffer = graph.model.buffers[tensor.buffer] if tensor.buffer else None
    if tensor.sparsity is None or buffer is None or buffer.data is None:
        return None
    dtype = _NUMPY_TYPES.get(tensor.type)
    if dtype is None:
        return None
    values = np.frombuffer(np.asarray(buffer.data, dtype=np.uint8).tobytes(), dtype=dtype)
    return densify(values, [int(d) for d in tensor.shape], tensor.sparsity)


def _transpose_conv_bias(graph: _Graph, op: Any) -> List[Any]:
    """MediaPipe's Convolution2DTransposeBias(input, weights OHWI, bias) -> TRANSPOSE_CONV + ADD.

    Its custom options are TfLiteTransposeConvParams as raw bytes: padding (1 SAME, 2 VALID),
    stride_width, stride_height, each int32.
    """
    schema = graph.schema
    raw = bytes(bytearray(op.customOptions if op.customOptions is not None else []))
    if len(raw) < 12 or len(op.inputs) != 3:
        raise ValueError(f"{_TRANSPOSE_BIAS} with {len(op.inputs)} inputs and {len(raw)} option bytes")
    padding, stride_w, stride_h = struct.unpack("<3i", raw[:12])
    if padding not in (1, 2):
        raise ValueError(f"{_TRANSPOSE_BIAS} padding {padding} (expected 1 SAME or 2 VALID)")
    source, weights, bias = op.inputs
    output = op.outputs[0]
    out_tensor = graph.subgraph.tensors[output]
    shape_index = graph.new_tensor(out_tensor.name.decode() + "/output_shape", [4],
                                   np.asarray(out_tensor.shape, dtype=np.int32))
    raw_out = graph.new_tensor(out_tensor.name.decode() + "/no_bias", list(out_tensor.shape))
    options = schema.TransposeConvOptionsT()
    options.padding = schema.Padding.SAME if padding == 1 else schema.Padding.VALID
    options.strideW, options.strideH = stride_w, stride_h
    conv = graph.new_op("TRANSPOSE_CONV", [shape_index, weights, source], [raw_out], options)
    add = graph.new_op("ADD", [raw_out, bias], [output], schema.AddOptionsT())
    return [conv, add]


def _hard_swish(graph: _Graph, op: Any) -> List[Any]:
    """HARD_SWISH(x) -> MUL(MUL(x, RELU6(ADD(x, 3))), 1/6), the kernel's own formula."""
    schema = graph.schema
    x, y = op.inputs[0], op.outputs[0]
    name = graph.subgraph.tensors[y].name.decode()
    shape = list(graph.subgraph.tensors[y].shape)
    three = graph.new_tensor(name + "/three", [1], np.asarray([3.0], dtype=np.float32))
    sixth = graph.new_tensor(name + "/one_sixth", [1], np.asarray([1.0 / 6.0], dtype=np.float32))
    gate, product = graph.new_tensor(name + "/relu6", shape), graph.new_tensor(name + "/x_relu6", shape)
    add_options = schema.AddOptionsT()
    add_options.fusedActivationFunction = schema.ActivationFunctionType.RELU6
    return [graph.new_op("ADD", [x, three], [gate], add_options),
            graph.new_op("MUL", [x, gate], [product], schema.MulOptionsT()),
            graph.new_op("MUL", [product, sixth], [y], schema.MulOptionsT())]


def _unshare_paddings(graph: _Graph, counts: Dict[str, int]) -> None:
    """Give every PAD its own paddings constant: tflite2onnx rewrites that constant in place for
    the first PAD and then fails (IndexError) on the next PAD that shares it."""
    seen = set()
    for op in graph.subgraph.operators:
        if graph.op_name(op) not in ("PAD", "PADV2", "MIRROR_PAD") or len(op.inputs) < 2:
            continue
        index = op.inputs[1]
        if index in seen:
            value = graph.constant(index)
            if value is not None:
                name = graph.subgraph.tensors[index].name.decode()
                op.inputs[1] = graph.new_tensor(f"{name}/{len(graph.subgraph.tensors)}", list(value.shape), value)
                counts["PAD paddings unshared"] = counts.get("PAD paddings unshared", 0) + 1
        seen.add(index)


def _rewrite_subgraph(graph: _Graph, counts: Dict[str, int]) -> None:
    _unshare_paddings(graph, counts)
    readers: Dict[int, int] = {}
    for op in graph.subgraph.operators:
        for index in op.inputs:
            readers[int(index)] = readers.get(int(index), 0) + 1
    operators = []
    renamed: Dict[int, int] = {}
    for op in graph.subgraph.operators:
        name = graph.op_name(op)
        if name == "DENSIFY":
            dense = _sparse_constant(graph, op.inputs[0])
            if dense is not None:
                graph.set_constant(op.outputs[0], dense)
                counts["DENSIFY folded"] = counts.get("DENSIFY folded", 0) + 1
                continue
        # a float16 constant read by this DEQUANTIZE alone, whose output is not a graph output
        if name == "DEQUANTIZE" and readers.get(int(op.inputs[0])) == 1 and op.outputs[0] not in graph.subgraph.outputs:
            value = graph.constant(op.inputs[0])
            if value is not None and value.dtype == np.float16:
                # the float16 tensor itself becomes float32 and its consumers read it: the tensor
                # names tflite2onnx gives initializers when it folds this pattern itself
                graph.set_constant(op.inputs[0], value.astype(np.float32))
                renamed[op.outputs[0]] = op.inputs[0]
                counts["float16 DEQUANTIZE folded"] = counts.get("float16 DEQUANTIZE folded", 0) + 1
                continue
        if name == "HARD_SWISH":
            operators += _hard_swish(graph, op)
            counts["HARD_SWISH decomposed"] = counts.get("HARD_SWISH decomposed", 0) + 1
            continue
        if name == "CUSTOM:" + _TRANSPOSE_BIAS:
            operators += _transpose_conv_bias(graph, op)
            counts[f"{_TRANSPOSE_BIAS} rewritten"] = counts.get(f"{_TRANSPOSE_BIAS} rewritten", 0) + 1
            continue
        operators.append(op)
    for op in operators:
        op.inputs = [renamed.get(i, i) for i in op.inputs]
    graph.subgraph.operators = operators


def _drop_unused(model: Any) -> None:
    """Remove tensors no operator or graph input/output uses, then buffers no tensor or metadata uses."""
    used_buffers = {0}
    for subgraph in model.subgraphs:
        used = set(subgraph.inputs) | set(subgraph.outputs)
        for op in subgraph.operators:
            used |= {i for i in op.inputs if i >= 0} | set(op.outputs) | set(op.intermediates or [])
        keep = sorted(used)
        remap = {old: new for new, old in enumerate(keep)}
        subgraph.tensors = [subgraph.tensors[i] for i in keep]
        subgraph.inputs = [remap[i] for i in subgraph.inputs]
        subgraph.outputs = [remap[i] for i in subgraph.outputs]
        for op in subgraph.operators:
            op.inputs = [remap[i] if i >= 0 else i for i in op.inputs]
            op.outputs = [remap[i] for i in op.outputs]
            if op.intermediates is not None:
                op.intermediates = [remap[i] for i in op.intermediates]
        for signature in model.signatureDefs or []:
            if signature.subgraphIndex == model.subgraphs.index(subgraph):
                for entry in list(signature.inputs or []) + list(signature.outputs or []):
                    entry.tensorIndex = remap[entry.tensorIndex]
        used_buffers |= {t.buffer for t in subgraph.tensors}
    used_buffers |= {m.buffer for m in model.metadata or []}
    keep_buffers = sorted(used_buffers)
    remap_buffers = {old: new for new, old in enumerate(keep_buffers)}
    model.buffers = [model.buffers[i] for i in keep_buffers]
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            tensor.buffer = remap_buffers[tensor.buffer]
    for entry in model.metadata or []:
        entry.buffer = remap_buffers[entry.buffer]


def rewrite_tflite(data: bytes, where: str = "model.tflite") -> Tuple[bytes, Dict[str, int]]:
    """The rewritten flatbuffer and what was rewritten ({"DENSIFY folded": 46, ...}; empty: unchanged).

    Raises EdgeError when the file is not a TFLite model this reader can unpack.
    """
    import flatbuffers

    schema = _schema()
    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign flatbuffer fails anywhere in the reader
        raise UnreadableTFLite(f"cannot read the TFLite flatbuffer ({type(exc).__name__})",
                               fix="give a complete .tflite file (re-download or re-export it)", where=where) from None
    if not model.subgraphs or model.buffers is None or model.operatorCodes is None:
        raise UnreadableTFLite("the TFLite flatbuffer holds no graph",
                               fix="give a complete .tflite file (re-download or re-export it)", where=where)
    if any(b.offset > 1 for b in model.buffers):
        raise EdgeError("TFLite model keeps its weights outside the flatbuffer (> 2 GB layout)",
                        fix="convert a model under 2 GB", where=where)
    counts: Dict[str, int] = {}
    for subgraph in model.subgraphs:
        try:
            _rewrite_subgraph(_Graph(schema, model, subgraph), counts)
        except ValueError as exc:
            raise EdgeError(f"cannot rewrite the TFLite graph: {exc}",
                            fix="convert with tf2onnx (pip install tf2onnx tensorflow; python -m tf2onnx.convert "
                            "--tflite FILE), or report the model", where=where) from None
    if not counts:
        return data, counts
    _drop_unused(model)
    builder = flatbuffers.Builder(len(data) * 2)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), counts
