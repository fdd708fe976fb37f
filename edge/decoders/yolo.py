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

Pose and instance-segmentation heads (YOLOv8 / YOLO11 ``-pose`` and ``-seg``) carry extra values per box
after the class scores; the same thresholds and NMS pick the boxes, then:

- ``kpt_shape: [K, 3]`` (or ``[K, 2]``): K x (x, y, visibility) in model-input pixels, visibility already
  a probability (Ultralytics' export applies the sigmoid). The decoder's task becomes ``keypoints``: the
  result is :class:`~edge.results.Keypoints` with the boxes.
- ``masks: {proto_output, num_masks}``: ``num_masks`` coefficients per box and a second output of
  prototypes (1, num_masks, H/4, W/4). Each mask is ``sigmoid(coefficients @ prototypes) > 0.5`` (a logit
  > 0), resampled bilinearly from prototype resolution straight into the frame (one warpAffine per box,
  over the box only) and cropped to the box: Ultralytics' ``process_mask_native`` (its ``retina_masks``
  path) without its rounding of the letterbox padding to whole prototype pixels. Instances whose mask is
  empty are dropped, as Ultralytics does. The task becomes ``segment``: the result is
  :class:`~edge.results.Segmentation` with instances. Keypoints are clipped to the frame, as Ultralytics
  clips them.

