"""demo://?scene=digits: deterministic frames, moving digits, and truth that matches the ink."""

from typing import Dict, List

import numpy as np
import pytest

from edge.cv import require_cv2
from edge.errors import EdgeError
from edge.sources import open_source
from edge.sources.demo import DemoSource
from edge.sources.demo_digits import DIGIT_FONTS, FONT_ITALIC, INK_THRESHOLD, DigitsScene, digit_glyph, paste_glyph

cv2 = require_cv2("the demo source tests")


def first_frames(uri: str, count: int) -> list:
    with open_source(uri) as source:
        return [source.read() for _ in range(count)]


def test_frames_and_truth_layout() -> None:
    frames = first_frames("demo://?scene=digits&width=640&height=360", 3)
    for index, frame in enumerate(frames):
        assert frame.image.shape == (360, 640, 3) and frame.image.dtype == np.uint8 and frame.index == index
        truth = frame.truth
        assert set(truth) == {"objects_xyxy", "class_ids", "object_ids"}
        assert len(truth["objects_xyxy"]) == len(truth["class_ids"]) == len(truth["object_ids"]) >= 1
        assert all(0 <= c <= 9 for c in truth["class_ids"])


@pytest.mark.parametrize(("seed_a", "seed_b", "same"), [(0, 0, True), (4, 4, True), (0, 1, False)])
def test_deterministic_per_seed(seed_a: int, seed_b: int, same: bool) -> None:
    a = first_frames(f"demo://?scene=digits&seed={seed_a}&width=640&height=360", 3)
    b = first_frames(f"demo://?scene=digits&seed={seed_b}&width=640&height=360", 3)
    assert [x.image.tobytes() == y.image.tobytes() for x, y in zip(a, b)] == [same] * 3
    assert ([x.truth for x in a] == [y.truth for y in b]) == same


def test_default_scene_is_the_face_scene() -> None:
    default = first_frames("demo://?width=320&height=180", 2)
    face = first_frames("demo://?scene=face&width=320&height=180", 2)
    assert [f.image.tobytes() for f in default] == [f.image.tobytes() for f in face]
    assert set(default[0].truth) == {"faces_xyxy"}


def test_unknown_scene_is_a_user_error() -> None:
    with pytest.raises(EdgeError, match="face or digits"):
        open_source("demo://?scene=cats")
    with pytest.raises(EdgeError, match="unknown demo scene"):
        DemoSource(scene="cats")


def tracks(seed: int, frames: int) -> Dict[int, List[tuple]]:
    scene = DigitsScene((1280, 720), seed)
    by_id: Dict[int, List[tuple]] = {}
    for index in range(frames):
        truth = scene.truth(index)
        for box, cls, oid in zip(truth["objects_xyxy"], truth["class_ids"], truth["object_ids"]):
            by_id.setdefault(oid, []).append((index, cls, box))
    return by_id


@pytest.mark.parametrize("seed", [0, 3])
def test_objects_move_enter_and_leave_with_stable_ids(seed: int) -> None:
    scene = DigitsScene((1280, 720), seed)
    counts = [len(scene.truth(i)["object_ids"]) for i in range(0, 150, 5)]
    assert np.mean(counts) >= 3 and min(counts) >= 1
    by_id = tracks(seed, 150)
    assert len(by_id) >= 12  # objects come and go
    for seen in by_id.values():
        assert len({cls for _, cls, _ in seen}) == 1  # an id keeps its digit
        for (i0, _, a), (i1, _, b) in zip(seen, seen[1:]):
            if i1 == i0 + 1:  # steady motion: a few pixels a frame, same size
                assert max(abs(p - q) for p, q in zip(a, b)) <= 40
                assert abs((a[2] - a[0]) - (b[2] - b[0])) < 1e-6
    lives = [seen[-1][0] - seen[0][0] for seen in by_id.values() if seen[0][0] > 0 and seen[-1][0] < 149]
    assert lives and max(lives) < 149  # some objects both enter and leave within the window


def test_truth_boxes_are_inside_the_frame_and_paths_cross() -> None:
    scene = DigitsScene((1280, 720), 0)
    crossings = 0
    for index in range(0, 300, 3):
        placed = scene.placed(index)
        boxes = [(xy[0] + it.ink_xyxy[0], xy[1] + it.ink_xyxy[1], xy[0] + it.ink_xyxy[2], xy[1] + it.ink_xyxy[3])
                 for it, xy in placed]
        crossings += any(min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])
                         for k, a in enumerate(boxes) for b in boxes[k + 1:])
        for x1, y1, x2, y2 in scene.truth(index)["objects_xyxy"]:
            assert 0 <= x1 < x2 <= 1280 and 0 <= y1 < y2 <= 720
            assert 60 <= y2 - y1 <= 320
    assert crossings >= 3


@pytest.mark.parametrize("font", list(DIGIT_FONTS) + [FONT_ITALIC])
@pytest.mark.parametrize(("digit", "angle", "shear"), [("0", 0.0, 0.0), ("7", 12.0, 0.2), ("4", -15.0, -0.1)])
def test_glyph_box_is_the_tight_box_of_the_ink(font: int, digit: str, angle: float, shear: float) -> None:
    alpha, (x1, y1, x2, y2) = digit_glyph(digit, 48, font, 0.1, angle, shear)
    ink_y, ink_x = np.nonzero(alpha >= INK_THRESHOLD)
    assert (ink_x.min(), ink_y.min(), ink_x.max() + 1, ink_y.max() + 1) == (x1, y1, x2, y2)
    assert 30 <= y2 - y1 <= 70
    frame = np.zeros((120, 160, 3), np.uint8)
    paste_glyph(frame, alpha, (20, 10), (255, 255, 255), (0, 0, 255))
    ys, xs = np.nonzero(frame[:, :, 0] >= INK_THRESHOLD)
    assert (xs.min() - 20, ys.min() - 10, xs.max() + 1 - 20, ys.max() + 1 - 10) == (x1, y1, x2, y2)


@pytest.mark.parametrize("index", [0, 40, 90])
def test_truth_box_frames_visible_ink(index: int) -> None:
    """Each truth box has drawn (changed) pixels within one pixel of all four of its edges.

    One pixel of slack: an anti-aliased edge pixel of a digit whose colour is close to the background
    there can change it by less than the threshold (seen with OpenCV 4.6's glyphs).
    """
    scene = DigitsScene((1280, 720), 0)
    drawn = scene.render(index).astype(np.int16)
    saved = scene.placed
    scene.placed = lambda i: []  # the same frame with no digits
    empty = scene.render(index).astype(np.int16)
    scene.placed = saved
    changed = np.abs(drawn - empty).max(axis=2) > 12
    for x1, y1, x2, y2 in scene.truth(index)["objects_xyxy"]:
        x1, y1, x2, y2 = int(x1), int(y1), int(x2), int(y2)
        inside = changed[y1:y2, x1:x2]
        assert inside[:, :2].any() and inside[:, -2:].any() and inside[:2].any() and inside[-2:].any()
