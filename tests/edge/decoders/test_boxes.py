"""The boxes decoder: decoded heads of several families on hand-built tables, and an Ultralytics nms=True export."""

import numpy as np
import pytest

from edge.decoders import DECODER_TYPES, build_decoder
from edge.decoders.boxes import BoxesDecoder
from edge.errors import EdgeError
from edge.transform import Transform

IDENTITY = Transform(scale_xy=(1, 1), offset_xy=(0, 0), input_wh=(100, 50), source_wh=(100, 50))
HALF = Transform(scale_xy=(0.5, 0.5), offset_xy=(0, 0), input_wh=(100, 50), source_wh=(50, 25))


def decode(params, outputs, transform=IDENTITY, labels=None):
    decoder = build_decoder(dict({"type": "boxes"}, **params), labels=labels, input_wh=(100, 50))
    decoder.check_outputs({name: np.asarray(a).shape for name, a in outputs.items()})
    return decoder(outputs, transform)


def test_registered():
    assert DECODER_TYPES["boxes"] is BoxesDecoder


# Ultralytics nms=True / YOLOv10 / YOLO26 end2end: (1, K, 6) x1 y1 x2 y2 score class, zero-padded.
END2END = np.array([[[10, 10, 20, 20, 0.9, 2], [30, 5, 40, 15, 0.6, 0], [11, 11, 21, 21, 0.4, 2],
                     [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]]], np.float32)


@pytest.mark.parametrize("params, transform, boxes, scores, classes", [
    ({"output": "output0"}, IDENTITY, [[10, 10, 20, 20], [30, 5, 40, 15]], [0.9, 0.6], [2, 0]),
    ({"output": "output0", "score_threshold": 0.3}, IDENTITY,
     [[10, 10, 20, 20], [30, 5, 40, 15], [11, 11, 21, 21]], [0.9, 0.6, 0.4], [2, 0, 2]),
    ({"output": "output0", "score_threshold": 0.6}, IDENTITY, [[10, 10, 20, 20]], [0.9], [2]),  # strict >
    ({"output": "output0", "score_threshold": 0.0}, HALF,                         # padding never survives
     [[5, 5, 10, 10], [15, 2.5, 20, 7.5], [5.5, 5.5, 10.5, 10.5]], [0.9, 0.6, 0.4], [2, 0, 2]),
    ({"output": "output0", "score_threshold": 0.3, "nms": {"method": "class", "iou_threshold": 0.5}}, IDENTITY,
     [[10, 10, 20, 20], [30, 5, 40, 15]], [0.9, 0.6], [2, 0]),
    ({"output": "output0", "score_threshold": 0.3, "nms": {"max_detections": 1}}, IDENTITY,
     [[10, 10, 20, 20]], [0.9], [2]),
])
def test_end2end_table(params, transform, boxes, scores, classes):
    result = decode(params, {"output0": END2END}, transform)
    np.testing.assert_allclose(result.boxes_xyxy, boxes, atol=1e-5)
    np.testing.assert_allclose(result.scores, scores, rtol=1e-6)
    assert result.class_ids.tolist() == classes


def test_torchvision_outputs_without_batch_axis():
    outputs = {"boxes": np.array([[1, 2, 30, 40], [50, 5, 60, 25]], np.float32),
               "scores": np.array([0.3, 0.95], np.float32), "labels": np.array([17, 1], np.int64)}
    params = {"boxes_output": "boxes", "scores_output": "scores", "classes_output": "labels",
              "box_format": "xyxy", "normalized": False}
    result = decode(params, outputs)
    assert result.class_ids.tolist() == [1] and result.boxes_xyxy.tolist() == [[50, 5, 60, 25]]
    result = decode(dict(params, score_threshold=0.1), outputs)
    assert result.class_ids.tolist() == [1, 17]


