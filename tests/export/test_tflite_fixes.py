"""export/tflite_fixes.py and the converter routes of export/tflite.py on tiny TFLite graphs built here.

Every rewrite is checked the same way: LiteRT runs the original and the rewritten flatbuffer, and
ONNX Runtime runs what tflite2onnx makes of the rewritten one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.errors import EdgeError

schema = pytest.importorskip("ai_edge_litert.schema_py_generated", reason="needs ai-edge-litert")

ROOT = Path(__file__).resolve().parents[2]
DENSE, CSR = 0, 1


def _dim(format_: int, size: int = 0, segments=None, indices=None):
    meta = schema.DimensionMetadataT()
    meta.format, meta.denseSize = format_, size
    if format_ == CSR:
        meta.arraySegmentsType = meta.arrayIndicesType = schema.SparseIndexVector.Int32Vector
        meta.arraySegments, meta.arrayIndices = schema.Int32VectorT(), schema.Int32VectorT()
        meta.arraySegments.values, meta.arrayIndices.values = list(segments), list(indices)
    return meta


def _sparsity(order, block_map, dims):
    sparsity = schema.SparsityParametersT()
    sparsity.traversalOrder, sparsity.blockMap, sparsity.dimMetadata = list(order), block_map, dims
    return sparsity


# (what, shape, stored values, sparsity, expected dense) - worked by hand from the TFLite schema's
# description of traversal_order / block_map / DimensionMetadata
DENSIFY_CASES = [
    ("rows dense, columns CSR", [4, 4], [1, 2, 3, 4, 5],
     _sparsity([0, 1], None, [_dim(DENSE, 4), _dim(CSR, 0, [0, 2, 2, 4, 5], [0, 2, 0, 3, 1])]),
     [[1, 0, 2, 0], [0, 0, 0, 0], [3, 0, 0, 4], [0, 5, 0, 0]]),
    ("column-major (traversal order 1, 0)", [2, 2], [1, 2, 3],
     _sparsity([1, 0], None, [_dim(DENSE, 2), _dim(CSR, 0, [0, 2, 3], [0, 1, 1])]),
     [[1, 0], [2, 3]]),
    ("2x2 blocks, block columns CSR", [4, 4], [1, 2, 3, 4, 0, 0, 5, 6],
     _sparsity([0, 1, 2, 3], [0, 1], [_dim(DENSE, 2), _dim(CSR, 0, [0, 1, 2], [0, 1]), _dim(DENSE, 2),
                                      _dim(DENSE, 2)]),
     [[1, 2, 0, 0], [3, 4, 0, 0], [0, 0, 0, 0], [0, 0, 5, 6]]),
]


@pytest.mark.parametrize("what,shape,values,sparsity,expected", DENSIFY_CASES, ids=[c[0] for c in DENSIFY_CASES])
def test_densify_by_hand(what, shape, values, sparsity, expected):
    from export.tflite_fixes import densify

    dense = densify(np.asarray(values, np.float32), shape, sparsity)
    np.testing.assert_array_equal(dense, np.asarray(expected, np.float32))


def test_densify_refuses_an_index_that_does_not_fit():
    from export.tflite_fixes import densify

    with pytest.raises(ValueError, match="stores 4 values, its index describes 5"):
        densify(np.ones(4, np.float32), [4, 4], DENSIFY_CASES[0][3])


def _tensor(name, shape, buffer=0, type_=0):
    tensor = schema.TensorT()
    tensor.name, tensor.shape, tensor.type, tensor.buffer = name.encode(), list(shape), type_, buffer
    return tensor


def _tiny(op_name, in_shape, out_shape, options=None, constants=()):
    """A one-operator TFLite model: x (float32) and ``constants`` (numpy arrays, their own buffers)
    -> op -> y. Returns the flatbuffer."""
    import flatbuffers

    model = schema.ModelT()
    model.version = 3
    code = schema.OperatorCodeT()
    code.builtinCode = getattr(schema.BuiltinOperator, op_name)
    code.deprecatedBuiltinCode, code.version = min(code.builtinCode, 127), 1
    model.operatorCodes = [code]
    model.buffers = [schema.BufferT()]
    tensors = [_tensor("x", in_shape), _tensor("y", out_shape)]
    types = {np.dtype(np.float32): 0, np.dtype(np.float16): 1, np.dtype(np.int32): 2}
    for i, value in enumerate(constants):
        model.buffers.append(schema.BufferT(data=np.frombuffer(value.tobytes(), np.uint8)))
        tensors.append(_tensor(f"c{i}", value.shape, len(model.buffers) - 1, types[value.dtype]))
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0] + list(range(2, len(tensors))), [1]
    if options is not None:
        op.builtinOptionsType = getattr(schema.BuiltinOptions, type(options).__name__[:-1])
        op.builtinOptions = options
    graph = schema.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs, graph.operators, graph.name = tensors, [0], [1], [op], b"main"
    model.subgraphs = [graph]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _litert(content: bytes, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def _onnx(path: Path, x_nhwc: np.ndarray) -> np.ndarray:
    """ONNX Runtime on an NHWC batch, transposed to NCHW when the graph takes NCHW (tflite2onnx moves a
    graph to NCHW only when a layout-bound operator such as a convolution anchors it)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    graph_input = session.get_inputs()[0]
    nchw = list(graph_input.shape) != list(x_nhwc.shape)
    return session.run(None, {graph_input.name: x_nhwc.transpose(0, 3, 1, 2) if nchw else x_nhwc})[0]


