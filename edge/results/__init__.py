"""Result types: one per task, understood by every stage after the decoder.

Arrays carry units and layouts in their names: ``boxes_xyxy`` is in source-frame pixels,
``keypoints_xy``, ``points_xy``, ``class_map`` and ``masks`` too. Every result turns into plain JSON
with :meth:`to_json`; masks go out as COCO run-length encodings (:func:`rle_encode`), which
``pycocotools.mask.decode`` reads.

One module per kind: boxes (Detections, Classification), masks (Segmentation, with the COCO RLE of
:mod:`edge.results.rle`), points (Keypoints), vectors (Embeddings), frame (Frame); import them from here.
"""

from edge.results.boxes import Classification, Detections, label_of
from edge.results.frame import Frame
from edge.results.masks import Segmentation
from edge.results.points import Keypoints
from edge.results.rle import rle_counts, rle_encode
from edge.results.vectors import Embeddings

__all__ = ["Classification", "Detections", "Embeddings", "Frame", "Keypoints", "Segmentation", "label_of",
           "rle_counts", "rle_encode"]
