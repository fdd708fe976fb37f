"""Debian bookworm's distro packages (onnx 1.12, numpy 1.24, OpenCV 4.6), as on 32-bit ARM boards.

The armhf CI job (``.ci/armhf.sh``) runs these inside an emulated Debian armhf root; here they run
against whatever onnx is installed, with the newer API taken away where it exists.
"""

import sys
import types
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from old_runtimes import opencv_loads_face_model
from onnx import TensorProto, helper

from edge.onnxfile import TensorSpec, onnx_np_dtype, read_onnx

# onnx 1.12's ``onnx.mapping.TENSOR_TYPE_TO_NP_TYPE``, as shipped (bfloat16 read as float32 there).
ONNX_1_12_TABLE = {
    TensorProto.FLOAT: np.dtype("float32"), TensorProto.UINT8: np.dtype("uint8"),
    TensorProto.INT8: np.dtype("int8"), TensorProto.UINT16: np.dtype("uint16"),
    TensorProto.INT16: np.dtype("int16"), TensorProto.INT32: np.dtype("int32"),
    TensorProto.INT64: np.dtype("int64"), TensorProto.BOOL: np.dtype("bool"),
    TensorProto.FLOAT16: np.dtype("float16"), TensorProto.BFLOAT16: np.dtype("float32"),
    TensorProto.DOUBLE: np.dtype("float64"), TensorProto.COMPLEX64: np.dtype("complex64"),
    TensorProto.COMPLEX128: np.dtype("complex128"), TensorProto.UINT32: np.dtype("uint32"),
    TensorProto.UINT64: np.dtype("uint64"), TensorProto.STRING: np.dtype(object),
}
# The element types edge models use, with the dtype every onnx release gives them.
COMMON = [
    (TensorProto.FLOAT, np.float32), (TensorProto.FLOAT16, np.float16), (TensorProto.DOUBLE, np.float64),
    (TensorProto.UINT8, np.uint8), (TensorProto.INT8, np.int8), (TensorProto.INT32, np.int32),
    (TensorProto.INT64, np.int64), (TensorProto.BOOL, np.bool_),
]


@pytest.fixture()
def onnx_1_12(monkeypatch: pytest.MonkeyPatch) -> str:
    """onnx as 1.12 has it: no ``helper.tensor_dtype_to_np_dtype``; ``onnx.mapping`` (the real one if present).

    Returns which mapping the test runs against: "real" (onnx <= 1.14) or "1.12 table" (newer onnx
    removed the module, so onnx 1.12's table stands in for it).
    """
    monkeypatch.delattr(helper, "tensor_dtype_to_np_dtype", raising=False)
    try:
        from onnx import mapping  # noqa: F401  (removed in newer onnx)
    except ImportError:
        stand_in = types.ModuleType("onnx.mapping")
        stand_in.TENSOR_TYPE_TO_NP_TYPE = {int(k): v for k, v in ONNX_1_12_TABLE.items()}
        monkeypatch.setitem(sys.modules, "onnx.mapping", stand_in)
        monkeypatch.setattr(onnx, "mapping", stand_in, raising=False)
        return "1.12 table"
    return "real"


def io_model(path: Path, elem_types) -> Path:
    """An Identity per element type: input ``x<i>`` -> output ``y<i>``, shape [1, 'n']."""
    inputs = [helper.make_tensor_value_info(f"x{i}", t, [1, "n"]) for i, t in enumerate(elem_types)]
    outputs = [helper.make_tensor_value_info(f"y{i}", t, [1, "n"]) for i, t in enumerate(elem_types)]
    nodes = [helper.make_node("Identity", [f"x{i}"], [f"y{i}"]) for i in range(len(elem_types))]
    model = helper.make_model(helper.make_graph(nodes, "io", inputs, outputs),
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("elem_type, expected", COMMON)
def test_dtype_without_tensor_dtype_to_np_dtype(onnx_1_12, elem_type, expected):
    assert not hasattr(helper, "tensor_dtype_to_np_dtype")
    assert onnx_np_dtype(elem_type) == np.dtype(expected)


@pytest.mark.parametrize("elem_type, expected", COMMON)
def test_dtype_with_the_current_onnx(elem_type, expected):
    assert onnx_np_dtype(elem_type) == np.dtype(expected)


@pytest.mark.parametrize("elem_type", sorted(int(t) for t in ONNX_1_12_TABLE if t != TensorProto.BFLOAT16))
def test_onnx_1_12_table_matches_the_current_onnx(elem_type):
    # Keeps the stand-in honest: every type onnx 1.12 knew maps as the installed onnx maps it.
    assert ONNX_1_12_TABLE[elem_type] == onnx_np_dtype(elem_type)


def test_read_onnx_on_onnx_1_12(onnx_1_12, tmp_path: Path):
    info = read_onnx(io_model(tmp_path / "io.onnx", [t for t, _ in COMMON]))
    assert info.inputs == tuple(TensorSpec(f"x{i}", (1, "n"), np.dtype(d)) for i, (_, d) in enumerate(COMMON))
    assert [spec.dtype for spec in info.outputs] == [np.dtype(d) for _, d in COMMON]


def test_unknown_element_type_is_a_key_error(onnx_1_12):
    with pytest.raises(KeyError):
        onnx_np_dtype(TensorProto.UNDEFINED)


@opencv_loads_face_model
def test_face_detector_on_onnx_1_12(onnx_1_12, face_model_path: Path, astronaut):
    """The shipped BlazeFace on the opencv backend (no ONNX Runtime), as the armhf root runs it."""
    pytest.importorskip("cv2")
    from edge.model import Model

    with Model(face_model_path, backend="opencv") as model:
        faces = model(astronaut)
    assert len(faces) == 1
    assert float(faces.scores[0]) > 0.8
    x1, y1, x2, y2 = (float(v) for v in faces.boxes_xyxy[0])
    # The astronaut's face (512x512 sample): centre near (225, 127), about 93 px wide.
    assert abs((x1 + x2) / 2 - 225) < 10 and abs((y1 + y2) / 2 - 127) < 10
    assert 80 < x2 - x1 < 106


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_uint8_input_with_a_normalisation_builds_without_warnings(layout):
    # numpy >= 1.24 on ARM warns "invalid value encountered in cast" when a negative float becomes
    # uint8 (x86 wraps silently); a uint8 input takes raw pixels, so nothing may be cast there.
    from edge.config import InputSpec, PreprocessSpec
    from edge.preprocess import Preprocessor

    shape = (1, 3, 6, 8) if layout == "NCHW" else (1, 6, 8, 3)
    spec = PreprocessSpec(color="BGR", resize="stretch", scale=1 / 255, mean=(0.4, 0.5, 0.6), std=(0.2, 0.3, 0.4))
    image = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, _ = Preprocessor(InputSpec("image", shape, layout, "uint8"), spec)(image)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[0].transpose(1, 2, 0) if layout == "NCHW" else out[0], image)
