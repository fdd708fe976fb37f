"""Crops for the digit embedder, made the way a two-stage run makes them.

An "identity" is a character. The embedder trains on letters and symbols only and is tested on
the digits 0-9, which it never sees in training: the open-set situation of face recognition,
where the people in the gallery were not in the training data. Each crop is a character drawn
with OpenCV's Hershey fonts (varied font, stroke, tilt, shear, colour, halo) on a varied
background (the digit detector's), cut out as a square around the ink box the way
``edge.cascade`` cuts a detection (side = longest box side x 1.3), with the box jittered as a
detector's would be, then light change and sensor noise. ``crop(text, split, index)`` is a
pure function of its arguments.
"""

import importlib.util
from pathlib import Path
from typing import Tuple

import numpy as np

from edge.cv import require_cv2

HERE = Path(__file__).resolve().parent


def _detector_data():
    """models/digit_detector/data.py (backgrounds, glyphs, colours), loaded under its own name."""
    spec = importlib.util.spec_from_file_location("digit_detector_data", HERE.parent / "digit_detector" / "data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


detector_data = _detector_data()

#: training identities: letters and symbols whose glyphs no digit shares (no O, o, I, l, S, Z, B, g, q;
#: no strokes like 1 or 7; no dots and dashes that look alike once cropped)
TRAIN_CHARS = tuple('ACDEFGHJKLMNPQRTUVWXYabcdefhijkmnprstuvwxyz#$%&?@+=<>*^~;:"-')
DIGITS = tuple("0123456789")
SPLITS = {"train": 10, "held_out": 11, "gallery": 12}
CROP_SCALE = 1.3  # the crop side, as a multiple of the box's longest side (edge.cascade's default)


def crop(text: str, split: str, index: int) -> np.ndarray:
    """A BGR uint8 square crop (24-160 px) holding ``text``, as a detector + crop stage would cut it."""
    rng = np.random.default_rng([SPLITS[split], index, ord(text[0])])
    cv2 = require_cv2("digit embedder data")
    height = int(rng.integers(16, 120))
    alpha, (x1, y1, x2, y2) = detector_data._glyph(text, height, rng)
    box_w, box_h = x2 - x1, y2 - y1
    side = int(np.ceil(max(box_w, box_h) * 3 + 8))
    canvas = detector_data.background((side + alpha.shape[1], side + alpha.shape[0]), rng)
    x, y = side // 2, side // 2
    colour, halo = detector_data._contrasting(canvas, (x + x1, y + y1, x + x2, y + y2), rng)
    detector_data.paste_glyph(canvas, alpha, (x, y), colour, halo)
    # the box a detector would report: the ink box, each side off by up to 8 % of the box size
    jitter = rng.uniform(-0.08, 0.08, size=4) * np.array([box_w, box_h, box_w, box_h])
    bx1, by1, bx2, by2 = np.array([x + x1, y + y1, x + x2, y + y2], np.float64) + jitter
    centre = ((bx1 + bx2) / 2.0, (by1 + by2) / 2.0)
    half = max(bx2 - bx1, by2 - by1) * CROP_SCALE / 2.0
    out = max(24, min(160, int(round(2 * half))))
    scale = out / (2 * half)
    matrix = np.array([[scale, 0.0, out / 2.0 - centre[0] * scale], [0.0, scale, out / 2.0 - centre[1] * scale]])
    image = cv2.warpAffine(canvas, matrix, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    detector_data._light_and_noise(image, rng)
    return image


def clean(text: str, font_index: int, size: int = 64, height: int = 40) -> np.ndarray:
    """A clean picture: the character in one font, ``height`` px high, dark on light grey, upright, centred in a
    ``size`` square (the default is a tight crop, as the cascade would cut it)."""
    font = int(detector_data.DIGIT_FONTS[font_index % len(detector_data.DIGIT_FONTS)])
    alpha, (x1, y1, x2, y2) = detector_data.digit_glyph.__wrapped__(text, height, font, 0.1, 0.0, 0.0)
    image = np.full((size, size, 3), 220, np.uint8)
    x = (size - (x2 - x1)) // 2 - x1
    y = (size - (y2 - y1)) // 2 - y1
    detector_data.paste_glyph(image, alpha, (x, y), (30, 30, 30))
    return image


def gallery_picture(text: str, font_index: int) -> np.ndarray:
    """A picture to enrol in a gallery: the character upright in one font, 48 px high, dark on light grey, in a
    160x160 frame (the digit detector finds it there; the cascade then crops it as it crops any detection)."""
    return clean(text, font_index, size=160, height=48)


def batch(chars: Tuple[str, ...], split: str, start: int, count: int):
    """(crops, identity indices): ``count`` crops cycling through ``chars``."""
    images, labels = [], []
    for k in range(start, start + count):
        label = k % len(chars)
        images.append(crop(chars[label], split, k))
        labels.append(label)
    return images, np.asarray(labels, np.int64)