def test_tf_object_detection_api():
    # Normalised yxyx, 1-based float classes, num_detections says 2 of 3 rows are valid.
    outputs = {"detection_boxes": np.array([[[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0], [0.2, 0.2, 0.3, 0.3]]],
                                           np.float32),
               "detection_scores": np.array([[0.9, 0.8, 0.99]], np.float32),
               "detection_classes": np.array([[1.0, 3.0, 5.0]], np.float32),
               "num_detections": np.array([2.0], np.float32)}
    params = {"boxes_output": "detection_boxes", "scores_output": "detection_scores",
              "classes_output": "detection_classes", "count_output": "num_detections", "box_format": "yxyx",
              "normalized": True, "class_offset": 1}
    result = decode(params, outputs, labels=["person", "bicycle", "car"])
    np.testing.assert_allclose(result.boxes_xyxy, [[20, 5, 60, 25], [0, 0, 100, 50]], atol=1e-4)
    assert result.class_ids.tolist() == [0, 2]
    assert [d["label"] for d in result.to_json()["detections"]] == ["person", "car"]


def test_pytorch_ssd_per_class_scores_need_per_class_nms():
    # Softmax scores (1, N, C) with background column 0; boxes normalised xyxy.
    boxes = np.array([[[0.1, 0.1, 0.5, 0.5], [0.11, 0.1, 0.51, 0.5], [0.1, 0.1, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9]]],
                     np.float32)
    scores = np.array([[[0.1, 0.8, 0.1], [0.2, 0.7, 0.1], [0.3, 0.05, 0.65], [0.9, 0.05, 0.05]]], np.float32)
    params = {"boxes_output": "boxes", "scores_output": "scores", "normalized": True, "background_class": 0,
              "score_threshold": 0.5, "nms": {"iou_threshold": 0.45}}
    result = decode(params, {"boxes": boxes, "scores": scores})
    # Box 1 is suppressed by box 0 (same class 1); box 2 is class 2 and survives; box 3 is background.
    assert result.class_ids.tolist() == [1, 2]
    np.testing.assert_allclose(result.scores, [0.8, 0.65], rtol=1e-6)
    np.testing.assert_allclose(result.boxes_xyxy[0], [10, 5, 50, 25], atol=1e-4)
    agnostic = decode(dict(params, nms={"method": "agnostic", "iou_threshold": 0.45}), {"boxes": boxes,
                                                                                          "scores": scores})
    assert agnostic.class_ids.tolist() == [1]


@pytest.mark.parametrize("box_format, box, expected", [
    ("xyxy", [10, 10, 30, 20], [10, 10, 30, 20]),
    ("xywh", [10, 10, 20, 10], [10, 10, 30, 20]),
    ("cxcywh", [20, 15, 20, 10], [10, 10, 30, 20]),
    ("yxyx", [10, 10, 20, 30], [10, 10, 30, 20]),
])
def test_box_formats(box_format, box, expected):
    outputs = {"b": np.array([box], np.float32), "s": np.array([0.9], np.float32)}
    result = decode({"boxes_output": "b", "scores_output": "s", "box_format": box_format}, outputs)
    np.testing.assert_allclose(result.boxes_xyxy, [expected])


@pytest.mark.parametrize("outputs", [
    {"output0": np.zeros((1, 0, 6), np.float32)},
    {"output0": np.full((1, 3, 6), np.nan, np.float32)},
])
def test_empty_and_nan_outputs_give_empty_detections(outputs):
    result = decode({"output": "output0", "score_threshold": 0.0}, outputs)
    assert len(result) == 0 and result.boxes_xyxy.shape == (0, 4)


def test_empty_separate_outputs_and_bad_rows():
    empty = decode({"boxes_output": "b", "scores_output": "s"}, {"b": np.zeros((0, 4)), "s": np.zeros(0)})
    assert len(empty) == 0
    outputs = {"b": np.array([[0, 0, 5, 5], [0, 0, np.inf, 5], [1, 1, 4, 4]], np.float32),
               "s": np.array([0.9, 0.9, np.nan], np.float32), "c": np.array([0, 1, 2])}
    result = decode({"boxes_output": "b", "scores_output": "s", "classes_output": "c"}, outputs)
    assert result.class_ids.tolist() == [0]


