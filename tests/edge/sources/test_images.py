"""Image and folder sources: natural order, loops, unreadable and empty inputs."""

from pathlib import Path
from typing import List

import numpy as np
import pytest

from edge.cv import require_cv2
from edge.errors import EdgeError
from edge.sources import open_source
from edge.sources.images import natural_key

cv2 = require_cv2("the image source tests")


def write_images(folder: Path, names: List[str]) -> None:
    """Image i of ``names`` is a solid 8x6 image of grey level 10 * (i + 1)."""
    folder.mkdir(exist_ok=True)
    for i, name in enumerate(names):
        assert cv2.imwrite(str(folder / name), np.full((6, 8, 3), 10 * (i + 1), np.uint8))


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["img10.png", "img2.png", "img1.png"], ["img1.png", "img2.png", "img10.png"]),
        (["b.png", "A.png", "c.bmp"], ["A.png", "b.png", "c.bmp"]),
        (
            ["frame_0010.png", "frame_0002.png", "frame_0001.png"],
            ["frame_0001.png", "frame_0002.png", "frame_0010.png"],
        ),
        (["2.png", "10.png", "1.png", "x.png"], ["1.png", "2.png", "10.png", "x.png"]),
    ],
)
def test_folder_delivers_images_in_natural_order(
    tmp_path: Path, names: List[str], expected: List[str]
) -> None:
    folder = tmp_path / "images"
    write_images(folder, names)
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden.png").write_bytes(b"skipped")
    with open_source(str(folder)) as source:
        levels = [int(frame.image[0, 0, 0]) for frame in source]
        assert source.ended_reason == "end of images"
        assert source.size_wh == (8, 6)
    assert levels == [10 * (names.index(name) + 1) for name in expected]


@pytest.mark.parametrize(("loop", "count"), [(0, 1), (2, 3)])
def test_single_image_is_delivered_once_per_loop(tmp_path: Path, loop: int, count: int) -> None:
    write_images(tmp_path, ["one.jpg"])
    with open_source(f"{tmp_path / 'one.jpg'}?loop={loop}") as source:
        frames = list(source)
    assert [frame.index for frame in frames] == list(range(count))
    assert all(frame.image.shape == (6, 8, 3) for frame in frames)
    frames[0].image[:] = 0  # a consumer drawing on a frame does not change the next pass
    if count > 1:
        assert frames[1].image.max() > 0


def test_folder_loops(tmp_path: Path) -> None:
    write_images(tmp_path, ["a.png", "b.png"])
    with open_source(str(tmp_path), loop=1) as source:
        assert [int(frame.image[0, 0, 0]) for frame in source] == [10, 20, 10, 20]


def test_unreadable_image_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.jpg").write_bytes(np.random.default_rng(0).bytes(256))
    with pytest.raises(EdgeError, match="cannot decode image .*bad.jpg"):
        open_source(str(tmp_path / "bad.jpg"))


def test_undecodable_images_in_a_folder_are_skipped_and_counted(tmp_path: Path) -> None:
    """Like a corrupt frame in a video (issue 9, item 5): the run goes on, the summary counts them."""
    write_images(tmp_path, ["2.png", "4.png"])
    for name in ("1.png", "3.png", "5.png"):
        (tmp_path / name).write_bytes(b"truncated")
    with open_source(str(tmp_path), loop=1) as source:
        values = [int(frame.image[0, 0, 0]) for frame in source]
        assert values == [10, 20, 10, 20] and source.skipped_frames == 5  # 3 in the first pass, 2 in the second


def test_a_folder_where_nothing_decodes_fails(tmp_path: Path) -> None:
    for name in ("1.png", "2.jpg"):
        (tmp_path / name).write_bytes(b"truncated")
    with pytest.raises(EdgeError, match="none of the 2 images in folder .* can be decoded"):
        open_source(str(tmp_path))


@pytest.mark.parametrize("files", [[], ["readme.txt"]])
def test_folder_without_images_fails(tmp_path: Path, files: List[str]) -> None:
    for name in files:
        (tmp_path / name).write_text("x")
    with pytest.raises(EdgeError, match="no images in folder"):
        open_source(str(tmp_path))


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["a10", "a2", "a1"], ["a1", "a2", "a10"]),
        (["1a", "a1", "10"], ["1a", "10", "a1"]),
        (["B2", "b10", "a"], ["a", "B2", "b10"]),
    ],
)
def test_natural_key(names: List[str], expected: List[str]) -> None:
    assert sorted(names, key=natural_key) == expected