def _append_op(content: bytes, op_name: str, out_shape) -> bytes:
    """The model with one more operator: graph output -> op_name -> the new graph output."""
    import flatbuffers

    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    graph = model.subgraphs[0]
    graph.tensors.append(_tensor(op_name.lower(), out_shape))
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = getattr(schema.BuiltinOperator, op_name)
    code.version = 1
    model.operatorCodes.append(code)
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = len(model.operatorCodes) - 1, list(graph.outputs), [len(graph.tensors) - 1]
    graph.operators.append(op)
    graph.outputs = list(op.outputs)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_hard_swish_becomes_add_mul_mul_with_the_same_values(tmp_path):
    """CONV_2D (1x1, identity weights: it anchors tflite2onnx's NCHW layout) -> HARD_SWISH."""
    pytest.importorskip("tflite2onnx", reason="needs tflite2onnx")
    from export.tflite import tflite_to_onnx
    from export.tflite_fixes import rewrite_tflite

    options = schema.Conv2DOptionsT()
    options.strideW = options.strideH = 1
    weights = np.eye(4, dtype=np.float32).reshape(4, 1, 1, 4)  # OHWI
    conv = _tiny("CONV_2D", [1, 2, 3, 4], [1, 2, 3, 4], options, constants=[weights, np.zeros(4, np.float32)])
    original = _append_op(conv, "HARD_SWISH", [1, 2, 3, 4])
    rewritten, counts = rewrite_tflite(original)
    assert counts == {"HARD_SWISH decomposed": 1}
    x = np.linspace(-5, 5, 24, dtype=np.float32).reshape(1, 2, 3, 4)
    expected = x * np.clip(x + 3, 0, 6) / 6
    np.testing.assert_allclose(_litert(original, x), expected, atol=1e-6)
    np.testing.assert_allclose(_litert(rewritten, x), expected, atol=1e-6)
    (tmp_path / "hs.tflite").write_bytes(original)
    report = []
    tflite_to_onnx(tmp_path / "hs.tflite", tmp_path / "hs.onnx", report=report)
    assert report[0] == "TFLite rewrite: 1 HARD_SWISH decomposed" and report[1].startswith("converter: tflite2onnx 0.")
    np.testing.assert_allclose(_onnx(tmp_path / "hs.onnx", x), expected, atol=1e-6)