@pytest.mark.parametrize("params, shapes, message", [
    ({"output": "o", "boxes_output": "b"}, {"o": (1, 3, 6)}, "either 'output'"),
    ({"boxes_output": "b"}, {"b": (1, 3, 4)}, "'decoder.scores_output'"),
    ({"output": "o"}, {"o": (1, 3, 7)}, r"shape \[1, 3, 7\].*\(1, K, 6\)"),
    ({"output": "o"}, {"x": (1, 3, 6)}, "no output 'o'"),
    ({"boxes_output": "b", "scores_output": "s"}, {"b": (1, 3, 4), "s": (1, 5)}, "K = 3 as the boxes"),
    ({"boxes_output": "b", "scores_output": "s"}, {"b": (1, 3, 5), "s": (1, 3)}, r"\(1, K, 4\) or \(K, 4\)"),
    ({"boxes_output": "b", "scores_output": "s"}, {"b": (2, 3, 4), "s": (2, 3)}, "batch of 2"),
    ({"boxes_output": "b", "scores_output": "s", "classes_output": "c"}, {"b": (3, 4), "s": (3, 2), "c": (3,)},
     "per-class scores .*classes_output is set"),
    ({"boxes_output": "b", "scores_output": "s", "count_output": "n"}, {"b": (3, 4), "s": (3,), "n": (4,)},
     r"one number"),
    ({"output": "o", "box_format": "ltrb"}, {"o": (1, 3, 6)}, "decoder.box_format"),
    ({"output": "o", "nms": {"method": "soft"}}, {"o": (1, 3, 6)}, "decoder.nms.method"),
])
def test_errors_are_one_line(params, shapes, message):
    with pytest.raises(EdgeError, match=message) as info:
        decoder = build_decoder(dict({"type": "boxes"}, **params), labels=None, input_wh=(100, 50))
        decoder.check_outputs(shapes)
    assert "\n" not in str(info.value) and "Fix:" in str(info.value)


def test_labels_that_do_not_cover_the_class_ids_are_one_line():
    """An 80-class nms=True export given 3 labels must not run with silently missing labels."""
    with pytest.raises(EdgeError, match=r"class id 2 but has 2 labels \(ids 0..1\)") as info:
        decode({"output": "output0"}, {"output0": END2END}, labels=["a", "b"])
    assert "\n" not in str(info.value) and "--labels" in str(info.value)
    assert decode({"output": "output0"}, {"output0": END2END}, labels=["a", "b", "c"]).labels == ["a", "b", "c"]
    per_class = {"boxes_output": "b", "scores_output": "s"}
    with pytest.raises(EdgeError, match=r"one score per label \(2 labels, background included\)"):
        decode(per_class, {"b": np.zeros((1, 4, 4), np.float32), "s": np.zeros((1, 4, 3), np.float32)},
               labels=["background", "a"])


# -------------------------------------------------------------------- Ultralytics as the reference
# (arch, nms=True export?, threshold): YOLOv10 and YOLO26 are end-to-end ((1, 300, 6) with no NMS to run).
HEADS = [("yolov8n", True, 0.25), ("yolo11n", True, 0.25), ("yolov10n", False, 0.1), ("yolo26n", False, 0.1)]


@pytest.mark.parametrize("arch, nms, conf", HEADS)
def test_ultralytics_nms_and_end2end_exports_match_predictor(tmp_path_factory, arch, nms, conf):
    pytest.importorskip("torch")
    pytest.importorskip("ultralytics")
    from test_yolo import assert_same, predict_both
    from ultralytics_models import export_yolo

    from edge.onnxfile import read_onnx
    from edge.samples import load_sample

    path = export_yolo(tmp_path_factory.getbasetemp() / "ultralytics_exports", arch, nms=nms)
    assert read_onnx(path).metadata["end2end"] == str(not nms)
    ours, theirs = predict_both(path, load_sample("astronaut"), conf)
    assert_same(ours, theirs)
