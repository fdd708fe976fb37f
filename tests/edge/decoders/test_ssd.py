"""The ssd_anchors decoder on synthetic raw tensors made by inverting the decode formula.

Every expected box is known exactly: a chosen box (normalised) is encoded against its anchor, the
decoder must give it back in model-input pixels, then mapped through the frame's Transform.
"""

import copy

import numpy as np
import pytest

from edge.decoders import build_decoder
from edge.decoders.ssd import SsdAnchorsDecoder
from edge.errors import EdgeError
from edge.transform import Transform

BLAZEFACE = {
    "type": "ssd_anchors", "boxes_output": "regressors", "scores_output": "classificators",
    "anchors": {"num_layers": 4, "min_scale": 0.1484375, "max_scale": 0.75, "input_size_wh": [128, 128],
                "anchor_offset_xy": [0.5, 0.5], "strides": [8, 16, 16, 16], "aspect_ratios": [1.0],
                "interpolated_scale_aspect_ratio": 1.0, "fixed_anchor_size": True},
    "box_format": "xywh", "coord_scale_xywh": [128, 128, 128, 128], "num_keypoints": 6,
    "keypoint_names": ["right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear_tragion",
                       "left_ear_tragion"],
    "score_sigmoid": True, "score_clip": 100.0, "score_threshold": 0.5,
    "nms": {"method": "weighted", "iou_threshold": 0.3, "max_detections": 100},
}
IDENTITY = Transform(scale_xy=(1, 1), offset_xy=(0, 0), input_wh=(128, 128), source_wh=(128, 128))
# A 256x128 frame letterboxed into 128x128: half size, 32 px of padding above and below.
LETTERBOX = Transform(scale_xy=(2, 2), offset_xy=(0, -64), input_wh=(128, 128), source_wh=(256, 128))
# One face, normalised [x_center, y_center, w, h], and its 6 keypoints normalised (x, y).
FACE_XYWH = np.array([0.375, 0.5, 0.25, 0.25])
FACE_KEYPOINTS = np.array([[0.33, 0.45], [0.42, 0.45], [0.375, 0.5], [0.375, 0.56], [0.27, 0.48],
                           [0.48, 0.48]])
LOGIT_OFF = -50.0


def params(**changes):
    """BLAZEFACE with top-level fields replaced (None removes a field)."""
    result = copy.deepcopy(BLAZEFACE)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def encode(decoder, rows):
    """Raw outputs for {anchor index: (xywh, keypoints or None, logit(s))}; other anchors score LOGIT_OFF."""
    anchors = decoder.anchors_xywh.astype(np.float64)
    scale = np.asarray(decoder.coord_scale_xywh)
    width = 4 + 2 * decoder.num_keypoints
    classes = max(np.size(logit) for _, _, logit in rows.values()) if rows else 1
    raw_boxes = np.zeros((1, len(anchors), width), np.float32)
    raw_scores = np.full((1, len(anchors), classes), LOGIT_OFF, np.float32)
    for index, (xywh, keypoints, logit) in rows.items():
        ax, ay, aw, ah = anchors[index]
        xywh = np.asarray(xywh, np.float64)
        centre = (xywh[:2] - [ax, ay]) / [aw, ah] * scale[:2]
        relative_size = xywh[2:] / [aw, ah]
        size = (np.log(relative_size) if decoder.box_size_exp else relative_size) * scale[2:]
        row = [*centre, *size]
        if keypoints is not None:
            row += list(((np.asarray(keypoints) - [ax, ay]) / [aw, ah] * scale[:2]).ravel())
        if decoder.box_format == "yxhw":
            row[0:4] = [row[1], row[0], row[3], row[2]]
            row[4:] = np.asarray(row[4:]).reshape(-1, 2)[:, ::-1].ravel().tolist()
        raw_boxes[0, index, : len(row)] = row
        raw_scores[0, index, : np.size(logit)] = logit
    return {decoder.boxes_output: raw_boxes, decoder.scores_output: raw_scores}


def xywh_to_xyxy_px(xywh, size_wh=(128, 128)):
    x, y, w, h = xywh
    return np.array([x - w / 2, y - h / 2, x + w / 2, y + h / 2]) * np.tile(size_wh, 2)


