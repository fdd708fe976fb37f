"""Models that configure themselves: edge configs derived from Ultralytics' ONNX metadata.

Tiny ONNX files with Ultralytics' names and metadata run everywhere; the real exports (YOLOv8n,
YOLO11n by Ultralytics' exporter) run where ultralytics and torch are installed.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ultralytics_models import make_fake_ultralytics, ultralytics_metadata

from edge.autoconfig import model_config, parse_names, ultralytics_config
from edge.errors import EdgeError
from edge.model import Model, load_model, resolve_config
from edge.onnxfile import OnnxInfo, TensorSpec, read_onnx

ROOT = Path(__file__).resolve().parents[2]
F32 = np.dtype(np.float32)


def info_for(metadata, output_shape=(1, 7, 16), input_shape=(1, 3, 32, 32)) -> OnnxInfo:
    return OnnxInfo(Path("yolo.onnx"), (TensorSpec("images", tuple(input_shape), F32),),
                    (TensorSpec("output0", tuple(output_shape), F32),), dict(metadata), 17)


@pytest.mark.parametrize("text, expected", [
    ("{0: 'person', 1: 'bicycle'}", ["person", "bicycle"]),
    ("{1: 'b', 0: 'a'}", ["a", "b"]),                 # order of ids, not of the text
    ("['a', 'b']", ["a", "b"]),
    ("{0: 'person', 2: 'car'}", "ids 0..n-1"),        # a gap
    ("{}", "ids 0..n-1"),
    ("__import__('os').system('true')", "not a Python literal"),  # never evaluated
    ("{0: 'a'", "not a Python literal"),
])
def test_parse_names(text, expected):
    if isinstance(expected, list):
        assert parse_names(text) == expected
    else:
        with pytest.raises(EdgeError, match=expected):
            parse_names(text)


@pytest.mark.parametrize("metadata, output_shape, decoder", [
    (ultralytics_metadata(3), (1, 7, 16), {"type": "yolo", "layout": "anchor_free", "score_threshold": 0.25}),
    (ultralytics_metadata(3, nms="True"), (1, 300, 6), {"type": "boxes", "box_format": "xyxy", "normalized": False}),
    (ultralytics_metadata(3, end2end="True"), (1, 300, 6), {"type": "boxes", "nms": {"method": "none",
                                                                                     "max_detections": 300}}),
    (ultralytics_metadata(3, task="classify"), (1, 3), {"type": "classify", "activation": "none"}),
])
def test_config_from_metadata(metadata, output_shape, decoder):
    data = ultralytics_config(info_for(metadata, output_shape))
    assert data["labels"] == ["class0", "class1", "class2"]
    assert data["input"] == {"name": "images", "shape": [1, 3, 32, 32], "layout": "NCHW"}
    assert data["preprocess"]["color"] == "RGB" and data["preprocess"]["scale"] == 1 / 255
    assert data["preprocess"]["mean"] == [0.0] * 3 and data["preprocess"]["std"] == [1.0] * 3
    expected_resize = "center_crop" if metadata["task"] == "classify" else "letterbox"
    assert data["preprocess"]["resize"] == expected_resize and data["preprocess"]["pad_value"] == 114
    assert data["decoder"]["output"] == "output0"
    for key, value in decoder.items():
        assert data["decoder"][key] == value


def test_dynamic_export_runs_at_its_training_size():
    data = ultralytics_config(info_for(ultralytics_metadata(3, imgsz="[480, 640]"),
                                       input_shape=("batch", 3, "height", "width")))
    assert data["input"]["shape"] == [None, 3, 480, 640]


DYNAMIC = ("batch", 3, "height", "width")


@pytest.mark.parametrize("imgsz, stride, message", [
    ("[1000000, 1000000]", "32", r"imgsz \[1000000, 1000000\] .* multiple of the model's stride 32 up to 8192"),
    ("[330, 320]", "32", r"imgsz \[330, 320\] .* stride 32"),
    ("[8224, 8224]", "32", "up to 8192"),         # a multiple of 32, but too large
    ("[320, 320]", "0", "'stride' is not a positive integer"),
    ("[320, 320]", "'a'", "'stride' is not a positive integer"),
    ("[320, 320]", "[8, 16, 32]", None),          # older exports: the strides, the largest counts
    ("[96, 8192]", "32", None),
])
def test_dynamic_export_size_is_checked(imgsz, stride, message):
    info = info_for(ultralytics_metadata(3, imgsz=imgsz, stride=stride), input_shape=DYNAMIC)
    if message is None:
        assert ultralytics_config(info)["input"]["shape"][2:] == json.loads(imgsz)
        return
    with pytest.raises(EdgeError, match=message) as error:
        ultralytics_config(info)
    assert "\n" not in str(error.value) and "Fix:" in str(error.value)


@pytest.mark.parametrize("shape, layout, message", [
    ([1, 3, 330, 320], "NCHW", r"input.shape \[1, 3, 330, 320\]: size \[330, 320\].*e.g. \[320, 320\]"),
    ([1, 3, 320, 16384], "NCHW", "up to 8192"),
    ([1, 3, 256, 640], "NCHW", None),
])
def test_users_input_shape_on_a_dynamic_export_is_checked(shape, layout, message):
    # metadata imgsz too large: the user's input.shape replaces it (and is what gets checked)
    info = info_for(ultralytics_metadata(3, imgsz="[1000000, 1000000]"), input_shape=DYNAMIC)
    overrides = {"input": {"shape": shape, "layout": layout}}
    if message is None:
        assert list(resolve_config(info, overrides, use_sidecar=False).input.shape) == shape
        return
    with pytest.raises(EdgeError, match=message) as error:
        resolve_config(info, overrides, use_sidecar=False)
    assert "\n" not in str(error.value) and "Fix:" in str(error.value)


def test_rtdetr_config_is_ultralytics_rtdetr_predictor():
    data = ultralytics_config(info_for(ultralytics_metadata(3, head="RTDETRDecoder"), (1, 300, 6)))
    assert data["task"] == "detect" and data["preprocess"]["resize"] == "stretch"
    assert data["decoder"] == {"type": "boxes", "output": "output0", "box_format": "cxcywh", "normalized": True,
                               "score_threshold": 0.25, "nms": {"method": "none", "max_detections": 300}}


def test_rtdetr_fake_loads_with_no_flags(tmp_path):
    path = make_fake_ultralytics(tmp_path / "rtdetr.onnx", ultralytics_metadata(3, head="RTDETRDecoder"),
                                 output_shape=(1, 16, 6))
    with load_model(path, backend="onnxruntime-cpu") as model:
        assert model.decoder.kind == "boxes" and model.config.preprocess.resize == "stretch"
        assert model.decoder.box_format == "cxcywh" and model.decoder.normalized


@pytest.mark.parametrize("metadata, output_shape, message", [
    (ultralytics_metadata(80), (1, 7, 16), r"lists 80 classes \(names\) but output 'output0' has shape "
                                           r"\[1, 7, 16\]: 7 rows, not 4 \+ 80"),
    (ultralytics_metadata(3, nms="True"), (1, 300, 7), r"NMS is in the graph .* not \(1, K, 6\)"),
    (ultralytics_metadata(3, task="segment"), (1, 39, 16), r"prototype output, but this model's outputs are "
                                                           r"output0 \[1, 39, 16\]"),
    (ultralytics_metadata(3, task="pose", kpt_shape="[17, 3]"), (1, 56, 16),
     r"shape \[1, 56, 16\]: 56 rows, not 4 \+ 3 \+ 17 x 3 \(kpt_shape\)"),
    (ultralytics_metadata(3, task="pose"), (1, 58, 16), r"'kpt_shape' is not \[keypoints, 2 or 3\]: '\(missing\)'"),
    (ultralytics_metadata(3, task="pose", kpt_shape="[17, 4]"), (1, 75, 16), r"'kpt_shape' is not \[keypoints"),
    (ultralytics_metadata(3, task="pose", kpt_shape="[17, 3]", nms="True"), (1, 300, 57),
     "'pose' models exported with NMS in the graph .* not supported yet"),
    (ultralytics_metadata(3, task="obb"), (1, 8, 16), "'obb' models are not supported yet"),
    (ultralytics_metadata(3, task="track"), (1, 7, 16), "task 'track', which edge does not know"),
    (ultralytics_metadata(3, imgsz="640x640"), (1, 7, 16), "'imgsz' is not a Python literal"),
    (ultralytics_metadata(3, imgsz="[640]"), (1, 7, 16), r"'imgsz' is not \[height, width\]"),
    (ultralytics_metadata(3, channels="4"), (1, 7, 16), "'channels' is 4"),
    # metadata that is not this graph's: a 32x32 3-channel input
    (ultralytics_metadata(3, imgsz=640), (1, 7, 16), r"says imgsz \[640, 640\] .* input shape is \[1, 3, 32, 32\]"),
    (ultralytics_metadata(3, imgsz="[32, 64]"), (1, 7, 16), r"says imgsz \[32, 64\]"),
    (ultralytics_metadata(3, channels="1"), (1, 7, 16), r"says channels=1 but input shape is \[1, 3, 32, 32\]"),
    (ultralytics_metadata(3, head="RTDETRDecoder"), (1, 300, 7),
     r"RT-DETR head .* shape \[1, 300, 7\], not \(1, K, 6\) cx cy w h score class"),
])
def test_contradictions_are_one_line_errors(metadata, output_shape, message):
    with pytest.raises(EdgeError, match=message) as info:
        ultralytics_config(info_for(metadata, output_shape))
    assert "\n" not in str(info.value) and "Fix:" in str(info.value)


def test_users_input_section_replaces_contradicting_metadata():
    info = info_for(ultralytics_metadata(3, imgsz=640))  # a 32x32 graph
    config = resolve_config(info, {"input": {"shape": [1, 3, 32, 32]}}, use_sidecar=False)
    assert config.input.size_wh == (32, 32) and config.decoder["type"] == "yolo"


def test_not_ultralytics_and_embedded_config_win():
    assert ultralytics_config(info_for({"author": "someone"})) is None
    embedded = {"edge_config": 1, "task": "classify"}
    info = info_for(dict(ultralytics_metadata(3), edge_config=json.dumps(embedded)))
    assert model_config(info) == embedded


def pose_and_seg_info(task, outputs, **extra) -> OnnxInfo:
    specs = tuple(TensorSpec(name, shape, F32) for name, shape in outputs)
    return OnnxInfo(Path("yolo.onnx"), (TensorSpec("images", (1, 3, 32, 32), F32),), specs,
                    ultralytics_metadata(3, task=task, **extra), 17)


@pytest.mark.parametrize("task, outputs, extra, edge_task, decoder", [
    ("segment", [("output0", (1, 39, 16)), ("output1", (1, 32, 8, 8))], {}, "segment",
     {"output": "output0", "masks": {"proto_output": "output1", "num_masks": 32}}),
    ("segment", [("protos", (1, 16, 8, 8)), ("boxes", (1, 23, 16))], {}, "segment",  # names and order do not matter
     {"output": "boxes", "masks": {"proto_output": "protos", "num_masks": 16}}),
    ("pose", [("output0", (1, 58, 16))], {"kpt_shape": "[17, 3]"}, "keypoints",
     {"output": "output0", "kpt_shape": [17, 3], "skeleton": "coco17"}),
    ("pose", [("output0", (1, 17, 16))], {"kpt_shape": "[5, 2]"}, "keypoints",
     {"output": "output0", "kpt_shape": [5, 2]}),
])
def test_segment_and_pose_configs_from_metadata(task, outputs, extra, edge_task, decoder):
    data = ultralytics_config(pose_and_seg_info(task, outputs, **extra))
    assert data["task"] == edge_task and data["preprocess"]["resize"] == "letterbox"
    assert data["decoder"] == dict({"type": "yolo", "layout": "anchor_free", "score_threshold": 0.25,
                                    "nms": {"class_agnostic": False, "iou_threshold": 0.7, "max_detections": 300}},
                                   **decoder)


def test_unsupported_task_runs_with_the_users_decoder():
    data = ultralytics_config(info_for(ultralytics_metadata(3, task="pose")), given={"task", "decoder"})
    assert data["labels"] == ["class0", "class1", "class2"] and "decoder" not in data


# ---------------------------------------------------------------------- through the Model API
@pytest.fixture()
def fake_yolo(tmp_path) -> Path:
    return make_fake_ultralytics(tmp_path / "yolo.onnx", ultralytics_metadata(3))


def test_model_runs_with_no_flags(fake_yolo):
    with load_model(fake_yolo, backend="onnxruntime-cpu") as model:
        assert model.task == "detect" and model.config.labels == ("class0", "class1", "class2")
        assert model.decoder.kind == "yolo" and model.config.preprocess.resize == "letterbox"
        result = model(np.zeros((24, 40, 3), np.uint8))
        assert result.boxes_xyxy.shape[1] == 4


def test_explicit_config_still_overrides(fake_yolo, tmp_path):
    config = resolve_config(read_onnx(fake_yolo), {"decoder": {"score_threshold": 0.5, "nms": {"iou_threshold": 0.45}}})
    assert config.decoder["type"] == "yolo" and config.decoder["score_threshold"] == 0.5
    assert config.decoder["nms"]["iou_threshold"] == 0.45 and config.decoder["nms"]["max_detections"] == 300
    # A decoder of another type replaces the derived one instead of mixing their fields.
    boxes = {"type": "boxes", "output": "output0"}
    assert resolve_config(read_onnx(fake_yolo), {"decoder": boxes}).decoder == boxes
    sidecar = fake_yolo.with_suffix(".json")
    sidecar.write_text(json.dumps({"labels": ["a", "b", "c"], "preprocess": {"pad_value": 0}}))
    config = resolve_config(read_onnx(fake_yolo))
    assert config.labels == ("a", "b", "c") and config.preprocess.pad_value == 0


def test_labels_given_by_the_user_are_checked_against_the_head(fake_yolo):
    with pytest.raises(EdgeError, match=r"shape \[1, 7, 16\].*for 4 classes"):
        Model(fake_yolo, backend="onnxruntime-cpu", config={"labels": ["a", "b", "c", "d"]})


def test_rtdetr_metadata_error_is_not_about_classes(tmp_path):
    # An RT-DETR head is (1, 300, 6) whatever the class count: never "300 rows, not 4 + 80"
    path = make_fake_ultralytics(tmp_path / "rtdetr.onnx", ultralytics_metadata(80, head="RTDETRDecoder"),
                                 output_shape=(1, 16, 6))
    with load_model(path, backend="onnxruntime-cpu") as model:
        assert len(model.config.labels) == 80


def test_metadata_contradicting_the_head_fails_on_load(tmp_path):
    path = make_fake_ultralytics(tmp_path / "bad.onnx", ultralytics_metadata(80))
    with pytest.raises(EdgeError, match="lists 80 classes"):
        load_model(path, backend="onnxruntime-cpu")


def run_camera(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("DISPLAY", None)
    return subprocess.run([sys.executable, "-m", "edge.camera", *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=300, env=env, cwd=ROOT)


def json_lines(stdout: str):
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_camera_cli_with_no_flags(fake_yolo):
    from edge.samples import sample_path

    done = run_camera("--model", str(fake_yolo), "--source", str(sample_path("coffee")), "--headless",
                      "--output", "-", "--backend", "onnxruntime-cpu")
    assert done.returncode == 0, done.stderr
    frames = json_lines(done.stdout)
    assert len(frames) == 1 and frames[0]["result"]["task"] == "detect"


# ------------------------------------------------------------------ real Ultralytics exports
@pytest.fixture(scope="session")
def exports(tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("ultralytics")
    return tmp_path_factory.getbasetemp() / "ultralytics_exports"


@pytest.mark.parametrize("arch", ["yolov8n", "yolo11n"])
@pytest.mark.parametrize("nms", [False, True])
def test_real_exports_configure_themselves(exports, arch, nms):
    from ultralytics_models import export_yolo

    path = export_yolo(exports, arch, nms=nms)
    meta = read_onnx(path).metadata
    assert meta["task"] == "detect" and meta["imgsz"] == "[320, 320]" and "'nms': " + str(nms) in meta["args"]
    with load_model(path, backend="onnxruntime-cpu") as model:
        assert model.decoder.kind == ("boxes" if nms else "yolo") and len(model.config.labels) == 80
        assert model.config.input.size_wh == (320, 320) and model.config.preprocess.pad_value == 114


def test_real_export_camera_cli_with_no_flags(exports):
    from ultralytics_models import export_yolo

    from edge.samples import sample_path

    path = export_yolo(exports, "yolo11n")
    done = run_camera("--model", str(path), "--source", str(sample_path("astronaut")), "--headless",
                      "--output", "-", "--threshold", "0.05")
    assert done.returncode == 0, done.stderr
    frames = json_lines(done.stdout)
    assert len(frames) == 1 and len(frames[0]["result"]["detections"]) >= 10
    assert {"box_xyxy", "score", "class_id", "label"} <= set(frames[0]["result"]["detections"][0])


@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy:DeprecationWarning")
@pytest.mark.parametrize("arch, task", [("yolo11n-seg", "segment"), ("yolo11n-pose", "keypoints")])
def test_real_seg_and_pose_exports_run_in_the_camera_app(exports, arch, task, tmp_path):
    """Seeded Ultralytics segment and pose exports, no flags: JSON lines equal the Python API's result, with
    COCO RLE masks pycocotools decodes to the API's masks, and an annotated image is written."""
    mask_api = pytest.importorskip("pycocotools.mask")
    from ultralytics_models import export_yolo

    from edge.samples import load_sample, sample_path

    path = export_yolo(exports, arch)
    done = run_camera("--model", str(path), "--source", str(sample_path("astronaut")), "--headless",
                      "--output", "-", "--output", str(tmp_path / "out_%05d.png"), "--threshold", "0.05")
    assert done.returncode == 0, done.stderr
    frames = json_lines(done.stdout)
    assert len(frames) == 1 and frames[0]["result"]["task"] == task
    instances = frames[0]["result"]["instances"]
    with load_model(path, backend="onnxruntime-cpu", score_threshold=0.05) as model:
        assert model.task == task
        expected = model(load_sample("astronaut"))
    assert len(instances) == len(expected) >= 10
    if task == "segment":
        for item, mask in zip(instances, expected.masks):
            rle = {"size": item["rle"]["size"], "counts": item["rle"]["counts"].encode()}
            assert np.array_equal(mask_api.decode(rle).astype(bool), mask)
        np.testing.assert_allclose([i["box_xyxy"] for i in instances], expected.instances.boxes_xyxy, atol=0.01)
    else:
        np.testing.assert_allclose([i["points_xy"] for i in instances], expected.points_xy, atol=0.01)
        assert len(instances[0]["point_scores"]) == 17
        assert instances[0]["label"] == expected.labels[int(expected.class_ids[0])]
    assert (tmp_path / "out_00000.png").is_file()
    assert f"({task}, 320x320 letterbox)" in done.stderr


