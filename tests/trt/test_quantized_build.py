"""Building engines from edge.quantize's files, and the quantized copies strongly typed TensorRT (11.x) needs.

TensorRT 11 has no FP16/INT8 builder flags and no calibrators: fp16 or int8 of a float32 ONNX builds a copy
made by edge.quantize (cached under EDGE_CACHE_DIR/quantized); <= 10.x keeps the builder flags and the
calibrator. The fake parser refuses Q/DQ the way TensorRT's ONNX importer does (fake_tensorrt_qdq.py), so
the Q/DQ edge.quantize writes for target tensorrt must pass it and the target cpu form must not. The fake
computes with ONNX Runtime, so these tests prove the plumbing and the graph form, not TensorRT's numerics.
"""

import shutil
from pathlib import Path
from typing import Any, List

import cv2
import numpy as np
import onnx
import pytest
from fake_tensorrt import install_fake
from onnx import TensorProto, helper, numpy_helper
from test_builder import one_line_error

import edge.cuda
from edge.backends import BACKENDS
from edge.backends.tensorrt import TensorRTBackend
from edge.model import Model
from edge.quantize import QuantizeOptions, file_precision, quantize_file, read_provenance, sha256_file
from edge.sources import open_source
from edge.tensorrt.builder import BuildOptions, build_engine

FACE = Path(__file__).resolve().parents[2] / "models/face_detection_short_range/face_detection_short_range.onnx"
VERSIONS = ["8.2", "8.5", "10.3", "11.1"]
WEAK = ["8.2", "8.5", "10.3"]  # weakly typed: FP16/INT8 builder flags and calibrators


def _quantizer_missing() -> str:
    """Why edge.quantize cannot run here ("" when it can): ONNX Runtime's quantization and float16 tools,
    from 1.13 (edge refuses older quantizers: they write wrong int8 files)."""
    from old_runtimes import ORT, ort_quantizes

    if ORT is not None and ORT < (1, 13):
        return ort_quantizes.kwargs["reason"]
    try:
        from onnxruntime.quantization import quantize_static  # noqa: F401
        from onnxruntime.transformers.float16 import convert_float_to_float16  # noqa: F401
    except ImportError as exc:  # e.g. ONNX Runtime 1.10 on Python 3.6 without six
        return f"edge.quantize needs ONNX Runtime's quantization tools ({exc})"
    return ""


needs_quantizer = pytest.mark.skipif(bool(_quantizer_missing()), reason=_quantizer_missing() or "available")


def write_frames(folder: Path, uri: str, samples: bool) -> Path:
    """Frames of a demo:// source (and the packaged sample photos) as JPEG files: a calibration set."""
    folder.mkdir(parents=True)
    with open_source(uri) as source:
        for index in range(10 ** 6):
            frame = source.read()
            if frame is None:
                break
            cv2.imwrite(str(folder / f"frame{index:03d}.jpg"), frame.image)
    if samples:
        for photo in (Path(edge.__file__).parent / "data/samples").glob("*.jpg"):
            shutil.copy(photo, folder / photo.name)
    return folder


@pytest.fixture(scope="module")
def calib(tmp_path_factory) -> Path:
    return write_frames(tmp_path_factory.mktemp("calib") / "a", "demo://?frames=40&width=320&height=240", True)


@pytest.fixture(scope="module")
def other_calib(tmp_path_factory) -> Path:
    return write_frames(tmp_path_factory.mktemp("calib") / "b", "demo://?frames=12&width=320&height=240&seed=7",
                        False)


@pytest.fixture(scope="module")
def quantized(tmp_path_factory, calib):
    """target -> the face detector quantized to int8 for that target (ONNX Runtime's quantizer)."""
    folder = tmp_path_factory.mktemp("quantized")
    return {target: quantize_file(FACE, folder / f"face.{target}.int8.onnx", QuantizeOptions(
        "int8", target=target, calib_images=calib, quantizer="onnxruntime")).path for target in ("tensorrt", "cpu")}


