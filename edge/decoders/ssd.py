"""The "ssd_anchors" decoder: anchor-relative SSD boxes (BlazeFace and kin), MediaPipe semantics.

Follows MediaPipe's TensorsToDetectionsCalculator then NonMaxSuppressionCalculator. Raw regressors
(1, N, 4 + 2K) are offsets from N anchors: ``x_center = raw_x / x_scale * anchor_w + anchor_x``,
``w = raw_w / w_scale * anchor_w`` (or ``exp(raw_w / w_scale) * anchor_w`` with ``box_size_exp``),
same for y and h, and keypoints like centres. Scores (1, N, C) are ``sigmoid(clip(raw))``; with
C > 1 each anchor takes its best class. Anchors scoring below the threshold are dropped before any
box is decoded, then NMS (class-agnostic) runs in model-input pixels, and the survivors are mapped
to source pixels with the frame's :class:`~edge.transform.Transform`.

Params (the "decoder" object; defaults in brackets)::

    type: "ssd_anchors"
    boxes_output, scores_output: model output names
    anchors: {num_layers, min_scale, max_scale, strides, aspect_ratios, input_size_wh [model input],
              anchor_offset_xy [[0.5, 0.5]], interpolated_scale_aspect_ratio [1.0],
              fixed_anchor_size [false], reduce_boxes_in_lowest_layer [false]}
    box_format: "xywh" | "yxhw" (raw order of centre and size; MediaPipe reverse_output_order=true is xywh)
    coord_scale_xywh: [x_scale, y_scale, w_scale, h_scale]
    box_size_exp [false], num_keypoints [0, or len(keypoint_names)], keypoint_names [none],
    score_sigmoid [true], score_clip [none], score_threshold [0.5],
    nms: {method: "weighted" | "greedy" | "none" ["greedy"], iou_threshold [0.5], max_detections [100]}
"""

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edge.decoders.activations import sigmoid
from edge.decoders.anchors import ssd_anchors
from edge.decoders.base import Decoder, Dim
from edge.decoders.nms import merge_clusters, nms, weighted_clusters
from edge.decoders.params import ParamReader
from edge.results import Detections
from edge.transform import Transform

FIELDS = ("type", "boxes_output", "scores_output", "anchors", "box_format", "coord_scale_xywh",
          "box_size_exp", "num_keypoints", "keypoint_names", "score_sigmoid", "score_clip", "score_threshold",
          "nms")
ANCHOR_FIELDS = ("num_layers", "min_scale", "max_scale", "input_size_wh", "anchor_offset_xy", "strides",
                 "aspect_ratios", "interpolated_scale_aspect_ratio", "fixed_anchor_size",
                 "reduce_boxes_in_lowest_layer")
NMS_FIELDS = ("method", "iou_threshold", "max_detections")
NMS_METHODS = ("weighted", "greedy", "none")
BOX_FORMATS = ("xywh", "yxhw")


def anchor_options(reader: ParamReader, input_wh: Tuple[int, int]) -> Dict[str, Any]:
    """Keyword arguments for :func:`ssd_anchors` from the validated ``decoder.anchors`` object."""
    num_layers = reader.integer("num_layers", low=1)
    strides = reader.integers("strides", low=1)
    if len(strides) != num_layers:
        raise reader.fail("strides", f"num_layers = {num_layers} strides", list(strides))
    input_size_wh = reader.integers("input_size_wh", list(input_wh), low=1)
    if len(input_size_wh) != 2:
        raise reader.fail("input_size_wh", "2 integers >= 1 (width, height in pixels)", list(input_size_wh))
    return {
        "num_layers": num_layers,
        "min_scale": reader.number("min_scale", low=0.0, low_open=True),
        "max_scale": reader.number("max_scale", low=0.0, low_open=True),
        "input_size_wh": input_size_wh,
        "anchor_offset_xy": reader.numbers("anchor_offset_xy", [0.5, 0.5], length=2),
        "strides": strides,
        "aspect_ratios": reader.numbers("aspect_ratios", low=0.0, low_open=True),
        "interpolated_scale_aspect_ratio": reader.number("interpolated_scale_aspect_ratio", 1.0, low=0.0),
        "fixed_anchor_size": reader.boolean("fixed_anchor_size", False),
        "reduce_boxes_in_lowest_layer": reader.boolean("reduce_boxes_in_lowest_layer", False),
    }


