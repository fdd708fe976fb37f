"""Tests for edge.overlay and edge.annotators: what the annotators draw, where, and what they leave alone."""

from typing import Optional, Tuple

import numpy as np
import pytest
from old_runtimes import opencv_draws_like_4_5

from edge.annotators import (
    BoxAnnotator,
    ClassificationAnnotator,
    KeypointAnnotator,
    LabelAnnotator,
    StatusAnnotator,
    TrackAnnotator,
)
from edge.overlay import PALETTE_BGR, Annotator, color_for_class
from edge.results import Classification, Detections

pytest.importorskip("cv2")

GRAY = 100


def gray_scene(height: int = 240, width: int = 320, value: int = GRAY) -> np.ndarray:
    return np.full((height, width, 3), value, np.uint8)


def changed_mask(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    return np.any(before != after, axis=2)


def changed_bbox(before: np.ndarray, after: np.ndarray) -> Optional[Tuple[int, int, int, int]]:
    """(x1, y1, x2, y2) inclusive bounds of the changed pixels, or None."""
    ys, xs = np.nonzero(changed_mask(before, after))
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def one_box(box_xyxy, class_id: int = 0, score: float = 0.9, labels=None, keypoints_xy=None) -> Detections:
    return Detections(np.array([box_xyxy], np.float32), [score], [class_id], keypoints_xy, labels)


# -- detections ----------------------------------------------------------------------------

CHIP_MARGIN_PX = 30  # a label chip at the default scale of a 320x240 image is shorter than this


@pytest.mark.parametrize(
    "box_xyxy, far_xy",
    [
        ((100, 100, 200, 180), (300, 20)),  # fully inside, chip above the box
        ((120, 0, 220, 90), (20, 200)),  # at the top edge: chip goes inside the box
        ((-60, -40, 80, 70), (250, 200)),  # partly outside top-left
        pytest.param((250, 180, 400, 300), (30, 30), marks=opencv_draws_like_4_5),  # partly outside bottom-right
        ((-1e12, -1e12, 1e12, 50), (160, 200)),  # absurd coordinates are clipped, not an overflow
    ],
)
def test_box_draws_near_the_box_and_not_far_away(box_xyxy, far_xy):
    scene = gray_scene()
    before = scene.copy()
    out = Annotator().annotate(scene, one_box(box_xyxy))
    assert out is scene
    bbox = changed_bbox(before, scene)
    assert bbox is not None
    x1, y1, x2, y2 = (float(np.clip(v, -1, 10_000)) for v in box_xyxy)
    assert bbox[0] >= x1 - 2 and bbox[2] <= max(x2 + 2, bbox[0] + 200)
    assert bbox[1] >= y1 - CHIP_MARGIN_PX and bbox[3] <= y2 + 2
    far_x, far_y = far_xy
    assert not changed_mask(before, scene)[far_y, far_x]


def test_label_chip_sits_above_the_box_unless_at_the_top_edge():
    inside = gray_scene()
    Annotator().annotate(inside, one_box((100, 100, 200, 180)))
    assert changed_mask(gray_scene(), inside)[80:99, 100:140].any()  # chip above y1

    top = gray_scene()
    Annotator().annotate(top, one_box((100, 0, 200, 180)))
    chip_rows = changed_mask(gray_scene(), top)[3:15, 103:140]
    assert chip_rows.mean() > 0.5  # a filled chip inside the box, under the top edge


@pytest.mark.parametrize("class_id", [0, 3, len(PALETTE_BGR) + 3])
def test_box_colour_comes_from_the_palette_by_class_id(class_id):
    scene = gray_scene()
    Annotator(thickness_px=3).annotate(scene, one_box((100, 100, 200, 180), class_id=class_id))
    expected = color_for_class(class_id)
    assert expected == PALETTE_BGR[class_id % len(PALETTE_BGR)]
    assert tuple(int(c) for c in scene[140, 100]) == expected  # middle of the left edge
    assert tuple(int(c) for c in scene[140, 150]) == (GRAY, GRAY, GRAY)  # inside the box


@pytest.mark.parametrize(
    "result",
    [
        None,
        Detections.empty(),
        Classification([], []),
        one_box((400, 300, 500, 400)),  # wholly outside the frame
        one_box((-90, -90, -10, -10)),
        one_box((float("nan"), 10, 50, 50)),
    ],
    ids=["none", "empty", "empty-classes", "outside-br", "outside-tl", "nan"],
)
def test_nothing_to_draw_leaves_the_image_unchanged(result):
    scene = gray_scene()
    Annotator().annotate(scene, result)
    assert np.array_equal(scene, gray_scene())


def test_keypoints_are_filled_circles_at_their_positions():
    points_xy = np.array([[[120, 120], [150, 140], [180, 160], [np.nan, 130], [900, 900]]], np.float32)
    scene = gray_scene()
    detections = one_box((100, 100, 200, 180), class_id=2, keypoints_xy=points_xy)
    Annotator(thickness_px=2).annotate(scene, detections)
    color = color_for_class(2)
    for x, y in points_xy[0, :3].astype(int):
        assert tuple(int(c) for c in scene[y, x]) == color
        assert tuple(int(c) for c in scene[y + 1, x + 1]) == color  # filled, not a ring
    assert tuple(int(c) for c in scene[130, 135]) == (GRAY, GRAY, GRAY)  # between points


def test_label_text_uses_names_when_there_are_labels():
    def chip_width(labels) -> int:
        scene = gray_scene()
        Annotator().annotate(scene, one_box((100, 100, 200, 180), labels=labels))
        bbox = changed_bbox(gray_scene()[:99], scene[:99])  # only the chip lies above y1
        assert bbox is not None
        return bbox[2] - bbox[0]

    assert chip_width(["a"]) < chip_width(None)  # "a 0.90" is shorter than "class 0 0.90"
    assert chip_width(["a much longer label"]) > chip_width(None)


def test_annotating_ten_boxes_on_a_720p_frame_changes_only_box_surroundings():
    rng = np.random.default_rng(0)
    corners = rng.uniform([0, 40], [1100, 600], size=(10, 2))
    boxes = np.hstack([corners, corners + 120]).astype(np.float32)
    scene = gray_scene(720, 1280)
    Annotator().annotate(scene, Detections(boxes, np.full(10, 0.5), np.arange(10)))
    mask = changed_mask(gray_scene(720, 1280), scene)
    near = np.zeros_like(mask)
    for x1, y1, x2, y2 in boxes.astype(int):
        near[max(0, y1 - CHIP_MARGIN_PX) : y2 + 4, max(0, x1 - 4) : x2 + 120] = True  # AA lines spill ~2 px
    assert mask.any() and not (mask & ~near).any()


# -- classification and status panels -----------------------------------------------------


def test_classification_panel_is_dark_and_in_the_corner():
    bright = 200
    scene = gray_scene(value=bright)
    result = Classification([2, 0, 1], [0.871, 0.1, 0.029], labels=["cat", "dog", "bird"])
    Annotator(corner="top-right").annotate(scene, result)
    x1, y1, x2, y2 = changed_bbox(gray_scene(value=bright), scene)
    assert x2 == 319 and y1 == 0  # top-right corner
    assert x1 > 160 and y2 < 120
    panel = scene[y1 : y2 + 1, x1 : x2 + 1]
    dimmed = int(bright * 0.35)
    assert np.mean(np.all(np.abs(panel.astype(int) - dimmed) <= 1, axis=2)) > 0.5  # mostly dark


@pytest.mark.parametrize(
    "corner, inside_xy", [("top-left", (2, 2)), ("bottom-left", (2, 237)), ("bottom-right", (317, 237))]
)
def test_classification_panel_corner_is_configurable(corner, inside_xy):
    scene = gray_scene()
    Annotator(corner=corner).annotate(scene, Classification([0], [0.5]))
    x, y = inside_xy
    assert changed_mask(gray_scene(), scene)[y, x]


@pytest.mark.parametrize("top_k, more_lines_than", [(1, None), (3, 1), (5, 3)])
def test_classification_panel_lists_top_k_lines(top_k, more_lines_than):
    def panel_height(k: int) -> int:
        scene = gray_scene()
        Annotator(top_k=k).annotate(scene, Classification(np.arange(8), np.linspace(0.9, 0.1, 8)))
        bbox = changed_bbox(gray_scene(), scene)
        return bbox[3] - bbox[1]

    assert panel_height(top_k) > 0
    if more_lines_than is not None:
        assert panel_height(top_k) > panel_height(more_lines_than)


def test_status_panel_is_top_left_and_wraps_on_narrow_frames():
    stage_ms = {"capture": 1.2, "preprocess": 0.8, "infer": 9.1, "decode": 0.2}

    def panel(width: int, fps: Optional[float], text_lines=()) -> Tuple[int, int, int, int]:
        scene = gray_scene(480, width)
        Annotator(text_scale=0.6).annotate_status(scene, fps, stage_ms, text_lines)
        return changed_bbox(gray_scene(480, width), scene)

    wide = panel(1280, 12.3)
    assert wide[:2] == (0, 0)
    assert wide[2] < 1279  # one compact line, not the full width
    narrow = panel(320, 12.3)
    assert narrow[:2] == (0, 0) and narrow[2] < 320
    assert narrow[3] > wide[3]  # wrapped into more lines
    assert panel(1280, None)[3] == wide[3]  # unknown FPS still draws one line
    assert panel(1280, 12.3, ["backend onnxruntime"])[3] > wide[3]


# -- input checks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "scene",
    [
        np.zeros((240, 320, 3), np.float32),
        np.zeros((240, 320), np.uint8),
        np.zeros((240, 320, 4), np.uint8),
        np.zeros((240, 640, 3), np.uint8)[:, ::2],  # not contiguous: drawing would be lost
    ],
    ids=["float", "gray", "bgra", "strided"],
)
def test_bad_scene_is_refused(scene):
    with pytest.raises(ValueError, match="annotate"):
        Annotator().annotate(scene, Detections.empty())