def test_float16_weights_become_float32_and_prelu_converts(tmp_path):
    """A PReLU whose slope comes through a float16 DEQUANTIZE: tflite2onnx fails on it (IndexError)
    unless the slope is folded to a float32 constant first."""
    pytest.importorskip("tflite2onnx", reason="needs tflite2onnx")
    import flatbuffers

    from export.tflite import tflite_to_onnx
    from export.tflite_fixes import rewrite_tflite

    slope = np.asarray([[[0.5, -0.25, 2.0]]], np.float16)
    model = schema.ModelT.InitFromPackedBuf(bytearray(_tiny("PRELU", [1, 2, 2, 3], [1, 2, 2, 3],
                                                            constants=[slope])), 0)
    # put DEQUANTIZE(c0 float16) -> alpha (float32) in front of the PReLU
    graph = model.subgraphs[0]
    graph.tensors.append(_tensor("alpha", [1, 1, 3]))
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.DEQUANTIZE
    code.version = 2
    model.operatorCodes.append(code)
    dequantize = schema.OperatorT()
    dequantize.opcodeIndex, dequantize.inputs, dequantize.outputs = 1, [2], [3]
    graph.operators[0].inputs = [0, 3]
    graph.operators.insert(0, dequantize)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    original = bytes(builder.Output())

    rewritten, counts = rewrite_tflite(original)
    assert counts == {"float16 DEQUANTIZE folded": 1}
    x = np.linspace(-3, 3, 12, dtype=np.float32).reshape(1, 2, 2, 3)
    expected = np.where(x >= 0, x, x * slope.astype(np.float32).reshape(3))
    np.testing.assert_array_equal(_litert(original, x), expected)
    np.testing.assert_array_equal(_litert(rewritten, x), expected)
    (tmp_path / "prelu.tflite").write_bytes(original)
    tflite_to_onnx(tmp_path / "prelu.tflite", tmp_path / "prelu.onnx", converter="tflite2onnx")
    np.testing.assert_allclose(_onnx(tmp_path / "prelu.onnx", x), expected, atol=1e-7)


def test_depth_to_space_converts_and_4d_outputs_keep_the_tflite_layout(tmp_path):
    """tflite2onnx gets a DEPTH_TO_SPACE converter (ONNX DCR mode), and the (1, 4, 4, 2) output comes
    out as (1, 4, 4, 2), not as tflite2onnx's NCHW (1, 2, 4, 4)."""
    pytest.importorskip("tflite2onnx", reason="needs tflite2onnx")
    from export.tflite import tflite_to_onnx

    options = schema.DepthToSpaceOptionsT()
    options.blockSize = 2
    original = _tiny("DEPTH_TO_SPACE", [1, 2, 2, 8], [1, 4, 4, 2], options)
    (tmp_path / "d2s.tflite").write_bytes(original)
    tflite_to_onnx(tmp_path / "d2s.tflite", tmp_path / "d2s.onnx", converter="tflite2onnx")
    x = np.arange(32, dtype=np.float32).reshape(1, 2, 2, 8)
    expected = _litert(original, x)
    assert expected[0, 1, 0].tolist() == [4.0, 5.0]  # (row 1, col 0) is channel pair (1*2 + 0) * 2 of pixel (0, 0)
    np.testing.assert_array_equal(_onnx(tmp_path / "d2s.onnx", x), expected)


def test_rewritten_zoo_graphs_run_on_litert_like_the_originals():
    """The sparse full-range detector densified: bit-identical on LiteRT; the selfie model (HARD_SWISH,
    the MediaPipe transposed convolution) within 1e-4 on a probability map."""
    from export.tflite_fixes import rewrite_tflite

    rng = np.random.default_rng(0)
    for folder, name, counts, tolerance in [
            ("face_detection_full_range", "face_detection_full_range_sparse",
             {"DENSIFY folded": 46, "float16 DEQUANTIZE folded": 182, "PAD paddings unshared": 42}, 0.0),
            ("selfie_segmentation", "selfie_segmentation",
             {"float16 DEQUANTIZE folded": 110, "HARD_SWISH decomposed": 11,
              "Convolution2DTransposeBias rewritten": 1}, 1e-4)]:
        original = (ROOT / "models" / folder / f"{name}.tflite").read_bytes()
        rewritten, done = rewrite_tflite(original)
        assert done == counts
        size = 192 if "detection" in name else 256
        x = rng.uniform(-1, 1, (1, size, size, 3)).astype(np.float32)
        assert np.abs(_litert(original, x) - _litert(rewritten, x)).max() <= tolerance


