"""Keypoints: the result type, the "landmarks" decoder and the yolo decoder's pose and mask heads (hand-built
outputs with known answers), mapping to frame pixels under stretch, letterbox and centre-crop, the skeleton
annotator, and ``python -m edge.camera`` on a small landmark model built here."""

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge.annotators import COCO17, MEDIAPIPE_HAND, KeypointsAnnotator
from edge.config import METADATA_KEY, EdgeConfig
from edge.decoders import DECODER_TYPES, build_decoder
from edge.decoders.landmarks import LandmarksDecoder
from edge.decoders.masks import warp_to_frame
from edge.errors import EdgeError
from edge.overlay import Annotator
from edge.preprocess import geometry
from edge.results import Keypoints, Segmentation

ROOT = Path(__file__).resolve().parents[2]


def transform_for(frame_wh, input_wh, resize):
    return geometry(frame_wh, input_wh, resize)[3]


# ------------------------------------------------------------------------------------------- result
def test_keypoints_result_shapes_selection_and_json():
    points = np.arange(2 * 3 * 2, dtype=float).reshape(2, 3, 2)
    result = Keypoints(points, [0.9, 0.4], point_scores=[[1, 0.5, 0], [0.2, 0.3, 0.4]], points_z=np.zeros((2, 3)),
                       boxes_xyxy=[[0, 0, 4, 4], [1, 1, 5, 5]], labels=["person"], keypoint_names=["a", "b", "c"],
                       skeleton=[[0, 1], [1, 2]])
    assert len(result) == 2 and result.num_keypoints == 3 and result.points_xy.dtype == np.float32
    assert result.class_ids.tolist() == [0, 0] and result.skeleton == [(0, 1), (1, 2)]
    second = result[1]
    assert len(second) == 1 and second.scores.tolist() == pytest.approx([0.4])
    assert second.points_xy[0, 0].tolist() == [6, 7] and second.keypoint_names == ["a", "b", "c"]
    assert len(result[np.array([False, False])]) == 0
    data = json.loads(json.dumps(result.to_json()))
    assert data["task"] == "keypoints" and len(data["instances"]) == 2
    first = data["instances"][0]
    assert first["label"] == "person" and first["box_xyxy"] == [0, 0, 4, 4]
    assert first["points_xy"] == [[0, 1], [2, 3], [4, 5]] and first["point_scores"] == [1, 0.5, 0]
    assert first["points_z"] == [0, 0, 0]


@pytest.mark.parametrize("kwargs, message", [
    ({"points_xy": np.zeros((2, 3))}, r"\(N, K, 2\)"),
    ({"keypoint_names": ["a"]}, "1 names for 3 keypoints"),
    ({"skeleton": [(0, 3)]}, r"skeleton pair \(0, 3\) names a keypoint outside 0..2"),
])
def test_keypoints_refuse_inconsistent_arrays(kwargs, message):
    arguments = dict({"points_xy": np.zeros((1, 3, 2)), "scores": [1.0]}, **kwargs)
    with pytest.raises(ValueError, match=message):
        Keypoints(**arguments)


def test_named_topologies():
    assert len(COCO17.names) == 17 and COCO17.names[0] == "nose" and COCO17.names[16] == "right_ankle"
    assert len(COCO17.pairs) == 19 and (5, 6) in COCO17.pairs  # the shoulders
    assert len(MEDIAPIPE_HAND.names) == 21 and MEDIAPIPE_HAND.names[8] == "index_finger_tip"
    assert len(MEDIAPIPE_HAND.pairs) == 21 and (0, 17) in MEDIAPIPE_HAND.pairs and (19, 20) in MEDIAPIPE_HAND.pairs
    for topology in (COCO17, MEDIAPIPE_HAND):  # every keypoint is on the skeleton
        assert {i for pair in topology.pairs for i in pair} == set(range(len(topology.names)))