Params (the "decoder" object; defaults in brackets)::

    type: "yolo"
    output: model output name [the model's only output]
    layout: "auto" | "anchor_free" | "objectness" ["auto"]
    num_classes: class count [the number of labels; else from the shape]
    score_threshold [0.25], class_thresholds {label or class id: threshold} [none]
    nms: {class_agnostic [false], iou_threshold [0.7], max_detections [300], max_candidates [30000]}
    kpt_shape: [K, 2 | 3] [none]; keypoint_names [from a named skeleton]; skeleton: a name or [[i, j], ...]
    masks: {proto_output (required), num_masks [32]} [none]
"""

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from edge.decoders.base import FIX_LAYOUT, Decoder, Dim
from edge.decoders.masks import box_regions, warp_to_frame
from edge.decoders.nms import batched_nms
from edge.decoders.params import ParamReader
from edge.decoders.skeletons import read_keypoint_fields
from edge.results import Detections, Keypoints, Segmentation
from edge.transform import Transform

FIELDS = ("type", "output", "layout", "num_classes", "score_threshold", "class_thresholds", "nms", "kpt_shape",
          "keypoint_names", "skeleton", "masks")
NMS_FIELDS = ("class_agnostic", "iou_threshold", "max_detections", "max_candidates")
MASK_FIELDS = ("proto_output", "num_masks")
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
        self._read_extras(read)
        super().__init__(output_names=() if output is None else (output,),
                         score_threshold=read.number("score_threshold", 0.25, low=0.0, high=1.0),
                         labels=labels, input_wh=input_wh, where=where)
        self._plans: Dict[Tuple[int, int], Plan] = {}

    def _read_extras(self, read: ParamReader) -> None:
        """kpt_shape (pose) or masks (instance segmentation): the values after the class scores, and the task."""
        self.kpt_shape: Optional[Tuple[int, int]] = None
        self.proto_output: Optional[str] = None
        self.num_masks = 0
        self.keypoint_names: Optional[List[str]] = None
        self.skeleton: Optional[List[Tuple[int, int]]] = None
        if read.has("kpt_shape"):
            kpt = read.integers("kpt_shape", low=1)
            if len(kpt) != 2 or kpt[1] not in (2, 3):
                raise read.fail("kpt_shape", "[K, 2] or [K, 3] (keypoints, then x y or x y visibility)", list(kpt))
            self.kpt_shape = (kpt[0], kpt[1])
            self.keypoint_names, self.skeleton = read_keypoint_fields(read, kpt[0])
        elif read.has("keypoint_names") or read.has("skeleton"):
            name = "keypoint_names" if read.has("keypoint_names") else "skeleton"
            raise read.fail(name, "no value unless decoder.kpt_shape is set (a pose head)", read.values[name])
        if read.has("masks"):
            if self.kpt_shape is not None:
                raise read.fail("masks", "no value with kpt_shape (a head has keypoints or masks, not both)",
                                read.values["masks"])
            masks = read.section("masks", MASK_FIELDS)
            self.proto_output = masks.string("proto_output")
            self.num_masks = masks.integer("num_masks", 32, low=1)
        self.task = "keypoints" if self.kpt_shape is not None else "segment" if self.proto_output else "detect"

    @property
    def extra_values(self) -> int:
        """Values per box after the class scores: K x dims keypoint values, or mask coefficients."""
        return self.kpt_shape[0] * self.kpt_shape[1] if self.kpt_shape is not None else self.num_masks

    # Shapes -------------------------------------------------------------------------------------

    def _resolve_output(self, names: Sequence[str]) -> str:
        if self.output_names:
            return self.output_names[0]
        candidates = [n for n in names if n != self.proto_output]
        if len(candidates) != 1:
            found = ", ".join(names) or "none"
            raise self.error(f"the model has {len(names)} outputs ({found}) and the yolo decoder does not say "
                             "which one holds the detections", "set decoder.output to the detection output's name")
        self.output_names = (candidates[0],) + ((self.proto_output,) if self.proto_output else ())
        return candidates[0]

    def check_outputs(self, shapes: Dict[str, Sequence[Dim]]) -> None:
        """Raise EdgeError unless the output is (1, 4+nc, N) or (1, N, 4+nc) / (1, N, 5+nc) as configured."""
        name = self._resolve_output(list(shapes))
        shape = self.output_shape(shapes, name, 3)
        if isinstance(shape[1], int) and isinstance(shape[2], int):
            self._thresholds(self._plan(name, (shape[1], shape[2]))[2])  # class_thresholds name real classes
        if self.proto_output is not None:
            self._check_protos(self.output_shape(shapes, self.proto_output, 4))

    def _check_protos(self, shape: Sequence[Dim]) -> None:
        """Prototypes must be (1, num_masks, h, w) with h x w of the input's aspect ratio."""
        in_w, in_h = self.input_wh
        channels, height, width = shape[1], shape[2], shape[3]
        bad_channels = isinstance(channels, int) and channels != self.num_masks
        bad_size = isinstance(height, int) and isinstance(width, int) and (
            height < 2 or width < 2 or abs(width * in_h / in_w - height) > 1.0)
        if bad_channels or bad_size:
            raise self.shape_error(str(self.proto_output), f"mask prototypes (1, {self.num_masks}, H, W) covering the "
                                   f"{in_w}x{in_h} input", list(shape),
                                   "set decoder.masks.proto_output to the prototype output (Ultralytics: output1) and "
                                   "decoder.masks.num_masks to its channel count")

    def _plan(self, name: str, dims: Tuple[int, int]) -> Plan:
        """How to read an output whose dims after the batch are ``dims``; cached per shape."""
        plan = self._plans.get(dims)
        if plan is None:
            plan = self._plans[dims] = self._layout_for(name, dims)
        return plan

    def _layout_for(self, name: str, dims: Tuple[int, int]) -> Plan:
        rows, cols = dims
        nc, extra = self.num_classes, self.extra_values
        more = f"+{extra}" if extra else ""
        if nc is None:  # the shape alone decides
            if self.layout == "anchor_free" or (self.layout == "auto" and rows < cols):
                plan = (True, False, rows - 4 - extra) if rows <= cols else (False, False, cols - 4 - extra)
            else:
                plan = (False, True, cols - 5 - extra)
            if plan[2] < 1:
                raise self._layout_error(name, dims, f"at least one class score per box (4+classes{more} values)")
            return plan
        fits = {"anchor_free": rows == 4 + nc + extra, "objectness": cols == 5 + nc + extra,
                "anchor_free_t": cols == 4 + nc + extra}
        if self.layout in ("auto", "anchor_free") and fits["anchor_free"]:
            return (True, False, nc)
        if self.layout in ("auto", "objectness") and fits["objectness"]:
            return (False, True, nc)
        if self.layout in ("auto", "anchor_free") and fits["anchor_free_t"]:
            return (False, False, nc)
        if self.layout == "objectness" and (fits["anchor_free"] or fits["anchor_free_t"]):
            raise self.error(f"model output '{name}' has shape {[1, rows, cols]}: an anchor-free head (4+{nc}{more} "
                             "values per box, no objectness), but decoder.layout says objectness",
                             "set decoder.layout to auto (or anchor_free)")
        if self.layout == "anchor_free" and fits["objectness"]:
            raise self.error(f"model output '{name}' has shape {[1, rows, cols]}: a head with objectness "
                             f"(5+{nc}{more} values per box), but decoder.layout says anchor_free",
                             "set decoder.layout to auto (or objectness)")
        raise self._layout_error(name, dims, f"(1, 4+{nc}{more}, N) anchor-free or (1, N, 5+{nc}{more}) with "
                                             f"objectness for {nc} classes{self._extra_text()}")

    def _extra_text(self) -> str:
        if self.kpt_shape is not None:
            k, dims = self.kpt_shape
            return f" and {k} keypoints x {dims} (kpt_shape)"
        return f" and {self.num_masks} mask coefficients" if self.num_masks else ""

    def _layout_error(self, name: str, dims: Tuple[int, int], expected: str) -> Exception:
        source = "labels" if self.labels is not None else "decoder.num_classes"
        fix = (f"give one label per class (or set decoder.num_classes to the class count; now from {source}), "
               "and decoder.layout (auto, anchor_free, objectness)")
        if self.kpt_shape is not None:
            fix += ", and decoder.kpt_shape to the head's [keypoints, values per keypoint]"
        elif self.num_masks:
            fix += ", and decoder.masks.num_masks to the head's coefficient count"
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

    def __call__(self, outputs: Dict[str, np.ndarray], transform: Transform) -> Any:
        """Threshold, NMS and map batch item 0 to source pixels: Detections best first (Keypoints for a pose
        head, Segmentation for a mask head)."""
        name = self._resolve_output(list(outputs))
        raw = self.batch_item(outputs, name, 3)
        rows_first, objectness, nc = self._plan(name, (int(raw.shape[0]), int(raw.shape[1])))
        low, per_class = self._thresholds(nc)
        if objectness:
            rows, scores, class_ids = _objectness_candidates(raw, nc, low)
        else:
            rows, scores, class_ids = _anchor_free_candidates(raw, nc, low, rows_first)
        boxes_cxcywh = (raw[:4, rows].T if rows_first else raw[rows, :4]).astype(np.float32)
        threshold = low if per_class is None else per_class[class_ids]
        valid = (scores > threshold) & np.isfinite(scores) & np.isfinite(boxes_cxcywh).all(axis=1)
        if not valid.all():
            rows, boxes_cxcywh, scores, class_ids = rows[valid], boxes_cxcywh[valid], scores[valid], class_ids[valid]
        if len(scores) > self.max_candidates:
            best = np.argsort(-scores, kind="stable")[: self.max_candidates]
            rows, boxes_cxcywh, scores, class_ids = rows[best], boxes_cxcywh[best], scores[best], class_ids[best]
        boxes_xyxy = cxcywh_to_xyxy(boxes_cxcywh)
        kept = batched_nms(boxes_xyxy, scores, None if self.class_agnostic else class_ids, self.iou_threshold,
                           self.max_detections)
        detections = Detections(transform.to_source_boxes(boxes_xyxy[kept]), scores[kept], class_ids[kept], None,
                                self.labels)
        if not self.extra_values:
            return detections
        first = (4 if rows_first or not objectness else 5) + nc
        extras = (raw[first:first + self.extra_values, rows[kept]].T if rows_first
                  else raw[rows[kept], first:first + self.extra_values]).astype(np.float32)
        if self.kpt_shape is not None:
            return self._keypoints(detections, extras, transform)
        return self._segmentation(detections, extras, outputs, transform)

    def _keypoints(self, detections: Detections, extras: np.ndarray, transform: Transform) -> Keypoints:
        """(N, K*dims) keypoint values in input pixels -> Keypoints with the boxes, in source pixels."""
        k, dims = self.kpt_shape  # type: ignore[misc]
        values = extras.reshape(len(detections), k, dims)
        points_xy = transform.to_source_xy(values[:, :, :2])
        width, height = transform.source_wh  # clipped to the frame, as Ultralytics' predictor does
        np.clip(points_xy[..., 0], 0, width, out=points_xy[..., 0])
        np.clip(points_xy[..., 1], 0, height, out=points_xy[..., 1])
        return Keypoints(points_xy, detections.scores,
                         point_scores=values[:, :, 2] if dims == 3 else None, boxes_xyxy=detections.boxes_xyxy,
                         class_ids=detections.class_ids, labels=self.labels, keypoint_names=self.keypoint_names,
                         skeleton=self.skeleton)

    def _segmentation(self, detections: Detections, coefficients: np.ndarray, outputs: Dict[str, np.ndarray],
                      transform: Transform) -> Segmentation:
        """Instance masks: (N, num_masks) coefficients x prototypes, each warped into its box in the frame."""
        protos = self.batch_item(outputs, str(self.proto_output), 4)
        self._check_protos((1,) + tuple(protos.shape))
        channels, height, width = protos.shape
        width_px, height_px = transform.source_wh
        masks = np.zeros((len(detections), height_px, width_px), bool)  # pages untouched outside the boxes
        kept = np.zeros(len(detections), bool)  # as Ultralytics: an instance without pixels is dropped
        if len(detections):
            logits = (coefficients @ protos.reshape(channels, -1).astype(np.float32)).reshape(-1, height, width)
            for i, (x, y, w, h) in enumerate(box_regions(detections.boxes_xyxy, (width_px, height_px))):
                if w and h:  # sigmoid > 0.5 is logit > 0; outside the prototypes counts as 0 (not foreground)
                    region = warp_to_frame(logits[i], transform, nearest=False, region_xywh=(x, y, w, h)) > 0
                    masks[i, y:y + h, x:x + w] = region
                    kept[i] = region.any()
        if not kept.all():
            detections, masks = detections[kept], masks[kept]
        return Segmentation(instances=detections, masks=masks, labels=self.labels)


def cxcywh_to_xyxy(boxes_cxcywh: np.ndarray) -> np.ndarray:
    """(N, 4) centre x, centre y, width, height -> (N, 4) x1 y1 x2 y2, float32."""
    boxes = np.asarray(boxes_cxcywh, dtype=np.float32).reshape(-1, 4)
    half_wh = boxes[:, 2:] / 2
    return np.concatenate([boxes[:, :2] - half_wh, boxes[:, :2] + half_wh], axis=1)


def _anchor_free_candidates(raw: np.ndarray, nc: int, low: float,
                            rows_first: bool) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Box indices (M,), best-class scores (M,) and class ids (M,) of the boxes whose best score > low.

    raw: (4+nc, N) when ``rows_first`` (Ultralytics' export), else (N, 4+nc). One max over the class
    axis finds the candidates; argmax and gathers touch the candidates only.
    """
    classes = raw[4:4 + nc] if rows_first else raw[:, 4:4 + nc].T
    best = classes.max(axis=0)
    candidates = np.flatnonzero(best > low)  # NaN compares False: dropped here
    class_ids = classes[:, candidates].argmax(axis=0).astype(np.int64)
    return candidates, best[candidates].astype(np.float32), class_ids


def _objectness_candidates(raw: np.ndarray, nc: int, low: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Like :func:`_anchor_free_candidates` for (N, 5+nc) rows; score = objectness x class probability.

    Boxes whose objectness is not above ``low`` cannot score above it (probabilities are <= 1).
    """
    candidates = np.flatnonzero(raw[:, 4] > low)
    rows = raw[candidates].astype(np.float32)
    scores_by_class = rows[:, 5:5 + nc] * rows[:, 4:5]
    class_ids = scores_by_class.argmax(axis=1).astype(np.int64)
    scores = scores_by_class[np.arange(len(rows)), class_ids]
    return candidates, scores, class_ids
