"""Segmentation: COCO RLE against pycocotools, the "segment" decoder's mapping to frame pixels (hand-computed
cases and OpenCV's own warpAffine of the same transform), its errors, the mask annotator, and whole runs of
``python -m edge.camera`` on a small segmentation model built here."""

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge.annotators import MaskAnnotator
from edge.config import METADATA_KEY, EdgeConfig
from edge.decoders import DECODER_TYPES, build_decoder
from edge.decoders.masks import box_regions, frame_to_map_affine, warp_to_frame
from edge.decoders.segment import SegmentDecoder
from edge.errors import EdgeError
from edge.preprocess import geometry
from edge.results import Detections, Segmentation, rle_counts, rle_encode

try:  # the test extra has it; CI's Python 3.8 run does not: only the tests that read RLE back skip there
    import pycocotools.mask as mask_api
except ImportError:
    mask_api = None
# pycocotools 2.0.x with numpy 2: a warning inside its decode, not about edge
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy:DeprecationWarning")
ROOT = Path(__file__).resolve().parents[2]


def decode_rle(rle):
    if mask_api is None:
        pytest.skip("pycocotools is not installed (pip install pycocotools)")
    return mask_api.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)


# ------------------------------------------------------------------------------------------- RLE
def _masks():
    rng = np.random.default_rng(0)
    yield "empty", np.zeros((4, 6), bool)
    yield "full", np.ones((4, 6), bool)
    yield "first pixel set", np.eye(5, 7, dtype=bool)
    yield "one pixel", np.zeros((1, 1), bool)
    yield "one set pixel", np.ones((1, 1), bool)
    for p in (0.02, 0.5, 0.98):
        yield f"random {p}", rng.random((37, 53)) < p
    blob = np.zeros((720, 1280), bool)
    blob[100:600, 200:900] = True
    blob[300:700, 600:1200] = True
    yield "720p blob", blob
    yield "long runs", np.repeat(rng.random((3, 1)) < 0.5, 200000, axis=1)  # counts beyond 2^17: 4+ groups


@pytest.mark.parametrize("name, mask", list(_masks()), ids=[name for name, _ in _masks()])
def test_rle_is_what_pycocotools_writes_and_reads(name, mask):
    ours = rle_encode(mask)
    if mask_api is None:
        pytest.skip("pycocotools is not installed (pip install pycocotools)")
    reference = mask_api.encode(np.asfortranarray(mask.astype(np.uint8)))
    assert ours["size"] == [int(v) for v in reference["size"]] == list(mask.shape)
    assert ours["counts"] == reference["counts"].decode("ascii")  # novermin - bytes.decode
    assert np.array_equal(decode_rle(ours), mask)
    assert int(rle_counts(mask).sum()) == mask.size


def test_rle_counts_are_column_major_zeros_first():
    mask = np.array([[0, 1], [1, 1]], bool)  # columns: (0, 1), (1, 1) -> 1 zero, 3 ones
    assert rle_counts(mask).tolist() == [1, 3]
    assert rle_counts(np.ones((2, 2), bool)).tolist() == [0, 4]
    with pytest.raises(ValueError, match="2-D"):
        rle_encode(np.zeros((2, 2, 2), bool))


# ------------------------------------------------------------------------------------------- result
def test_semantic_result_fractions_length_and_json():
    class_map = np.zeros((4, 10), np.int64)
    class_map[:, :5] = 2
    class_map[0, 9] = 7
    seg = Segmentation(class_map=class_map, labels=["background", "cat", "dog"])
    assert seg.class_map.dtype == np.int32 and seg.size_wh == (10, 4)
    assert seg.class_fractions() == {0: 19 / 40, 2: 20 / 40, 7: 1 / 40}
    assert len(seg) == 2  # dog and class 7; background does not count
    data = json.loads(json.dumps(seg.to_json()))
    assert data["task"] == "segment" and data["size_wh"] == [10, 4]
    assert [c["class_id"] for c in data["classes"]] == [0, 2, 7]
    assert [c.get("label") for c in data["classes"]] == ["background", "dog", None]
    for item in data["classes"]:
        assert np.array_equal(decode_rle(item["rle"]), class_map == item["class_id"])
        assert item["fraction"] == pytest.approx(np.mean(class_map == item["class_id"]), abs=1e-6)


