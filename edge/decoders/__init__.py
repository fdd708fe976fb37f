"""Decoders: raw model outputs -> a result (Detections, Classification, Segmentation, Keypoints, Embeddings), chosen by
the edge config's "decoder".

``build_decoder(config.decoder, labels=..., input_wh=...)`` validates the parameters (every error
names the field, e.g. ``decoder.anchors.strides``) and returns a :class:`Decoder`. Known types are
the keys of :data:`DECODER_TYPES`. A decoder's module is imported when a model first asks for it, so a
run loads its own decoder only (the package's class names load the same way on first use).
"""

import importlib
import sys
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

from edge.decoders.anchors import ssd_anchors
from edge.decoders.base import Decoder
from edge.decoders.nms import batched_nms, nms, weighted_nms
from edge.decoders.params import param_error
from edge.decoders.skeletons import TOPOLOGIES
from edge.errors import EdgeError

# kind -> (module under edge.decoders, class name)
_TYPES: Dict[str, Tuple[str, str]] = {
    "ssd_anchors": ("ssd", "SsdAnchorsDecoder"),
    "classify": ("classify", "ClassifyDecoder"),
    "yolo": ("yolo", "YoloDecoder"),
    "boxes": ("boxes", "BoxesDecoder"),
    "segment": ("segment", "SegmentDecoder"),
    "landmarks": ("landmarks", "LandmarksDecoder"),
    "embed": ("embed", "EmbedDecoder"),
}
_CLASSES = {name: module for module, name in _TYPES.values()}


class _DecoderTypes(Mapping):
    """kind -> Decoder class, each class's module imported on first access."""

    def __getitem__(self, kind: str) -> type:
        module, name = _TYPES[kind]
        return getattr(importlib.import_module(f"edge.decoders.{module}"), name)

    def __contains__(self, kind: object) -> bool:
        return kind in _TYPES  # without importing the class

    def __iter__(self) -> Iterator[str]:
        return iter(_TYPES)

    def __len__(self) -> int:
        return len(_TYPES)

    def __repr__(self) -> str:
        return f"DECODER_TYPES({', '.join(_TYPES)})"


DECODER_TYPES: Mapping[str, type] = _DecoderTypes()


def __getattr__(name: str) -> Any:
    """``edge.decoders.YoloDecoder`` and the other classes, imported on first use (PEP 562, Python 3.7+)."""
    if name not in _CLASSES:
        raise AttributeError(f"module 'edge.decoders' has no attribute '{name}'")
    return getattr(importlib.import_module(f"edge.decoders.{_CLASSES[name]}"), name)


if sys.version_info < (3, 7):  # no module __getattr__: the classes are imported with the package
    globals().update({name: __getattr__(name) for name in _CLASSES})

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
