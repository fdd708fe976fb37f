"""Annotators: one small class per kind of result, each with ``annotate(scene, result) -> scene``.

They draw in place on BGR uint8 images and are composed by the app (see ``edge.overlay.Annotator``)::

    scene = BoxAnnotator().annotate(frame.image.copy(), detections)
    scene = LabelAnnotator().annotate(scene, detections)
"""

from __future__ import annotations

from edge.annotators.detections import BoxAnnotator, KeypointAnnotator, LabelAnnotator, TrackAnnotator
from edge.annotators.draw import COLOR_BY, CORNERS, PALETTE_BGR, color_for_class
from edge.annotators.panels import ClassificationAnnotator, StatusAnnotator

__all__ = ["COLOR_BY", "CORNERS", "PALETTE_BGR", "BoxAnnotator", "ClassificationAnnotator", "KeypointAnnotator",
           "LabelAnnotator", "StatusAnnotator", "TrackAnnotator", "color_for_class"]
