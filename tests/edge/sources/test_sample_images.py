"""The shipped sample images: present, decodable, and matching the README's checksums."""

import hashlib

import numpy as np
import pytest

from edge.errors import EdgeError
from edge.samples import ASTRONAUT_FACE_XYXY, SAMPLE_NAMES, load_sample, sample_path, samples_dir


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("astronaut", (512, 512, 3)),
        ("chelsea", (300, 451, 3)),
        ("coffee", (400, 600, 3)),
    ],
)
def test_samples_load_as_bgr(name: str, shape) -> None:
    image = load_sample(name)
    assert image.shape == shape and image.dtype == np.uint8
    assert sample_path(name).parent == samples_dir()


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_readme_lists_each_sample_with_its_checksum(name: str) -> None:
    readme = (samples_dir() / "README.md").read_text(encoding="utf-8")
    digest = hashlib.sha256(sample_path(name).read_bytes()).hexdigest()
    assert f"`{name}.jpg`" in readme and digest in readme


def test_astronaut_is_blue_sky_above_an_orange_suit() -> None:
    """Checks the RGB -> BGR conversion: the suit is orange (red channel, index 2, highest)."""
    suit = load_sample("astronaut")[400:450, 100:200].reshape(-1, 3).mean(axis=0)
    assert suit[2] > suit[1] > suit[0]


def test_face_box_constant() -> None:
    assert ASTRONAUT_FACE_XYXY == (178.0, 80.0, 264.0, 168.0)


def test_unknown_sample_is_an_edge_error() -> None:
    with pytest.raises(EdgeError, match="use one of: astronaut, chelsea, coffee"):
        sample_path("lena")