# ------------------------------------------------------------------------------------------- landmarks
def landmarks(values, transform, params=None, presence=None, name="landmarks"):
    params = dict({"type": "landmarks", "output": name, "num_keypoints": len(values)}, **(params or {}))
    outputs = {name: np.asarray(values, np.float32).reshape(1, -1)}
    if presence is not None:
        params.setdefault("presence_output", "presence")
        outputs["presence"] = np.array([[presence]], np.float32)
    decoder = build_decoder(params, labels=None, input_wh=transform.input_wh)
    decoder.check_outputs({key: value.shape for key, value in outputs.items()})
    return decoder(outputs, transform)


# (frame, input, resize, input point, frame point): computed by hand from the resize geometry
MAPPING = [
    ((128, 64), (32, 32), "stretch", (8, 16), (32, 32)),         # scale 4 x 2
    ((128, 64), (64, 64), "letterbox", (10, 20), (20, 8)),       # scale 2, content from input row 16
    ((64, 128), (64, 64), "letterbox", (20, 10), (8, 20)),       # scale 2, content from input column 16
    ((128, 64), (32, 32), "center_crop", (0, 0), (32, 0)),       # scale 2, frame columns 32..96 seen
    ((128, 64), (32, 32), "center_crop", (32, 32), (96, 64)),
]


@pytest.mark.parametrize("frame_wh, input_wh, resize, point, expected", MAPPING)
def test_landmark_mapping_by_hand(frame_wh, input_wh, resize, point, expected):
    result = landmarks([list(point) + [3.0]], transform_for(frame_wh, input_wh, resize), {"dims": 3})
    assert result.points_xy[0, 0].tolist() == pytest.approx(list(expected))
    scale_x = {"stretch": 4, "letterbox": 2, "center_crop": 2}[resize]
    assert result.points_z[0, 0] == pytest.approx(3.0 * scale_x)  # z scaled like x


@pytest.mark.parametrize("resize", ["stretch", "letterbox", "center_crop"])
@pytest.mark.parametrize("frame_wh, input_wh", [((640, 480), (96, 96)), ((300, 451), (128, 96))])
def test_points_land_where_the_mask_of_their_pixel_lands(resize, frame_wh, input_wh):
    """A point at an input pixel's centre maps to the centre of that pixel's region in the frame as
    OpenCV's warpAffine (through the mask mapping) puts it: points and masks agree on pixel centres."""
    transform = transform_for(frame_wh, input_wh, resize)
    u, v = input_wh[0] // 2 + 3, input_wh[1] // 2 - 5
    one_pixel = np.zeros(input_wh[::-1], np.uint8)
    one_pixel[v, u] = 1
    region = warp_to_frame(one_pixel, transform, nearest=True)
    ys, xs = np.nonzero(region)
    centre = [(xs.min() + xs.max() + 1) / 2, (ys.min() + ys.max() + 1) / 2]  # continuous coordinates
    point = landmarks([[u + 0.5, v + 0.5]], transform).points_xy[0, 0]
    assert point.tolist() == pytest.approx(centre, abs=0.51)


def test_normalized_coordinates_scale_by_the_input_size():
    transform = transform_for((100, 50), (100, 50), "stretch")
    result = landmarks([[0.5, 0.5, 0.1], [1.0, 0.0, 0.0]], transform, {"normalized": True})
    np.testing.assert_allclose(result.points_xy[0], [[50, 25], [100, 0]], atol=1e-4)
    np.testing.assert_allclose(result.points_z[0], [10, 0], atol=1e-4)


@pytest.mark.parametrize("params, presence, expected_len, expected_score", [
    ({}, 0.9, 1, 0.9),
    ({}, 0.4, 0, None),                                              # below the 0.5 threshold: nothing
    ({"presence_threshold": 0.3}, 0.4, 1, 0.4),
    ({"presence_activation": "sigmoid"}, 2.0, 1, 1 / (1 + np.exp(-2.0))),
    ({"presence_activation": "sigmoid"}, -2.0, 0, None),
    ({}, None, 1, 1.0),                                              # no presence output: always one instance
])
def test_presence(params, presence, expected_len, expected_score):
    result = landmarks(np.ones((21, 3)), transform_for((224, 224), (224, 224), "stretch"), params, presence)
    assert len(result) == expected_len and result.points_xy.shape == (expected_len, 21, 2)
    if expected_len:
        assert result.scores[0] == pytest.approx(expected_score, abs=1e-6)


