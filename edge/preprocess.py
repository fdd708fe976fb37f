"""Preprocessing: one implementation used by the camera app, the benchmarks and the tests.

A BGR uint8 frame becomes the model's input tensor in three vectorised steps: a geometric
step (stretch, letterbox or centre-crop resize, done on uint8 by OpenCV), then one fused pass
per channel that reorders colour, converts to float and applies ``(pixel * scale - mean) / std``
while writing straight into the preallocated NCHW or NHWC buffer. Every call also returns the
:class:`~edge.transform.Transform` that maps model-input pixels back to the source frame.
"""

import queue
import threading
from typing import Any, Callable, Optional, Tuple

import numpy as np

from edge.config import EdgeConfig, InputSpec, PreprocessSpec
from edge.cv import require_cv2
from edge.errors import EdgeError
from edge.transform import Transform

_UINT8 = np.dtype(np.uint8)
#: edge config interpolation names -> cv2 flag names
INTERPOLATION_FLAGS = {"linear": "INTER_LINEAR", "nearest": "INTER_NEAREST", "area": "INTER_AREA",
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
    so copy it if you keep it. A pipeline that preprocesses one frame while another is inferred
    passes ``out``, a buffer of its own ring (:meth:`new_buffer`, :class:`BufferRing`), instead.
    One thread at a time: the resize buffers inside are shared by every call.
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
        self._resized = np.empty((height, width, 3), np.uint8)
        self._swapped = np.empty((height, width, 3), np.uint8)  # BGR -> RGB (NHWC) written here, not allocated
        self._gray = np.empty((height, width), np.uint8)
        # (pixel * scale - mean) / std  ==  pixel * gain + bias, per model channel
        std = np.asarray(spec.std, np.float64)
        self._gain = (spec.scale / std).astype(np.float32)
        self._bias = (-np.asarray(spec.mean, np.float64) / std).astype(np.float32)
        self._swap = spec.color == "RGB"
        # Broadcast views with a long inner loop: per plane for NCHW, one row of pixels for NHWC
        # (an inner loop over 3 channels is several times slower in numpy). A uint8 input takes the
        # pixels as they are, so its views stay float: a negative bias cast to uint8 warns on ARM.
        view_dtype = np.dtype(np.float32) if self.dtype == np.uint8 else self.dtype
        if input_spec.layout == "NCHW":
            self._gain_view = self._gain[: self.channels].reshape(-1, 1, 1).astype(view_dtype)
            self._bias_view = self._bias[: self.channels].reshape(-1, 1, 1).astype(view_dtype)
            self._flat = self._out[0]
        else:
            self._gain_view = np.tile(self._gain[: self.channels], width).astype(view_dtype)
            self._bias_view = np.tile(self._bias[: self.channels], width).astype(view_dtype)
            self._flat = self._out[0].reshape(height, width * self.channels)
        self._identity = bool(np.all(self._gain == 1) and np.all(self._bias == 0))
        self._plans: dict = {}
        self._interpolation: Any = None
        self._cv2: Any = None
        self._last_shape: Tuple[int, ...] = ()
        self._last_plan: Tuple[Any, ...] = ()
        self._nchw = input_spec.layout == "NCHW"
        self._target = self._out[0]
        self._normalise = not (self._identity or self.dtype == np.uint8)
        # cheaper passes when the normalisation allows: one scalar gain, no bias
        if np.all(self._gain == self._gain[0]):
            self._gain_view = view_dtype.type(self._gain[0])
        if not np.any(self._bias):
            self._bias_view = None

    @classmethod
    def from_config(cls, config: EdgeConfig) -> "Preprocessor":
        """The preprocessor that a model's edge config describes."""
        return cls(config.input, config.preprocess)

    def _plan(self, source_wh: Tuple[int, int]) -> Tuple[Any, ...]:
        """Per source size: (crop, resized size, resize destination, result buffer, transform, no-op, pads)."""
        plan = self._plans.get(source_wh)
        if plan is None:
            if len(self._plans) > 8:
                self._plans.clear()
            (x, y, w, h), resized_wh, (px, py), transform = geometry(source_wh, self.input_wh, self.spec.resize)
            crop = (slice(y, y + h), slice(x, x + w))
            if resized_wh != self.input_wh:  # letterbox: resize into the padded canvas
                destination, result = self._canvas[py:py + resized_wh[1], px:px + resized_wh[0]], self._canvas
            else:  # a preallocated output saves an allocation per frame (measurable at 128x128)
                destination, result = self._resized, self._resized
            plan = (crop, resized_wh, destination, result, transform, resized_wh == (w, h) == self.input_wh,
                    result is self._canvas)
            self._plans[source_wh] = plan
        return plan

    def resize(self, image_bgr: np.ndarray) -> Tuple[np.ndarray, Transform]:
        """The geometric step only: (H, W, 3) uint8 image at model size, and its Transform."""
        if (type(image_bgr) is not np.ndarray or image_bgr.dtype is not _UINT8 or image_bgr.ndim != 3
                or image_bgr.shape[2] != 3 or not image_bgr.size):
            _check_image(image_bgr)  # the thorough check, on the rare path
        cv2 = self._cv2 or self._load_cv2()
        shape = image_bgr.shape
        if shape != self._last_shape:
            self._last_plan = self._plan((shape[1], shape[0]))
            self._last_shape = shape
            if self._last_plan[-1]:  # letterbox of a new size: clear the old frame's pixels
                self._canvas[:] = self.spec.pad_value
        crop, resized_wh, destination, result, transform, unchanged, _ = self._last_plan
        region = image_bgr[crop]
        if unchanged:
            return region, transform
        cv2.resize(region, resized_wh, dst=destination, interpolation=self._interpolation)
        return result, transform

    def _load_cv2(self) -> Any:
        self._cv2 = require_cv2("preprocessing")
        self._interpolation = getattr(self._cv2, INTERPOLATION_FLAGS[self.spec.interpolation])
        return self._cv2

    def new_buffer(self) -> np.ndarray:
        """A fresh input tensor of this model's shape and dtype, for ``out`` (a pipeline's ring)."""
        return np.zeros_like(self._out)

    def __call__(self, image_bgr: np.ndarray, out: Optional[np.ndarray] = None) -> Tuple[np.ndarray, Transform]:
        """Preprocess one BGR uint8 frame: (input tensor with batch dim, Transform back to the frame).

        out: a buffer from :meth:`new_buffer` to write the tensor into (returned); None: the preprocessor's own.
        """
        target, flat = (self._target, self._flat) if out is None else self._views(out)
        resized, transform = self.resize(image_bgr)
        if self.channels == 1:
            planes = self._cv2.cvtColor(resized, self._cv2.COLOR_BGR2GRAY, dst=self._gray)
            planes = planes[None] if self._nchw else planes[:, :, None]
        elif self._nchw:
            planes = (resized[:, :, ::-1] if self._swap else resized).transpose(2, 0, 1)
        else:
            # numpy casts a reversed-channel view slowly; OpenCV swaps contiguously
            planes = self._cv2.cvtColor(resized, self._cv2.COLOR_BGR2RGB, dst=self._swapped) if self._swap else resized
        np.copyto(target, planes, casting="unsafe")
        if self._normalise:
            flat *= self._gain_view
            if self._bias_view is not None:
                flat += self._bias_view
        return self._out if out is None else out, transform

    def _views(self, out: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(tensor without its batch dim, the view the normalisation runs on) of a caller's buffer."""
        if (type(out) is not np.ndarray or out.shape != self._out.shape or out.dtype != self.dtype
                or not out.flags.c_contiguous):
            raise ValueError(f"out must be a C-contiguous {self.dtype.name} array of shape {self._out.shape} "
                             "(Preprocessor.new_buffer())")
        target = out[0]
        return target, target if self._nchw else target.reshape(self._flat.shape)


class BufferRing:
    """A few preallocated buffers handed from one thread to another and back; thread-safe.

    The producer takes a free buffer (:meth:`acquire`), fills it and passes it on; the consumer gives
    it back (:meth:`release`) once done reading. A buffer is never handed out while another holds it,
    so a frame preprocessed ahead cannot overwrite the tensor being inferred.
    """

    def __init__(self, make: Callable[[], np.ndarray], count: int) -> None:
        if count < 1:
            raise ValueError("a ring needs at least one buffer")
        self.buffers = tuple(make() for _ in range(count))
        self._free: "queue.Queue[np.ndarray]" = queue.Queue()
        for buffer in self.buffers:
            self._free.put(buffer)

    def acquire(self, stop: Optional[threading.Event] = None, poll_s: float = 0.1) -> Optional[np.ndarray]:
        """A free buffer, waiting for one; None once ``stop`` is set."""
        while stop is None or not stop.is_set():
            try:
                return self._free.get(timeout=poll_s)
            except queue.Empty:
                continue
        return None

    def release(self, buffer: np.ndarray) -> None:
        """Give a buffer back (the consumer has finished reading it)."""
        if not any(buffer is own for own in self.buffers):
            raise ValueError("release() got a buffer this ring did not hand out")
        self._free.put(buffer)

    @property
    def free(self) -> int:
        """Buffers not handed out now."""
        return self._free.qsize()


def _check_image(image: Any) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        found = (f"{type(image).__name__}" if not isinstance(image, np.ndarray)
                 else f"shape {image.shape} dtype {image.dtype}")
        raise EdgeError(f"expected a BGR uint8 image of shape (H, W, 3), got {found}",
                        fix="pass frames as OpenCV reads them (cv2.imread / VideoCapture.read)", where="preprocess")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise EdgeError("image is empty", fix="check the source delivers frames", where="preprocess")
    return image
