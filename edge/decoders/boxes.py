"""The "boxes" decoder: heads whose boxes are already decoded (and usually already through NMS).

Covers Ultralytics ``nms=True`` exports and YOLOv10 / YOLO26 end-to-end heads (one (1, K, 6) output:
x1 y1 x2 y2 score class), torchvision detection exports (``boxes`` (K, 4) xyxy, ``scores`` (K,),
``labels`` (K,); no batch axis), the TF Object Detection API (``detection_boxes`` (1, N, 4) normalised
yxyx, ``detection_scores``, ``detection_classes`` 1-based, ``num_detections``) and pytorch-ssd /
jetson-inference SSD-Mobilenet (``scores`` (1, N, C) softmax with background class 0, ``boxes``
(1, N, 4) normalised xyxy).

Per-box scores: a box keeps its class and score. Per-class scores (K, C): every (box, class) pair
scoring above the threshold is a candidate (multi-label, as pytorch-ssd's predictor), the
``background_class`` column excepted, and NMS defaults to per class. A row survives when its score is
strictly greater than ``score_threshold`` (as Ultralytics' ``conf > conf_thres``); zero-padded rows of
fixed-size heads therefore drop out at any threshold. Rows with a NaN/Inf score, box or class, or a
negative class id (after ``class_offset``) are dropped. Boxes are mapped to source pixels through the
frame's :class:`~edge.transform.Transform` and clipped to the frame.

Params (the "decoder" object; defaults in brackets)::

    type: "boxes"
    output: one combined (1, K, 6) output -- or separate outputs:
    boxes_output: (1, K, 4) or (K, 4)
    scores_output: (1, K) / (K,) one score per box, or (1, K, C) / (K, C) per-class scores
    classes_output: (1, K) / (K,) class ids, int or float [none: class 0, or the best column]
    count_output: (1,) number of valid rows [none: all K]
    box_format: "xyxy" | "xywh" | "cxcywh" | "yxyx" ["xyxy"]; xywh is the top-left corner + size
    normalized [false]: true when coordinates are fractions of the model input width / height
    class_offset [0]: subtracted from class ids (the TF OD API counts from 1)
    background_class [none]: per-class scores: this column is never a detection (pytorch-ssd: 0)
    score_threshold [0.5]
    nms: {method: "none" | "class" | "agnostic" ["none"; "class" for per-class scores],
          iou_threshold [0.5], max_detections [300]}
"""

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edge.decoders.base import Decoder, Dim
from edge.decoders.nms import batched_nms
from edge.decoders.params import ParamReader
from edge.decoders.yolo import cxcywh_to_xyxy
from edge.results import Detections
from edge.transform import Transform

FIELDS = ("type", "output", "boxes_output", "scores_output", "classes_output", "count_output", "box_format",
          "normalized", "class_offset", "background_class", "score_threshold", "nms")
NMS_FIELDS = ("method", "iou_threshold", "max_detections")
NMS_METHODS = ("none", "class", "agnostic")
BOX_FORMATS = ("xyxy", "xywh", "cxcywh", "yxyx")
FIX_OUTPUTS = "check the decoder's output names and box_format against the model's outputs"