@pytest.mark.parametrize("kwargs", [{"corner": "middle"}, {"palette_bgr": ()}])
def test_bad_annotator_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        Annotator(**kwargs)


def test_unknown_result_type_is_a_type_error():
    with pytest.raises(TypeError, match="expected Detections, Classification, Segmentation, Keypoints or Embeddings"):
        Annotator().annotate(gray_scene(), {"boxes": []})


# -- per-kind annotators and tracked detections ----------------------------------------------


def tracked_box(box_xyxy, track_id: int, class_id: int = 0) -> Detections:
    return one_box(box_xyxy, class_id=class_id).with_track_ids([track_id])


def test_label_text_shows_the_track_id_first():
    labels = ["face"]
    assert LabelAnnotator.text(Detections([[0, 0, 5, 5]], [0.92], [0], None, labels, [3]), 0) == "#3 face 0.92"
    assert LabelAnnotator.text(one_box((0, 0, 5, 5), labels=labels, score=0.92), 0) == "face 0.92"
    assert LabelAnnotator.text(one_box((0, 0, 5, 5), class_id=4, score=0.5), 0) == "class 4 0.50"


@pytest.mark.parametrize(
    "color_by, track_id, class_id, expected_index",
    [("auto", 5, 0, 5), ("auto", None, 2, 2), ("class", 5, 2, 2), ("track", 7, 2, 7), ("track", None, 2, 2)],
)
def test_box_colour_follows_the_track_id_when_tracked(color_by, track_id, class_id, expected_index):
    detections = one_box((100, 100, 200, 180), class_id=class_id)
    if track_id is not None:
        detections = detections.with_track_ids([track_id])
    scene = gray_scene()
    BoxAnnotator(thickness_px=3, color_by=color_by).annotate(scene, detections)
    assert tuple(int(c) for c in scene[140, 100]) == PALETTE_BGR[expected_index]


