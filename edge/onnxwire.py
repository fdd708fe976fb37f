"""An ONNX file's signature and metadata read from the protobuf wire format, without the ``onnx`` package.

Importing ``onnx`` (with protobuf and ml_dtypes) costs ~35-50 ms, and parsing a model builds every weight
tensor; a camera run needs neither, only what :class:`edge.onnxfile.OnnxInfo` holds. ONNX files are
protobuf messages whose field numbers (onnx.proto, proto2) never change, so this module walks the bytes
itself: the file is memory-mapped and the weights are skipped by their length, never read. Protobuf's
rules are kept: a singular message seen twice is merged, a scalar seen twice keeps the last value, a field
with an unexpected wire type is an unknown field (skipped), and the last member set in a oneof wins.
"""

import mmap
from pathlib import Path
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Sequence, Set, Tuple

# Field numbers of onnx.proto.
_MODEL_GRAPH, _MODEL_OPSET_IMPORT, _MODEL_METADATA_PROPS = 7, 8, 14
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_INPUT, _GRAPH_OUTPUT = 1, 5, 11, 12
_NODE_OP_TYPE, _NODE_ATTRIBUTE = 4, 5
_ATTRIBUTE_T, _ATTRIBUTE_G, _ATTRIBUTE_TENSORS, _ATTRIBUTE_GRAPHS = 5, 6, 10, 11
_TENSOR_NAME, _TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 8, 13, 14
_VALUE_INFO_NAME, _VALUE_INFO_TYPE = 1, 2
_TYPE_TENSOR_TYPE, _TYPE_OTHER_MEMBERS = 1, (4, 5, 8, 9)  # the oneof: sequence, map, sparse, optional
_TENSOR_TYPE_ELEM_TYPE, _TENSOR_TYPE_SHAPE, _SHAPE_DIM = 1, 2, 1
_DIM_VALUE, _DIM_PARAM = 1, 2
_ENTRY_KEY, _ENTRY_VALUE = 1, 2  # StringStringEntryProto; OperatorSetIdProto has domain=1, version=2
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL
# Wire types.
_VARINT, _FIXED64, _BYTES, _GROUP_START, _GROUP_END, _FIXED32 = 0, 1, 2, 3, 4, 5

Span = Tuple[int, int]  # (start, end) byte offsets of one length-delimited field
Buffer = Any  # bytes or mmap.mmap: indexing gives an int, slicing gives bytes


class DecodeError(ValueError):
    """The bytes are not a well-formed protobuf message (a truncated or non-ONNX file)."""


class WireModel(NamedTuple):
    """What the camera app needs from an ONNX file. Tensors are (name, shape, ONNX element type)."""

    inputs: Tuple[Tuple[str, Tuple[Any, ...], int], ...]
    outputs: Tuple[Tuple[str, Tuple[Any, ...], int], ...]
    initializers: frozenset
    metadata: Tuple[Tuple[str, str], ...]
    opset: int
    operators: Tuple[str, ...]
    node_count: int
    external: Tuple[Tuple[str, str], ...]  # (tensor name, location) of every tensor with external data


def read_wire(path: Path) -> WireModel:
    """Parse ``path`` (an existing, non-empty file) through a memory map, so that the weights are never read
    (read whole where the file system cannot map it); DecodeError when it does not parse."""
    with path.open("rb") as file:
        try:
            mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):  # a file system without mmap: read it whole
            return parse_model(file.read())
        try:
            return parse_model(mapped)
        finally:
            mapped.close()


def parse_model(buf: Buffer) -> WireModel:
    """Parse a serialized ModelProto (bytes or a memory map)."""
    model = _messages(buf, [(0, len(buf))], (_MODEL_GRAPH, _MODEL_OPSET_IMPORT, _MODEL_METADATA_PROPS))
    versions = []
    for span in model[_MODEL_OPSET_IMPORT]:
        fields = _last_values(buf, [span])
        if _string(buf, fields.get((_ENTRY_KEY, _BYTES))) in ("", "ai.onnx"):
            versions.append(_signed(fields.get((_ENTRY_VALUE, _VARINT), 0)))
    metadata = tuple(_entry(buf, span) for span in model[_MODEL_METADATA_PROPS])
    graph = _messages(buf, model[_MODEL_GRAPH], (_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_INPUT, _GRAPH_OUTPUT))
    operators: Set[str] = set()
    external: List[Tuple[str, str]] = []
    initializers = frozenset(_tensor(buf, [span], external) for span in graph[_GRAPH_INITIALIZER])
    _nodes(buf, graph[_GRAPH_NODE], operators, external)
    inputs = tuple(_value_info(buf, span) for span in graph[_GRAPH_INPUT])
    outputs = tuple(_value_info(buf, span) for span in graph[_GRAPH_OUTPUT])
    return WireModel(inputs, outputs, initializers, metadata, max(versions, default=0), tuple(sorted(operators)),
                     len(graph[_GRAPH_NODE]), tuple(external))


