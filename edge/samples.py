"""Sample images shipped with the package, for the demo source, tests and examples.

The images come from scikit-image's ``skimage.data`` (see ``edge/data/samples/README.md``
for sources, licences and checksums). Regenerate them with::

    python -m edge.samples --regenerate
"""

import hashlib
import sys
from pathlib import Path
from typing import List, Tuple

import numpy as np

from edge.cv import require_cv2
from edge.errors import EdgeError

SAMPLE_NAMES: Tuple[str, ...] = ("astronaut", "chelsea", "coffee")

# Face of the astronaut in the 512x512 astronaut.jpg, x1 y1 x2 y2 in source pixels
# (measured by hand; the demo source maps it into frame pixels as ground truth).
ASTRONAUT_FACE_XYXY: Tuple[float, float, float, float] = (178.0, 80.0, 264.0, 168.0)

JPEG_QUALITY = 92

_LICENCES = {
    "astronaut": "public domain (NASA Great Images database; astronaut Eileen Collins)",
    "chelsea": "CC0 (Stefan van der Walt)",
    "coffee": "CC0 (Rachel Michetti; courtesy of Pikolo Espresso Bar)",
}


def samples_dir() -> Path:
    """Folder that holds the shipped sample images, next to this module."""
    return Path(__file__).parent / "data" / "samples"


def sample_path(name: str) -> Path:
    """Path of the shipped sample image ``name`` (one of SAMPLE_NAMES)."""
    if name not in SAMPLE_NAMES:
        raise EdgeError(
            f"no sample image named '{name}'",
            fix=f"use one of: {', '.join(SAMPLE_NAMES)}",
            where="edge.samples",
        )
    path = samples_dir() / f"{name}.jpg"
    if not path.is_file():
        raise EdgeError(
            f"sample image {path} is missing from the installed package",
            fix="reinstall edge, or run: python -m edge.samples --regenerate",
            where="edge.samples",
        )
    return path


def load_sample(name: str) -> np.ndarray:
    """The sample image ``name`` as an (H, W, 3) uint8 BGR array."""
    cv2 = require_cv2("loading sample images")
    path = sample_path(name)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise EdgeError(
            f"cannot decode sample image {path}",
            fix="run: python -m edge.samples --regenerate",
            where="edge.samples",
        )
    return image


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _readme_text(skimage_version: str, cv2_version: str) -> str:
    rows: List[str] = []
    for name in SAMPLE_NAMES:
        path = samples_dir() / f"{name}.jpg"
        rows.append(f"| `{name}.jpg` | `skimage.data.{name}()` | {_LICENCES[name]} | `{_sha256(path)}` |")
    return "\n".join(
        [
            "# Sample images",
            "",
            "Used by the `demo://` source, the tests and the examples. Source: scikit-image",
            f"`skimage.data` (scikit-image {skimage_version}), converted RGB to BGR and written by",
            f"OpenCV {cv2_version} `cv2.imwrite` as JPEG, quality {JPEG_QUALITY}.",
            "",
            "| file | source | licence | sha256 |",
            "|---|---|---|---|",
            *rows,
            "",
            "`astronaut.jpg` holds one face; its box, measured by hand in source pixels, is",
            "`edge.samples.ASTRONAUT_FACE_XYXY` = (178, 80, 264, 168).",
            "",
            "Regenerate (needs scikit-image; checksums depend on the OpenCV JPEG encoder):",
            "",
            "```",
            "python -m edge.samples --regenerate",
            "```",
            "",
        ]
    )


def regenerate() -> List[Path]:
    """Write the sample JPEGs and README.md from scikit-image; returns the image paths."""
    cv2 = require_cv2("writing sample images")
    try:
        import skimage  # noqa: PLC0415 - only the maintainer's regeneration needs it
        import skimage.data  # noqa: PLC0415
    except ImportError:
        raise EdgeError("regenerating samples needs scikit-image", fix="pip install scikit-image") from None
    folder = samples_dir()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in SAMPLE_NAMES:
        rgb = getattr(skimage.data, name)()
        path = folder / f"{name}.jpg"
        bgr = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
        if not cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
            raise EdgeError(f"cannot write {path}", fix="check that the folder is writable")
        paths.append(path)
    (folder / "README.md").write_text(_readme_text(skimage.__version__, cv2.__version__), encoding="utf-8")
    return paths


def _main(argv: List[str]) -> int:
    if argv != ["--regenerate"]:
        print("usage: python -m edge.samples --regenerate", file=sys.stderr)
        return 2
    for path in regenerate():
        print(f"{path}  {_sha256(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
