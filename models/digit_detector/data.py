"""Synthetic detection data for the digit detector: digits composited onto varied backgrounds.

Each example is a "camera frame" of random size and aspect (160-640 px a side) holding 0-8
digits 0-9 drawn with OpenCV's Hershey fonts (edge.sources.demo_digits: varied font, stroke,
tilt, shear, colour, halo), plus unlabelled look-alike clutter (letters that cannot be
mistaken for digits, lines, circles), on one of: a random crop of a shipped sample photo
(edge/data/samples), a procedural gradient/texture, stripes, or flat colour with noise. The
boxes are the exact tight boxes of each digit's ink. ``frame(split, index)`` is a pure
function of its arguments: the split ("train" or "held_out") seeds a separate stream, so the
two never share an image.

``letterbox(frame)`` makes the model input exactly as the edge runtime does (edge.preprocess:
letterbox, area interpolation, pad 114), so training sees what the runtime feeds.
"""

from typing import List, Tuple

import numpy as np

from edge.cv import require_cv2
from edge.preprocess import geometry
from edge.samples import SAMPLE_NAMES, load_sample
from edge.sources.demo_digits import DIGIT_FONTS, FONT_ITALIC, digit_glyph, paste_glyph

INPUT_WH = (192, 192)
PAD_VALUE = 114
SPLITS = {"train": 0, "held_out": 1}
DIGIT_HEIGHT_INPUT_PX = (10.0, 80.0)  # digit heights, in model-input pixels after the letterbox
CLUTTER = "ACEFHKMNPRTUVWXYcdefhkmnprtuvwxy#%&?+=*@"  # nothing that reads as a digit (no O, l, S, Z, B, g)

_photos: List[np.ndarray] = []


def _photo(k: int) -> np.ndarray:
    if not _photos:
        _photos.extend(load_sample(name) for name in SAMPLE_NAMES)
    return _photos[k % len(_photos)]


