"""The "yolo" decoder: raw YOLO detection heads (YOLOv8 / YOLO11 anchor-free, YOLOv5 / YOLOv7 with objectness).

Two raw layouts, told apart by their shapes (``layout: auto``) or named in the config:

- ``anchor_free`` (YOLOv8, YOLO11; what Ultralytics exports as ``output0``): one output (1, 4+nc, N),
  rows 0-3 = cx, cy, w, h in model-input pixels, rows 4.. = per-class scores, already sigmoid, no
  objectness. The transposed form (1, N, 4+nc) is accepted when the class count is known.
- ``objectness`` (YOLOv5, YOLOv7): (1, N, 5+nc) = cx, cy, w, h, objectness, class probabilities;
  a box's score for a class is ``objectness * probability``.

``auto`` with a known class count (``num_classes``, or the labels) picks the layout whose axis fits;
without one, (1, A, B) with A < B is anchor-free with A-4 classes, otherwise objectness with B-5.

Semantics follow Ultralytics' ``non_max_suppression`` (single label per box): a box keeps its best
class, and survives when that score is strictly greater than the threshold (``conf > conf_thres``,
as Ultralytics); at most ``max_candidates`` best go to NMS; NMS runs in model-input pixels, per class
unless ``class_agnostic``, suppressing IoU > ``iou_threshold``; at most ``max_detections`` stay, best
first. Boxes are then mapped through the frame's :class:`~edge.transform.Transform` (letterbox padding
and scale undone) and clipped to the frame. Rows with a NaN/Inf score or box are dropped.
``class_thresholds`` raises (or lowers) the threshold of single classes, named by label or class id;
the global ``score_threshold`` applies to the others.

Params (the "decoder" object; defaults in brackets)::

    type: "yolo"
    output: model output name [the model's only output]
    layout: "auto" | "anchor_free" | "objectness" ["auto"]
    num_classes: class count [the number of labels; else from the shape]
    score_threshold [0.25], class_thresholds {label or class id: threshold} [none]
    nms: {class_agnostic [false], iou_threshold [0.7], max_detections [300], max_candidates [30000]}
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from edge.decoders.base import FIX_LAYOUT, Decoder, Dim
from edge.decoders.nms import batched_nms
from edge.decoders.params import ParamReader
from edge.results import Detections
from edge.transform import Transform

FIELDS = ("type", "output", "layout", "num_classes", "score_threshold", "class_thresholds", "nms")
NMS_FIELDS = ("class_agnostic", "iou_threshold", "max_detections", "max_candidates")
LAYOUTS = ("auto", "anchor_free", "objectness")
# (classes along rows, i.e. (4+nc, N)?, objectness column?, class count)
Plan = Tuple[bool, bool, int]


def read_class_thresholds(read: ParamReader, labels: Optional[List[str]]) -> Dict[int, float]:
    """``class_thresholds`` as {class id: threshold}; keys are labels or class ids (ints or digit strings)."""
    raw = read.values.get("class_thresholds")
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise read.fail("class_thresholds", "an object {label or class id: threshold}", raw)
    thresholds: Dict[int, float] = {}
    for key, value in raw.items():
        path = f"class_thresholds.{key}"
        class_id: Optional[int] = None
        if labels is not None and isinstance(key, str) and key in labels:
            class_id = labels.index(key)
        elif isinstance(key, int) and not isinstance(key, bool) and key >= 0:
            class_id = key
        elif isinstance(key, str) and key.isdigit():
            class_id = int(key)
        if class_id is None:
            known = "a label of the model or a class id" if labels else "a class id (the model has no labels)"
            raise read.fail(path, f"the key to be {known}", key)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not 0.0 <= float(value) <= 1.0:
            raise read.fail(path, "a threshold in [0, 1]", value)
        thresholds[class_id] = float(value)
    return thresholds


class YoloDecoder(Decoder):
    """Raw YOLO head -> Detections in source pixels (class-aware or agnostic NMS), best first."""

    kind = "yolo"

    def __init__(self, params: Dict[str, Any], *, labels: Optional[List[str]], input_wh: Tuple[int, int],
                 where: str = "") -> None:
        read = ParamReader(params, "decoder", FIELDS, where)
        output: Optional[str] = read.string("output", None)
        self.layout = read.choice("layout", LAYOUTS, "auto")
        self.num_classes: Optional[int] = read.integer("num_classes", None, low=1)
        if labels is not None and self.num_classes is not None and self.num_classes != len(labels):
            raise read.fail("num_classes", f"{len(labels)} (one class per label)", self.num_classes)
        if self.num_classes is None and labels is not None and len(labels):
            self.num_classes = len(labels)
        self.class_thresholds = read_class_thresholds(read, labels)
        nms_params = read.section("nms", NMS_FIELDS, {})
        self.class_agnostic = nms_params.boolean("class_agnostic", False)
        self.iou_threshold = nms_params.number("iou_threshold", 0.7, low=0.0, high=1.0)
        self.max_detections = nms_params.integer("max_detections", 300, low=1)
        self.max_candidates = nms_params.integer("max_candidates", 30000, low=1)
        super().__init__(output_names=() if output is None else (output,),
                         score_threshold=read.number("score_threshold", 0.25, low=0.0, high=1.0),
                         labels=labels, input_wh=input_wh, where=where)
        self._plans: Dict[Tuple[int, int], Plan] = {}

    # Shapes -------------------------------------------------------------------------------------

    def _resolve_output(self, names: Sequence[str]) -> str:
        if self.output_names:
            return self.output_names[0]
        if len(names) != 1:
            found = ", ".join(names) or "none"
            raise self.error(f"the model has {len(names)} outputs ({found}) and the yolo decoder does not say "
                             "which one holds the detections", "set decoder.output to the detection output's name")
        self.output_names = (names[0],)
        return names[0]

    def check_outputs(self, shapes: Dict[str, Sequence[Dim]]) -> None:
        """Raise EdgeError unless the output is (1, 4+nc, N) or (1, N, 4+nc) / (1, N, 5+nc) as configured."""
        name = self._resolve_output(list(shapes))
        shape = self.output_shape(shapes, name, 3)
        if isinstance(shape[1], int) and isinstance(shape[2], int):
            self._thresholds(self._plan(name, (shape[1], shape[2]))[2])  # class_thresholds name real classes

    def _plan(self, name: str, dims: Tuple[int, int]) -> Plan:
        """How to read an output whose dims after the batch are ``dims``; cached per shape."""
        plan = self._plans.get(dims)
        if plan is None:
            plan = self._plans[dims] = self._layout_for(name, dims)
        return plan

    def _layout_for(self, name: str, dims: Tuple[int, int]) -> Plan:
        rows, cols = dims
        nc = self.num_classes
        if nc is None:  # the shape alone decides
            if self.layout == "anchor_free" or (self.layout == "auto" and rows < cols):
                plan = (True, False, rows - 4) if rows <= cols else (False, False, cols - 4)
            else:
                plan = (False, True, cols - 5)
            if plan[2] < 1:
                raise self._layout_error(name, dims, "at least one class score per box")
            return plan
        fits = {"anchor_free": rows == 4 + nc, "objectness": cols == 5 + nc, "anchor_free_t": cols == 4 + nc}
        if self.layout in ("auto", "anchor_free") and fits["anchor_free"]:
            return (True, False, nc)
        if self.layout in ("auto", "objectness") and fits["objectness"]:
            return (False, True, nc)
        if self.layout in ("auto", "anchor_free") and fits["anchor_free_t"]:
            return (False, False, nc)
        if self.layout == "objectness" and (fits["anchor_free"] or fits["anchor_free_t"]):
            raise self.error(f"model output '{name}' has shape {[1, rows, cols]}: an anchor-free head (4+{nc} "
                             "values per box, no objectness), but decoder.layout says objectness",
                             "set decoder.layout to auto (or anchor_free)")
        if self.layout == "anchor_free" and fits["objectness"]:
            raise self.error(f"model output '{name}' has shape {[1, rows, cols]}: a head with objectness "
                             f"(5+{nc} values per box), but decoder.layout says anchor_free",
                             "set decoder.layout to auto (or objectness)")
        raise self._layout_error(name, dims, f"(1, 4+{nc}, N) anchor-free or (1, N, 5+{nc}) with objectness "
                                             f"for {nc} classes")

    def _layout_error(self, name: str, dims: Tuple[int, int], expected: str) -> Exception:
        source = "labels" if self.labels is not None else "decoder.num_classes"
        fix = (f"give one label per class (or set decoder.num_classes to the class count; now from {source}), "
               "and decoder.layout (auto, anchor_free, objectness)")
        if self.num_classes is None:
            fix = FIX_LAYOUT
        return self.shape_error(name, expected, [1, dims[0], dims[1]], fix)

    # Decoding -----------------------------------------------------------------------------------

    def _thresholds(self, num_classes: int) -> Tuple[float, Optional[np.ndarray]]:
        """(lowest threshold for the candidate pre-filter, per-class thresholds or None)."""
        if not self.class_thresholds:
            return self.score_threshold, None
        per_class = np.full(num_classes, self.score_threshold, dtype=np.float64)
        for class_id, value in self.class_thresholds.items():
            if class_id >= num_classes:
                raise self.error(f"decoder.class_thresholds names class {class_id}, but the model has "
                                 f"{num_classes} classes", f"use class ids 0..{num_classes - 1} or labels")
            per_class[class_id] = value
        return float(per_class.min()), per_class

    def __call__(self, outputs: Dict[str, np.ndarray], transform: Transform) -> Detections:
        """Threshold, NMS and map batch item 0 to source pixels: Detections best first."""
        name = self._resolve_output(list(outputs))
        raw = self.batch_item(outputs, name, 3)
        rows_first, objectness, nc = self._plan(name, (int(raw.shape[0]), int(raw.shape[1])))
        low, per_class = self._thresholds(nc)
        if objectness:
            boxes_cxcywh, scores, class_ids = _objectness_candidates(raw, nc, low)
        else:
            boxes_cxcywh, scores, class_ids = _anchor_free_candidates(raw, nc, low, rows_first)
        threshold = low if per_class is None else per_class[class_ids]
        valid = (scores > threshold) & np.isfinite(scores) & np.isfinite(boxes_cxcywh).all(axis=1)
        if not valid.all():
            boxes_cxcywh, scores, class_ids = boxes_cxcywh[valid], scores[valid], class_ids[valid]
        if len(scores) > self.max_candidates:
            best = np.argsort(-scores, kind="stable")[: self.max_candidates]
            boxes_cxcywh, scores, class_ids = boxes_cxcywh[best], scores[best], class_ids[best]
        boxes_xyxy = cxcywh_to_xyxy(boxes_cxcywh)
        kept = batched_nms(boxes_xyxy, scores, None if self.class_agnostic else class_ids, self.iou_threshold,
                           self.max_detections)
        return Detections(transform.to_source_boxes(boxes_xyxy[kept]), scores[kept], class_ids[kept], None,
                          self.labels)


def cxcywh_to_xyxy(boxes_cxcywh: np.ndarray) -> np.ndarray:
    """(N, 4) centre x, centre y, width, height -> (N, 4) x1 y1 x2 y2, float32."""
    boxes = np.asarray(boxes_cxcywh, dtype=np.float32).reshape(-1, 4)
    half_wh = boxes[:, 2:] / 2
    return np.concatenate([boxes[:, :2] - half_wh, boxes[:, :2] + half_wh], axis=1)


def _anchor_free_candidates(raw: np.ndarray, nc: int, low: float,
                            rows_first: bool) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes (M, 4) cxcywh, best-class scores (M,) and class ids (M,) of the boxes whose best score > low.

    raw: (4+nc, N) when ``rows_first`` (Ultralytics' export), else (N, 4+nc). One max over the class
    axis finds the candidates; argmax and gathers touch the candidates only.
    """
    classes = raw[4:4 + nc] if rows_first else raw[:, 4:4 + nc].T
    best = classes.max(axis=0)
    candidates = np.flatnonzero(best > low)  # NaN compares False: dropped here
    class_ids = classes[:, candidates].argmax(axis=0).astype(np.int64)
    boxes = raw[:4, candidates].T if rows_first else raw[candidates, :4]
    return boxes.astype(np.float32), best[candidates].astype(np.float32), class_ids


def _objectness_candidates(raw: np.ndarray, nc: int, low: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Like :func:`_anchor_free_candidates` for (N, 5+nc) rows; score = objectness x class probability.

    Boxes whose objectness is not above ``low`` cannot score above it (probabilities are <= 1).
    """
    candidates = np.flatnonzero(raw[:, 4] > low)
    rows = raw[candidates].astype(np.float32)
    scores_by_class = rows[:, 5:5 + nc] * rows[:, 4:5]
    class_ids = scores_by_class.argmax(axis=1).astype(np.int64)
    scores = scores_by_class[np.arange(len(rows)), class_ids]
    return rows[:, :4], scores, class_ids
