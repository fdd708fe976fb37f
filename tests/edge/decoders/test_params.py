"""Decoder parameter validation: every bad field is named with what was expected and what was found."""

import copy

import pytest

from edge.decoders import DECODER_TYPES, build_decoder
from edge.decoders.boxes import BoxesDecoder
from edge.decoders.classify import ClassifyDecoder
from edge.decoders.embed import EmbedDecoder
from edge.decoders.landmarks import LandmarksDecoder
from edge.decoders.segment import SegmentDecoder
from edge.decoders.ssd import SsdAnchorsDecoder
from edge.decoders.yolo import YoloDecoder
from edge.errors import EdgeError

ANCHORS = {"num_layers": 4, "min_scale": 0.1484375, "max_scale": 0.75, "strides": [8, 16, 16, 16],
           "aspect_ratios": [1.0], "fixed_anchor_size": True}
SSD = {"type": "ssd_anchors", "boxes_output": "regressors", "scores_output": "classificators",
       "anchors": ANCHORS, "box_format": "xywh", "coord_scale_xywh": [128, 128, 128, 128]}


def ssd(path="", value=None, remove=False):
    """SSD params with the field at dotted ``path`` set to ``value`` (or removed)."""
    params = copy.deepcopy(SSD)
    if not path:
        return params
    *parents, leaf = path.split(".")
    section = params
    for key in parents:
        section = section.setdefault(key, {})
    if remove:
        section.pop(leaf)
    else:
        section[leaf] = value
    return params


def test_registry():
    assert DECODER_TYPES == {"ssd_anchors": SsdAnchorsDecoder, "classify": ClassifyDecoder, "yolo": YoloDecoder,
                             "boxes": BoxesDecoder, "segment": SegmentDecoder, "landmarks": LandmarksDecoder,
                             "embed": EmbedDecoder}


def test_ssd_defaults():
    decoder = build_decoder(SSD, labels=None, input_wh=(128, 128))
    assert decoder.num_anchors == 896  # anchors.input_size_wh defaults to the model input
    assert (decoder.num_keypoints, decoder.keypoint_names, decoder.box_size_exp) == (0, None, False)
    assert (decoder.score_sigmoid, decoder.score_clip, decoder.score_threshold) == (True, None, 0.5)
    assert (decoder.nms_method, decoder.iou_threshold, decoder.max_detections) == ("greedy", 0.5, 100)


def test_classify_defaults():
    decoder = build_decoder({"type": "classify"}, labels=None, input_wh=(224, 224))
    assert decoder.output_names == ()
    assert (decoder.activation, decoder.top_k, decoder.score_threshold) == ("softmax", 5, 0.0)


def test_keypoint_count_follows_names():
    decoder = build_decoder(ssd("keypoint_names", ["a", "b"]), labels=None, input_wh=(128, 128))
    assert decoder.num_keypoints == 2


def test_choices_are_case_insensitive():
    decoder = build_decoder(ssd("nms", {"method": "Weighted"}), labels=None, input_wh=(128, 128))
    assert decoder.nms_method == "weighted"


