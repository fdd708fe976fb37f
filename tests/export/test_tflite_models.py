"""The MediaPipe models of the zoo (models/*/) against their TFLite originals run by LiteRT.

Each model's own preprocessing (its embedded edge config) prepares the shipped samples; the ONNX
file runs on ONNX Runtime, the committed .tflite on LiteRT (NHWC), and the task metric is taken
through the model's own decoder on both sets of outputs: mask IoU for segmentation, keypoint
distance in input pixels for landmarks, box and score agreement for the SSD detectors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="needs ONNX Runtime")
pytest.importorskip("ai_edge_litert", reason="the TFLite reference runs on LiteRT (pip install ai-edge-litert)")
pytest.importorskip("cv2", reason="the samples are read and resized with OpenCV")

ROOT = Path(__file__).resolve().parents[2]
# zoo folder -> the TFLite file it was converted from (committed beside it)
MODELS = {
    "selfie_segmentation": "selfie_segmentation.tflite",
    "palm_detection_lite": "palm_detection_lite.tflite",
    "hand_landmark_lite": "hand_landmark_lite.tflite",
    "face_landmark": "face_landmark.tflite",
    "face_detection_full_range": "face_detection_full_range_sparse.tflite",
}
SAMPLES = ("astronaut", "chelsea", "coffee")
MAX_ABS = 1e-3  # measured: at most 2.6e-4 (a mask probability), 1.9e-4 on landmark pixels up to 170


def _paths(name: str):
    folder = ROOT / "models" / name
    return folder / f"{name}.onnx", folder / MODELS[name]


@pytest.fixture(scope="module")
def pairs():
    """name -> (edge Model on ONNX Runtime, LiteRT runner of the original), opened once."""
    from edge.model import Model
    from export.tflite import tflite_runner

    opened = {}
    for name in MODELS:
        onnx_path, tflite_path = _paths(name)
        opened[name] = (Model(onnx_path, backend="onnxruntime-cpu", threads=1), tflite_runner(tflite_path))
    yield opened
    for model, _ in opened.values():
        model.close()


def _both(pair, image):
    """(ONNX outputs, TFLite outputs by name, transform) for one BGR image."""
    model, runner = pair
    tensor, transform = model.preprocess(image)
    tensor = tensor.copy()  # the preprocessor reuses its buffer
    onnx_out = {k: np.array(v) for k, v in model.infer(tensor).items()}
    tflite_out = dict(zip(runner.output_names, runner(tensor.transpose(0, 2, 3, 1))))
    return onnx_out, tflite_out, transform


def _sample(name):
    from edge.samples import load_sample

    return load_sample(name)


@pytest.mark.parametrize("sample", SAMPLES)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_outputs_match_litert(pairs, name, sample):
    onnx_out, tflite_out, _ = _both(pairs[name], _sample(sample))
    assert sorted(onnx_out) == sorted(tflite_out)  # the ONNX outputs keep the TFLite names and shapes
    for key, reference in tflite_out.items():
        assert onnx_out[key].shape == reference.shape, key
        assert np.abs(onnx_out[key] - reference).max() <= MAX_ABS, key


@pytest.mark.parametrize("sample,min_person", [("astronaut", 0.3), ("chelsea", 0.0), ("coffee", 0.0)])
def test_selfie_mask_iou_with_the_tflite_mask(pairs, sample, min_person):
    model = pairs["selfie_segmentation"][0]
    onnx_out, tflite_out, transform = _both(pairs["selfie_segmentation"], _sample(sample))
    ours = model.decode(onnx_out, transform).class_map == 1
    theirs = model.decode(tflite_out, transform).class_map == 1
    assert ours.shape == _sample(sample).shape[:2]
    union = np.count_nonzero(ours | theirs)
    assert union > 0
    assert np.count_nonzero(ours & theirs) / union >= 0.98
    assert theirs.mean() >= min_person  # the astronaut is found: the IoU is not of two empty masks


@pytest.mark.parametrize("sample", SAMPLES)
@pytest.mark.parametrize("name,output,count", [("hand_landmark_lite", "Identity", 21),
                                               ("face_landmark", "conv2d_21", 468)])
def test_landmarks_within_one_input_pixel(pairs, name, output, count, sample):
    onnx_out, tflite_out, _ = _both(pairs[name], _sample(sample))
    ours = onnx_out[output].reshape(count, 3)[:, :2]
    theirs = tflite_out[output].reshape(count, 3)[:, :2]
    assert np.linalg.norm(ours - theirs, axis=1).max() <= 1.0


def test_face_landmarks_on_a_face_crop_agree_in_frame_pixels(pairs):
    """On the astronaut's face (the box measured by hand, 25 % margin) the face is present for both,
    and the decoded landmarks agree within one input pixel mapped to the frame."""
    from edge.samples import ASTRONAUT_FACE_XYXY

    x0, y0, x1, y1 = ASTRONAUT_FACE_XYXY
    margin = 0.25 * (x1 - x0)
    crop = _sample("astronaut")[int(y0 - margin):int(y1 + margin), int(x0 - margin):int(x1 + margin)]
    model = pairs["face_landmark"][0]
    onnx_out, tflite_out, transform = _both(pairs["face_landmark"], crop)
    ours, theirs = model.decode(onnx_out, transform), model.decode(tflite_out, transform)
    assert len(ours.scores) == len(theirs.scores) == 1 and ours.scores[0] > 0.9
    assert abs(float(ours.scores[0]) - float(theirs.scores[0])) < 1e-4
    frame_px_per_input_px = max(crop.shape[:2]) / 192
    distance = np.linalg.norm(ours.points_xy[0] - theirs.points_xy[0], axis=1).max()
    assert distance <= frame_px_per_input_px


@pytest.mark.parametrize("name,sample,found", [
    ("face_detection_full_range", "astronaut", 1), ("face_detection_full_range", "chelsea", 0),
    ("palm_detection_lite", "chelsea", 1), ("palm_detection_lite", "coffee", 0)])
def test_detections_match_litert(pairs, name, sample, found):
    model = pairs[name][0]
    onnx_out, tflite_out, transform = _both(pairs[name], _sample(sample))
    ours, theirs = model.decode(onnx_out, transform), model.decode(tflite_out, transform)
    assert len(ours.scores) == len(theirs.scores) == found
    if found:
        assert np.abs(ours.boxes_xyxy - theirs.boxes_xyxy).max() < 0.05  # frame pixels
        assert np.abs(ours.scores - theirs.scores).max() < 1e-4


def test_full_range_detector_finds_the_astronaut_face(pairs):
    from edge.decoders.nms import pairwise_iou
    from edge.samples import ASTRONAUT_FACE_XYXY

    result = pairs["face_detection_full_range"][0](_sample("astronaut"))
    assert len(result.scores) == 1 and result.scores[0] > 0.8
    assert pairwise_iou(result.boxes_xyxy, np.asarray([ASTRONAUT_FACE_XYXY]))[0, 0] > 0.6


@pytest.mark.parametrize("name", sorted(MODELS))
def test_export_reproduces_the_committed_onnx(tmp_path, capsys, name):
    """``python -m export onnx`` on the committed .tflite writes the committed ONNX byte for byte
    (what regenerate.sh runs after fetching and checking the wheel), and its parity check passes."""
    pytest.importorskip("tflite2onnx", reason="TFLite export needs tflite2onnx")
    from export.__main__ import main

    onnx_path, tflite_path = _paths(name)
    output = tmp_path / onnx_path.name
    assert main(["onnx", str(tflite_path), "--config", str(onnx_path.parent / "edge_config.json"),
                 "--output", str(output)]) == 0
    assert "verdict: pass" in capsys.readouterr().out
    assert output.read_bytes() == onnx_path.read_bytes()
