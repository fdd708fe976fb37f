"""The "segment" decoder: a per-pixel score map -> a class map in source-frame pixels (semantic segmentation).

The output is (1, C, H, W) or (1, H, W, C) (``layout: auto`` picks the reading whose H x W has the
input's aspect ratio, and with both fitting the one with fewer channels), at the input's resolution
or a coarser one. C > 1: per-class scores, the class map is their argmax (softmax and sigmoid do not
change it), taken at model resolution and mapped with nearest-neighbour. C = 1: one foreground channel,
mapped bilinearly and thresholded: ``sigmoid(x) > mask_threshold`` for logits, ``x > mask_threshold``
for probabilities (``activation: none``). Frame pixels the model did not see (outside a centre crop)
are class 0.

Params (the "decoder" object; defaults in brackets)::

    type: "segment"
    output: model output name [the model's only output]
    layout: "auto" | "NCHW" | "NHWC" ["auto"]
    activation: "auto" | "softmax" | "sigmoid" | "none" ["auto": argmax for C > 1, sigmoid for C = 1]
    mask_threshold [0.5]: foreground probability in (0, 1] for one-channel models

``score_threshold`` (``--threshold``) has no effect on class maps.
"""

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edge.decoders.base import Decoder, Dim
from edge.decoders.masks import warp_to_frame
from edge.decoders.params import ParamReader
from edge.results import Segmentation
from edge.transform import Transform

FIELDS = ("type", "output", "layout", "activation", "mask_threshold")
LAYOUTS = ("auto", "NCHW", "NHWC")
ACTIVATIONS = ("auto", "softmax", "sigmoid", "none")
FIX_MAP = ("use a segmentation model (a (1, C, H, W) or (1, H, W, C) score map), or a detection/classify decoder "
           "for this model")
# (channels last?, channels, map height, map width)
Plan = Tuple[bool, int, int, int]


class SegmentDecoder(Decoder):
    """Score map -> Segmentation with a frame-sized ``class_map``."""

    kind = "segment"
    task = "segment"

    def __init__(self, params: Dict[str, Any], *, labels: Optional[List[str]], input_wh: Tuple[int, int],
                 where: str = "") -> None:
        read = ParamReader(params, "decoder", FIELDS, where)
        output: Optional[str] = read.string("output", None)
        self.layout = read.choice("layout", LAYOUTS, "auto")
        self.activation = read.choice("activation", ACTIVATIONS, "auto")
        self.mask_threshold = read.number("mask_threshold", 0.5, low=0.0, high=1.0, low_open=True)
        super().__init__(output_names=() if output is None else (output,), score_threshold=0.0, labels=labels,
                         input_wh=input_wh, where=where)
        self._plans: Dict[Tuple[int, ...], Plan] = {}

    def _resolve_output(self, names: Sequence[str]) -> str:
        if self.output_names:
            return self.output_names[0]
        if len(names) != 1:
            found = ", ".join(names) or "none"
            raise self.error(f"the model has {len(names)} outputs ({found}) and the segment decoder does not say "
                             "which one holds the score map", "set decoder.output to the score map's name")
        self.output_names = (names[0],)
        return names[0]

    def check_outputs(self, shapes: Dict[str, Sequence[Dim]]) -> None:
        """Raise EdgeError unless the output is a 4-D score map with the input's aspect ratio (and C = labels)."""
        name = self._resolve_output(list(shapes))
        shape = self.output_shape(shapes, name, 4)
        if all(isinstance(d, int) for d in shape[1:]):
            self._plan(name, tuple(int(d) for d in shape[1:]))

    def _plan(self, name: str, dims: Tuple[int, ...]) -> Plan:
        plan = self._plans.get(dims)
        if plan is None:
            plan = self._plans[dims] = self._layout_for(name, dims)
        return plan

    def _layout_for(self, name: str, dims: Tuple[int, ...]) -> Plan:
        readings = {"NCHW": (False, dims[0], dims[1], dims[2]), "NHWC": (True, dims[2], dims[0], dims[1])}
        fits = [layout for layout in ("NCHW", "NHWC") if self._aspect_fits(*readings[layout][2:])]
        if self.layout != "auto":
            if self.layout not in fits:
                raise self._map_error(name, dims, f"a {self.layout} score map whose H x W has the input's aspect "
                                                  f"ratio {self.input_wh[0]}x{self.input_wh[1]}")
            plan = readings[self.layout]
        elif fits:
            plan = min((readings[layout] for layout in fits), key=lambda reading: reading[1])
        else:
            raise self._map_error(name, dims, f"(1, C, H, W) or (1, H, W, C) with H x W of the input's aspect ratio "
                                              f"{self.input_wh[0]}x{self.input_wh[1]}")
        channels = plan[1]
        if self.labels is not None and len(self.labels) != max(2, channels):
            need = max(2, channels)
            what = (f"the model has {len(self.labels)} labels but output '{name}' {list((1,) + dims)} gives "
                    f"{need} classes" + (" (background 0 and foreground 1)" if channels == 1 else ""))
            raise self.error(what, f"give exactly {need} labels, one per class, in class-id order")
        if channels == 1 and self.activation == "softmax":
            raise self.error(f"decoder.activation is softmax but output '{name}' has one channel (softmax of one "
                             "value is always 1)", "set decoder.activation to sigmoid (logits) or none (probabilities)")
        return plan

    def _aspect_fits(self, height: int, width: int) -> bool:
        """A map of height x width (at least 2 x 2) covers the input with square-ish cells (1 pixel of rounding)."""
        in_w, in_h = self.input_wh
        return height >= 2 and width >= 2 and abs(width * in_h / in_w - height) <= 1.0

    def _map_error(self, name: str, dims: Tuple[int, ...], expected: str) -> Exception:
        return self.shape_error(name, expected, [1] + list(dims), FIX_MAP)

    def __call__(self, outputs: Dict[str, np.ndarray], transform: Transform) -> Segmentation:
        """Class map of batch item 0 in source-frame pixels."""
        name = self._resolve_output(list(outputs))
        raw = self.batch_item(outputs, name, 4)
        channels_last, channels, _, _ = self._plan(name, tuple(int(d) for d in raw.shape))
        if channels > 1:
            class_ids = np.argmax(raw, axis=2 if channels_last else 0)
            small = class_ids.astype(np.uint8 if channels <= 256 else np.uint16)  # warpAffine has no int32/int64
            class_map = warp_to_frame(small, transform, nearest=True)
        else:
            plane = np.ascontiguousarray(raw[:, :, 0] if channels_last else raw[0], dtype=np.float32)
            threshold = self._plane_threshold()
            # Outside the map counts as exactly the threshold: never foreground, and a neutral neighbour
            # for the bilinear weights at the map's edge (0 would be a logit of probability 0.5).
            border = float(np.clip(threshold, -1e4, 1e4))
            class_map = warp_to_frame(plane, transform, nearest=False, border_value=border) > threshold
        return Segmentation(class_map=class_map.astype(np.int32), labels=self.labels)

    def _plane_threshold(self) -> float:
        """The threshold on the map's own values: the probability, or its logit for sigmoid outputs."""
        if self.activation == "none":
            return self.mask_threshold
        if self.mask_threshold >= 1.0:
            return math.inf
        return math.log(self.mask_threshold / (1.0 - self.mask_threshold))