def test_build_gives_blazeface_decoder():
    decoder = build_decoder(BLAZEFACE, labels=["face"], input_wh=(128, 128))
    assert isinstance(decoder, SsdAnchorsDecoder)
    assert decoder.kind == "ssd_anchors"
    assert decoder.output_names == ("regressors", "classificators")
    assert decoder.num_anchors == 896
    assert decoder.score_threshold == 0.5
    assert decoder.keypoint_names == BLAZEFACE["keypoint_names"]


@pytest.mark.parametrize("transform, expected_box_xyxy, keypoint_scale, keypoint_offset", [
    (IDENTITY, [32, 48, 64, 80], (1, 1), (0, 0)),
    (LETTERBOX, [64, 32, 128, 96], (2, 2), (0, -64)),
])
def test_decode_one_face(transform, expected_box_xyxy, keypoint_scale, keypoint_offset):
    decoder = build_decoder(BLAZEFACE, labels=["face"], input_wh=(128, 128))
    logit = 2.0
    result = decoder(encode(decoder, {700: (FACE_XYWH, FACE_KEYPOINTS, logit)}), transform)
    assert len(result) == 1
    np.testing.assert_allclose(result.boxes_xyxy[0], expected_box_xyxy, atol=1e-4)
    np.testing.assert_allclose(result.scores, [1 / (1 + np.exp(-logit))], rtol=1e-6)
    assert result.class_ids.tolist() == [0]
    assert result.labels == ["face"]
    expected_keypoints = FACE_KEYPOINTS * 128 * keypoint_scale + keypoint_offset
    np.testing.assert_allclose(result.keypoints_xy[0], expected_keypoints, atol=1e-4)


@pytest.mark.parametrize("changes", [
    {"box_format": "yxhw"},
    {"coord_scale_xywh": [10, 10, 5, 5], "box_size_exp": True},
    {"anchors": dict(BLAZEFACE["anchors"], fixed_anchor_size=False)},  # anchor sizes scale the raw values
    {"nms": {"method": "greedy", "iou_threshold": 0.3}},
    {"nms": {"method": "none"}},
])
def test_decode_variants_give_the_same_face(changes):
    decoder = build_decoder(params(**changes), labels=None, input_wh=(128, 128))
    result = decoder(encode(decoder, {3: (FACE_XYWH, FACE_KEYPOINTS, 3.0)}), IDENTITY)
    np.testing.assert_allclose(result.boxes_xyxy, [xywh_to_xyxy_px(FACE_XYWH)], atol=1e-4)
    np.testing.assert_allclose(result.keypoints_xy[0], FACE_KEYPOINTS * 128, atol=1e-4)


def test_non_square_input_scales_each_axis():
    anchors = {"num_layers": 1, "min_scale": 0.5, "max_scale": 0.5, "strides": [16], "aspect_ratios": [1.0],
               "interpolated_scale_aspect_ratio": 0.0, "fixed_anchor_size": True}
    decoder = build_decoder(params(anchors=anchors, num_keypoints=None, keypoint_names=None,
                                   coord_scale_xywh=[64, 32, 64, 32]), labels=None, input_wh=(64, 32))
    assert decoder.num_anchors == 4 * 2  # input_size_wh defaults to the model input
    transform = Transform(scale_xy=(1, 1), offset_xy=(0, 0), input_wh=(64, 32), source_wh=(64, 32))
    result = decoder(encode(decoder, {5: ([0.5, 0.5, 0.25, 0.5], None, 4.0)}), transform)
    np.testing.assert_allclose(result.boxes_xyxy, [[24, 8, 40, 24]], atol=1e-4)
    assert result.keypoints_xy is None