def test_instance_result_json_carries_boxes_and_masks():
    masks = np.zeros((2, 6, 8), bool)
    masks[0, 1:3, 1:4] = True
    masks[1, 2:6, 5:8] = True
    instances = Detections([[1, 1, 4, 3], [5, 2, 8, 6]], [0.9, 0.6], [1, 0], labels=["a", "b"])
    seg = Segmentation(instances=instances, masks=masks)
    assert len(seg) == 2 and seg.labels == ["a", "b"] and seg.size_wh == (8, 6)
    assert seg.class_fractions() == {0: 12 / 48, 1: 6 / 48}
    items = json.loads(json.dumps(seg.to_json()))["instances"]
    assert [(i["class_id"], i["label"], i["score"]) for i in items] == [(1, "b", 0.9), (0, "a", 0.6)]
    assert items[0]["box_xyxy"] == [1, 1, 4, 3]
    for item, mask in zip(items, masks):
        assert np.array_equal(decode_rle(item["rle"]), mask)


@pytest.mark.parametrize("kwargs, message", [
    ({}, "either class_map or instances"),
    ({"class_map": np.zeros((2, 2)), "instances": Detections.empty(), "masks": np.zeros((0, 2, 2))}, "not both"),
    ({"class_map": np.zeros((2, 2, 2))}, r"\(H, W\)"),
    ({"instances": Detections.empty()}, "needs instances"),
    ({"instances": Detections.empty(), "masks": np.zeros((1, 2, 2))}, "N = 0 instances"),
])
def test_segmentation_refuses_inconsistent_arrays(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Segmentation(**kwargs)


# ------------------------------------------------------------------------------------------- mapping
def transform_for(frame_wh, input_wh, resize):
    return geometry(frame_wh, input_wh, resize)[3]


def segment(scores, transform, params=None, labels=None, name="out"):
    decoder = build_decoder(dict({"type": "segment"}, **(params or {})), labels=labels,
                            input_wh=transform.input_wh)
    decoder.check_outputs({name: scores.shape})
    return decoder({name: scores}, transform).class_map


def two_class_scores(class_ids_hw):
    """(1, 2, h, w) logits whose argmax is ``class_ids_hw`` (0 or 1)."""
    ids = np.asarray(class_ids_hw)
    return np.stack([(ids == 0), (ids == 1)]).astype(np.float32)[None] * 4 - 2


def test_registered():
    assert DECODER_TYPES["segment"] is SegmentDecoder and SegmentDecoder.task == "segment"


def test_stretch_by_hand():
    # a 128x64 frame stretched to 32x32: each input pixel covers 4 x 2 frame pixels
    ids = np.zeros((32, 32), int)
    ids[8:16, 4:12] = 1
    class_map = segment(two_class_scores(ids), transform_for((128, 64), (32, 32), "stretch"))
    expected = np.zeros((64, 128), np.int32)
    expected[16:32, 16:48] = 1
    assert np.array_equal(class_map, expected)


def test_letterbox_by_hand():
    # 128x64 into 64x64: scale 2, content on input rows 16..48; rows 0..16 (padding) never reach the frame
    ids = np.zeros((64, 64), int)
    ids[16:24, 0:32] = 1   # top-left quarter of the content
    ids[0:16, :] = 1       # padding: invisible in the frame
    ids[40:48, 40:64] = 1  # bottom-right
    class_map = segment(two_class_scores(ids), transform_for((128, 64), (64, 64), "letterbox"))
    expected = np.zeros((64, 128), np.int32)
    expected[0:16, 0:64] = 1
    expected[48:64, 80:128] = 1
    assert np.array_equal(class_map, expected)


def test_center_crop_by_hand_leaves_the_unseen_sides_background():
    # 128x64 centre-cropped to 32x32: the model sees frame columns 32..96 at scale 2
    ids = np.ones((32, 32), int)
    ids[:, :4] = 0
    class_map = segment(two_class_scores(ids), transform_for((128, 64), (32, 32), "center_crop"))
    expected = np.zeros((64, 128), np.int32)
    expected[:, 40:96] = 1
    assert np.array_equal(class_map, expected)


def test_coarse_output_maps_through_the_input():
    # a 1/4-resolution head (16x16 for a 64x64 input) on a 128x64 letterboxed frame: scale 8 per map pixel
    ids = np.zeros((16, 16), int)
    ids[4:6, 0:8] = 1  # input rows 16..24, columns 0..32 -> frame rows 0..16, columns 0..64
    class_map = segment(two_class_scores(ids), transform_for((128, 64), (64, 64), "letterbox"))
    expected = np.zeros((64, 128), np.int32)
    expected[0:16, 0:64] = 1
    assert np.array_equal(class_map, expected)


def forward_affine(transform, map_wh):
    """The map -> frame matrix written from the Transform's definition (x = u * scale + offset), pixel centres."""
    (in_w, in_h), (map_w, map_h) = transform.input_wh, map_wh
    sx, sy = transform.scale_xy[0] * in_w / map_w, transform.scale_xy[1] * in_h / map_h
    ox, oy = transform.offset_xy
    return np.array([[sx, 0, 0.5 * sx + ox - 0.5], [0, sy, 0.5 * sy + oy - 0.5]], np.float64)


FRAMES = [((640, 480), (96, 96)), ((300, 451), (128, 96)), ((451, 300), (64, 64)), ((200, 200), (64, 48))]


@pytest.mark.parametrize("resize", ["stretch", "letterbox", "center_crop"])
@pytest.mark.parametrize("frame_wh, input_wh", FRAMES)
@pytest.mark.parametrize("factor", [1, 4])
def test_mapping_matches_opencv_warp_of_the_same_transform(resize, frame_wh, input_wh, factor):
    transform = transform_for(frame_wh, input_wh, resize)
    map_wh = (input_wh[0] // factor, input_wh[1] // factor)
    ours = frame_to_map_affine(transform, map_wh)
    np.testing.assert_allclose(ours, cv2.invertAffineTransform(forward_affine(transform, map_wh)), atol=1e-9)
    # a smooth probability map: bilinear results agree to OpenCV's 1/32-pixel interpolation grid
    yy, xx = np.mgrid[0:map_wh[1], 0:map_wh[0]]
    probabilities = (0.5 + 0.5 * np.sin(xx / map_wh[0] * 5.0) * np.cos(yy / map_wh[1] * 3.0)).astype(np.float32)
    reference = cv2.warpAffine(probabilities, forward_affine(transform, map_wh), frame_wh, flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    mapped = warp_to_frame(probabilities, transform, nearest=False)
    np.testing.assert_allclose(mapped, reference, atol=0.02)
    # and the decoder's binary mask equals thresholding OpenCV's warp (outside the map counting as the
    # threshold, as the decoder does), but for pixels at the threshold
    class_map = segment(probabilities[None, None], transform, {"activation": "none"})
    reference = cv2.warpAffine(probabilities, forward_affine(transform, map_wh), frame_wh, flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0.5)
    disagree = class_map.astype(bool) != (reference > 0.5)
    assert disagree.mean() < 0.002
    assert np.all(np.abs(reference[disagree] - 0.5) < 0.02)


def test_nhwc_probabilities_as_mediapipe_selfie_segmentation():
    transform = transform_for((64, 64), (32, 32), "stretch")
    probabilities = np.zeros((1, 32, 32, 1), np.float32)
    probabilities[0, :16, :, 0] = 0.9
    probabilities[0, 16:, :, 0] = 0.2
    class_map = segment(probabilities, transform, {"activation": "none"}, labels=["background", "person"])
    assert class_map[:32].min() == 1 and class_map[32:].max() == 0
    # the same values read as logits: sigmoid(0.2) > 0.5 -> all foreground
    assert segment(probabilities, transform).min() == 1
    assert segment(probabilities, transform, {"activation": "none", "mask_threshold": 0.95}).max() == 0


def test_nchw_and_nhwc_readings_of_one_map_agree():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(1, 5, 24, 32)).astype(np.float32)
    transform = transform_for((320, 240), (32, 24), "stretch")
    nchw = segment(scores, transform)
    nhwc = segment(np.ascontiguousarray(scores.transpose(0, 2, 3, 1)), transform)
    assert np.array_equal(nchw, nhwc) and set(np.unique(nchw)) <= set(range(5))
    assert np.array_equal(nchw[::10, ::10], np.argmax(scores[0], axis=0))  # 10 frame pixels per map pixel


def test_box_regions_take_the_pixels_whose_index_is_inside():
    regions = box_regions(np.array([[0.2, 1.0, 3.5, 2.9], [-5, -5, 100, 100], [4, 4, 4.2, 9]]), (10, 8))
    assert regions.tolist() == [[1, 1, 3, 2], [0, 0, 10, 8], [4, 4, 1, 4]]


# ------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("params, labels, shapes, message", [
    ({}, None, {"output0": (1, 84, 8400)}, r"has shape \[1, 84, 8400\], but the segment decoder expects 4 dim"),
    ({}, None, {"scores": (1, 896, 16), "boxes": (1, 896, 1)}, "has 2 outputs .* does not say which"),
    ({"output": "masks"}, None, {"logits": (1, 2, 8, 8)}, "the model has no output 'masks'"),
    ({}, None, {"logits": (1, 1000, 1, 1)}, r"shape \[1, 1000, 1, 1\].*aspect ratio 32x32"),
    ({}, None, {"logits": (1, 3, 32, 64)}, r"aspect ratio 32x32"),
    ({"layout": "NHWC"}, None, {"logits": (1, 3, 32, 32)}, r"a NHWC score map"),
    ({}, ["a", "b", "c"], {"logits": (1, 2, 32, 32)}, "3 labels but output 'logits' .* gives 2 classes"),
    ({}, ["person"], {"logits": (1, 1, 32, 32)}, r"gives 2 classes \(background 0 and foreground 1\)"),
    ({"activation": "softmax"}, None, {"logits": (1, 32, 32, 1)}, "softmax of one value is always 1"),
    ({"mask_threshold": 0}, None, {"logits": (1, 1, 32, 32)}, r"'decoder.mask_threshold': expected a number in \(0"),
    ({"activation": "relu"}, None, {"logits": (1, 1, 32, 32)}, "'decoder.activation': expected one of auto"),
    ({"treshold": 0.5}, None, {"logits": (1, 1, 32, 32)}, "unknown field 'decoder.treshold'"),
    ({}, None, {"logits": (4, 2, 32, 32)}, "batch of 4"),
])
def test_errors_are_one_line(params, labels, shapes, message):
    with pytest.raises(EdgeError, match=message) as info:
        decoder = build_decoder(dict({"type": "segment"}, **params), labels=labels, input_wh=(32, 32), where="m.onnx")
        decoder.check_outputs(shapes)
    assert "\n" not in str(info.value) and "Fix:" in str(info.value)


