"""The Model API on real models: the shipped face detector and tiny classifiers with known answers."""

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.errors import EdgeError
from edge.model import Model, load_model
from edge.results import Classification, Detections
from edge.samples import ASTRONAUT_FACE_XYXY

# The astronaut's face, measured once by hand on the 512x512 sample (forehead to chin, cheek to
# cheek); the detector's own box on it has IoU 0.84 with this.
TRUE_FACE = np.array(ASTRONAUT_FACE_XYXY, np.float32)
# Ear tragion keypoints sit on the face outline, where the detector's box edge is; allow them a
# margin of 5% of the box size outside it.
KEYPOINT_MARGIN = 0.05


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union)


def warp(image: np.ndarray, matrix: np.ndarray, size_wh):
    """Warp the sample and its true face box; a rotated face keeps its size, its centre moves."""
    out = cv2.warpAffine(image, matrix, size_wh, borderValue=(90, 90, 90))
    centre = np.array([(TRUE_FACE[0] + TRUE_FACE[2]) / 2, (TRUE_FACE[1] + TRUE_FACE[3]) / 2, 1.0])
    scale = float(np.hypot(matrix[0, 0], matrix[0, 1]))
    cx, cy = matrix @ centre
    half_w = (TRUE_FACE[2] - TRUE_FACE[0]) / 2 * scale
    half_h = (TRUE_FACE[3] - TRUE_FACE[1]) / 2 * scale
    return out, np.array([cx - half_w, cy - half_h, cx + half_w, cy + half_h], np.float32)


def _shift(dx, dy, size_wh):
    return np.array([[1, 0, dx], [0, 1, dy]], np.float32), size_wh


def _scale(s, size_wh):
    return np.array([[s, 0, 0], [0, s, 0]], np.float32), size_wh


def _rotate(degrees, size_wh=(512, 512)):
    return cv2.getRotationMatrix2D((221.0, 124.0), degrees, 1.0).astype(np.float32), size_wh


# BlazeFace short-range needs the face at least ~16 px tall in its 128x128 input (the whole
# frame is letterboxed into it), so every case keeps the face above that.
CASES = {
    "original": (np.array([[1, 0, 0], [0, 1, 0]], np.float32), (512, 512)),
    "shifted right and down": _shift(60, 40, (640, 600)),
    "shifted left (face near the edge)": _shift(-120, 0, (512, 512)),
    "scaled down 0.8": _scale(0.8, (512, 512)),
    "scaled up 1.6": _scale(1.6, (820, 820)),
    "wide 640x360": _shift(100, -40, (640, 360)),
    "wide 1280x720, scaled 2.2": (np.array([[2.2, 0, 150], [0, 2.2, -90]], np.float32), (1280, 720)),
    "tall 400x700": _shift(-40, 150, (400, 700)),
    "rotated +15": _rotate(15),
    "rotated -15": _rotate(-15),
}


@pytest.mark.parametrize("case", list(CASES))
def test_face_found_on_transformed_astronaut(face_model, astronaut, case):
    matrix, size_wh = CASES[case]
    image, truth = warp(astronaut, matrix, size_wh)
    detections = face_model(image)
    assert isinstance(detections, Detections)
    assert len(detections) == 1, detections.to_json()
    box = detections.boxes_xyxy[0]
    assert iou(box, truth) >= 0.7, (box, truth)
    margin = KEYPOINT_MARGIN * (box[2:] - box[:2])
    keypoints = detections.keypoints_xy[0]
    assert keypoints.shape == (6, 2)
    assert np.all(keypoints >= box[:2] - margin) and np.all(keypoints <= box[2:] + margin), (keypoints, box)


def test_no_face_in_coffee(face_model):
    from edge.samples import load_sample

    assert len(face_model(load_sample("coffee"))) == 0


def test_threshold_override_and_stage_timings(face_model_path, astronaut):
    with Model(face_model_path, backend="onnxruntime-cpu", score_threshold=0.99) as strict:
        assert len(strict(astronaut)) == 0
        assert set(strict.last_timings_ms) == {"preprocess", "infer", "decode"}
    with pytest.raises(EdgeError, match="threshold"):
        Model(face_model_path, score_threshold=1.5)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("backend", ["onnxruntime-cpu", "opencv"])
@pytest.mark.parametrize("channel, label", [(2, "red"), (1, "green"), (0, "blue")])
def test_colour_classifier_known_answers(tmp_path, layout, backend, channel, label):
    from tiny_models import make_colour_classifier

    path = make_colour_classifier(tmp_path / "colour.onnx", layout)
    image = np.zeros((48, 64, 3), np.uint8)
    image[:, :, channel] = 200  # BGR frame
    with load_model(path, backend=backend) as model:
        result = model(image)
    assert isinstance(result, Classification)
    assert result.top_label == label
    assert result.scores[0] == pytest.approx(1.0, abs=1e-3)


