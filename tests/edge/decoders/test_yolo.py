"""The yolo decoder: hand-built heads with known answers, then Ultralytics' own predictor as the reference.

The reference tests export YOLOv8n and YOLO11n (seeded random weights) with Ultralytics' exporter
and compare ``edge.load_model(onnx)(image)`` with ``YOLO(onnx).predict(image)`` on the sample images.
"""

import numpy as np
import pytest

from edge.decoders import DECODER_TYPES, build_decoder
from edge.decoders.yolo import YoloDecoder
from edge.errors import EdgeError
from edge.transform import Transform

IDENTITY = Transform(scale_xy=(1, 1), offset_xy=(0, 0), input_wh=(64, 64), source_wh=(64, 64))
# Letterbox of a 128x64 frame into 64x64: scale 2, content at rows 16..48 of the input.
LETTERBOX = Transform(scale_xy=(2, 2), offset_xy=(0, -32), input_wh=(64, 64), source_wh=(128, 64))
LABELS = ["cat", "dog", "bird"]

# Boxes (cx, cy, w, h) in input pixels and their per-class scores (3 classes).
# A and B overlap (IoU 0.82), both class 0; C overlaps A as much but is class 1; D is far and weak.
ROWS = [
    ((20, 20, 20, 20), (0.9, 0.1, 0.0)),   # A
    ((21, 21, 20, 20), (0.8, 0.0, 0.0)),   # B: suppressed by A (same class)
    ((21, 21, 20, 20), (0.0, 0.7, 0.1)),   # C: another class, kept unless agnostic
    ((50, 50, 10, 10), (0.0, 0.0, 0.25)),  # D: score == threshold: dropped (strict >)
    ((50, 10, 10, 10), (0.0, 0.0, 0.3)),   # E
]


def head_anchor_free(rows=ROWS, transposed=False) -> np.ndarray:
    """(1, 4+nc, N) like Ultralytics' export (or (1, N, 4+nc) transposed)."""
    table = np.array([list(box) + list(scores) for box, scores in rows], np.float32).reshape(len(rows), -1)
    return (table if transposed else table.T)[None]


def head_objectness(rows) -> np.ndarray:
    """(1, N, 5+nc): box, objectness, class probabilities."""
    return np.array([list(box) + [obj] + list(probs) for box, obj, probs in rows], np.float32)[None]


def xyxy(cx, cy, w, h):
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def decode(params, head, transform=IDENTITY, labels=LABELS, name="output0"):
    decoder = build_decoder(dict({"type": "yolo"}, **params), labels=labels, input_wh=(64, 64))
    decoder.check_outputs({name: head.shape})
    return decoder({name: head}, transform)


def test_registered():
    assert DECODER_TYPES["yolo"] is YoloDecoder


@pytest.mark.parametrize("params, expected_rows, expected_classes", [
    ({}, [0, 2, 4], [0, 1, 2]),                                       # class-aware: C survives A
    ({"nms": {"class_agnostic": True}}, [0, 4], [0, 2]),              # agnostic: A suppresses C
    ({"nms": {"iou_threshold": 0.95}}, [0, 1, 2, 4], [0, 0, 1, 2]),   # loose NMS keeps B
    ({"score_threshold": 0.75}, [0], [0]),
    ({"score_threshold": 0.2}, [0, 2, 4, 3], [0, 1, 2, 2]),           # D above 0.2
    ({"nms": {"max_detections": 2}}, [0, 2], [0, 1]),
    ({"nms": {"max_candidates": 2}}, [0], [0]),                       # only A and B reach NMS
    ({"class_thresholds": {"dog": 0.8}}, [0, 4], [0, 2]),             # C (dog 0.7) now below its threshold
    ({"class_thresholds": {"2": 0.2}}, [0, 2, 4, 3], [0, 1, 2, 2]),   # class id as a key
    ({"layout": "anchor_free", "num_classes": 3}, [0, 2, 4], [0, 1, 2]),
])
def test_anchor_free_table(params, expected_rows, expected_classes):
    result = decode(params, head_anchor_free())
    expected_boxes = [xyxy(*ROWS[i][0]) for i in expected_rows]
    np.testing.assert_allclose(result.boxes_xyxy, expected_boxes, atol=1e-5)
    assert result.class_ids.tolist() == expected_classes
    np.testing.assert_allclose(result.scores, [ROWS[i][1][c] for i, c in zip(expected_rows, expected_classes)],
                               rtol=1e-6)
    assert result.labels == LABELS