def test_weighted_nms_merges_two_anchors():
    decoder = build_decoder(BLAZEFACE, labels=None, input_wh=(128, 128))
    other = FACE_XYWH + [0.01, 0.01, 0.0, 0.0]
    logits = (1.0, np.log(3.0))  # sigmoid: 0.731 and 0.75
    outputs = encode(decoder, {100: (FACE_XYWH, FACE_KEYPOINTS, logits[0]),
                               101: (other, FACE_KEYPOINTS + 0.01, logits[1])})
    result = decoder(outputs, IDENTITY)
    weights = 1 / (1 + np.exp(-np.array(logits)))
    expected_xywh = (weights[0] * FACE_XYWH + weights[1] * other) / weights.sum()
    np.testing.assert_allclose(result.boxes_xyxy, [xywh_to_xyxy_px(expected_xywh)], atol=1e-3)
    np.testing.assert_allclose(result.scores, [0.75], rtol=1e-6)
    expected_keypoints = (FACE_KEYPOINTS + 0.01 * weights[1] / weights.sum()) * 128
    np.testing.assert_allclose(result.keypoints_xy[0], expected_keypoints, atol=1e-3)


@pytest.mark.parametrize("method, expected_count", [("weighted", 1), ("greedy", 1), ("none", 2)])
def test_nms_methods_on_two_overlapping_faces(method, expected_count):
    decoder = build_decoder(params(nms={"method": method, "iou_threshold": 0.3}), labels=None,
                            input_wh=(128, 128))
    outputs = encode(decoder, {100: (FACE_XYWH, FACE_KEYPOINTS, 1.0),
                               101: (FACE_XYWH + 0.01, FACE_KEYPOINTS, 2.0)})
    result = decoder(outputs, IDENTITY)
    assert len(result) == expected_count
    assert result.scores[0] == pytest.approx(1 / (1 + np.exp(-2.0)))


def test_max_detections_and_best_first():
    decoder = build_decoder(params(nms={"method": "greedy", "iou_threshold": 0.3, "max_detections": 2}),
                            labels=None, input_wh=(128, 128))
    faces = {index: ([0.1 + 0.2 * n, 0.5, 0.1, 0.1], FACE_KEYPOINTS, float(n))
             for n, index in enumerate([600, 610, 620])}
    result = decoder(encode(decoder, faces), IDENTITY)
    np.testing.assert_allclose(result.scores, 1 / (1 + np.exp(-np.array([2.0, 1.0]))), rtol=1e-6)
    np.testing.assert_allclose(result.boxes_xyxy[:, 0], [0.45 * 128, 0.25 * 128], atol=1e-3)


@pytest.mark.parametrize("threshold, logit, expected_count", [
    (0.5, 0.0, 1),     # sigmoid(0) = 0.5: a score equal to the threshold is kept
    (0.5, -0.01, 0),
    (0.9, 2.0, 0),     # sigmoid(2) = 0.88
    (0.0, LOGIT_OFF, 896),
])
def test_threshold(threshold, logit, expected_count):
    decoder = build_decoder(params(nms={"method": "none", "max_detections": 1000}), labels=None,
                            input_wh=(128, 128))
    decoder.score_threshold = threshold  # what --threshold does
    result = decoder(encode(decoder, {0: ([0.5, 0.5, 0.2, 0.2], FACE_KEYPOINTS, logit)}), IDENTITY)
    assert len(result) == expected_count


def test_nothing_found_gives_empty_detections_with_keypoint_layout():
    decoder = build_decoder(BLAZEFACE, labels=None, input_wh=(128, 128))
    result = decoder(encode(decoder, {}), IDENTITY)
    assert len(result) == 0
    assert result.boxes_xyxy.shape == (0, 4)
    assert result.keypoints_xy.shape == (0, 6, 2)


def test_score_clip_and_huge_logits():
    decoder = build_decoder(params(score_clip=2.0), labels=None, input_wh=(128, 128))
    outputs = encode(decoder, {5: (FACE_XYWH, FACE_KEYPOINTS, 1e30)})
    outputs["classificators"][0, 6:] = -1e30
    result = decoder(outputs, IDENTITY)
    np.testing.assert_allclose(result.scores, [1 / (1 + np.exp(-2.0))], rtol=1e-6)