class SsdAnchorsDecoder(Decoder):
    """Anchor-relative SSD boxes, scores and keypoints -> Detections in source pixels."""

    kind = "ssd_anchors"

    def __init__(self, params: Dict[str, Any], *, labels: Optional[List[str]], input_wh: Tuple[int, int],
                 where: str = "") -> None:
        read = ParamReader(params, "decoder", FIELDS, where)
        self.boxes_output = read.string("boxes_output")
        self.scores_output = read.string("scores_output")
        anchors = anchor_options(read.section("anchors", ANCHOR_FIELDS), input_wh)
        self.anchors_xywh = ssd_anchors(**anchors)
        self.box_format = read.choice("box_format", BOX_FORMATS)
        self.coord_scale_xywh = read.numbers("coord_scale_xywh", length=4, low=0.0, low_open=True)
        self.box_size_exp = read.boolean("box_size_exp", False)
        self.keypoint_names: Optional[List[str]] = read.strings("keypoint_names", None)
        default_keypoints = 0 if self.keypoint_names is None else len(self.keypoint_names)
        self.num_keypoints = read.integer("num_keypoints", default_keypoints, low=0)
        if self.keypoint_names is not None and len(self.keypoint_names) != self.num_keypoints:
            expected = f"num_keypoints = {self.num_keypoints} names"
            raise read.fail("keypoint_names", expected, self.keypoint_names)
        self.score_sigmoid = read.boolean("score_sigmoid", True)
        self.score_clip: Optional[float] = read.number("score_clip", None, low=0.0, low_open=True)
        nms_params = read.section("nms", NMS_FIELDS, {})
        self.nms_method = nms_params.choice("method", NMS_METHODS, "greedy")
        self.iou_threshold = nms_params.number("iou_threshold", 0.5, low=0.0, high=1.0)
        self.max_detections = nms_params.integer("max_detections", 100, low=1)
        super().__init__(output_names=(self.boxes_output, self.scores_output),
                         score_threshold=read.number("score_threshold", 0.5, low=0.0, high=1.0),
                         labels=labels, input_wh=input_wh, where=where)

    @property
    def num_anchors(self) -> int:
        """Number of anchors, which must equal the model's box count."""
        return len(self.anchors_xywh)

    def check_outputs(self, shapes: Dict[str, Sequence[Dim]]) -> None:
        """Raise EdgeError unless the boxes output is (1, N, 4+2K) and the scores output (1, N, C)."""
        self._check_dims(self.boxes_output, self.output_shape(shapes, self.boxes_output, 3))
        self._check_dims(self.scores_output, self.output_shape(shapes, self.scores_output, 3))

    def _check_dims(self, name: str, shape: Sequence[Dim]) -> None:
        count, width = shape[1], shape[2]
        values = 4 + 2 * self.num_keypoints
        if isinstance(count, int) and count != self.num_anchors:
            expected = f"{self.num_anchors} boxes (the anchors from decoder.anchors)"
            fix = "check decoder.anchors (num_layers, strides, input_size_wh) against the model"
            raise self.shape_error(name, expected, list(shape), fix)
        if name == self.boxes_output and isinstance(width, int) and width != values:
            fix = "check the model's outputs"
            if width >= 4 and width % 2 == 0:
                fix = f"set decoder.num_keypoints to {(width - 4) // 2}"
            expected = f"{values} values per box (4 + 2 x num_keypoints {self.num_keypoints})"
            raise self.shape_error(name, expected, list(shape), fix)
        if name == self.scores_output and isinstance(width, int) and self.labels is not None \
                and width != len(self.labels):
            raise self.shape_error(name, f"one score per label ({len(self.labels)} labels)", list(shape),
                                   f"give the model {width} labels, one per class")

    def __call__(self, outputs: Dict[str, np.ndarray], transform: Transform) -> Detections:
        """Decode, threshold, NMS and map to source pixels: Detections best first."""
        raw_boxes = self.batch_item(outputs, self.boxes_output, 3)
        raw_scores = self.batch_item(outputs, self.scores_output, 3)
        self._check_dims(self.boxes_output, (1,) + raw_boxes.shape)
        self._check_dims(self.scores_output, (1,) + raw_scores.shape)
        if raw_scores.shape[1] > 1:
            class_ids = np.argmax(raw_scores, axis=1)
        else:
            class_ids = np.zeros(len(raw_scores), np.int64)
        scores = self._activate(np.take_along_axis(raw_scores, class_ids[:, None], axis=1)[:, 0])
        keep = np.flatnonzero(scores >= self.score_threshold)  # before decoding: usually a handful survive
        boxes_px, keypoints_px = self._decode(raw_boxes[keep], self.anchors_xywh[keep])
        valid = np.all(np.isfinite(boxes_px), axis=1) & np.all(boxes_px[:, 2:] >= boxes_px[:, :2], axis=1)
        boxes_px, keypoints_px, keep = boxes_px[valid], keypoints_px[valid], keep[valid]
        boxes_px, scores, class_ids, keypoints_px = self._suppress(boxes_px, scores[keep], class_ids[keep],
                                                                   keypoints_px)
        keypoints = transform.to_source_xy(keypoints_px) if self.num_keypoints else None
        return Detections(transform.to_source_boxes(boxes_px), scores, class_ids, keypoints, self.labels)

    def _activate(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype=np.float64)
        if self.score_clip is not None:
            raw = np.clip(raw, -self.score_clip, self.score_clip)
        return sigmoid(raw) if self.score_sigmoid else raw

    def _decode(self, raw: np.ndarray, anchors_xywh: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(M, 4+2K) raw rows and their anchors -> boxes (M, 4) xyxy and keypoints (M, K, 2), input pixels."""
        raw = np.asarray(raw, dtype=np.float64)
        anchors = np.asarray(anchors_xywh, dtype=np.float64)
        order = [0, 1, 2, 3] if self.box_format == "xywh" else [1, 0, 3, 2]
        centre_size = raw[:, order] / np.asarray(self.coord_scale_xywh)
        anchor_wh = anchors[:, 2:]
        centre = centre_size[:, :2] * anchor_wh + anchors[:, :2]
        size = np.exp(centre_size[:, 2:]) * anchor_wh if self.box_size_exp else centre_size[:, 2:] * anchor_wh
        input_wh = np.asarray(self.input_wh, dtype=np.float64)
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1) * np.tile(input_wh, 2)
        points = raw[:, 4:4 + 2 * self.num_keypoints].reshape(len(raw), self.num_keypoints, 2)
        if self.box_format == "yxhw":
            points = points[:, :, ::-1]
        points = points / np.asarray(self.coord_scale_xywh[:2])
        keypoints = (points * anchor_wh[:, None, :] + anchors[:, None, :2]) * input_wh
        return boxes.astype(np.float32), keypoints.astype(np.float32)

    def _suppress(self, boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray,
                  keypoints: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Apply the configured NMS; everything returned best first, at most max_detections."""
        if self.nms_method == "weighted":
            clusters = weighted_clusters(boxes, scores, self.iou_threshold, self.max_detections)
            best = np.asarray([members[0] for members in clusters], dtype=np.int64)
            merged_boxes, merged_scores, merged_keypoints = merge_clusters(clusters, boxes, scores, keypoints)
            return merged_boxes, merged_scores, class_ids[best], merged_keypoints  # type: ignore[return-value]
        if self.nms_method == "greedy":
            index = nms(boxes, scores, self.iou_threshold, self.max_detections)
        else:
            index = np.argsort(-scores, kind="stable")[: self.max_detections]
        return boxes[index], scores[index], class_ids[index], keypoints[index]
