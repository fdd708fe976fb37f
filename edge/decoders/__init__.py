"""Decoders: raw model outputs -> a result (Detections, Classification, Segmentation, Keypoints, Embeddings), chosen by
the edge config's "decoder".

``build_decoder(config.decoder, labels=..., input_wh=...)`` validates the parameters (every error
names the field, e.g. ``decoder.anchors.strides``) and returns a :class:`Decoder`. Known types are
the keys of :data:`DECODER_TYPES`.
"""

from typing import Any, Dict, List, Mapping, Optional, Tuple

from edge.decoders.anchors import ssd_anchors
from edge.decoders.base import Decoder
from edge.decoders.boxes import BoxesDecoder
from edge.decoders.classify import ClassifyDecoder
from edge.decoders.embed import EmbedDecoder
from edge.decoders.landmarks import LandmarksDecoder
from edge.decoders.nms import batched_nms, nms, weighted_nms
from edge.decoders.params import param_error
from edge.decoders.segment import SegmentDecoder
from edge.decoders.skeletons import TOPOLOGIES
from edge.decoders.ssd import SsdAnchorsDecoder
from edge.decoders.yolo import YoloDecoder
from edge.errors import EdgeError

DECODER_TYPES: Dict[str, type] = {
    SsdAnchorsDecoder.kind: SsdAnchorsDecoder,
    ClassifyDecoder.kind: ClassifyDecoder,
    YoloDecoder.kind: YoloDecoder,
    BoxesDecoder.kind: BoxesDecoder,
    SegmentDecoder.kind: SegmentDecoder,
    LandmarksDecoder.kind: LandmarksDecoder,
    EmbedDecoder.kind: EmbedDecoder,
}

__all__ = ["DECODER_TYPES", "TOPOLOGIES", "BoxesDecoder", "ClassifyDecoder", "Decoder", "EmbedDecoder",
           "LandmarksDecoder", "SegmentDecoder", "SsdAnchorsDecoder", "YoloDecoder", "batched_nms", "build_decoder",
           "nms", "ssd_anchors", "weighted_nms"]


def build_decoder(params: Dict[str, Any], *, labels: Optional[List[str]], input_wh: Tuple[int, int],
                  where: str = "") -> Decoder:
    """Build the decoder that ``params["type"]`` names, validating every field.

    params: the "decoder" object of the model's edge config.
    labels: class names by class id, or None.
    input_wh: model input (width, height) in pixels; decoded coordinates are scaled to it.
    where: prefix for error messages (usually the model path).
    """
    if not isinstance(params, Mapping):
        raise param_error("decoder", "an object with a 'type'", params, where)
    kind = params.get("type")
    if kind not in DECODER_TYPES:
        known = ", ".join(sorted(DECODER_TYPES))
        raise EdgeError(f"unknown decoder type {kind!r} in 'decoder.type' (known: {known})",
                        fix="set decoder.type to one of the known types", where=where or None)
    return DECODER_TYPES[kind](dict(params), labels=labels, input_wh=input_wh, where=where)
