"""``demo://``: a moving scene made from the shipped samples, with ground truth for the face.

A background built from ``coffee`` and ``chelsea`` drifts slowly; the ``astronaut`` photo,
as a white-bordered card, pans across, zooms in and out, leaves the frame and comes back,
under lighting ramps and mild noise. Each frame is a pure function of (seed, index), so a
seed gives identical bytes every run. ``Frame.truth["faces_xyxy"]`` lists the astronaut's
face box in frame pixels when it is fully inside the frame and at least 1/8 of the frame's
longer side tall (160 px at 1280x720: the default detector's working range).

Options: width, height (default 1280x720), fps (30), seed (0), frames (0 = unlimited),
realtime (1 paces frames at fps; default 0 delivers them as fast as they are made), scene
(``face``, the default described above, or ``digits``: moving digits with per-object truth for
the ``digit_detector`` zoo model, see :mod:`edge.sources.demo_digits`).
"""

import math
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edge.cv import require_cv2
from edge.errors import EdgeError
from edge.samples import ASTRONAUT_FACE_XYXY, load_sample
from edge.sources.base import Grabbed, Source, check_frame_size, check_memory, now_s

# Faces smaller than 1/8 of the frame's longer side are left out of the truth: letterboxed into
# the default detector's 128x128 input they are under 16 px, below what it is made to find.
MIN_FACE_FRACTION = 1 / 8
CYCLE_FRAMES = 150
_BASE_WH = (1280, 720)  # keyframes are written for this size and scaled to the frame
_CARD_BORDER_PX = 12
_PAD_PX = 48  # background and noise margins that the per-frame windows slide in
# Measured peak while a scene is built (background, float64 noise, sample scaling): ~84 bytes a
# pixel at 4000x3000 for both scenes, plus the samples and OpenCV.
_SCENE_BYTES_PER_PIXEL = 90
_SCENE_BASE_BYTES = 128 * 2**20

# (frame in cycle, face centre x, face centre y, face height) in pixels of a 1280x720 frame,
# eased between keys. Two keys one frame apart make a cut (the card jumps while out of view).
_KEYS: Sequence[Tuple[int, float, float, float]] = (
    (0, 640, 330, 200),
    (25, 430, 340, 240),
    (45, 700, 370, 290),
    (65, 980, 360, 210),
    (80, 1330, 340, 180),  # face leaves the frame on the right
    (95, 1800, 340, 180),  # whole card out of view
    (100, 1800, 340, 180),
    (101, -450, 380, 170),  # cut: re-enters from the left
    (125, 330, 380, 110),  # zoomed out below the truth limit
    (150, 640, 330, 200),
)


def _ease(u: float) -> float:
    return 0.5 - 0.5 * math.cos(math.pi * u)


def _keyframe(cycle_pos: int) -> Tuple[float, float, float]:
    for (t0, x0, y0, h0), (t1, x1, y1, h1) in zip(_KEYS, _KEYS[1:]):
        if t0 <= cycle_pos <= t1:
            u = _ease((cycle_pos - t0) / (t1 - t0))
            return x0 + (x1 - x0) * u, y0 + (y1 - y0) * u, h0 * (h1 / h0) ** u
    raise AssertionError(f"cycle position {cycle_pos} outside the keyframes")