@pytest.mark.parametrize("params, messages", [
    ({"type": "yolov9"}, ["unknown decoder type 'yolov9' in 'decoder.type' (known: boxes, classify, embed, "
                          "landmarks, segment, ssd_anchors, yolo)"]),
    ({}, ["unknown decoder type None", "known: boxes, classify, embed, landmarks, segment, ssd_anchors, yolo"]),
    ("ssd", ["decoder field 'decoder': expected an object"]),
    (ssd("boxes_output", remove=True),
     ["decoder field 'decoder.boxes_output' is missing (expected a non-empty string)"]),
    (ssd("boxes_output", ""), ["'decoder.boxes_output': expected a non-empty string, found ''"]),
    (ssd("anchors", remove=True), ["'decoder.anchors' is missing"]),
    (ssd("anchors", [8, 16]), ["'decoder.anchors': expected an object, found [8, 16]"]),
    (ssd("anchors.strides", [8, 16]),
     ["'decoder.anchors.strides': expected num_layers = 4 strides, found [8, 16]"]),
    (ssd("anchors.strides", [8, 16, 16, 0]),
     ["'decoder.anchors.strides': expected a non-empty list of integers >= 1"]),
    (ssd("anchors.strides", [8, 16, 16, 16.5]), ["'decoder.anchors.strides'", "found [8, 16, 16, 16.5]"]),
    (ssd("anchors.num_layers", 0), ["'decoder.anchors.num_layers': expected an integer >= 1, found 0"]),
    (ssd("anchors.num_layers", True), ["'decoder.anchors.num_layers': expected an integer >= 1, found True"]),
    (ssd("anchors.min_scale", -0.1), ["'decoder.anchors.min_scale': expected a number > 0, found -0.1"]),
    (ssd("anchors.aspect_ratios", []),
     ["'decoder.anchors.aspect_ratios': expected a non-empty list of numbers > 0"]),
    (ssd("anchors.input_size_wh", [128]), ["'decoder.anchors.input_size_wh': expected 2 integers >= 1"]),
    (ssd("anchors.anchor_offset_xy", [0.5]),
     ["'decoder.anchors.anchor_offset_xy': expected 2 numbers, found [0.5]"]),
    (ssd("anchors.fixed_anchor_size", "yes"),
     ["'decoder.anchors.fixed_anchor_size': expected true or false"]),
    (ssd("anchors.stride", [8]), ["unknown field 'decoder.anchors.stride'", "valid: num_layers, min_scale"]),
    (ssd("box_format", "xyxy"), ["'decoder.box_format': expected one of xywh, yxhw, found 'xyxy'"]),
    (ssd("box_format", remove=True), ["'decoder.box_format' is missing (expected one of xywh, yxhw)"]),
    (ssd("coord_scale_xywh", [128, 128]),
     ["'decoder.coord_scale_xywh': expected 4 numbers > 0, found [128, 128]"]),
    (ssd("coord_scale_xywh", [128, 128, 0, 128]), ["'decoder.coord_scale_xywh': expected 4 numbers > 0"]),
    (ssd("num_keypoints", -1), ["'decoder.num_keypoints': expected an integer >= 0, found -1"]),
    (dict(ssd("num_keypoints", 6), keypoint_names=["eye"]),
     ["'decoder.keypoint_names': expected num_keypoints = 6 names, found ['eye']"]),
    (ssd("score_threshold", -0.1), ["'decoder.score_threshold': expected a number in [0, 1], found -0.1"]),
    (ssd("score_threshold", 1.5), ["'decoder.score_threshold': expected a number in [0, 1], found 1.5"]),
    (ssd("score_threshold", "0.5"), ["'decoder.score_threshold': expected a number in [0, 1], found '0.5'"]),
    (ssd("score_threshold", float("nan")),
     ["'decoder.score_threshold': expected a number in [0, 1], found nan"]),
    (ssd("score_treshold", 0.5), ["unknown field 'decoder.score_treshold'", "valid: type, boxes_output",
                                  "score_threshold", "Fix: fix the spelling or remove the field"]),
    (ssd("score_clip", 0), ["'decoder.score_clip': expected a number > 0, found 0"]),
    (ssd("score_sigmoid", 1), ["'decoder.score_sigmoid': expected true or false, found 1"]),
    (ssd("nms.method", "soft"),
     ["'decoder.nms.method': expected one of weighted, greedy, none, found 'soft'"]),
    (ssd("nms.iou_threshold", 1.2), ["'decoder.nms.iou_threshold': expected a number in [0, 1], found 1.2"]),
    (ssd("nms.max_detections", 0), ["'decoder.nms.max_detections': expected an integer >= 1, found 0"]),
    (ssd("nms.iou", 0.3), ["unknown field 'decoder.nms.iou' (valid: method, iou_threshold, max_detections)"]),
    ({"type": "classify", "activation": "relu"},
     ["'decoder.activation': expected one of softmax, sigmoid, none, found 'relu'"]),
    ({"type": "classify", "top_k": 0}, ["'decoder.top_k': expected an integer >= 1, found 0"]),
    ({"type": "classify", "top_k": 2.5}, ["'decoder.top_k': expected an integer >= 1, found 2.5"]),
    ({"type": "classify", "output": 3}, ["'decoder.output': expected a non-empty string, found 3"]),
    ({"type": "classify", "score_threshold": -1},
     ["'decoder.score_threshold': expected a number in [0, 1], found -1"]),
    ({"type": "classify", "topk": 3},
     ["unknown field 'decoder.topk' (valid: type, output, activation, top_k, score_threshold)"]),
])
def test_bad_params(params, messages):
    with pytest.raises(EdgeError) as error:
        build_decoder(params, labels=None, input_wh=(128, 128), where="face.onnx")
    text = str(error.value)
    assert text.startswith("face.onnx | ")
    assert "Fix: " in text
    for message in messages:
        assert message in text


def test_message_is_one_line():
    with pytest.raises(EdgeError) as error:
        build_decoder(ssd("anchors.strides", [8, 16]), labels=None, input_wh=(128, 128), where="m.onnx")
    assert str(error.value) == (
        "m.onnx | decoder field 'decoder.anchors.strides': expected num_layers = 4 strides, found [8, 16]. "
        "Fix: correct the decoder section of the model's edge config (edge-export onnx --config) "
        "or override it.")


def test_params_are_not_modified():
    params = ssd()
    before = copy.deepcopy(params)
    build_decoder(params, labels=None, input_wh=(128, 128))
    assert params == before