# ------------------------------------------------------------------------------------------- drawing
def test_mask_annotator_blends_classes_and_leaves_background():
    scene = np.full((40, 60, 3), 100, np.uint8)
    class_map = np.zeros((40, 60), np.int32)
    class_map[10:20, 10:30] = 1
    MaskAnnotator(opacity=0.5, palette_bgr=[(0, 0, 0), (200, 0, 50)]).annotate(scene, Segmentation(class_map))
    assert (scene[class_map == 0] == 100).all()
    assert (scene[class_map == 1] == [150, 50, 75]).all()


def test_mask_annotator_draws_instances_in_their_colour():
    scene = np.zeros((20, 20, 3), np.uint8)
    masks = np.zeros((2, 20, 20), bool)
    masks[0, 2:5, 2:5] = True
    masks[1, 10:15, 12:18] = True
    seg = Segmentation(instances=Detections([[2, 2, 5, 5], [12, 10, 18, 15]], [0.9, 0.8], [0, 1]), masks=masks)
    MaskAnnotator(opacity=1.0, palette_bgr=[(10, 20, 30), (40, 50, 60)]).annotate(scene, seg)
    assert (scene[masks[0]] == [10, 20, 30]).all() and (scene[masks[1]] == [40, 50, 60]).all()
    assert (scene[~masks.any(axis=0)] == 0).all()