def test_a_logit_read_as_a_probability_is_an_error():
    with pytest.raises(EdgeError, match=r"gave 3.5, not a probability .*decoder.presence_activation to sigmoid"):
        landmarks(np.ones((21, 3)), transform_for((224, 224), (224, 224), "stretch"), {}, presence=3.5)


def test_named_skeleton_gives_names():
    result = landmarks(np.ones((21, 3)), transform_for((224, 224), (224, 224), "stretch"),
                       {"skeleton": "mediapipe_hand"})
    assert result.keypoint_names == list(MEDIAPIPE_HAND.names) and result.skeleton == list(MEDIAPIPE_HAND.pairs)


def test_registered():
    assert DECODER_TYPES["landmarks"] is LandmarksDecoder and LandmarksDecoder.task == "keypoints"


@pytest.mark.parametrize("params, shapes, message", [
    ({"num_keypoints": 20}, {"landmarks": (1, 63)}, r"shape \[1, 63\], but the landmarks decoder expects 20 x 2 or "
                                                    r"20 x 3 values"),
    ({"num_keypoints": 21, "dims": 2}, {"landmarks": (1, 63)}, "expects 21 x 2 = 42 values"),
    ({"num_keypoints": 21, "dims": 4}, {"landmarks": (1, 84)}, r"'decoder.dims': expected 2 \(x, y\) or 3"),
    ({"num_keypoints": 468}, {"landmarks": (1, 1, 1, 1404), "flag": (1, 1, 1, 1)}, "has 2 outputs"),
    ({"num_keypoints": 21, "presence_output": "flag"}, {"landmarks": (1, 63)}, "the model has no output 'flag'"),
    ({"num_keypoints": 21, "presence_output": "flag"}, {"landmarks": (1, 63), "flag": (1, 2)},
     r"'flag' has shape \[1, 2\], but the landmarks decoder expects one presence value"),
    ({"num_keypoints": 21, "skeleton": "coco17"}, {"landmarks": (1, 63)},
     r"expected a topology for 21 keypoints \('coco17' has 17\)"),
    ({"num_keypoints": 21, "skeleton": "hand"}, {"landmarks": (1, 63)}, "or one of coco17, mediapipe_hand"),
    ({"num_keypoints": 3, "skeleton": [[0, 3]]}, {"landmarks": (1, 9)}, r"0 <= i, j < 3.*found \[0, 3\]"),
    ({"num_keypoints": 3, "keypoint_names": ["a"]}, {"landmarks": (1, 9)}, "expected 3 names"),
    ({}, {"landmarks": (1, 63)}, "'decoder.num_keypoints' is missing"),
    ({"num_keypoints": 21, "presence_activation": "softmax"}, {"landmarks": (1, 63)}, "expected one of none, sigmoid"),
])
def test_landmark_errors_are_one_line(params, shapes, message):
    with pytest.raises(EdgeError, match=message) as info:
        decoder = build_decoder(dict({"type": "landmarks"}, **params), labels=None, input_wh=(224, 224),
                                where="hand.onnx")
        decoder.check_outputs(shapes)
    assert "\n" not in str(info.value) and "Fix:" in str(info.value)


# ------------------------------------------------------------------------------------------- yolo pose and masks
LETTERBOX = transform_for((128, 64), (64, 64), "letterbox")  # scale 2, offset (0, -32)