def use_fake(monkeypatch: Any, tmp_path: Path, version: str) -> Any:
    """The fake tensorrt and CUDA layer, the backend, edge's caches under tmp_path, ONNX Runtime's quantizer."""
    fake = install_fake(monkeypatch, version)
    monkeypatch.setattr(edge.cuda, "open_cuda", lambda prefer=None, device=0: fake.cuda_layer())
    monkeypatch.setattr(edge.cuda, "gpu_available", lambda: (True, "fake"))
    monkeypatch.setitem(BACKENDS, "tensorrt", TensorRTBackend)
    monkeypatch.setenv("EDGE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("EDGE_NO_MODELOPT", "1")  # the quantizer the fixture files use, installed or not
    return fake


def builds(fake: Any) -> int:
    return len(fake.called("Builder.build_serialized_network"))


def provenance(model: Model) -> dict:
    return model.backend.sidecar["provenance"]


# ------------------------------------------------------------------------------------------ edge.quantize's files
@needs_quantizer
@pytest.mark.parametrize("version", VERSIONS)
def test_the_tensorrt_target_file_builds_int8(monkeypatch, quantized, version):
    fake = install_fake(monkeypatch, version)
    result = build_engine(quantized["tensorrt"], BuildOptions(precision="int8"), report=lambda line: None)
    assert result.precision_obtained == "int8" and set(result.layer_precisions) == {"int8"}
    assert not fake.called("IBuilderConfig.int8_calibrator")  # explicit quantization: no calibrator
    assert ("IBuilderConfig.set_flag(INT8)" in fake.calls) == (version in WEAK)
    assert not [message for level, message in fake.log if level in ("ERROR", "INTERNAL_ERROR")]


@needs_quantizer
@pytest.mark.parametrize("version", VERSIONS)
def test_the_cpu_target_file_is_refused_by_the_parser(monkeypatch, quantized, version):
    fake = install_fake(monkeypatch, version)
    one_line_error(lambda: build_engine(quantized["cpu"], BuildOptions(precision="int8"), report=lambda line: None),
                   f"TensorRT {fake.version_string} cannot parse the model", "(DequantizeLinear)",
                   "Found unsupported input type of INT32", "--target tensorrt")
    assert builds(fake) == 0


@needs_quantizer
def test_the_tensorrt_target_file_is_built_as_is_and_defaults_to_int8_on_11(monkeypatch, tmp_path, quantized,
                                                                              calib):
    fake = use_fake(monkeypatch, tmp_path, "11.1")
    lines: List[str] = []
    with Model(quantized["tensorrt"], backend="tensorrt", backend_options={"report": lines.append}) as model:
        assert model.backend.precision_asked == model.backend.precision_obtained == "int8"
        assert provenance(model)["onnx_sha256"] == sha256_file(quantized["tensorrt"])
    with Model(quantized["tensorrt"], backend="tensorrt", backend_options={
            "precision": "int8", "calib_images": str(calib), "report": lines.append}) as model:
        assert model.backend.precision_obtained == "int8"
    assert not (tmp_path / "quantized").exists() and not any("takes precision from" in line for line in lines)
    assert fake.builds[-1]["flags"] == [] and fake.builds[-1]["precision"] == "Int8"


# ------------------------------------------------------------------------------------------ copies made for 11.x
@needs_quantizer
def test_fp16_of_a_float32_onnx_on_11_builds_a_float16_copy(monkeypatch, tmp_path):
    fake = use_fake(monkeypatch, tmp_path, "11.1")
    lines: List[str] = []
    with Model(FACE, backend="tensorrt", backend_options={"precision": "fp16", "report": lines.append}) as model:
        assert model.backend.precision_asked == model.backend.precision_obtained == "fp16"
        derived = Path(provenance(model)["onnx_path"])
    assert derived.parent == tmp_path / "quantized" and file_precision(derived) == "fp16"
    assert [line for line in lines if "takes precision from the ONNX types" in line] == [
        f"TensorRT 11.1.0 takes precision from the ONNX types: building the fp16 engine from {derived} ({FACE.name} "
        "converted to fp16)"]
    assert fake.builds[-1]["flags"] == [] and fake.builds[-1]["precision"] == "Half"


@needs_quantizer
def test_int8_with_calibration_images_on_11_builds_a_quantized_copy_once(monkeypatch, tmp_path, calib, astronaut):
    fake = use_fake(monkeypatch, tmp_path, "11.1")
    lines: List[str] = []
    options = {"precision": "int8", "calib_images": str(calib), "report": lines.append}
    with Model(FACE, backend="tensorrt", backend_options=options) as model:
        assert model.backend.precision_obtained == "int8"
        derived, plan = Path(provenance(model)["onnx_path"]), model.backend.plan_path
        with Model(derived, backend="onnxruntime-cpu") as reference:  # the plan runs the derived file's graph
            assert str(model(astronaut)) == str(reference(astronaut))
    quant = read_provenance(derived)
    assert derived.parent == tmp_path / "quantized" and quant["target"] == "tensorrt"
    assert quant["calibration"]["images"] == len(list(calib.iterdir()))
    assert provenance(model)["onnx_sha256"] == sha256_file(derived) and builds(fake) == 1
    assert any(line.startswith("int8 model: quantizing face_detection_short_range.onnx") for line in lines)
    assert f"building the int8 engine from {derived} ({FACE.name} quantized to int8, calibrated on {calib})" in \
        " ".join(lines)

    lines.clear()  # the same request again: the quantized copy and the plan are both reused
    with Model(FACE, backend="tensorrt", backend_options=options) as again:
        assert again.backend.plan_path == plan and again.backend.plan_origin == "cache hit"
    assert builds(fake) == 1 and f"int8 model: cached {derived}" in lines
    assert not any("quantizing" in line for line in lines)


@needs_quantizer
def test_other_calibration_images_give_another_copy_and_another_plan(monkeypatch, tmp_path, calib, other_calib):
    fake = use_fake(monkeypatch, tmp_path, "11.1")
    plans, copies = [], []
    for folder in (calib, other_calib):
        with Model(FACE, backend="tensorrt", backend_options={"precision": "int8", "calib_images": str(folder),
                                                              "report": lambda line: None}) as model:
            plans.append(model.backend.plan_path)
            copies.append(Path(provenance(model)["onnx_path"]))
            key = provenance(model)["cache_key"]
            assert key["onnx_sha256"] == sha256_file(copies[-1]) and "calibration_sha256" not in key
    assert copies[0] != copies[1] and sha256_file(copies[0]) != sha256_file(copies[1])
    assert plans[0] != plans[1] and all(p.is_file() for p in plans) and builds(fake) == 2


def test_int8_without_calibration_images_on_11_names_edge_export_quantize(monkeypatch, tmp_path):
    fake = use_fake(monkeypatch, tmp_path, "11.1")
    command = f"edge-export quantize {FACE.name} --precision int8 --calib-images DIR"
    one_line_error(lambda: TensorRTBackend(FACE, options={"precision": "int8"}).prepare(),
                   "int8 needs calibration images", command)
    one_line_error(lambda: build_engine(FACE, BuildOptions(precision="int8"), report=lambda line: None),
                   "has no INT8 calibration", command)
    assert builds(fake) == 0 and not (tmp_path / "quantized").exists()


@pytest.mark.filterwarnings("ignore:IInt8EntropyCalibrator2 is deprecated:DeprecationWarning")  # 10.x: expected
@pytest.mark.parametrize("version", WEAK)
def test_weakly_typed_versions_use_builder_flags_and_derive_nothing(monkeypatch, tmp_path, calib, version):
    fake = use_fake(monkeypatch, tmp_path, version)
    with Model(FACE, backend="tensorrt", backend_options={"precision": "fp16", "report": lambda line: None}) as model:
        assert provenance(model)["onnx_path"] == str(FACE.resolve()) and model.backend.precision_obtained == "fp16"
    assert fake.builds[-1]["flags"] == ["FP16"]
    with Model(FACE, backend="tensorrt", backend_options={"precision": "int8", "calib_images": str(calib),
                                                          "report": lambda line: None}) as model:
        assert provenance(model)["onnx_path"] == str(FACE.resolve()) and model.backend.precision_obtained == "int8"
        assert provenance(model)["cache_key"]["calibration_sha256"]
    assert fake.builds[-1]["flags"] == ["FP16", "INT8"] and fake.called("IBuilderConfig.int8_calibrator")
    assert len(fake.builds[-1]["calibration_batches"]) == len(list(calib.iterdir()))
    assert not (tmp_path / "quantized").exists()


# ------------------------------------------------------------------------------------------ the parser's Q/DQ rules
def qdq_conv(path: Path, *, act_zero: Any = np.int8(0), act_scale: Any = np.float32(0.02),
             weight: Any = None, weight_scale: Any = None, int32_bias: bool = False, runtime_scale: bool = False,
             zero_len: int = 4) -> Path:
    """image -> Q -> DQ -> Conv (DQ'd weights, per output channel) -> out: one knob per rule."""
    weight = np.ones((4, 3, 1, 1), np.int8) if weight is None else weight
    weight_scale = np.full(4, 0.01, np.float32) if weight_scale is None else weight_scale
    inits = [numpy_helper.from_array(weight, "w_q"), numpy_helper.from_array(np.asarray(weight_scale), "w_scale"),
             numpy_helper.from_array(np.zeros(zero_len, weight.dtype), "w_zero")]
    act = ["act_scale"]
    if act_zero is not None:  # None: no zero point (ONNX's default, uint8 0)
        inits.append(numpy_helper.from_array(np.asarray(act_zero), "act_zero"))
        act.append("act_zero")
    nodes = [helper.make_node("QuantizeLinear", ["image"] + act, ["q"], name="image_Q"),
             helper.make_node("DequantizeLinear", ["q"] + act, ["dq"], name="image_DQ"),
             helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zero"], ["w"], name="weight_DQ", axis=0)]
    if runtime_scale:  # a scale computed from the input at run time
        nodes[:0] = [helper.make_node("ReduceMax", ["image"], ["peak"], keepdims=0),
                     helper.make_node("Div", ["peak", "levels"], ["act_scale"])]
        inits.append(numpy_helper.from_array(np.float32(127), "levels"))
    else:
        inits.append(numpy_helper.from_array(np.asarray(act_scale, np.float32), "act_scale"))
    conv_inputs = ["dq", "w"]
    if int32_bias:  # ONNX Runtime's quantized bias (target cpu)
        inits += [numpy_helper.from_array(np.arange(4, dtype=np.int32), "b_q"),
                  numpy_helper.from_array(np.full(4, 2e-4, np.float32), "b_scale"),
                  numpy_helper.from_array(np.zeros(4, np.int32), "b_zero")]
        nodes.append(helper.make_node("DequantizeLinear", ["b_q", "b_scale", "b_zero"], ["b"], name="bias_DQ", axis=0))
        conv_inputs.append("b")
    nodes.append(helper.make_node("Conv", conv_inputs, ["out"], name="conv"))
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


NON_ZERO = "Non-zero zero point is not supported"
QDQ_RULES = [  # (case, graph knobs, version, refusal expected in the error or None, warning expected or None)
    ("int8, zero point 0", {}, "11.1", None, None),
    ("int8, zero point 0, 8.x", {}, "8.5", None, None),
    ("uint8 activations, zero point 128 (target cpu)", {"act_zero": np.uint8(128)}, "11.1", NON_ZERO,
     "UINT8 zero_point only on DLA"),
    ("uint8 zero point 128 on 8.x", {"act_zero": np.uint8(128)}, "8.5", "zeroPt must be all zeros", None),
    ("uint8 activations, zero point 0: taken as int8", {"act_zero": np.uint8(0)}, "11.1", None,
     "Defaulting to INT8 instead"),
    ("int8, zero point 3", {"act_zero": np.int8(3)}, "10.3", NON_ZERO, None),
    ("no zero point", {"act_zero": None}, "11.1", None, None),
    ("no zero point on 8.x", {"act_zero": None}, "8.5", "requires 3 inputs for the DequantizeLinear operator", None),
    ("uint8 weights", {"weight": np.ones((4, 3, 1, 1), np.uint8)}, "11.1", "Found unsupported input type of UINT8",
     None),
    ("int32 bias (target cpu)", {"int32_bias": True}, "11.1", "Found unsupported input type of INT32",
     "For zero_point with type INT32 TensorRT will use INT8 instead."),
    ("zero scale", {"act_scale": np.float32(0)}, "11.1", "Scale coefficients must all be positive", None),
    ("negative channel scale", {"weight_scale": np.array([0.1, -0.1, 0.1, 0.1], np.float32)}, "11.1",
     "Scale coefficients must all be positive", None),
    ("NaN scale", {"act_scale": np.float32("nan")}, "11.1", "Scale coefficients must all be positive", None),
    ("3 scales for 4 channels", {"weight_scale": np.full(3, 0.01, np.float32), "zero_len": 3}, "11.1",
     "number of scales is not equal to the number of output channels. Number of output channels = 4", None),
    ("zero point and scale volumes differ", {"zero_len": 1}, "11.1", "must have the same volume", None),
]


@pytest.mark.parametrize("case, knobs, version, refusal, warning", QDQ_RULES, ids=[r[0] for r in QDQ_RULES])
def test_the_parser_takes_qdq_as_tensorrt_does(monkeypatch, tmp_path, case, knobs, version, refusal, warning):
    fake = install_fake(monkeypatch, version)
    path = qdq_conv(tmp_path / "q.onnx", **knobs)
    if refusal is None:
        result = build_engine(path, BuildOptions(precision="int8"), report=lambda line: None)
        assert result.precision_obtained == "int8"
    else:
        one_line_error(lambda: build_engine(path, BuildOptions(precision="int8"), report=lambda line: None),
                       "cannot parse the model", refusal, "--target tensorrt")
        assert builds(fake) == 0
    warned = [message for level, message in fake.log if level == "WARNING"]
    assert not warned if warning is None else any(warning in message for message in warned), warned


def test_a_scale_computed_at_run_time_parses_but_does_not_build(monkeypatch, tmp_path):
    fake = install_fake(monkeypatch, "11.1")
    path = qdq_conv(tmp_path / "q.onnx", runtime_scale=True)
    one_line_error(lambda: build_engine(path, BuildOptions(precision="int8"), report=lambda line: None),
                   "could not build the engine", "image_Q: the scale of a Quantize/Dequantize layer must be a "
                   "build-time constant")
    assert builds(fake) == 1 and fake.called("OnnxParser.parse_from_file")
