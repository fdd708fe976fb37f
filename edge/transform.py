"""The mapping from model-input pixels back to source-frame pixels.

Every resize mode (stretch, letterbox, centre-crop) is an axis-aligned affine map, so one
small type covers them all: ``x_src = u * scale_x + offset_x``, ``y_src = v * scale_y + offset_y``
where (u, v) are pixel coordinates in the model's input image.
"""

from dataclasses import dataclass
from typing import Tuple

import numpy as np


@dataclass(frozen=True)
class Transform:
    """Affine map from model-input pixels (u, v) to source pixels (x, y).

    scale_xy: source pixels per model-input pixel, per axis.
    offset_xy: source pixel position of model-input pixel (0, 0).
    input_wh: model input size; source_wh: source frame size, both in pixels.
    """

    scale_xy: Tuple[float, float]
    offset_xy: Tuple[float, float]
    input_wh: Tuple[int, int]
    source_wh: Tuple[int, int]

    def to_source_xy(self, points_xy: np.ndarray) -> np.ndarray:
        """Map (..., 2) model-input pixel points to source pixels (float32)."""
        points = np.asarray(points_xy, dtype=np.float32)
        scale = np.asarray(self.scale_xy, dtype=np.float32)
        offset = np.asarray(self.offset_xy, dtype=np.float32)
        return points * scale + offset

    def to_source_boxes(self, boxes_xyxy: np.ndarray, clip: bool = True) -> np.ndarray:
        """Map (N, 4) model-input boxes to source pixels, clipped to the frame when ``clip``."""
        boxes = self.to_source_xy(np.asarray(boxes_xyxy, dtype=np.float32).reshape(-1, 2, 2)).reshape(-1, 4)
        if clip:
            width, height = self.source_wh
            boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, width)
            boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, height)
        return boxes

    def to_input_xy(self, points_xy: np.ndarray) -> np.ndarray:
        """Inverse map: source pixels to model-input pixels (float32)."""
        points = np.asarray(points_xy, dtype=np.float32)
        return (points - np.asarray(self.offset_xy, np.float32)) / np.asarray(self.scale_xy, np.float32)