def frame(split: str, index: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(BGR uint8 frame, boxes_xyxy (n, 4) float32 in frame pixels, class_ids (n,) int64)."""
    rng = np.random.default_rng((SPLITS[split], 104729, index))
    width = int(rng.integers(160, 641))
    height = int(np.clip(width / np.exp(rng.uniform(np.log(0.5), np.log(2.0))), 160, 640))
    image = background((width, height), rng)
    # Model-input pixels per frame pixel once letterboxed: digit sizes are drawn in input pixels.
    ratio = min(INPUT_WH[0] / width, INPUT_WH[1] / height)
    boxes: List[Tuple[int, int, int, int]] = []
    classes: List[int] = []
    for _ in range(int(rng.choice([0, 1, 2, 2, 3, 3, 4, 4, 5, 6, 7, 8]))):
        low, high = DIGIT_HEIGHT_INPUT_PX
        height_px = int(round(low * (high / low) ** rng.random() / ratio))
        digit = int(rng.integers(0, 10))
        alpha, ink = _glyph(str(digit), height_px, rng)
        placed = _place(image, alpha, ink, boxes, rng)
        if placed is not None:
            boxes.append(placed)
            classes.append(digit)
    for _ in range(int(rng.integers(0, 4))):
        _clutter(image, ratio, boxes, rng)
    _light_and_noise(image, rng)
    return image, np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(classes, np.int64)


def letterbox(image: np.ndarray, boxes_xyxy: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The model input (H, W, 3) uint8 BGR and the boxes in its pixels, as edge.preprocess makes them."""
    cv2 = require_cv2("the digit detector data")
    height, width = image.shape[:2]
    _, resized_wh, paste_xy, _ = geometry((width, height), INPUT_WH, "letterbox")
    canvas = np.full((INPUT_WH[1], INPUT_WH[0], 3), PAD_VALUE, np.uint8)
    x, y = paste_xy
    canvas[y : y + resized_wh[1], x : x + resized_wh[0]] = cv2.resize(image, resized_wh,
                                                                      interpolation=cv2.INTER_AREA)
    sx, sy = resized_wh[0] / width, resized_wh[1] / height
    boxes = boxes_xyxy * np.array([sx, sy, sx, sy], np.float32) + np.array([x, y, x, y], np.float32)
    return canvas, boxes


def background(size_wh: Tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A varied BGR background: photo crop, gradient texture, stripes, or flat colour."""
    cv2 = require_cv2("the digit detector data")
    width, height = size_wh
    kind = rng.choice(["photo", "photo", "texture", "stripes", "flat"])
    if kind == "photo":
        photo = _photo(int(rng.integers(0, 3)))
        # A window of the photo (zoomed 1x-3x beyond covering the frame), resized to the frame.
        cover = max(width / photo.shape[1], height / photo.shape[0])
        scale = cover * rng.uniform(1.0, 3.0)
        win_w = min(photo.shape[1], int(np.ceil(width / scale)))
        win_h = min(photo.shape[0], int(np.ceil(height / scale)))
        x = int(rng.integers(0, photo.shape[1] - win_w + 1))
        y = int(rng.integers(0, photo.shape[0] - win_h + 1))
        image = cv2.resize(photo[y : y + win_h, x : x + win_w], (width, height), interpolation=cv2.INTER_LINEAR)
        if rng.random() < 0.5:
            image = np.ascontiguousarray(image[:, ::-1])
        return image
    if kind == "texture":
        small = rng.uniform(0, 255, size=(int(rng.integers(2, 9)), int(rng.integers(2, 9)), 3)).astype(np.float32)
        image = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
        grain = cv2.GaussianBlur(rng.normal(0, 1, size=(height, width)).astype(np.float32), (0, 0), rng.uniform(1, 6))
        image += (grain * rng.uniform(10, 60) / max(1e-3, float(grain.std())))[:, :, None]
        return np.clip(image, 0, 255).astype(np.uint8)
    if kind == "stripes":
        period = rng.uniform(6, 60)
        angle = rng.uniform(0, np.pi)
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        wave = 0.5 + 0.5 * np.sin((xs * np.cos(angle) + ys * np.sin(angle)) * 2 * np.pi / period)
        a, b = rng.uniform(0, 255, size=3), rng.uniform(0, 255, size=3)
        return np.clip(a + (b - a) * wave[:, :, None], 0, 255).astype(np.uint8)
    colour = rng.uniform(0, 255, size=3)
    return np.clip(colour + rng.normal(0, 8, size=(height, width, 3)), 0, 255).astype(np.uint8)


def _glyph(text: str, height_px: int, rng: np.random.Generator) -> Tuple[np.ndarray, Tuple[int, int, int, int]]:
    font = int(DIGIT_FONTS[int(rng.integers(0, len(DIGIT_FONTS)))])
    font |= FONT_ITALIC if rng.random() < 0.2 else 0
    return digit_glyph.__wrapped__(text, max(4, height_px), font, float(rng.uniform(0.05, 0.18)),
                                   float(rng.uniform(-20, 20)), float(rng.uniform(-0.25, 0.25)))


def _contrasting(image: np.ndarray, box: Tuple[int, int, int, int], rng: np.random.Generator):
    """A fill colour far enough in lightness from the region under ``box``, and maybe a halo."""
    x1, y1, x2, y2 = box
    mean = float(image[y1:y2, x1:x2].mean()) if x2 > x1 and y2 > y1 else 128.0
    light = mean < 128 if rng.random() < 0.85 else rng.random() < 0.5
    base = rng.uniform(170, 255, size=3) if light else rng.uniform(0, 85, size=3)
    base[int(rng.integers(0, 3))] = rng.uniform(0, 255)
    halo = None
    if rng.random() < 0.4:
        halo = (20, 20, 20) if light else (235, 235, 235)
    return tuple(int(v) for v in base), halo


def _place(image: np.ndarray, alpha: np.ndarray, ink: Tuple[int, int, int, int],
           boxes: List[Tuple[int, int, int, int]], rng: np.random.Generator):
    """Paste a glyph fully inside the frame, overlapping earlier digits little; its ink box, or None."""
    height, width = image.shape[:2]
    ix1, iy1, ix2, iy2 = ink
    ink_w, ink_h = ix2 - ix1, iy2 - iy1
    if ink_w <= 0 or ink_h <= 0 or ink_w > width or ink_h > height:
        return None
    for _ in range(12):
        x = int(rng.integers(0, width - ink_w + 1)) - ix1
        y = int(rng.integers(0, height - ink_h + 1)) - iy1
        box = (x + ix1, y + iy1, x + ix2, y + iy2)
        if all(_overlap(box, other) < 0.15 for other in boxes):
            colour, halo = _contrasting(image, box, rng)
            paste_glyph(image, alpha, (x, y), colour, halo)
            return box
    return None


def _clutter(image: np.ndarray, ratio: float, boxes: List[Tuple[int, int, int, int]],
             rng: np.random.Generator) -> None:
    """An unlabelled distractor away from the digits: a letter or symbol, a line or a circle."""
    cv2 = require_cv2("the digit detector data")
    height, width = image.shape[:2]
    colour = tuple(int(v) for v in rng.uniform(0, 255, size=3))
    if rng.random() < 0.6:
        low, high = DIGIT_HEIGHT_INPUT_PX
        text = CLUTTER[int(rng.integers(0, len(CLUTTER)))]
        alpha, ink = _glyph(text, int(round(low * (high / low) ** rng.random() / ratio)), rng)
        ix1, iy1, ix2, iy2 = ink
        if ix2 - ix1 >= width or iy2 - iy1 >= height or ix2 <= ix1:
            return
        x = int(rng.integers(0, width - (ix2 - ix1))) - ix1
        y = int(rng.integers(0, height - (iy2 - iy1))) - iy1
        if all(_overlap((x + ix1, y + iy1, x + ix2, y + iy2), other) == 0 for other in boxes):
            paste_glyph(image, alpha, (x, y), colour)
        return
    thickness = max(1, int(rng.uniform(1, 4) / ratio))
    if rng.random() < 0.5:
        p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        p2 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.line(image, p1, p2, colour, thickness, cv2.LINE_AA)
    else:
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.circle(image, centre, int(rng.uniform(5, 60) / ratio), colour, thickness, cv2.LINE_AA)


def _light_and_noise(image: np.ndarray, rng: np.random.Generator) -> None:
    """In place: contrast and brightness change, sometimes blur, always mild sensor noise."""
    cv2 = require_cv2("the digit detector data")
    contrast, brightness = rng.uniform(0.7, 1.3), rng.uniform(-40, 40)
    cv2.addWeighted(image, contrast, image, 0.0, brightness - 128 * (contrast - 1), dst=image)
    if rng.random() < 0.25:
        cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.5), dst=image)
    noise = rng.standard_normal(size=image.shape, dtype=np.float32) * np.float32(rng.uniform(1, 8))
    image[:] = np.clip(image + noise, 0, 255).astype(np.uint8)


def _overlap(a: Tuple[int, int, int, int], b: Tuple[int, int, int, int]) -> float:
    """Intersection over the smaller box's area."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return w * h / max(1, smaller)