def test_config_from_flags_sidecar_and_file(tmp_path):
    from tiny_models import colour_classifier_config, make_colour_classifier

    bare = make_colour_classifier(tmp_path / "bare.onnx", embed=False)
    with pytest.raises(EdgeError) as excinfo:
        Model(bare)
    message = str(excinfo.value)
    for needle in ("no complete edge config", "task", "preprocess.color", "--task", "--preset"):
        assert needle in message
    assert "\n" not in message
    flags = {"task": "classify", "preprocess": {"color": "RGB", "scale": 1 / 255, "mean": [0, 0, 0],
                                                "std": [1, 1, 1]}}
    with Model(bare, config=flags) as model:
        assert model.config.input.name == "image" and model.config.outputs == ("logits",)
    config_file = tmp_path / "cfg.json"
    import json

    config_file.write_text(json.dumps(colour_classifier_config()))
    with Model(bare, config_file=config_file) as model:
        assert model.config.labels == ("red", "green", "blue")
    shutil.copy(config_file, tmp_path / "bare.json")  # sidecar beside the model
    with Model(bare) as model:
        assert model.config.labels == ("red", "green", "blue")


@pytest.mark.parametrize("mutate, expected", [
    ({"input": {"name": "pixels"}}, "names input 'pixels'"),
    ({"input": {"shape": [1, 3, 64, 64]}}, r"is \[1, 3, 32, 32\] in the model"),
    ({"outputs": ["scores"]}, "lists output 'scores'"),
    ({"labels": ["a", "b"]}, "label"),
])
def test_config_that_does_not_fit_the_graph(colour_model_path, mutate, expected):
    with pytest.raises(EdgeError, match=expected):
        Model(colour_model_path, config=mutate)


@pytest.mark.parametrize("make, expected", [
    (lambda d: d / "missing.onnx", "model file not found"),
    (lambda d: d, "not a file"),
    (lambda d: _write(d / "empty.onnx", b""), "empty"),
    (lambda d: _write(d / "text.onnx", b"hello, I am not a model\n" * 10), "not a readable ONNX model"),
    (lambda d: "no_such_zoo_model", "neither a file nor a model shipped"),
    (lambda d: _write(d / "best.pt", b"PK\x03\x04 a torch zip"), "PyTorch file.*yolo export model=best.pt"),
    (lambda d: _write(d / "model.tflite", b"TFL3"), "TFLite file.*edge-export onnx model.tflite"),
])
def test_bad_model_paths(tmp_path, make, expected):
    with pytest.raises(EdgeError, match=expected) as excinfo:
        Model(make(tmp_path))
    assert "Fix:" in str(excinfo.value)


@pytest.mark.parametrize("task", ["classify"])
def test_task_that_contradicts_the_decoder(face_model_path, task):
    with pytest.raises(EdgeError, match=f"says task '{task}' but its 'ssd_anchors' decoder gives detect") as error:
        Model(face_model_path, config={"task": task})
    assert "drop --task" in str(error.value)


def test_detect_task_on_a_classifier_decoder(colour_model_path):
    with pytest.raises(EdgeError, match="says task 'detect' but its 'classify' decoder gives classify"):
        Model(colour_model_path, config={"task": "detect", "decoder": {"type": "classify"}})


def test_truncated_face_model(tmp_path, face_model_path):
    data = face_model_path.read_bytes()
    broken = _write(tmp_path / "truncated.onnx", data[: len(data) // 2])
    with pytest.raises(EdgeError, match="truncated|not a readable ONNX"):
        Model(broken)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# issue 9 items 8 and 12: a bad thread count fails at once, before the model loads; "a" was a traceback
@pytest.mark.parametrize("threads, expected", [
    (10000, "threads 10000 is outside 1.."),
    (0, "threads 0 is outside 1.."),
    (-3, "threads -3 is outside 1.."),
    ("a", "threads must be a whole number, not 'a'"),
])
def test_bad_thread_count_is_refused_before_loading(tmp_path, face_model_path, threads, expected):
    for model in (face_model_path, tmp_path / "missing.onnx"):  # checked first: no model is read
        with pytest.raises(EdgeError, match=expected) as excinfo:
            load_model(model, threads=threads)
        assert "Fix: pass --threads 1.." in str(excinfo.value)


def _nested(depth: int) -> str:
    return '{"decoder": ' * depth + "{}" + "}" * depth


# issue 9 item 11: deep nesting in an embedded config, a sidecar or a --config file was a RecursionError
@pytest.mark.parametrize("where", ["embedded", "sidecar", "config_file", "config_file_yaml"])
@pytest.mark.parametrize("depth", [40, 5000, 200000])
def test_deeply_nested_config_is_a_one_line_error(tmp_path, colour_model_path, where, depth):
    from edge.onnxfile import load_onnx, save_atomic, write_metadata

    model_path, config_file = colour_model_path, None
    if where == "embedded":
        model = load_onnx(colour_model_path)
        write_metadata(model, {"edge_config": _nested(depth)})
        model_path = tmp_path / "nested.onnx"
        save_atomic(model, model_path)
    elif where == "sidecar":
        model_path.with_suffix(".json").write_text(_nested(depth), encoding="utf-8")
    else:
        if where == "config_file_yaml":
            pytest.importorskip("yaml")
        config_file = tmp_path / ("c.yaml" if where == "config_file_yaml" else "c.json")
        config_file.write_text(_nested(depth), encoding="utf-8")  # JSON is YAML too
    with pytest.raises(EdgeError, match="nested deeper than 32 levels") as excinfo:
        Model(model_path, config_file=config_file)
    assert "Fix: " in str(excinfo.value) and "\n" not in str(excinfo.value)