def test_transposed_anchor_free_and_letterbox_mapping():
    result = decode({}, head_anchor_free(transposed=True), LETTERBOX)
    # A = (10, 10)-(30, 30) in the input -> x * 2, y * 2 - 32, clipped to the 128x64 frame.
    np.testing.assert_allclose(result.boxes_xyxy[0], [20, 0, 60, 28])
    assert result.class_ids.tolist() == [0, 1, 2]


@pytest.mark.parametrize("poison", [np.nan, np.inf])
def test_nan_and_inf_rows_are_dropped(poison):
    head = head_anchor_free()
    head[0, 4, 1] = poison    # B's score
    head[0, 0, 2] = poison    # C's box
    result = decode({"nms": {"iou_threshold": 0.95}}, head)
    assert result.class_ids.tolist() == [0, 2] and np.isfinite(result.boxes_xyxy).all()


def test_objectness_layout_multiplies_objectness_and_class():
    rows = [((20, 20, 20, 20), 0.9, (0.5, 0.5, 0.0)),    # 0.45 each for classes 0 and 1: the first wins
            ((21, 21, 20, 20), 0.8, (0.1, 0.9, 0.0)),    # 0.72 class 1: kept (class-aware) and best
            ((50, 50, 10, 10), 0.2, (0.0, 0.0, 1.0)),    # objectness below the threshold: 0.2
            ((50, 10, 10, 10), 0.5, (0.0, 0.0, 0.6))]    # 0.30 class 2
    result = decode({"layout": "objectness"}, head_objectness(rows))
    assert result.class_ids.tolist() == [1, 0, 2]
    np.testing.assert_allclose(result.scores, [0.72, 0.45, 0.30], rtol=1e-6)
    auto = decode({}, head_objectness(rows))  # 3 labels: 5+3 columns is the objectness layout
    assert auto.class_ids.tolist() == [1, 0, 2]


@pytest.mark.parametrize("shape, labels, params, expected_plan", [
    ((1, 84, 8400), None, {}, (True, False, 80)),          # Ultralytics: rows < columns
    ((1, 25200, 85), None, {}, (False, True, 80)),         # YOLOv5: objectness
    ((1, 8400, 84), None, {"layout": "anchor_free"}, (False, False, 80)),
    ((1, 8400, 84), ["c"] * 80, {}, (False, False, 80)),   # labels tell transposed anchor-free from v5
    ((1, 8400, 85), ["c"] * 80, {}, (False, True, 80)),
    ((1, 7, 2100), ["c"] * 3, {}, (True, False, 3)),
])
def test_layout_from_shapes(shape, labels, params, expected_plan):
    decoder = build_decoder(dict({"type": "yolo"}, **params), labels=labels, input_wh=(640, 640))
    decoder.check_outputs({"output0": shape})
    assert decoder._plans[shape[1:]] == expected_plan


@pytest.mark.parametrize("params, labels, shapes, message", [
    ({}, ["c"] * 80, {"output0": (1, 7, 2100)}, r"shape \[1, 7, 2100\].*\(1, 4\+80, N\) anchor-free.*Fix: give"),
    ({"layout": "objectness"}, LABELS, {"output0": (1, 7, 2100)}, "anchor-free head .* says objectness"),
    ({"layout": "anchor_free"}, LABELS, {"output0": (1, 100, 8)}, "with objectness .* says anchor_free"),
    ({"num_classes": 4}, LABELS, {"output0": (1, 7, 9)}, r"num_classes': expected 3 \(one class per label\)"),
    ({}, None, {"a": (1, 7, 9), "b": (1, 7, 9)}, "2 outputs .* set decoder.output"),
    ({"output": "x"}, None, {"output0": (1, 84, 8400)}, "no output 'x'"),
    ({}, None, {"output0": (1, 84)}, "3 dimensions"),
    ({}, None, {"output0": (2, 84, 8400)}, "batch of 2"),
    ({}, None, {"output0": (1, 4, 8400)}, "at least one class score"),
    ({"class_thresholds": {"zebra": 0.5}}, LABELS, {"output0": (1, 7, 9)}, "class_thresholds.zebra"),
    ({"class_thresholds": {"1": 1.5}}, LABELS, {"output0": (1, 7, 9)}, r"threshold in \[0, 1\]"),
    ({"class_thresholds": {"7": 0.5}}, None, {"output0": (1, 7, 9)}, "names class 7, but the model has 3"),
    ({"layout": "v5"}, None, {"output0": (1, 7, 9)}, "decoder.layout"),
    ({"nms": {"iou": 0.5}}, None, {"output0": (1, 7, 9)}, "unknown field 'decoder.nms.iou'"),
])
def test_errors_are_one_line(params, labels, shapes, message):
    with pytest.raises(EdgeError, match=message) as info:
        decoder = build_decoder(dict({"type": "yolo"}, **params), labels=labels, input_wh=(64, 64))
        decoder.check_outputs(shapes)
    assert "\n" not in str(info.value) and "Fix:" in str(info.value)


