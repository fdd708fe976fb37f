"""The "landmarks" decoder: a landmark regressor's K x (x, y[, z]) -> Keypoints in source-frame pixels.

For models that see one object (a hand, a face) filling their input, as MediaPipe's hand, face and
iris landmark models do: one output of K * dims values (any shape after the batch: (1, 63),
(1, 1, 1, 1404)), x and y in model-input pixels (or in [0, 1] of the input with ``normalized``),
z a relative depth in the same units as x. An optional presence output (one value) gives the
instance score; below the threshold the result is empty.

Params (the "decoder" object; defaults in brackets)::

    type: "landmarks"
    output: landmark output name [the model's only output]
    num_keypoints: K (required)
    dims: 2 | 3 [the output size / K]
    normalized [false]: coordinates in [0, 1] of the input instead of input pixels
    presence_output: the presence score output's name [none: the landmarks are always reported]
    presence_activation: "none" | "sigmoid" ["none": the output is a probability already]
    presence_threshold [0.5] (``--threshold`` overrides it)
    keypoint_names: K names [from a named skeleton]
    skeleton: a topology name (coco17, mediapipe_hand) or [[i, j], ...] [none]
"""

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edge.decoders.activations import sigmoid
from edge.decoders.base import Decoder, Dim
from edge.decoders.params import ParamReader
from edge.decoders.skeletons import read_keypoint_fields
from edge.results import Keypoints
from edge.transform import Transform

FIELDS = ("type", "output", "num_keypoints", "dims", "normalized", "presence_output", "presence_activation",
          "presence_threshold", "keypoint_names", "skeleton")
PRESENCE_ACTIVATIONS = ("none", "sigmoid")


class LandmarksDecoder(Decoder):
    """K landmarks of one object -> Keypoints (one instance, or none when its presence is too low)."""

    kind = "landmarks"
    task = "keypoints"

    def __init__(self, params: Dict[str, Any], *, labels: Optional[List[str]], input_wh: Tuple[int, int],
                 where: str = "") -> None:
        read = ParamReader(params, "decoder", FIELDS, where)
        output: Optional[str] = read.string("output", None)
        self.num_keypoints = read.integer("num_keypoints", low=1)
        self.dims: Optional[int] = read.integer("dims", None, low=2)
        if self.dims is not None and self.dims not in (2, 3):
            raise read.fail("dims", "2 (x, y) or 3 (x, y, z)", self.dims)
        self.normalized = read.boolean("normalized", False)
        self.presence_output: Optional[str] = read.string("presence_output", None)
        self.presence_activation = read.choice("presence_activation", PRESENCE_ACTIVATIONS, "none")
        threshold = read.number("presence_threshold", 0.5, low=0.0, high=1.0)
        self.keypoint_names, self.skeleton = read_keypoint_fields(read, self.num_keypoints)
        names = () if output is None else (output,) + ((self.presence_output,) if self.presence_output else ())
        super().__init__(output_names=names, score_threshold=threshold, labels=labels, input_wh=input_wh,
                         where=where)

    def _resolve_output(self, names: Sequence[str]) -> str:
        if self.output_names:
            return self.output_names[0]
        candidates = [n for n in names if n != self.presence_output]
        if len(candidates) != 1:
            found = ", ".join(names) or "none"
            raise self.error(f"the model has {len(names)} outputs ({found}) and the landmarks decoder does not say "
                             "which one holds the landmarks", "set decoder.output to the landmark output's name")
        self.output_names = (candidates[0],) + ((self.presence_output,) if self.presence_output else ())
        return candidates[0]

    def check_outputs(self, shapes: Dict[str, Sequence[Dim]]) -> None:
        """Raise EdgeError unless the output holds K x dims values (and the presence output one value)."""
        name = self._resolve_output(list(shapes))
        if name not in shapes:
            self.output_shape(shapes, name, 2)  # raises: names the missing output
        shape = tuple(shapes[name])
        self.output_shape(shapes, name, max(2, len(shape)))
        if all(isinstance(d, int) for d in shape[1:]):
            self._check_size(name, int(np.prod(shape[1:])), list(shape))
        if self.presence_output is not None:
            presence = self.output_shape(shapes, self.presence_output, max(2, len(shapes.get(self.presence_output,
                                                                                              ()))))
            if all(isinstance(d, int) for d in presence[1:]) and int(np.prod(presence[1:])) != 1:
                raise self.shape_error(self.presence_output, "one presence value (1, 1)", list(presence),
                                       "set decoder.presence_output to the model's presence (hand or face flag) output")

    def _check_size(self, name: str, size: int, shape: List[Any]) -> int:
        """The dims per keypoint for an output of ``size`` values; EdgeError when K does not divide it."""
        k = self.num_keypoints
        dims = self.dims if self.dims is not None else (size // k if size % k == 0 else 0)
        if size != k * dims or dims not in (2, 3):
            expected = (f"{k} x {self.dims} = {k * self.dims} values" if self.dims is not None
                        else f"{k} x 2 or {k} x 3 values ({k} keypoints)")
            fix = ("set decoder.num_keypoints (and dims) to what the model gives, e.g. 21 x 3 = 63 for MediaPipe "
                   "hands, 468 x 3 = 1404 for MediaPipe faces")
            raise self.shape_error(name, expected, shape, fix)
        return dims

    def __call__(self, outputs: Dict[str, np.ndarray], transform: Transform) -> Keypoints:
        """Landmarks of batch item 0 in source-frame pixels; empty when the presence is at or below threshold."""
        name = self._resolve_output(list(outputs))
        if name not in outputs:
            self.batch_item(outputs, name, 2)  # raises: names the missing output
        raw = np.asarray(outputs[name])
        item = self.batch_item(outputs, name, max(2, raw.ndim)).reshape(-1)
        dims = self._check_size(name, item.size, list(raw.shape))
        values = item.astype(np.float32).reshape(self.num_keypoints, dims)
        score = self._presence(outputs)
        if self.normalized:  # x and z in input widths, y in input heights
            values *= np.float32(self.input_wh[0])
            values[:, 1] *= np.float32(self.input_wh[1] / self.input_wh[0])
        points_xy = transform.to_source_xy(values[:, :2])[None]
        points_z = values[None, :, 2] * np.float32(transform.scale_xy[0]) if dims == 3 else None
        result = Keypoints(points_xy, [score], points_z=points_z, labels=self.labels,
                           keypoint_names=self.keypoint_names, skeleton=self.skeleton)
        return result if score > self.score_threshold or self.presence_output is None else result[[]]

    def _presence(self, outputs: Dict[str, np.ndarray]) -> float:
        """The instance score: the presence output (activated), or 1 without one."""
        if self.presence_output is None:
            return 1.0
        raw = np.asarray(outputs.get(self.presence_output, np.zeros(0)))
        if self.presence_output not in outputs or raw.size != 1:
            found = list(raw.shape) if self.presence_output in outputs else "missing"
            raise self.error(f"presence output '{self.presence_output}' is {found}, not one value",
                             "set decoder.presence_output to the model's presence (hand or face flag) output")
        value = float(raw.reshape(-1)[0])
        if self.presence_activation == "sigmoid":
            return float(sigmoid(value))
        if not 0.0 <= value <= 1.0:
            raise self.error(f"presence output '{self.presence_output}' gave {value:.4g}, not a probability in [0, 1]",
                             "set decoder.presence_activation to sigmoid (the model outputs a logit)")
        return value
