"""``demo://?scene=digits``: digits that drift across the frame, with per-object ground truth.

Digits 0-9 are drawn with OpenCV's Hershey fonts (no data files): each object has its own
digit, font, stroke, tilt, colour and size, enters from one edge, crosses the frame on a
straight path and leaves by another; a new one starts every few frames, so several are in
view at once and paths cross now and then (the newer object is drawn on top). The background
is the default scene's (coffee and Chelsea, drifting), under the same kind of lighting ramps
and noise. Every frame is a pure function of (seed, index).

``Frame.truth`` is ``{"objects_xyxy": [...], "class_ids": [...], "object_ids": [...]}``: the
tight box of each digit's ink in frame pixels, for digits fully inside the frame and less
than half hidden by digits drawn over them. Object ids are stable over an object's life.

``digit_glyph`` and ``paste_glyph`` are also what ``models/digit_detector`` trains on.
"""

import functools
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edge.cv import require_cv2

# Hershey font ids (cv2.FONT_HERSHEY_*), spelled as numbers so this table needs no cv2 import.
DIGIT_FONTS: Sequence[int] = (0, 1, 2, 3, 4, 6, 7)  # simplex, plain, duplex, complex, triplex, script s/c
FONT_ITALIC = 16
_SUPERSAMPLE = 4  # glyphs are drawn 4x larger, then area-downscaled: smooth anti-aliased edges
INK_THRESHOLD = 96  # alpha (0-255) from which a pixel counts as ink for the tight box

SPAWN_EVERY_FRAMES = 14
LIFE_FRAMES = (70, 130)
DIGIT_HEIGHT_720P = (110.0, 250.0)  # digit height range in pixels of a 720-line frame
MAX_HIDDEN_FRACTION = 0.25
# Frame 0 shows the scene as it is after this many frames, so digits are in view from the start.
WARMUP_FRAMES = 130