class DemoScene:
    """Renders frame ``index`` of the demo scene for a seed and size; see the module docstring."""

    def __init__(self, size_wh: Tuple[int, int] = _BASE_WH, seed: int = 0) -> None:
        cv2 = require_cv2("the demo:// source")
        self.size_wh = size_wh
        self.seed = seed
        rng = np.random.default_rng(seed)
        self._phases = rng.uniform(0, 2 * math.pi, size=8)
        self._camera = FilmedLook(size_wh, rng, seed)  # draws the background, then the noise
        astronaut = load_sample("astronaut")
        border = _CARD_BORDER_PX
        self._card = cv2.copyMakeBorder(
            astronaut, border, border, border, border, cv2.BORDER_CONSTANT, value=(245, 245, 245)
        )
        x1, y1, x2, y2 = ASTRONAUT_FACE_XYXY
        self._face_card_xyxy = np.array([x1, y1, x2, y2], np.float64) + border

    def card_pose(self, index: int) -> Tuple[float, float, float]:
        """(scale, x offset, y offset) that maps card pixels to frame pixels in frame ``index``."""
        width, height = self.size_wh
        fx, fy, face_h = _keyframe(index % CYCLE_FRAMES)
        p = self._phases
        fx += 18 * math.sin(index / 11.0 + p[0])
        fy += 14 * math.sin(index / 13.0 + p[1])
        face_h *= 1 + 0.04 * math.sin(index / 17.0 + p[2])
        sx, sy = width / _BASE_WH[0], height / _BASE_WH[1]
        fx, fy, face_h = fx * sx, fy * sy, face_h * sy
        x1, y1, x2, y2 = self._face_card_xyxy
        scale = face_h / (y2 - y1)
        return scale, fx - scale * (x1 + x2) / 2, fy - scale * (y1 + y2) / 2

    def face_xyxy(self, index: int) -> List[float]:
        """The face box in frame pixels for frame ``index``, visible or not."""
        scale, ox, oy = self.card_pose(index)
        x1, y1, x2, y2 = self._face_card_xyxy
        return [ox + scale * x1, oy + scale * y1, ox + scale * x2, oy + scale * y2]

    def truth(self, index: int) -> Dict[str, Any]:
        """Ground truth for frame ``index``: faces fully in view and at least MIN_FACE_FRACTION tall."""
        width, height = self.size_wh
        x1, y1, x2, y2 = self.face_xyxy(index)
        big_enough = y2 - y1 >= MIN_FACE_FRACTION * max(width, height)
        visible = x1 >= 0 and y1 >= 0 and x2 <= width and y2 <= height and big_enough
        return {"faces_xyxy": [[round(v, 2) for v in (x1, y1, x2, y2)]] if visible else []}

    def render(self, index: int) -> np.ndarray:
        """Frame ``index`` as (H, W, 3) uint8 BGR; same seed and index give the same bytes."""
        p = self._phases
        frame = self._camera.view(index, p[3], p[4])
        self._draw_card(frame, index)
        return self._camera.develop(frame, index, 0.25, 30.0, p[5], p[6])

    def _draw_card(self, frame: np.ndarray, index: int) -> None:
        cv2 = require_cv2("the demo:// source")
        height, width = frame.shape[:2]
        scale, ox, oy = self.card_pose(index)
        card_h, card_w = self._card.shape[:2]
        left, top = max(0, math.floor(ox)), max(0, math.floor(oy))
        right = min(width, math.ceil(ox + scale * card_w))
        bottom = min(height, math.ceil(oy + scale * card_h))
        if right <= left or bottom <= top:
            return  # card fully out of view
        to_patch = np.array([[scale, 0, ox - left], [0, scale, oy - top]], np.float64)
        patch = frame[top:bottom, left:right].copy()
        cv2.warpAffine(
            self._card,
            to_patch,
            (right - left, bottom - top),
            dst=patch,
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_TRANSPARENT,
        )
        frame[top:bottom, left:right] = patch


class FilmedLook:
    """What makes a demo scene look filmed: a slowly panning background, drifting light, sensor noise.

    Built from the scene's generator (the background, then the noise); ``view`` gives frame ``index``'s
    window of the background to draw on, ``develop`` applies the light drift and that frame's noise.
    Same seed and index, same bytes. Shared by the face and the digits scenes.
    """

    def __init__(self, size_wh: Tuple[int, int], rng: np.random.Generator, seed: int) -> None:
        width, height = size_wh
        self.size_wh = size_wh
        self.seed = seed
        self.background = _background((width + 2 * _PAD_PX, height + 2 * _PAD_PX), rng)
        noise = rng.normal(0.0, 4.0, size=(height + _PAD_PX, width + _PAD_PX, 3))
        self.noise_up = np.clip(noise, 0, 255).astype(np.uint8)
        self.noise_down = np.clip(-noise, 0, 255).astype(np.uint8)

    def view(self, index: int, phase_x: float, phase_y: float) -> np.ndarray:
        """A copy of the background window of frame ``index`` (the pan's phases per axis, radians)."""
        width, height = self.size_wh
        bx = int(_PAD_PX * (1 + math.sin(index / 97.0 + phase_x)))
        by = int(_PAD_PX * (1 + math.sin(index / 71.0 + phase_y)))
        return self.background[by : by + height, bx : bx + width].copy()

    def develop(self, frame: np.ndarray, index: int, contrast_amp: float, brightness_amp: float,
                phase_contrast: float, phase_brightness: float) -> np.ndarray:
        """Contrast (1 ± contrast_amp) and brightness (± brightness_amp grey levels) drift, then noise."""
        cv2 = require_cv2("the demo:// source")
        width, height = self.size_wh
        contrast = 1.0 + contrast_amp * math.sin(index / 23.0 + phase_contrast)
        brightness = brightness_amp * math.sin(index / 37.0 + phase_brightness)
        # Contrast pivots on mid-grey; addWeighted saturates (convertScaleAbs would mirror negatives).
        frame = cv2.addWeighted(frame, contrast, frame, 0.0, brightness - 128 * (contrast - 1))
        rng = np.random.default_rng((self.seed, index))
        nx, ny = (int(v) for v in rng.integers(0, _PAD_PX, size=2))
        cv2.add(frame, self.noise_up[ny : ny + height, nx : nx + width], dst=frame)
        cv2.subtract(frame, self.noise_down[ny : ny + height, nx : nx + width], dst=frame)
        return frame