def test_real_classifier_export_configures_itself(exports):
    from ultralytics_models import export_yolo

    from edge.samples import load_sample

    path = export_yolo(exports, "yolo11n-cls", imgsz=224)
    with load_model(path, backend="onnxruntime-cpu") as model:
        assert model.task == "classify" and model.config.preprocess.resize == "center_crop"
        assert model.config.decoder["activation"] == "none" and len(model.config.labels) == 1000
        result = model(load_sample("coffee"))
    assert len(result) == 5 and 0.0 < float(result.scores[0]) <= 1.0  # probabilities, as exported (softmax)


@pytest.mark.parametrize("sample, conf", [("astronaut", 0.26), ("coffee", 0.27)])
def test_real_rtdetr_matches_ultralytics_predictor(exports, sample, conf):
    from ultralytics import RTDETR
    from ultralytics_models import export_rtdetr

    from edge.samples import load_sample

    path = export_rtdetr(exports)
    meta = read_onnx(path).metadata
    assert meta["head"] == "RTDETRDecoder" and meta["task"] == "detect"
    assert [list(o.shape) for o in read_onnx(path).outputs] == [[1, 300, 6]]
    image = load_sample(sample)
    with load_model(path, backend="onnxruntime-cpu", score_threshold=conf) as model:
        ours = model(image)
    theirs = RTDETR(str(path)).predict(image, conf=conf, imgsz=320, verbose=False)[0].boxes
    height, width = image.shape[:2]
    their_boxes = np.clip(theirs.xyxy.numpy(), 0, [width, height, width, height])  # edge clips to the frame
    assert 10 <= len(ours) == len(theirs)
    # Scores are close to one another: match rows by box and class, not by rank.
    for box, score, class_id in zip(ours.boxes_xyxy, ours.scores, ours.class_ids):
        distance = np.abs(their_boxes - box).max(axis=1) + 1000 * (theirs.cls.numpy() != class_id)
        best = int(np.argmin(distance))
        assert distance[best] < 0.5 and abs(float(theirs.conf[best]) - score) < 1e-4