def test_a_graph_with_nothing_to_rewrite_is_returned_as_it_is():
    from export.tflite_fixes import rewrite_tflite

    original = _tiny("RELU", [1, 4], [1, 4])
    assert rewrite_tflite(original) == (original, {})


@pytest.mark.parametrize("converter,message", [
    ("tflite2onnx", "tflite2onnx has no converter for TFLite operator TANH"),
    ("onnx-tf", "unknown TFLite converter 'onnx-tf'"),
])
def test_converter_errors_are_one_line_with_a_fix(tmp_path, converter, message):
    pytest.importorskip("tflite2onnx", reason="needs tflite2onnx")
    from export.tflite import tflite_to_onnx

    (tmp_path / "tanh.tflite").write_bytes(_tiny("TANH", [1, 4], [1, 4]))
    with pytest.raises(EdgeError, match=message) as caught:
        tflite_to_onnx(tmp_path / "tanh.tflite", tmp_path / "tanh.onnx", converter=converter)
    assert "\n" not in str(caught.value) and caught.value.fix
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tanh.tflite"]  # nothing half-written left behind


def test_a_custom_operator_is_named_in_the_error(tmp_path):
    pytest.importorskip("tflite2onnx", reason="needs tflite2onnx")
    import flatbuffers

    from export.tflite import tflite_to_onnx

    model = schema.ModelT.InitFromPackedBuf(bytearray(_tiny("RELU", [1, 4], [1, 4])), 0)
    model.operatorCodes[0].builtinCode = model.operatorCodes[0].deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    model.operatorCodes[0].customCode = "Landmarks2TransformMatrix"
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    (tmp_path / "custom.tflite").write_bytes(bytes(builder.Output()))
    with pytest.raises(EdgeError, match=r"operator CUSTOM \(Landmarks2TransformMatrix\).*exists only in the runtime"):
        tflite_to_onnx(tmp_path / "custom.tflite", tmp_path / "custom.onnx", converter="tflite2onnx")


def test_tf2onnx_route_without_tf2onnx_names_the_install(tmp_path):
    import importlib.util

    if importlib.util.find_spec("tf2onnx") is not None:
        pytest.skip("tf2onnx is installed here")
    from export.tflite import tflite_to_onnx

    (tmp_path / "relu.tflite").write_bytes(_tiny("RELU", [1, 4], [1, 4]))
    with pytest.raises(EdgeError, match="needs the Python module 'tf2onnx'.*pip install tf2onnx tensorflow"):
        tflite_to_onnx(tmp_path / "relu.tflite", tmp_path / "relu.onnx", converter="tf2onnx")


@pytest.mark.parametrize("folder,name", [("face_detection_full_range", "face_detection_full_range_sparse"),
                                         ("selfie_segmentation", "selfie_segmentation")])
def test_tf2onnx_route_matches_litert(tmp_path, folder, name):
    """The other route on the two models that needed the most rewriting: NCHW input, outputs in the
    TFLite layout, within 1e-3 of LiteRT on a random input (measured 2.5e-4 on the samples)."""
    pytest.importorskip("tf2onnx", reason="the tf2onnx route needs tf2onnx and TensorFlow")
    from export.tflite import tflite_to_onnx

    source = ROOT / "models" / folder / f"{name}.tflite"
    report = []
    tflite_to_onnx(source, tmp_path / "model.onnx", converter="tf2onnx", report=report)
    assert report[1].startswith("converter: tf2onnx ")
    size = 192 if "detection" in name else 256
    x = np.random.default_rng(1).uniform(0, 1, (1, size, size, 3)).astype(np.float32)
    assert np.abs(_onnx(tmp_path / "model.onnx", x) - _litert(source.read_bytes(), x)).max() <= 1e-3
