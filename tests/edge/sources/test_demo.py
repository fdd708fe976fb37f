"""demo://: deterministic frames, and face truth that matches what is drawn."""

import numpy as np
import pytest

from edge.cv import require_cv2
from edge.samples import ASTRONAUT_FACE_XYXY, load_sample
from edge.sources import open_source
from edge.sources.demo import MIN_FACE_FRACTION, DemoScene

MIN_FACE_HEIGHT_PX = MIN_FACE_FRACTION * 1280

cv2 = require_cv2("the demo source tests")


def first_frames(uri: str, count: int) -> list:
    with open_source(uri) as source:
        return [source.read() for _ in range(count)]


def test_frames_are_720p_bgr_with_truth() -> None:
    frames = first_frames("demo://", 3)
    for index, frame in enumerate(frames):
        assert frame.image.shape == (720, 1280, 3) and frame.image.dtype == np.uint8
        assert frame.index == index and frame.source == "demo://"
        assert set(frame.truth) == {"faces_xyxy"}


@pytest.mark.parametrize(("seed_a", "seed_b", "same"), [(0, 0, True), (5, 5, True), (0, 1, False)])
def test_frames_are_deterministic_per_seed(seed_a: int, seed_b: int, same: bool) -> None:
    frames_a = first_frames(f"demo://?seed={seed_a}", 4)
    frames_b = first_frames(f"demo://?seed={seed_b}", 4)
    identical = [a.image.tobytes() == b.image.tobytes() for a, b in zip(frames_a, frames_b)]
    assert identical == [same] * 4
    assert [a.truth for a in frames_a] == [b.truth for b in frames_b] or not same


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_face_truth_over_the_first_100_frames(seed: int) -> None:
    scene = DemoScene((1280, 720), seed)
    boxes = [scene.truth(index)["faces_xyxy"] for index in range(100)]
    in_view = [b[0] for b in boxes if b]
    assert len(in_view) >= 60
    assert sum(1 for b in boxes if not b) >= 5
    for x1, y1, x2, y2 in in_view:
        assert 0 <= x1 < x2 <= 1280 and 0 <= y1 < y2 <= 720
        assert MIN_FACE_HEIGHT_PX <= y2 - y1 <= 320


def test_face_leaves_and_shrinks_below_the_truth_limit() -> None:
    scene = DemoScene((1280, 720), 0)
    heights = [scene.face_xyxy(i)[3] - scene.face_xyxy(i)[1] for i in range(150)]
    lefts = [scene.face_xyxy(i)[0] for i in range(150)]
    assert max(lefts) > 1280  # fully out on the right
    assert min(heights) < MIN_FACE_HEIGHT_PX  # zoomed out too far to count


@pytest.mark.parametrize("index", [0, 20, 45, 70, 145])
def test_truth_box_frames_the_astronaut_face(index: int) -> None:
    """The pixels under the truth box look like the face in the sample (despite lighting and noise)."""
    scene = DemoScene((1280, 720), 0)
    ((x1, y1, x2, y2),) = scene.truth(index)["faces_xyxy"]
    drawn = scene.render(index)[int(round(y1)) : int(round(y2)), int(round(x1)) : int(round(x2))]
    fx1, fy1, fx2, fy2 = (int(v) for v in ASTRONAUT_FACE_XYXY)
    face = load_sample("astronaut")[fy1:fy2, fx1:fx2]
    drawn = cv2.resize(drawn, (face.shape[1], face.shape[0]), interpolation=cv2.INTER_AREA)
    a = cv2.cvtColor(drawn, cv2.COLOR_BGR2GRAY).astype(np.float64).ravel()
    b = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY).astype(np.float64).ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.9


def test_source_truth_matches_the_scene() -> None:
    frames = first_frames("demo://?seed=2", 3)
    scene = DemoScene((1280, 720), 2)
    assert [frame.truth for frame in frames] == [scene.truth(i) for i in range(3)]
    assert frames[2].image.tobytes() == scene.render(2).tobytes()


@pytest.mark.parametrize(
    ("uri", "shape", "count"),
    [
        ("demo://?frames=5", (720, 1280, 3), 5),
        ("demo://?width=320&height=240&frames=2", (240, 320, 3), 2),
        ("demo://?frames=3&realtime=1&fps=1000", (720, 1280, 3), 3),
    ],
)
def test_frames_option_ends_the_demo(uri: str, shape, count: int) -> None:
    with open_source(uri) as source:
        frames = list(source)
        assert source.ended_reason == f"end of demo (frames={count})"
        assert source.size_wh == (shape[1], shape[0])
    assert len(frames) == count
    assert all(frame.image.shape == shape for frame in frames)


@pytest.mark.parametrize(
    ("size_wh", "available_gib", "message"),
    [
        ((20000, 20000), None, "frame size 20000x20000 is outside what edge handles"),  # issue 9 item 10
        ((100000, 100000), None, "1..16384 px a side"),
        ((7680, 4320), 0.5, "a 7680x4320 demo scene needs about 3.0 GiB of memory and 0.5 GiB is available"),
        ((1920, 1080), 0.1, "needs about 0.3 GiB"),
    ],
)
def test_demo_size_and_memory_are_bounded_before_allocating(monkeypatch, size_wh, available_gib, message) -> None:
    import edge.sources.base as base
    from edge.errors import EdgeError
    from edge.sources.demo import DemoSource

    available = None if available_gib is None else int(available_gib * 2**30)
    monkeypatch.setattr(base, "available_memory_bytes", lambda: available)
    with pytest.raises(EdgeError, match="Fix: ask for a smaller size") as caught:
        DemoSource(size_wh=size_wh)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_demo_that_fits_in_memory_runs(monkeypatch) -> None:
    import edge.sources.base as base

    monkeypatch.setattr(base, "available_memory_bytes", lambda: 2**30)
    with open_source("demo://?width=320&height=240&frames=1") as source:
        assert [frame.image.shape for frame in source] == [(240, 320, 3)]
