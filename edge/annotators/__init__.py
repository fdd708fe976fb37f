"""Annotators: one small class per kind of result, each with ``annotate(scene, result) -> scene``.

They draw in place on BGR uint8 images and are composed by the app (see ``edge.overlay.Annotator``)::

    scene = BoxAnnotator().annotate(frame.image.copy(), detections)
    scene = LabelAnnotator().annotate(scene, detections)

``KeypointAnnotator`` draws the keypoints that ride on Detections (e.g. a face detector's landmarks);
``KeypointsAnnotator`` draws a Keypoints result (landmarks, pose) with its skeleton; ``IdentityAnnotator``
draws Embeddings (gallery identities on boxes). The named skeleton
topologies (``COCO17``, ``MEDIAPIPE_HAND``) live in :mod:`edge.decoders.skeletons`.
"""

from edge.annotators.detections import BoxAnnotator, KeypointAnnotator, LabelAnnotator, TrackAnnotator
from edge.annotators.draw import COLOR_BY, CORNERS, PALETTE_BGR, color_for_class
from edge.annotators.identities import IdentityAnnotator
from edge.annotators.keypoints import KeypointsAnnotator
from edge.annotators.masks import MaskAnnotator, MaskLegendAnnotator
from edge.annotators.panels import ClassificationAnnotator, StatusAnnotator
from edge.decoders.skeletons import COCO17, MEDIAPIPE_HAND, TOPOLOGIES

__all__ = ["COCO17", "COLOR_BY", "CORNERS", "MEDIAPIPE_HAND", "PALETTE_BGR", "TOPOLOGIES", "BoxAnnotator",
           "ClassificationAnnotator", "IdentityAnnotator", "KeypointAnnotator", "KeypointsAnnotator",
           "LabelAnnotator", "MaskAnnotator", "MaskLegendAnnotator", "StatusAnnotator", "TrackAnnotator",
           "color_for_class"]