class BoxesDecoder(Decoder):
    """Decoded boxes + scores (+ classes, + count) -> Detections in source pixels, best first."""

    kind = "boxes"

    def __init__(self, params: Dict[str, Any], *, labels: Optional[List[str]], input_wh: Tuple[int, int],
                 where: str = "") -> None:
        read = ParamReader(params, "decoder", FIELDS, where)
        self.output: Optional[str] = read.string("output", None)
        self.boxes_output: Optional[str] = read.string("boxes_output", None)
        self.scores_output: Optional[str] = read.string("scores_output", None)
        self.classes_output: Optional[str] = read.string("classes_output", None)
        self.count_output: Optional[str] = read.string("count_output", None)
        separate = [n for n in (self.boxes_output, self.scores_output, self.classes_output, self.count_output) if n]
        if self.output is not None and separate:
            raise read.fail("output", "either 'output' (one (1, K, 6) tensor) or boxes_output + scores_output, "
                                      "not both", self.output)
        if self.output is None and not (self.boxes_output and self.scores_output):
            missing = "boxes_output" if not self.boxes_output else "scores_output"
            raise read.fail(missing, "an output name (or 'output' for one combined (1, K, 6) output)", None)
        self.box_format = read.choice("box_format", BOX_FORMATS, "xyxy")
        self.normalized = read.boolean("normalized", False)
        self.class_offset = read.integer("class_offset", 0)
        self.background_class: Optional[int] = read.integer("background_class", None, low=0)
        nms_params = read.section("nms", NMS_FIELDS, {})
        self.nms_method: Optional[str] = nms_params.choice("method", NMS_METHODS, None)
        self.iou_threshold = nms_params.number("iou_threshold", 0.5, low=0.0, high=1.0)
        self.max_detections = nms_params.integer("max_detections", 300, low=1)
        names = (self.output,) if self.output else tuple(separate)
        super().__init__(output_names=names, score_threshold=read.number("score_threshold", 0.5, low=0.0, high=1.0),
                         labels=labels, input_wh=input_wh, where=where)

    # Shapes -------------------------------------------------------------------------------------

    def check_outputs(self, shapes: Dict[str, Sequence[Dim]]) -> None:
        """Raise EdgeError unless the outputs have the documented shapes (and agree on K)."""
        for name in self.output_names:
            if name not in shapes:
                self.output_shape(shapes, name, 0)  # raises: names the missing output
        if self.output:
            shape = self.output_shape(shapes, self.output, 3)
            self._check_combined(list(shape))
            return
        self._check_separate({name: list(shapes[name]) for name in self.output_names})

    def _check_combined(self, shape: List[Dim]) -> None:
        if isinstance(shape[2], int) and shape[2] != 6:
            raise self.shape_error(self.output or "", "(1, K, 6): x1 y1 x2 y2 score class", shape, FIX_OUTPUTS)

    def _check_separate(self, shapes: Dict[str, List[Dim]]) -> bool:
        """Check ranks and K; True when the boxes output has a batch axis."""
        boxes = shapes[self.boxes_output or ""]
        if len(boxes) not in (2, 3) or (isinstance(boxes[-1], int) and boxes[-1] != 4):
            raise self.shape_error(self.boxes_output or "", "(1, K, 4) or (K, 4)", boxes, FIX_OUTPUTS)
        batched = len(boxes) == 3
        if batched and isinstance(boxes[0], int) and boxes[0] != 1:
            raise self.batch_error(self.boxes_output or "", boxes[0])
        count = boxes[-2]
        scores = shapes[self.scores_output or ""]
        per_class = len(scores) == len(boxes)
        if per_class and self.labels is not None and isinstance(scores[-1], int) and scores[-1] != len(self.labels):
            raise self.shape_error(self.scores_output or "", f"one score per label ({len(self.labels)} labels, "
                                   "background included)", scores, f"give {scores[-1]} labels, one per class")
        expected = "(1, K) or (1, K, C)" if batched else "(K,) or (K, C)"
        if len(scores) not in (len(boxes) - 1, len(boxes)) or not _same(scores[int(batched)], count):
            raise self.shape_error(self.scores_output or "", f"{expected} with K = {count} as the boxes", scores,
                                   FIX_OUTPUTS)
        if self.classes_output:
            classes = shapes[self.classes_output]
            if per_class:
                raise self.error(f"output '{self.scores_output}' has per-class scores {scores} and "
                                 f"decoder.classes_output is set too", "remove decoder.classes_output")
            if len(classes) != len(boxes) - 1 or not _same(classes[-1], count):
                raise self.shape_error(self.classes_output, "(1, K) or (K,) like the scores", classes, FIX_OUTPUTS)
        if self.count_output and any(isinstance(d, int) and d != 1 for d in shapes[self.count_output]):
            raise self.shape_error(self.count_output, "one number: (1,) or ()", shapes[self.count_output],
                                   FIX_OUTPUTS)
        return batched

    # Decoding -----------------------------------------------------------------------------------

    def __call__(self, outputs: Dict[str, np.ndarray], transform: Transform) -> Detections:
        """Threshold (and NMS when configured) batch item 0 and map it to source pixels."""
        if self.output:
            rows = self.batch_item(outputs, self.output, 3)
            self._check_combined([1] + list(rows.shape))
            boxes, scores, class_ids = rows[:, :4], rows[:, 4], rows[:, 5]
            return self._finish(boxes, scores, class_ids, transform, per_class=False)
        arrays = {}
        for name in self.output_names:
            if name not in outputs:
                self.batch_item(outputs, name, 0)  # raises: names the missing output
            arrays[name] = np.asarray(outputs[name])
        batched = self._check_separate({name: list(a.shape) for name, a in arrays.items()})
        item = (lambda a: a[0]) if batched else (lambda a: a)  # noqa: E731
        boxes = item(arrays[self.boxes_output or ""])
        scores = item(arrays[self.scores_output or ""])
        count = len(boxes)
        if self.count_output:
            value = float(np.asarray(arrays[self.count_output]).reshape(-1)[0])
            count = int(min(max(value, 0), count)) if np.isfinite(value) else 0
        boxes, scores = boxes[:count], scores[:count]
        if scores.ndim == 2:
            return self._finish_per_class(boxes, scores, transform)
        if self.classes_output:
            class_ids = item(arrays[self.classes_output])[:count]
        else:
            class_ids = np.zeros(len(scores), np.int64)
        return self._finish(boxes, scores, class_ids, transform, per_class=False)

    def _finish_per_class(self, boxes: np.ndarray, scores: np.ndarray, transform: Transform) -> Detections:
        """(K, C) scores: every (box, class) pair above the threshold, background column excepted."""
        above = scores > self.score_threshold
        if self.background_class is not None and self.background_class < scores.shape[1]:
            above[:, self.background_class] = False
        box_index, class_index = np.nonzero(above)
        return self._finish(boxes[box_index], scores[box_index, class_index], class_index, transform, per_class=True)

    def _finish(self, boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, transform: Transform,
                per_class: bool) -> Detections:
        boxes_xyxy = self._to_xyxy(np.asarray(boxes, dtype=np.float32).reshape(-1, 4))
        scores = np.asarray(scores, dtype=np.float32).reshape(-1)
        classes = np.asarray(class_ids).reshape(-1).astype(np.float64) - self.class_offset
        valid = (scores > self.score_threshold) & np.isfinite(scores) & np.isfinite(boxes_xyxy).all(axis=1) \
            & np.isfinite(classes) & (classes >= 0)
        boxes_xyxy, scores = boxes_xyxy[valid], scores[valid]
        class_arr = np.rint(classes[valid]).astype(np.int64)
        if self.labels is not None and len(class_arr) and int(class_arr.max()) >= len(self.labels):
            raise self.error(f"the model reported class id {int(class_arr.max())} but has {len(self.labels)} labels "
                             f"(ids 0..{len(self.labels) - 1})",
                             "give one label per class the model was trained on, in class-id order (--labels), "
                             "or set decoder.class_offset")
        method = self.nms_method or ("class" if per_class else "none")
        if method == "none":
            kept = np.argsort(-scores, kind="stable")[: self.max_detections]
        else:
            kept = batched_nms(boxes_xyxy, scores, class_arr if method == "class" else None, self.iou_threshold,
                               self.max_detections)
        return Detections(transform.to_source_boxes(boxes_xyxy[kept]), scores[kept], class_arr[kept], None,
                          self.labels)

    def _to_xyxy(self, boxes: np.ndarray) -> np.ndarray:
        """(N, 4) boxes in ``box_format`` (fractions when ``normalized``) -> x1 y1 x2 y2 input pixels."""
        if self.box_format == "yxyx":
            boxes = boxes[:, [1, 0, 3, 2]]
        elif self.box_format == "xywh":
            boxes = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
        elif self.box_format == "cxcywh":
            boxes = cxcywh_to_xyxy(boxes)
        if self.normalized:
            boxes = boxes * np.asarray(self.input_wh * 2, dtype=np.float32)
        return boxes


def _same(a: Dim, b: Dim) -> bool:
    """Two dims agree unless both are known and differ."""
    return not (isinstance(a, int) and isinstance(b, int)) or a == b