def test_negative_size_boxes_are_dropped():
    decoder = build_decoder(BLAZEFACE, labels=None, input_wh=(128, 128))
    outputs = encode(decoder, {5: ([0.5, 0.5, -0.2, 0.2], FACE_KEYPOINTS, 3.0),
                               6: (FACE_XYWH, FACE_KEYPOINTS, 2.0)})
    result = decoder(outputs, IDENTITY)
    np.testing.assert_allclose(result.boxes_xyxy, [xywh_to_xyxy_px(FACE_XYWH)], atol=1e-4)


def test_multi_class_takes_the_best_class():
    decoder = build_decoder(params(num_keypoints=None, keypoint_names=None), labels=["cat", "dog", "bird"],
                            input_wh=(128, 128))
    outputs = encode(decoder, {10: ([0.2, 0.2, 0.1, 0.1], None, [LOGIT_OFF, 3.0, 1.0]),
                               700: ([0.7, 0.7, 0.1, 0.1], None, [1.0, LOGIT_OFF, 2.0])})
    result = decoder(outputs, IDENTITY)
    assert result.class_ids.tolist() == [1, 2]
    np.testing.assert_allclose(result.scores, 1 / (1 + np.exp(-np.array([3.0, 2.0]))), rtol=1e-6)
    assert [d["label"] for d in result.to_json()["detections"]] == ["dog", "bird"]


def test_boxes_are_clipped_to_the_source_frame():
    decoder = build_decoder(BLAZEFACE, labels=None, input_wh=(128, 128))
    result = decoder(encode(decoder, {0: ([0.05, 0.05, 0.2, 0.2], FACE_KEYPOINTS, 2.0)}), IDENTITY)
    np.testing.assert_allclose(result.boxes_xyxy, [[0, 0, 0.15 * 128, 0.15 * 128]], atol=1e-4)


@pytest.mark.parametrize("shapes", [
    {"regressors": [1, 896, 16], "classificators": [1, 896, 1]},
    {"regressors": ["batch", 896, 16], "classificators": [None, 896, 1], "extra": [1, 3]},
    {"regressors": [1, "boxes", 16], "classificators": [1, None, None]},
])
def test_check_outputs_accepts(shapes):
    build_decoder(BLAZEFACE, labels=["face"], input_wh=(128, 128)).check_outputs(shapes)


@pytest.mark.parametrize("shapes, labels, message", [
    ({"regressors": [1, 896, 16]}, None, "no output 'classificators' (outputs: regressors)"),
    ({"regressors": [1, 2304, 16], "classificators": [1, 896, 1]}, None, "896 boxes"),
    ({"regressors": [1, 896, 16], "classificators": [1, 895, 1]}, None,
     "'classificators' has shape [1, 895, 1]"),
    ({"regressors": [1, 896, 18], "classificators": [1, 896, 1]}, None, "set decoder.num_keypoints to 7"),
    ({"regressors": [896, 16], "classificators": [1, 896, 1]}, None, "3 dimensions"),
    ({"regressors": [2, 896, 16], "classificators": [2, 896, 1]}, None, "batch of 2"),
    ({"regressors": [1, 896, 16], "classificators": [1, 896, 2]}, ["face"], "one score per label (1 labels)"),
])
def test_check_outputs_rejects(shapes, labels, message):
    decoder = build_decoder(BLAZEFACE, labels=labels, input_wh=(128, 128), where="face.onnx")
    with pytest.raises(EdgeError) as error:
        decoder.check_outputs(shapes)
    assert message in str(error.value)
    assert str(error.value).startswith("face.onnx | ")
    assert "Fix:" in str(error.value)


@pytest.mark.parametrize("change, message", [
    (lambda o: o.pop("classificators"), "returned no output 'classificators'"),
    (lambda o: o.update(regressors=np.zeros((2, 896, 16), np.float32)), "batch of 2"),
    (lambda o: o.update(regressors=np.zeros((1, 896, 12), np.float32)), "16 values per box"),
])
def test_call_rejects_bad_outputs(change, message):
    decoder = build_decoder(BLAZEFACE, labels=None, input_wh=(128, 128))
    outputs = encode(decoder, {})
    change(outputs)
    with pytest.raises(EdgeError) as error:
        decoder(outputs, IDENTITY)
    assert message in str(error.value)