@functools.lru_cache(maxsize=512)
def digit_glyph(text: str, height_px: int, font: int, stroke: float, angle_deg: float,
                shear: float) -> Tuple[np.ndarray, Tuple[int, int, int, int]]:
    """A glyph as an alpha mask and the tight box of its ink.

    text: what to draw ("7"); height_px: upright ink height in pixels before tilt; font: a
    cv2 Hershey font id, optionally | FONT_ITALIC; stroke: line thickness as a fraction of the
    height (0.05-0.2); angle_deg: rotation, counter-clockwise; shear: horizontal shear factor.
    Returns (alpha (h, w) uint8 0-255, box_xyxy in alpha pixels, end-exclusive) — the alpha
    may extend past the box by faint anti-aliased fringe (alpha < INK_THRESHOLD).
    """
    cv2 = require_cv2("digit glyphs")
    step = max(1, min(_SUPERSAMPLE, 256 // max(1, height_px)))  # large glyphs need no supersampling
    big = max(2, height_px) * step
    (text_w, text_h), baseline = cv2.getTextSize(text, font, 1.0, 1)
    font_scale = big / max(1, text_h)
    thickness = max(1, int(round(stroke * big)))
    pad = thickness + big // 2
    canvas_w = int(text_w * font_scale) + 2 * pad
    canvas_h = int((text_h + baseline) * font_scale) + 2 * pad
    canvas = np.zeros((canvas_h, canvas_w), np.uint8)
    cv2.putText(canvas, text, (pad, pad + big), font, font_scale, 255, thickness, cv2.LINE_AA)
    centre = (canvas_w / 2.0, canvas_h / 2.0)
    rotate = cv2.getRotationMatrix2D(centre, angle_deg, 1.0)
    rotate[0, 1] += shear * rotate[0, 0]
    rotate[1, 1] += shear * rotate[1, 0]
    rotate[0, 2] -= shear * centre[1] * rotate[0, 0]
    rotate[1, 2] -= shear * centre[1] * rotate[1, 0]
    canvas = cv2.warpAffine(canvas, rotate, (canvas_w, canvas_h), flags=cv2.INTER_LINEAR)
    x, y, w, h = cv2.boundingRect(canvas)
    if w == 0 or h == 0:
        return np.zeros((1, 1), np.uint8), (0, 0, 0, 0)
    x0, y0 = (x // step) * step, (y // step) * step
    x1, y1 = -(-(x + w) // step) * step, -(-(y + h) // step) * step
    crop = np.zeros((y1 - y0, x1 - x0), np.uint8)
    part = canvas[y0:y1, x0:x1]
    crop[: part.shape[0], : part.shape[1]] = part
    alpha = crop if step == 1 else cv2.resize(crop, ((x1 - x0) // step, (y1 - y0) // step),
                                              interpolation=cv2.INTER_AREA)
    x, y, w, h = cv2.boundingRect((alpha >= INK_THRESHOLD).astype(np.uint8))
    return alpha, (x, y, x + w, y + h)


def paste_glyph(frame: np.ndarray, alpha: np.ndarray, top_left_xy: Tuple[int, int],
                colour_bgr: Tuple[int, int, int], outline_bgr: Optional[Tuple[int, int, int]] = None) -> None:
    """Blend a glyph into ``frame`` (in place) at an integer position, clipped to the frame.

    outline_bgr: when given, a 1-2 px halo of that colour is drawn under the glyph.
    """
    cv2 = require_cv2("digit glyphs")
    height, width = frame.shape[:2]
    x, y = top_left_xy
    glyph_h, glyph_w = alpha.shape
    left, top = max(0, x), max(0, y)
    right, bottom = min(width, x + glyph_w), min(height, y + glyph_h)
    if right <= left or bottom <= top:
        return
    region = frame[top:bottom, left:right].astype(np.float32)
    layers = []
    if outline_bgr is not None:
        radius = max(1, min(glyph_w, glyph_h) // 40 + 1)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        layers.append((cv2.dilate(alpha, kernel), outline_bgr))
    layers.append((alpha, colour_bgr))
    for mask, colour in layers:
        a = mask[top - y : bottom - y, left - x : right - x].astype(np.float32)[:, :, None] / 255.0
        region = region * (1.0 - a) + np.asarray(colour, np.float32) * a
    frame[top:bottom, left:right] = np.clip(region + 0.5, 0, 255).astype(np.uint8)


class _Digit:
    """One object of the scene: its look, and where it is in each frame of its life."""

    def __init__(self, object_id: int, seed: int, size_wh: Tuple[int, int]) -> None:
        rng = np.random.default_rng((seed, 7919, object_id))
        width, height = size_wh
        self.object_id = object_id
        self.digit = int(rng.integers(0, 10))
        self.start = object_id * SPAWN_EVERY_FRAMES + int(rng.integers(0, SPAWN_EVERY_FRAMES))
        self.life = int(rng.integers(LIFE_FRAMES[0], LIFE_FRAMES[1] + 1))
        font = int(DIGIT_FONTS[int(rng.integers(0, len(DIGIT_FONTS)))])
        font |= FONT_ITALIC if rng.random() < 0.2 else 0
        low, high = DIGIT_HEIGHT_720P
        glyph_h = int(round(height / 720.0 * low * (high / low) ** rng.random()))
        self.alpha, self.ink_xyxy = digit_glyph(str(self.digit), glyph_h, font, float(rng.uniform(0.06, 0.15)),
                                                float(rng.uniform(-15, 15)), float(rng.uniform(-0.2, 0.2)))
        self.colour, self.outline = _colours(rng)
        glyph_h, glyph_w = self.alpha.shape
        # Enter from one edge, leave by the opposite one (or an adjacent one), fully out at both ends.
        side = int(rng.integers(0, 4))
        inside = (float(rng.uniform(0.1, 0.9)), float(rng.uniform(0.1, 0.9)))
        starts = ((-glyph_w, inside[0] * height), (width, inside[0] * height),
                  (inside[0] * width, -glyph_h), (inside[0] * width, height))
        ends = ((width, inside[1] * height), (-glyph_w, inside[1] * height),
                (inside[1] * width, height), (inside[1] * width, -glyph_h))
        self.from_xy, self.to_xy = starts[side], ends[side]

    def top_left(self, index: int) -> Optional[Tuple[int, int]]:
        """Integer top-left of the glyph in frame ``index``, or None outside the object's life."""
        u = (index - self.start) / float(self.life)
        if not 0.0 <= u <= 1.0:
            return None
        x = self.from_xy[0] + (self.to_xy[0] - self.from_xy[0]) * u
        y = self.from_xy[1] + (self.to_xy[1] - self.from_xy[1]) * u
        return int(math.floor(x)), int(math.floor(y))


def _colours(rng: np.random.Generator) -> Tuple[Tuple[int, int, int], Optional[Tuple[int, int, int]]]:
    """A fill colour and, half the time, a halo of the opposite lightness.

    The fill is a light or a dark tint, never a mid-tone, so a digit reads on most of the background.
    """
    light = rng.random() < 0.5
    base = rng.uniform(200, 255, size=3) if light else rng.uniform(0, 50, size=3)
    base[int(rng.integers(0, 3))] = rng.uniform(110, 255) if light else rng.uniform(0, 150)  # some hue
    fill = tuple(int(v) for v in base)
    if rng.random() < 0.5:
        return fill, None
    halo = (20, 20, 20) if light else (235, 235, 235)
    return fill, halo


class DigitsScene:
    """Renders frame ``index`` of the digits scene for a seed and size; see the module docstring."""

    def __init__(self, size_wh: Tuple[int, int] = (1280, 720), seed: int = 0) -> None:
        from edge.sources.demo import FilmedLook  # noqa: PLC0415 - demo imports this module lazily

        self.size_wh = size_wh
        self.seed = seed
        rng = np.random.default_rng((seed, 31))
        self._phases = rng.uniform(0, 2 * math.pi, size=4)
        self._camera = FilmedLook(size_wh, rng, seed)
        self._objects: Dict[int, _Digit] = {}

    def _object(self, object_id: int) -> _Digit:
        if object_id not in self._objects:
            if len(self._objects) > 64:
                self._objects.clear()
            self._objects[object_id] = _Digit(object_id, self.seed, self.size_wh)
        return self._objects[object_id]

    def placed(self, index: int) -> List[Tuple[_Digit, Tuple[int, int]]]:
        """Objects alive in frame ``index`` with their top-left, in drawing order (oldest first)."""
        tick = index + WARMUP_FRAMES
        last = tick // SPAWN_EVERY_FRAMES
        first = max(0, (tick - LIFE_FRAMES[1] - SPAWN_EVERY_FRAMES) // SPAWN_EVERY_FRAMES)
        alive = []
        for object_id in range(first, last + 1):
            item = self._object(object_id)
            top_left = item.top_left(tick)
            if top_left is not None:
                alive.append((item, top_left))
        return alive

    def truth(self, index: int) -> Dict[str, Any]:
        """Digits fully in view and at most MAX_HIDDEN_FRACTION covered by newer digits."""
        width, height = self.size_wh
        placed = self.placed(index)
        boxes = [_ink_box(item, xy) for item, xy in placed]
        truth: Dict[str, Any] = {"objects_xyxy": [], "class_ids": [], "object_ids": []}
        for k, (item, _) in enumerate(placed):
            x1, y1, x2, y2 = boxes[k]
            if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
                continue
            if _hidden_fraction(boxes[k], boxes[k + 1:]) > MAX_HIDDEN_FRACTION:
                continue
            truth["objects_xyxy"].append([float(v) for v in boxes[k]])
            truth["class_ids"].append(item.digit)
            truth["object_ids"].append(item.object_id)
        return truth

    def render(self, index: int) -> np.ndarray:
        """Frame ``index`` as (H, W, 3) uint8 BGR; same seed and index give the same bytes."""
        p = self._phases
        frame = self._camera.view(index, p[0], p[1])
        for item, top_left in self.placed(index):
            paste_glyph(frame, item.alpha, top_left, item.colour, item.outline)
        return self._camera.develop(frame, index, 0.2, 25.0, p[2], p[3])


def _ink_box(item: _Digit, top_left: Tuple[int, int]) -> Tuple[int, int, int, int]:
    x, y = top_left
    x1, y1, x2, y2 = item.ink_xyxy
    return x + x1, y + y1, x + x2, y + y2


def _hidden_fraction(box: Sequence[int], over: Sequence[Sequence[int]]) -> float:
    """Fraction of ``box`` covered by the union of the ``over`` boxes (exact, on a pixel grid)."""
    x1, y1, x2, y2 = box
    if not over or x2 <= x1 or y2 <= y1:
        return 0.0
    covered = np.zeros((y2 - y1, x2 - x1), bool)
    for ox1, oy1, ox2, oy2 in over:
        covered[max(0, oy1 - y1) : max(0, oy2 - y1), max(0, ox1 - x1) : max(0, ox2 - x1)] = True
    return float(covered.mean())