def _nodes(buf: Buffer, nodes: List[Span], operators: Set[str], external: List[Tuple[str, str]]) -> None:
    """Add each NodeProto's op_type to ``operators``; (name, location) of tensors with external data in their
    attributes (subgraphs of If and Loop included) to ``external``."""
    for span in nodes:
        op_type = None
        for number, wire, value in _fields(buf, [span]):
            if wire == _BYTES and number == _NODE_OP_TYPE:
                op_type = value
            elif wire == _BYTES and number == _NODE_ATTRIBUTE:
                _attribute(buf, value, external)
        operators.add(_string(buf, op_type))


def _attribute(buf: Buffer, span: Span, external: List[Tuple[str, str]]) -> None:
    """Find the tensors with external data in one AttributeProto: t, tensors, and those of g and graphs."""
    parts = _messages(buf, [span], (_ATTRIBUTE_T, _ATTRIBUTE_G, _ATTRIBUTE_TENSORS, _ATTRIBUTE_GRAPHS))
    if parts[_ATTRIBUTE_T]:  # a singular field: its occurrences merge into one tensor
        _tensor(buf, parts[_ATTRIBUTE_T], external)
    for tensor in parts[_ATTRIBUTE_TENSORS]:
        _tensor(buf, [tensor], external)
    subgraphs = [[graph] for graph in parts[_ATTRIBUTE_GRAPHS]] + ([parts[_ATTRIBUTE_G]] if parts[_ATTRIBUTE_G] else [])
    for spans in subgraphs:
        graph = _messages(buf, spans, (_GRAPH_NODE, _GRAPH_INITIALIZER))
        for tensor in graph[_GRAPH_INITIALIZER]:
            _tensor(buf, [tensor], external)
        _nodes(buf, graph[_GRAPH_NODE], set(), external)


def _tensor(buf: Buffer, spans: List[Span], external: List[Tuple[str, str]]) -> str:
    """A TensorProto's name; (name, location) goes to ``external`` when it keeps its data in another file."""
    fields = _last_values(buf, spans)
    name = _string(buf, fields.get((_TENSOR_NAME, _BYTES)))
    if fields.get((_TENSOR_DATA_LOCATION, _VARINT)) == _EXTERNAL:
        entries = _messages(buf, spans, (_TENSOR_EXTERNAL_DATA,))[_TENSOR_EXTERNAL_DATA]
        location = dict(_entry(buf, entry) for entry in entries).get("location", "")
        external.append((name, location))
    return name


def _value_info(buf: Buffer, span: Span) -> Tuple[str, Tuple[Any, ...], int]:
    """(name, shape, element type) of a ValueInfoProto: int dims, the dim_param string, or None when unknown."""
    name_span: Optional[Span] = None
    type_spans: List[Span] = []
    for number, wire, value in _fields(buf, [span]):
        if wire == _BYTES and number == _VALUE_INFO_NAME:
            name_span = value
        elif wire == _BYTES and number == _VALUE_INFO_TYPE:
            type_spans.append(value)
    tensor_spans: List[Span] = []
    for number, wire, value in _fields(buf, type_spans):
        if wire == _BYTES and number == _TYPE_TENSOR_TYPE:
            tensor_spans.append(value)
        elif wire == _BYTES and number in _TYPE_OTHER_MEMBERS:
            tensor_spans = []  # another member of the oneof replaces the tensor type
    elem_type, shape_spans = 0, []
    for number, wire, value in _fields(buf, tensor_spans):
        if wire == _VARINT and number == _TENSOR_TYPE_ELEM_TYPE:
            elem_type = _signed(value)
        elif wire == _BYTES and number == _TENSOR_TYPE_SHAPE:
            shape_spans.append(value)
    dims = _messages(buf, shape_spans, (_SHAPE_DIM,))[_SHAPE_DIM]
    return _string(buf, name_span), tuple(_dimension(buf, dim) for dim in dims), elem_type