def test_mask_annotator_refuses_a_scene_of_another_size():
    with pytest.raises(ValueError, match="masks cover 8x4 pixels but the image is 6x4"):
        MaskAnnotator().annotate(np.zeros((4, 6, 3), np.uint8), Segmentation(np.zeros((4, 8), np.int32)))


# ------------------------------------------------------------------------------------------- end to end
def make_red_segmenter(path: Path, size: int = 64, labels=("background", "red")) -> Path:
    """A tiny semantic segmenter: (1, 3, s, s) RGB in [0, 1] -> (1, 2, s/4, s/4) logits; class 1 where red
    clearly exceeds green and blue (4x4 average pooled), with the edge config embedded."""
    weight = np.zeros((2, 3, 1, 1), np.float32)
    weight[1, :, 0, 0] = [10.0, -5.0, -5.0]
    bias = np.array([0.0, -1.0], np.float32)
    nodes = [helper.make_node("Conv", ["image", "w", "b"], ["logits_full"]),
             helper.make_node("AveragePool", ["logits_full"], ["logits"], kernel_shape=[4, 4], strides=[4, 4])]
    graph = helper.make_graph(nodes, "red_segmenter",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, size, size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT,
                                                             [1, 2, size // 4, size // 4])],
                              [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    config = {"edge_config": 1, "name": "red_segmenter", "task": "segment",
              "input": {"name": "image", "shape": [1, 3, size, size], "layout": "NCHW", "dtype": "float32"},
              "preprocess": {"color": "RGB", "resize": "letterbox", "scale": 1 / 255, "mean": [0, 0, 0],
                             "std": [1, 1, 1]},
              "outputs": ["logits"], "labels": list(labels), "decoder": {"type": "segment"}}
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, EdgeConfig.from_dict(config).to_json()
    import onnx

    onnx.save(model, str(path))
    return path


def run_camera(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("DISPLAY", None)
    return subprocess.run([sys.executable, "-m", "edge.camera", *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=120,
                          env=env, cwd=ROOT)


def test_model_api_gives_a_frame_sized_class_map(tmp_path, astronaut):
    import edge

    with edge.load_model(make_red_segmenter(tmp_path / "red.onnx"), backend="onnxruntime-cpu") as model:
        assert model.task == "segment"
        result = model(astronaut)
    assert isinstance(result, edge.Segmentation) and result.class_map.shape == astronaut.shape[:2]
    fractions = result.class_fractions()
    assert set(fractions) == {0, 1} and 0.01 < fractions[1] < 0.5  # the red suit and flag, not the whole frame
    b, g, r = (astronaut[result.class_map == 1].astype(float).mean(axis=0))
    assert r > g + 40 and r > b + 40


def test_camera_run_writes_rle_json_lines_and_mask_images(tmp_path, astronaut):
    model = make_red_segmenter(tmp_path / "red.onnx")
    sample = ROOT / "edge" / "data" / "samples" / "astronaut.jpg"
    done = run_camera("--model", str(model), "--source", str(sample), "--headless", "--output", "-",
                      "--output", str(tmp_path / "masks_%05d.png"))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(lines) == 1
    result = lines[0]["result"]
    assert result["task"] == "segment" and result["size_wh"] == [512, 512]
    assert [c["label"] for c in result["classes"]] == ["background", "red"]
    assert sum(c["fraction"] for c in result["classes"]) == pytest.approx(1.0, abs=1e-5)
    import edge

    with edge.load_model(model, backend="onnxruntime-cpu") as loaded:
        expected = loaded(cv2.imread(str(sample)))
    red = decode_rle(result["classes"][1]["rle"])
    assert np.array_equal(red, expected.class_map == 1)
    drawn = cv2.imread(str(tmp_path / "masks_00000.png"))
    original = cv2.imread(str(sample))
    changed = np.abs(drawn.astype(int) - original.astype(int)).sum(axis=2) > 0
    assert changed[red].mean() > 0.95  # every red pixel blended
    assert "1 frames" in done.stderr


def test_camera_refuses_track_for_a_segmenter(tmp_path):
    done = run_camera("--model", str(make_red_segmenter(tmp_path / "red.onnx")), "--source", "demo://",
                      "--headless", "--max-frames", "1", "--track")
    assert done.returncode == 2 and "--track follows detected objects" in done.stderr
    assert "task is 'segment'" in done.stderr


@pytest.mark.parametrize("config, message", [
    ({"task": "segment", "decoder": {"type": "segment", "output": "regressors"}},
     r"model output 'regressors' has shape \[1, 896, 16\], but the segment decoder expects 4 dimensions"),
    ({"task": "segment", "decoder": {"type": "segment"}}, "has 2 outputs .* does not say which one holds the score"),
    ({"task": "keypoints", "decoder": {"type": "landmarks", "output": "regressors", "num_keypoints": 21}},
     r"'regressors' has shape \[1, 896, 16\], but the landmarks decoder expects 21 x 2 or 21 x 3 values"),
    ({"task": "segment"}, "the edge config says task 'segment' but its 'ssd_anchors' decoder gives detect results"),
])
def test_a_detectors_outputs_refuse_segment_and_landmark_configs_at_load(face_model_path, config, message):
    import edge

    with pytest.raises(EdgeError, match=message) as info:
        edge.load_model(face_model_path, backend="onnxruntime-cpu", config=config)
    assert "\n" not in str(info.value) and "Fix:" in str(info.value)
