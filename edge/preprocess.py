"""Preprocessing: one implementation used by the camera app, the benchmarks and the tests.

A BGR uint8 frame becomes the model's input tensor in three vectorised steps: a geometric
step (stretch, letterbox or centre-crop resize, done on uint8 by OpenCV), then one fused pass
per channel that reorders colour, converts to float and applies ``(pixel * scale - mean) / std``
while writing straight into the preallocated NCHW or NHWC buffer. Every call also returns the
:class:`~edge.transform.Transform` that maps model-input pixels back to the source frame.
"""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np

from edge.config import EdgeConfig, InputSpec, PreprocessSpec
from edge.cv import require_cv2
from edge.errors import EdgeError
from edge.transform import Transform

_INTERPOLATION_FLAGS = {"linear": "INTER_LINEAR", "nearest": "INTER_NEAREST", "area": "INTER_AREA",
                        "cubic": "INTER_CUBIC"}


def geometry(source_wh: Tuple[int, int], input_wh: Tuple[int, int], resize: str):
    """Plan the resize: (crop_xywh, resized_wh, paste_xy, transform) for one source size.

    crop_xywh: the source region used (whole frame unless centre-crop); resized_wh: size the
    crop is resized to; paste_xy: where it lands in the model input (letterbox padding).
    """
    src_w, src_h = source_wh
    in_w, in_h = input_wh
    crop = (0, 0, src_w, src_h)
    paste = (0, 0)
    if resize == "stretch":
        resized = (in_w, in_h)
        scale = (src_w / in_w, src_h / in_h)
        offset = (0.0, 0.0)
    elif resize == "letterbox":
        ratio = min(in_w / src_w, in_h / src_h)
        resized = (max(1, min(in_w, round(src_w * ratio))), max(1, min(in_h, round(src_h * ratio))))
        paste = ((in_w - resized[0]) // 2, (in_h - resized[1]) // 2)
        scale = (src_w / resized[0], src_h / resized[1])
        offset = (-paste[0] * scale[0], -paste[1] * scale[1])
    elif resize == "center_crop":
        ratio = max(in_w / src_w, in_h / src_h)
        crop_w, crop_h = min(src_w, round(in_w / ratio)), min(src_h, round(in_h / ratio))
        crop = ((src_w - crop_w) // 2, (src_h - crop_h) // 2, crop_w, crop_h)
        resized = (in_w, in_h)
        scale = (crop_w / in_w, crop_h / in_h)
        offset = (float(crop[0]), float(crop[1]))
    else:
        raise ValueError(f"unknown resize mode {resize!r}")
    return crop, resized, paste, Transform(scale, offset, (in_w, in_h), (src_w, src_h))


class Preprocessor:
    """Turns BGR uint8 frames into one model's input tensor (batch of 1), reusing its buffers.

    The returned tensor is the preprocessor's own buffer: it is overwritten by the next call,
    so copy it if you keep it (the pipeline consumes it before asking for the next one).
    """

    def __init__(self, input_spec: InputSpec, spec: PreprocessSpec) -> None:
        self.input_spec = input_spec
        self.spec = spec
        self.input_wh = input_spec.size_wh
        self.channels = input_spec.channels
        self.dtype = np.dtype(input_spec.dtype)
        width, height = self.input_wh
        shape = (1, self.channels, height, width) if input_spec.layout == "NCHW" else (1, height, width, self.channels)
        self._out = np.zeros(shape, self.dtype)
        self._canvas = np.full((height, width, 3), spec.pad_value, np.uint8)
        # (pixel * scale - mean) / std  ==  pixel * gain + bias, per model channel
        std = np.asarray(spec.std, np.float64)
        self._gain = (spec.scale / std).astype(np.float32)
        self._bias = (-np.asarray(spec.mean, np.float64) / std).astype(np.float32)
        self._swap = spec.color == "RGB"
        # Broadcast views with a long inner loop: per plane for NCHW, one row of pixels for NHWC
        # (an inner loop over 3 channels is several times slower in numpy).
        if input_spec.layout == "NCHW":
            self._gain_view = self._gain[: self.channels].reshape(-1, 1, 1).astype(self.dtype)
            self._bias_view = self._bias[: self.channels].reshape(-1, 1, 1).astype(self.dtype)
            self._flat = self._out[0]
        else:
            self._gain_view = np.tile(self._gain[: self.channels], width).astype(self.dtype)
            self._bias_view = np.tile(self._bias[: self.channels], width).astype(self.dtype)
            self._flat = self._out[0].reshape(height, width * self.channels)
        self._identity = bool(np.all(self._gain == 1) and np.all(self._bias == 0))
        self._plans: dict = {}
        self._interpolation: Any = None

    @classmethod
    def from_config(cls, config: EdgeConfig) -> "Preprocessor":
        """The preprocessor that a model's edge config describes."""
        return cls(config.input, config.preprocess)

    def _plan(self, source_wh: Tuple[int, int]):
        plan = self._plans.get(source_wh)
        if plan is None:
            if len(self._plans) > 8:
                self._plans.clear()
            plan = self._plans[source_wh] = geometry(source_wh, self.input_wh, self.spec.resize)
        return plan

    def resize(self, image_bgr: np.ndarray) -> Tuple[np.ndarray, Transform]:
        """The geometric step only: (H, W, 3) uint8 image at model size, and its Transform."""
        cv2 = require_cv2("preprocessing")
        image_bgr = _check_image(image_bgr)
        if self._interpolation is None:
            self._interpolation = getattr(cv2, _INTERPOLATION_FLAGS[self.spec.interpolation])
        source_wh = (image_bgr.shape[1], image_bgr.shape[0])
        (x, y, w, h), resized_wh, (px, py), transform = self._plan(source_wh)
        region = image_bgr[y:y + h, x:x + w]
        if resized_wh == self.input_wh:
            if resized_wh == (w, h):
                return region, transform
            return cv2.resize(region, resized_wh, interpolation=self._interpolation), transform
        canvas = self._canvas
        cv2.resize(region, resized_wh, dst=canvas[py:py + resized_wh[1], px:px + resized_wh[0]],
                   interpolation=self._interpolation)
        return canvas, transform

    def __call__(self, image_bgr: np.ndarray) -> Tuple[np.ndarray, Transform]:
        """Preprocess one BGR uint8 frame: (input tensor with batch dim, Transform back to the frame)."""
        resized, transform = self.resize(image_bgr)
        out = self._out
        nchw = self.input_spec.layout == "NCHW"
        if self.channels == 1:
            cv2 = require_cv2("preprocessing")
            planes = cv2.cvtColor(resized, cv2.COLOR_BGR2GRAY)[None]
        elif nchw:
            planes = (resized[:, :, ::-1] if self._swap else resized).transpose(2, 0, 1)
        else:
            # numpy casts a reversed-channel view slowly; OpenCV swaps contiguously
            planes = require_cv2("preprocessing").cvtColor(resized, 4) if self._swap else resized  # 4: BGR2RGB
        target = out[0]
        np.copyto(target, planes if nchw or self.channels == 3 else planes.transpose(1, 2, 0), casting="unsafe")
        if not (self._identity or self.dtype == np.uint8):
            self._flat *= self._gain_view
            self._flat += self._bias_view
        return out, transform


def _check_image(image: Any) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        found = (f"{type(image).__name__}" if not isinstance(image, np.ndarray)
                 else f"shape {image.shape} dtype {image.dtype}")
        raise EdgeError(f"expected a BGR uint8 image of shape (H, W, 3), got {found}",
                        fix="pass frames as OpenCV reads them (cv2.imread / VideoCapture.read)", where="preprocess")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise EdgeError("image is empty", fix="check the source delivers frames", where="preprocess")
    return image