def _dimension(buf: Buffer, span: Span) -> Any:
    """A TensorShapeProto.Dimension: its dim_value, else its dim_param, else None (the last one set wins)."""
    dim: Any = None
    for number, wire, value in _fields(buf, [span]):
        if wire == _VARINT and number == _DIM_VALUE:
            dim = _signed(value)
        elif wire == _BYTES and number == _DIM_PARAM:
            dim = _string(buf, value) or None
    return dim


def _entry(buf: Buffer, span: Span) -> Tuple[str, str]:
    """(key, value) of a StringStringEntryProto."""
    fields = _last_values(buf, [span])
    return _string(buf, fields.get((_ENTRY_KEY, _BYTES))), _string(buf, fields.get((_ENTRY_VALUE, _BYTES)))


def _messages(buf: Buffer, spans: Sequence[Span], numbers: Sequence[int]) -> Dict[int, List[Span]]:
    """The length-delimited fields numbered ``numbers`` of the message in ``spans``, each a list in file order."""
    found: Dict[int, List[Span]] = {number: [] for number in numbers}
    for number, wire, value in _fields(buf, spans):
        if wire == _BYTES and number in found:
            found[number].append(value)
    return found


def _last_values(buf: Buffer, spans: Sequence[Span]) -> Dict[Tuple[int, int], Any]:
    """The last value of each (field number, wire type) of the message in ``spans``."""
    return {(number, wire): value for number, wire, value in _fields(buf, spans)}


def _fields(buf: Buffer, spans: Sequence[Span]) -> Iterator[Tuple[int, int, Any]]:
    """(field number, wire type, value) of each field of one message, whose bytes are ``spans`` merged in order.

    The value is an int for a varint, the (start, end) span of a length-delimited field, None otherwise.
    """
    for start, end in spans:
        pos = start
        while pos < end:
            key = buf[pos]  # keys and lengths under 128 take one byte: read inline, the common case
            key, pos = (key, pos + 1) if key < 0x80 else _varint(buf, pos, end)
            number, wire = key >> 3, key & 7
            if number == 0:
                raise DecodeError(f"field number 0 at byte {pos}")
            if wire == _BYTES and pos < end and buf[pos] < 0x80:
                value, pos = (pos + 1, pos + 1 + buf[pos]), pos + 1 + buf[pos]
                if pos > end:
                    raise DecodeError(f"field {number} runs {pos - end} bytes past the end of its message")
            else:
                value, pos = _field_value(buf, pos, end, number, wire)
            yield number, wire, value


def _field_value(buf: Buffer, pos: int, end: int, number: int, wire: int) -> Tuple[Any, int]:
    """The value of the field whose key ended at ``pos``, and the offset after it."""
    if wire == _VARINT:
        return _varint(buf, pos, end)
    if wire == _BYTES:
        size, pos = _varint(buf, pos, end)
        value, after = (pos, pos + size), pos + size
    elif wire in (_FIXED64, _FIXED32):
        value, after = None, pos + (8 if wire == _FIXED64 else 4)
    elif wire == _GROUP_START:  # a deprecated group in an unknown field: skip to its end-group key
        while True:
            key, pos = _varint(buf, pos, end)
            if key >> 3 == 0:
                raise DecodeError(f"field number 0 at byte {pos}")
            if key & 7 == _GROUP_END:
                if key >> 3 != number:
                    raise DecodeError(f"mismatched end of group at byte {pos}")
                return None, pos
            _, pos = _field_value(buf, pos, end, key >> 3, key & 7)
    else:
        raise DecodeError(f"invalid wire type {wire} at byte {pos}")
    if after > end:
        raise DecodeError(f"field {number} runs {after - end} bytes past the end of its message")
    return value, after


def _varint(buf: Buffer, pos: int, end: int) -> Tuple[int, int]:
    """A base-128 varint at ``pos`` (at most 10 bytes, truncated to 64 bits) and the offset after it."""
    result = shift = 0
    while pos < end and shift < 70:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & 0xFFFFFFFFFFFFFFFF, pos
        shift += 7
    raise DecodeError(f"a varint is truncated or too long at byte {pos}")


def _signed(value: int) -> int:
    """A 64-bit varint as the signed int64/int32 it encodes."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _string(buf: Buffer, span: Optional[Span]) -> str:
    """The UTF-8 string in ``span`` ('' when the field is absent)."""
    if span is None:
        return ""
    try:
        return bytes(buf[span[0]:span[1]]).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"a string is not UTF-8 at byte {span[0] + exc.start}") from None