def pose_head(nc=2):
    """(1, 4+nc+2*3, 3) anchor-free pose head: 3 boxes, 2 keypoints each (x, y, visibility)."""
    rows = [
        ((20, 30, 10, 10), (0.9, 0.0), [(18, 28, 0.9), (22, 32, 0.2)]),
        ((20, 31, 10, 10), (0.8, 0.0), [(0, 0, 1.0), (0, 0, 1.0)]),   # suppressed by the first (same class)
        ((50, 40, 8, 8), (0.0, 0.6), [(48, 38, 0.7), (70, 10, 0.6)]),  # second point outside: clipped
    ]
    table = [list(box) + list(scores) + [v for point in points for v in point] for box, scores, points in rows]
    return np.array(table, np.float32).T[None]


def test_yolo_pose_head_gives_keypoints_in_frame_pixels():
    decoder = build_decoder({"type": "yolo", "kpt_shape": [2, 3], "skeleton": [[0, 1]]}, labels=["a", "b"],
                            input_wh=(64, 64))
    assert decoder.task == "keypoints"
    decoder.check_outputs({"output0": (1, 12, 3)})
    result = decoder({"output0": pose_head()}, LETTERBOX)
    assert isinstance(result, Keypoints) and len(result) == 2 and result.class_ids.tolist() == [0, 1]
    assert result.boxes_xyxy.tolist() == [[30, 18, 50, 38], [92, 40, 108, 56]]
    assert result.points_xy.tolist() == [[[36, 24], [44, 32]], [[96, 44], [128, 0]]]  # (140, -12) clipped
    np.testing.assert_allclose(result.point_scores, [[0.9, 0.2], [0.7, 0.6]], atol=1e-6)
    assert result.skeleton == [(0, 1)] and result.labels == ["a", "b"]


def test_yolo_mask_head_crops_prototypes_to_the_box():
    head = np.array([[20, 30, 10, 10, 0.9, 1.0, 0.0],    # cx cy w h, score, 2 coefficients
                     [40, 40, 20, 20, 0.8, 0.0, 1.0],
                     [10, 10, 4, 4, 0.7, -1.0, 0.0]], np.float32).T[None]  # negative everywhere: dropped
    protos = np.zeros((1, 2, 16, 16), np.float32)
    protos[0, 0] = 1.0            # the first box's mask is its whole box
    protos[0, 1, :, :8] = 1.0     # the second box's mask is the left half of the input, inside its box
    protos[0, 1, :, 8:] = -1.0
    decoder = build_decoder({"type": "yolo", "masks": {"proto_output": "protos", "num_masks": 2}}, labels=["a"],
                            input_wh=(64, 64))
    assert decoder.task == "segment"
    decoder.check_outputs({"output0": head.shape, "protos": protos.shape})
    result = decoder({"output0": head, "protos": protos}, LETTERBOX)
    assert isinstance(result, Segmentation) and len(result) == 2 and result.masks.shape == (2, 64, 128)
    first = np.zeros((64, 128), bool)
    first[18:38, 30:50] = True  # box (15, 25, 25, 35) in the input -> (30, 18, 50, 38) in the frame
    assert np.array_equal(result.masks[0], first)
    second = np.zeros((64, 128), bool)
    second[28:64, 60:64] = True  # box x 30..50 -> 60..100, the left half of the input ends at frame x 64
    assert np.array_equal(result.masks[1], second)


@pytest.mark.parametrize("params, rows", [({"kpt_shape": [2, 3]}, 4 + 1 + 6), ({"masks": {"proto_output": "p"}}, 37)])
def test_yolo_pose_and_mask_heads_with_nothing_found(params, rows):
    decoder = build_decoder(dict({"type": "yolo"}, **params), labels=["a"], input_wh=(64, 64))
    outputs = {"output0": np.zeros((1, rows, 5), np.float32)}
    if "masks" in params:
        outputs["p"] = np.zeros((1, 32, 16, 16), np.float32)
    result = decoder(outputs, LETTERBOX)
    assert len(result) == 0 and result.to_json()["instances"] == []
    if isinstance(result, Segmentation):
        assert result.masks.shape == (0, 64, 128)
    else:
        assert result.points_xy.shape == (0, 2, 2) and result.point_scores.shape == (0, 2)