def test_empty_and_all_below_threshold():
    empty = decode({}, np.zeros((1, 7, 0), np.float32))
    assert len(empty) == 0 and empty.boxes_xyxy.shape == (0, 4)
    assert len(decode({}, head_anchor_free() * np.float32(0.1))) == 0


# -------------------------------------------------------------------- Ultralytics as the reference
@pytest.fixture(scope="session")
def ultralytics_dir(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("ultralytics")
    return tmp_path_factory.getbasetemp() / "ultralytics_exports"


# (image, crop x1 y1 x2 y2 or None, conf): thresholds where these random-weight models give dozens of boxes.
IMAGES = [("astronaut", None, 0.05), ("coffee", None, 0.01), ("astronaut", (56, 0, 456, 512), 0.1)]


def predict_both(onnx_path, image, conf, imgsz=320, agnostic=False):
    """(edge's Detections, Ultralytics' Boxes) for ``image`` at threshold ``conf``, IoU 0.7."""
    from ultralytics import YOLO

    import edge

    config = {"decoder": {"nms": {"class_agnostic": True}}} if agnostic else None
    with edge.load_model(onnx_path, backend="onnxruntime-cpu", score_threshold=conf, config=config) as model:
        ours = model(image)
    reference = YOLO(str(onnx_path), task="detect")
    results = reference.predict(image, conf=conf, iou=0.7, imgsz=imgsz, agnostic_nms=agnostic, verbose=False)
    return ours, results[0].boxes


def assert_same(ours, theirs):
    assert len(ours) == len(theirs) >= 10
    assert ours.class_ids.tolist() == theirs.cls.numpy().astype(int).tolist()
    np.testing.assert_allclose(ours.boxes_xyxy, theirs.xyxy.numpy(), atol=0.5)
    np.testing.assert_allclose(ours.scores, theirs.conf.numpy(), atol=1e-4)


@pytest.mark.parametrize("arch", ["yolov8n", "yolo11n"])
@pytest.mark.parametrize("sample, crop, conf", IMAGES)
def test_matches_ultralytics_predictor(ultralytics_dir, arch, sample, crop, conf):
    from ultralytics_models import export_yolo

    from edge.samples import load_sample

    image = load_sample(sample)
    if crop is not None:
        image = np.ascontiguousarray(image[crop[1]:crop[3], crop[0]:crop[2]])
    ours, theirs = predict_both(export_yolo(ultralytics_dir, arch), image, conf)
    assert_same(ours, theirs)


@pytest.mark.parametrize("arch", ["yolov8n", "yolo11n"])
def test_class_agnostic_matches_ultralytics_agnostic_nms(ultralytics_dir, arch):
    from ultralytics_models import export_yolo

    from edge.samples import load_sample

    ours, theirs = predict_both(export_yolo(ultralytics_dir, arch), load_sample("astronaut"), 0.05, agnostic=True)
    assert_same(ours, theirs)


@pytest.mark.parametrize("sample", ["astronaut", "coffee"])
def test_rectangular_export_matches_ultralytics(ultralytics_dir, sample):
    from ultralytics_models import export_yolo

    from edge.samples import load_sample

    path = export_yolo(ultralytics_dir, "yolo11n", imgsz=(256, 320))  # height 256, width 320
    conf = {"astronaut": 0.05, "coffee": 0.01}[sample]
    ours, theirs = predict_both(path, load_sample(sample), conf, imgsz=(256, 320))
    assert_same(ours, theirs)


# -------------------------------------------------------------- pose and instance segmentation heads
def pooled_iou(ours_masks, their_masks):
    """(intersection, union) summed over instances: per-instance IoU of a few-pixel mask says little."""
    inter = sum(int((a & b).sum()) for a, b in zip(ours_masks, their_masks))
    union = sum(int((a | b).sum()) for a, b in zip(ours_masks, their_masks))
    return inter / union


# astronaut (square: no padding) and rows 64..448 (512x384: 40 px letterbox bands, 10 prototype pixels).
# Rows 0..384 are left out: one pair of boxes there has IoU 0.70008, where Ultralytics' class-offset NMS
# (float32 coordinates shifted by class x 7680) rounds below 0.7 and edge's does not.
SEG_IMAGES = [("astronaut", None, 0.05), ("astronaut", (64, 448), 0.05), ("astronaut", (64, 448), 0.1)]


@pytest.mark.parametrize("sample, rows, conf", SEG_IMAGES)
def test_instance_masks_match_ultralytics_predictor(ultralytics_dir, sample, rows, conf):
    """Boxes as the detector's; masks against Ultralytics' retina_masks path (prototypes upsampled straight to
    the frame, then cropped and thresholded), which is edge's arithmetic: IoU >= 0.98 over all instances."""
    from ultralytics import YOLO
    from ultralytics_models import export_yolo

    import edge
    from edge.samples import load_sample

    image = load_sample(sample)
    if rows is not None:
        image = np.ascontiguousarray(image[rows[0]:rows[1]])
    path = export_yolo(ultralytics_dir, "yolo11n-seg")
    with edge.load_model(path, backend="onnxruntime-cpu", score_threshold=conf) as model:
        assert model.task == "segment"
        ours = model(image)
    assert isinstance(ours, edge.Segmentation) and ours.masks.shape[1:] == image.shape[:2]
    theirs = YOLO(str(path), task="segment").predict(image, conf=conf, iou=0.7, imgsz=320, retina_masks=True,
                                                     verbose=False)[0]
    assert_same(ours.instances, theirs.boxes)
    their_masks = theirs.masks.data.numpy() > 0
    ious = [(a & b).sum() / (a | b).sum() for a, b in zip(ours.masks, their_masks)]
    assert pooled_iou(ours.masks, their_masks) >= 0.98 and np.mean(ious) >= 0.98
    assert np.median(ious) >= 0.99


def test_instance_masks_against_ultralytics_default_path(ultralytics_dir):
    """Ultralytics' default path binarises at input resolution, then rescales the binary mask to the frame;
    on these random-weight masks (ragged, hundreds of islands each) that costs a few percent of IoU."""
    from ultralytics import YOLO
    from ultralytics.utils import ops
    from ultralytics_models import export_yolo

    import edge
    from edge.samples import load_sample

    image = load_sample("astronaut")
    path = export_yolo(ultralytics_dir, "yolo11n-seg")
    with edge.load_model(path, backend="onnxruntime-cpu", score_threshold=0.05) as model:
        ours = model(image)
    theirs = YOLO(str(path), task="segment").predict(image, conf=0.05, iou=0.7, imgsz=320, verbose=False)[0]
    assert_same(ours.instances, theirs.boxes)
    their_masks = ops.scale_masks(theirs.masks.data[None].float(), image.shape[:2])[0].numpy() > 0.5
    assert pooled_iou(ours.masks, their_masks) >= 0.9


@pytest.mark.parametrize("sample, crop, conf", IMAGES)
def test_pose_matches_ultralytics_predictor(ultralytics_dir, sample, crop, conf):
    from ultralytics import YOLO
    from ultralytics_models import export_yolo

    import edge
    from edge.samples import load_sample

    image = load_sample(sample)
    if crop is not None:
        image = np.ascontiguousarray(image[crop[1]:crop[3], crop[0]:crop[2]])
    path = export_yolo(ultralytics_dir, "yolo11n-pose")
    with edge.load_model(path, backend="onnxruntime-cpu", score_threshold=conf) as model:
        assert model.task == "keypoints"
        ours = model(image)
    theirs = YOLO(str(path), task="pose").predict(image, conf=conf, iou=0.7, imgsz=320, verbose=False)[0]
    assert isinstance(ours, edge.Keypoints) and ours.skeleton is not None and len(ours.skeleton) == 19
    assert_same(edge.Detections(ours.boxes_xyxy, ours.scores, ours.class_ids), theirs.boxes)
    np.testing.assert_allclose(ours.points_xy, theirs.keypoints.xy.numpy(), atol=0.5)
    np.testing.assert_allclose(ours.point_scores, theirs.keypoints.conf.numpy(), atol=1e-4)