def test_track_annotator_draws_a_trail_through_recent_centres_and_forgets_gone_ids():
    annotator = TrackAnnotator(trail_frames=10, thickness_px=2)
    for step in range(5):  # centre moves right along y = 120 from x = 100 to x = 180
        scene = gray_scene()
        annotator.annotate(scene, tracked_box((80 + 20 * step, 100, 120 + 20 * step, 140), 4))
    color = color_for_class(4)
    assert tuple(int(c) for c in scene[120, 140]) == color  # on the trail
    assert tuple(int(c) for c in scene[120, 90]) == (GRAY, GRAY, GRAY)  # before the first centre
    scene = gray_scene()
    annotator.annotate(scene, tracked_box((300, 200, 310, 210), 9))  # id 4 gone: its trail too
    assert np.array_equal(scene, gray_scene())  # one centre is no trail yet
    untracked = gray_scene()
    annotator.annotate(untracked, one_box((100, 100, 200, 180)))
    assert np.array_equal(untracked, gray_scene())


def test_composed_annotator_draws_the_track_label_chip():
    def chip_width(detections) -> int:
        scene = gray_scene()
        Annotator().annotate(scene, detections)
        bbox = changed_bbox(gray_scene()[:99], scene[:99])
        return bbox[2] - bbox[0]

    assert chip_width(tracked_box((100, 100, 200, 180), 12)) > chip_width(one_box((100, 100, 200, 180)))