@pytest.mark.parametrize("params, shapes, message", [
    ({"kpt_shape": [17, 3]}, {"output0": (1, 56, 100)}, r"\(1, 4\+3\+51, N\) anchor-free .* and 17 keypoints x 3 "
                                                        r"\(kpt_shape\)"),
    ({"kpt_shape": [17]}, {"output0": (1, 58, 100)}, r"'decoder.kpt_shape': expected \[K, 2\] or \[K, 3\]"),
    ({"kpt_shape": [17, 4]}, {"output0": (1, 58, 100)}, r"'decoder.kpt_shape': expected \[K, 2\] or \[K, 3\]"),
    ({"skeleton": "coco17"}, {"output0": (1, 7, 100)}, "'decoder.skeleton': expected no value unless decoder.kpt"),
    ({"kpt_shape": [17, 3], "masks": {"proto_output": "p"}}, {}, "keypoints or masks, not both"),
    ({"masks": {}}, {}, "'decoder.masks.proto_output' is missing"),
    ({"masks": {"proto_output": "p", "coefficients": 32}}, {}, "unknown field 'decoder.masks.coefficients'"),
    ({"masks": {"proto_output": "output1"}}, {"output0": (1, 39, 100)}, "the model has no output 'output1'"),
    ({"masks": {"proto_output": "output1"}}, {"output0": (1, 39, 100), "output1": (1, 16, 16, 16)},
     r"'output1' has shape \[1, 16, 16, 16\], but the yolo decoder expects mask prototypes \(1, 32, H, W\)"),
    ({"masks": {"proto_output": "output1"}}, {"output0": (1, 39, 100), "output1": (1, 32, 16, 8)},
     "covering the 64x64 input"),
    ({"masks": {"proto_output": "output1"}}, {"output0": (1, 7, 100), "output1": (1, 32, 16, 16)},
     r"\(1, 4\+3\+32, N\) .* and 32 mask coefficients"),
])
def test_yolo_pose_and_mask_errors_are_one_line(params, shapes, message):
    with pytest.raises(EdgeError, match=message) as info:
        decoder = build_decoder(dict({"type": "yolo"}, **params), labels=["a", "b", "c"], input_wh=(64, 64),
                                where="yolo.onnx")
        decoder.check_outputs(shapes)
    assert "\n" not in str(info.value) and "Fix:" in str(info.value)


# ------------------------------------------------------------------------------------------- drawing
def test_keypoints_annotator_skips_points_below_min_score():
    scene = np.zeros((60, 60, 3), np.uint8)
    result = Keypoints([[[10, 10], [50, 10], [30, 50]]], [1.0], point_scores=[[0.9, 0.9, 0.1]],
                       skeleton=[(0, 1), (1, 2)])
    KeypointsAnnotator(min_score=0.5, thickness_px=1, palette_bgr=[(0, 0, 255), (0, 255, 0), (255, 0, 0)]).annotate(
        scene, result)
    assert scene[10, 30].any()          # the line 0-1 is drawn
    assert not scene[30, 40].any()      # the line 1-2 is not (point 2 is not visible)
    assert not scene[50, 30].any()      # nor point 2 itself
    assert scene[10, 10, 2] > 200 and scene[10, 50, 1] > 200  # points in their keypoint colours


def test_overlay_draws_keypoints_and_their_boxes():
    scene = np.zeros((100, 100, 3), np.uint8)
    result = Keypoints([[[20, 20], [80, 80]]], [0.9], boxes_xyxy=[[10, 10, 90, 90]], skeleton=[(0, 1)])
    Annotator().annotate(scene, result)
    assert scene[50, 50].any() and scene[10, 50].any()  # skeleton line through the middle, box edge at the top