# ------------------------------------------------------------------------------------ YOLOv5's exporter
def make_yolov5_like(path: Path, rows: np.ndarray, names: str, size: int = 64) -> Path:
    """images (1, 3, s, s) -> output0 = the given (1, N, 5+nc) rows, with YOLOv5's metadata (stride, names)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=0),  # (1,)
             helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
             helper.make_node("Add", ["rows", "nothing"], ["output0"])]
    graph = helper.make_graph(
        nodes, "yolov5_like", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(rows.shape))],
        [numpy_helper.from_array(rows.astype(np.float32), "rows"),
         numpy_helper.from_array(np.zeros(1, np.float32), "zero")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for key, value in {"stride": "32", "names": names}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def test_yolov5_export_runs_with_no_flags(tmp_path):
    # Two planted boxes in a 64x64 input (cx, cy, w, h, objectness, p(cat), p(dog)) and one below threshold.
    rows = np.array([[[32, 24, 16, 8, 0.9, 0.1, 0.8],     # dog, score 0.72
                      [10, 40, 8, 8, 0.5, 0.9, 0.1],      # cat, score 0.45
                      [50, 50, 8, 8, 0.3, 0.5, 0.5]]])    # 0.15: below 0.25
    path = make_yolov5_like(tmp_path / "yolov5s.onnx", rows, "{0: 'cat', 1: 'dog'}")
    with load_model(path, backend="onnxruntime-cpu") as model:
        assert model.config.decoder["layout"] == "objectness" and model.config.preprocess.resize == "letterbox"
        assert model.config.labels == ("cat", "dog") and model.decoder.iou_threshold == 0.45
        frame = np.zeros((64, 128, 3), np.uint8)  # 2:1 -> letterboxed into rows 16..48 of the input
        detections = model(frame)
    assert [detections.labels[c] for c in detections.class_ids] == ["dog", "cat"]
    np.testing.assert_allclose(detections.scores, [0.72, 0.45], atol=1e-6)
    # input px -> frame px: x * 2, (y - 16) * 2
    np.testing.assert_allclose(detections.boxes_xyxy, [[48, 8, 80, 24], [12, 40, 28, 56]], atol=1e-4)


def test_yolov5_metadata_contradicting_the_head_is_one_line(tmp_path):
    rows = np.zeros((1, 3, 7), np.float32)  # 5 + 2 classes, but names lists 3
    path = make_yolov5_like(tmp_path / "bad.onnx", rows, "{0: 'a', 1: 'b', 2: 'c'}")
    with pytest.raises(EdgeError, match=r"lists 3 classes .* not one \(1, N, 5 \+ 3\) head") as error:
        load_model(path, backend="onnxruntime-cpu")
    assert "\n" not in str(error.value) and "Fix:" in str(error.value)