@pytest.mark.parametrize(
    "annotator, result",
    [
        (BoxAnnotator(), Classification([0], [1.0])),
        (LabelAnnotator(), None),
        (KeypointAnnotator(), Classification([0], [1.0])),
        (TrackAnnotator(), {"boxes": []}),
        (ClassificationAnnotator(), Detections.empty()),
    ],
)
def test_each_annotator_draws_only_its_own_kind(annotator, result):
    with pytest.raises(TypeError, match="draws"):
        annotator.annotate(gray_scene(), result)


@pytest.mark.parametrize(
    "make",
    [
        lambda: BoxAnnotator(color_by="id"),
        lambda: TrackAnnotator(trail_frames=1),
        lambda: LabelAnnotator(palette_bgr=()),
    ],
)
def test_bad_annotator_arguments_are_refused(make):
    with pytest.raises(ValueError):
        make()


def test_status_annotator_alone_matches_the_composed_one():
    stage_ms = {"capture": 1.0, "infer": 2.0, "track": 0.3}
    alone, composed = gray_scene(), gray_scene()
    StatusAnnotator().annotate(alone, 30.0, stage_ms)
    Annotator().annotate_status(composed, 30.0, stage_ms)
    assert np.array_equal(alone, composed) and not np.array_equal(alone, gray_scene())


def test_segmentation_and_keypoints_dispatch_to_their_annotators():
    from edge.results import Keypoints, Segmentation

    scene = gray_scene()
    height, width = scene.shape[:2]
    class_map = np.zeros((height, width), np.int32)
    class_map[height // 2:, : width // 4] = 1
    before = scene.copy()
    Annotator().annotate(scene, Segmentation(class_map=class_map, labels=["background", "person"]))
    changed = (scene != before).any(axis=2)
    assert changed[class_map == 1].all()                                 # the mask is blended
    assert changed[: height // 8, -width // 4:].any()                     # the legend, top-right
    assert not changed[height // 4: height // 2, width // 3: 2 * width // 3].any()  # background untouched
    scene = gray_scene()
    Annotator().annotate(scene, Keypoints([[[10, 10], [60, 60]]], [0.9], skeleton=[(0, 1)]))
    assert (scene[35, 35] != gray_scene()[35, 35]).any()