def _background(size_wh: Tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Coffee on the left, Chelsea on the right, each scaled to cover its part, softly joined."""
    cv2 = require_cv2("the demo:// source")
    width, height = size_wh
    split = int(width * rng.uniform(0.52, 0.62))
    left = _cover(load_sample("coffee"), (split, height))
    right = _cover(load_sample("chelsea"), (width - split, height))
    background = np.concatenate([left, right], axis=1)
    seam = max(8, width // 40)
    band = background[:, split - seam : split + seam]
    background[:, split - seam : split + seam] = cv2.GaussianBlur(band, (0, 0), seam / 2)
    return background


def _cover(image: np.ndarray, size_wh: Tuple[int, int]) -> np.ndarray:
    """``image`` scaled to cover ``size_wh`` and centre-cropped to it."""
    cv2 = require_cv2("the demo:// source")
    width, height = size_wh
    scale = max(width / image.shape[1], height / image.shape[0])
    resized = cv2.resize(
        image,
        (max(width, round(image.shape[1] * scale)), max(height, round(image.shape[0] * scale))),
        interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
    )
    top, left = (resized.shape[0] - height) // 2, (resized.shape[1] - width) // 2
    return resized[top : top + height, left : left + width]


SCENES = ("face", "digits")


class DemoSource(Source):
    """The demo scene as a Source; ``frames`` 0 runs forever, ``realtime`` paces it at ``fps``."""

    def __init__(
        self,
        uri: str = "demo://",
        size_wh: Tuple[int, int] = _BASE_WH,
        fps: float = 30.0,
        seed: int = 0,
        frames: int = 0,
        realtime: bool = False,
        scene: str = "face",
    ) -> None:
        super().__init__(uri)
        if scene not in SCENES:
            raise EdgeError(f"unknown demo scene '{scene}'", fix=f"use scene={' or scene='.join(SCENES)}", where=uri)
        check_frame_size(size_wh, where=uri)
        width, height = size_wh
        check_memory(_SCENE_BASE_BYTES + _SCENE_BYTES_PER_PIXEL * (width + 2 * _PAD_PX) * (height + 2 * _PAD_PX),
                     f"a {width}x{height} demo scene", uri, "ask for a smaller size, e.g. demo://?width=1280&height=720")
        if scene == "digits":
            from edge.sources.demo_digits import DigitsScene  # noqa: PLC0415 - it imports this module

            self._scene: Any = DigitsScene(size_wh, seed)
        else:
            self._scene = DemoScene(size_wh, seed)
        self.size_wh = size_wh
        self.fps = fps
        self._frames = frames
        self._realtime = realtime
        self._started_s: Optional[float] = None

    def _grab(self, timeout_s: Optional[float]) -> Optional[Grabbed]:
        index = self._next_index
        if self._frames and index >= self._frames:
            self._end(f"end of demo (frames={self._frames})")
            return None
        if self._realtime:
            if self._started_s is None:
                self._started_s = time.perf_counter()
            wait_s = self._started_s + index / self.fps - time.perf_counter()
            if timeout_s is not None and wait_s > timeout_s:
                time.sleep(max(0.0, timeout_s))
                return None
            if wait_s > 0:
                time.sleep(wait_s)
        timestamp_s = now_s()
        return self._scene.render(index), timestamp_s, self._scene.truth(index)