# ------------------------------------------------------------------------------------------- end to end
def make_hand_landmarks(path: Path, size: int = 64) -> Path:
    """A tiny landmark model: (1, 3, s, s) -> 21 x 3 landmarks in input pixels (a fixed hand-sized fan whose
    x shifts with the image's mean red) and a presence probability, with the edge config embedded."""
    base = np.array([[size / 2 + 10 * np.cos(a), size / 2 + 10 * np.sin(a), 0.0]
                     for a in np.linspace(0, np.pi, 21)], np.float32).reshape(1, 63)
    shift = np.zeros((1, 63), np.float32)
    shift[0, 0::3] = 8.0  # x moves right with red
    nodes = [helper.make_node("GlobalAveragePool", ["image"], ["mean"]),
             helper.make_node("Flatten", ["mean"], ["mean_rgb"]),
             helper.make_node("Slice", ["mean_rgb", "start", "end", "axis"], ["red"]),
             helper.make_node("MatMul", ["red", "shift"], ["moved"]),
             helper.make_node("Add", ["moved", "base"], ["landmarks"]),
             helper.make_node("Sigmoid", ["red"], ["presence"])]
    initializers = [numpy_helper.from_array(base, "base"), numpy_helper.from_array(shift, "shift"),
                    numpy_helper.from_array(np.array([0], np.int64), "start"),
                    numpy_helper.from_array(np.array([1], np.int64), "end"),
                    numpy_helper.from_array(np.array([1], np.int64), "axis")]
    graph = helper.make_graph(nodes, "hand_landmarks",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, size, size])],
                              [helper.make_tensor_value_info("landmarks", TensorProto.FLOAT, [1, 63]),
                               helper.make_tensor_value_info("presence", TensorProto.FLOAT, [1, 1])],
                              initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    config = {"edge_config": 1, "name": "hand_landmarks", "task": "keypoints",
              "input": {"name": "image", "shape": [1, 3, size, size], "layout": "NCHW", "dtype": "float32"},
              "preprocess": {"color": "RGB", "resize": "letterbox", "scale": 1 / 255, "mean": [0, 0, 0],
                             "std": [1, 1, 1]},
              "outputs": ["landmarks", "presence"],
              "decoder": {"type": "landmarks", "output": "landmarks", "num_keypoints": 21, "dims": 3,
                          "presence_output": "presence", "presence_threshold": 0.5, "skeleton": "mediapipe_hand"}}
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, EdgeConfig.from_dict(config).to_json()
    import onnx

    onnx.save(model, str(path))
    return path


def test_camera_run_on_a_landmark_model(tmp_path):
    import edge

    model = make_hand_landmarks(tmp_path / "hand.onnx")
    sample = ROOT / "edge" / "data" / "samples" / "coffee.jpg"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("DISPLAY", None)
    done = subprocess.run([sys.executable, "-m", "edge.camera", "--model", str(model), "--source", str(sample),
                           "--headless", "--output", "-", "--output", str(tmp_path / "hand_%05d.jpg")],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=120,
                          env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[0])["result"]
    assert result["task"] == "keypoints" and len(result["instances"]) == 1
    image = cv2.imread(str(sample))
    with edge.load_model(model, backend="onnxruntime-cpu") as loaded:
        assert loaded.task == "keypoints"
        tensor, transform = loaded.preprocess(image)
        outputs = loaded.infer(tensor)
        expected = loaded.decode(outputs, transform)
    red = float(tensor[0, 0].mean())
    assert result["instances"][0]["score"] == pytest.approx(1 / (1 + np.exp(-red)), abs=1e-4)
    # by hand: the points in input pixels, letterboxed 600x400 -> 64x43 at row 10 of 64x64 (scale 9.375, 400/43)
    raw = outputs["landmarks"].reshape(21, 3)
    by_hand = np.stack([raw[:, 0] * 600 / 64, (raw[:, 1] - 10) * 400 / 43], axis=1)
    np.testing.assert_allclose(result["instances"][0]["points_xy"], by_hand, atol=0.01)
    np.testing.assert_allclose(expected.points_xy[0], by_hand, atol=0.01)
    assert (tmp_path / "hand_00000.jpg").is_file()
