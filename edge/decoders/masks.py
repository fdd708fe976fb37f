"""Masks at model resolution -> source-frame pixels, through the frame's :class:`~edge.transform.Transform`.

A map of ``map_wh`` pixels covers the model input (``transform.input_wh``) exactly: an output at the
input's resolution, or a coarser one (1/4 for YOLO prototypes, 1/8 for many segmentation heads). The
map is resampled with one ``cv2.warpAffine`` per mask, whose inverse affine takes every frame pixel's
centre to the map: stretch, letterbox (padding lands outside the frame) and centre-crop (frame area the
model never saw lands outside the map and becomes 0) are all the same arithmetic.
"""

from typing import Any, Optional, Tuple

import numpy as np

from edge.cv import require_cv2
from edge.transform import Transform


def frame_to_map_affine(transform: Transform, map_wh: Tuple[int, int],
                        origin_xy: Tuple[int, int] = (0, 0)) -> np.ndarray:
    """2x3 float64 matrix: frame pixel index (x - origin_x, y - origin_y) -> map pixel index (float).

    Pixel centres correspond: frame pixel x covers [x, x+1) in the continuous coordinates the
    Transform maps, so centre x + 0.5 goes to input u = (x + 0.5 - offset) / scale, then to map
    coordinate u * map_w / input_w, whose pixel index is that minus 0.5. origin_xy: the frame pixel
    that is index (0, 0) of the destination (a box region instead of the whole frame).
    """
    (in_w, in_h), (map_w, map_h) = transform.input_wh, map_wh
    (scale_x, scale_y), (offset_x, offset_y) = transform.scale_xy, transform.offset_xy
    kx, ky = map_w / (in_w * scale_x), map_h / (in_h * scale_y)
    return np.array([[kx, 0.0, kx * (origin_xy[0] + 0.5 - offset_x) - 0.5],
                     [0.0, ky, ky * (origin_xy[1] + 0.5 - offset_y) - 0.5]], np.float64)


def warp_to_frame(map_hw: np.ndarray, transform: Transform, nearest: bool,
                  region_xywh: Optional[Tuple[int, int, int, int]] = None, border_value: float = 0.0) -> np.ndarray:
    """Resample a (h, w) map covering the model input into frame pixels (the whole frame or a region).

    nearest: nearest-neighbour (class ids) instead of bilinear (scores, logits). Pixels whose centre
    falls outside the map get ``border_value``.
    region_xywh: the frame region to fill (x, y, width, height); None: the whole frame.
    """
    cv2: Any = require_cv2("mapping masks to the frame")
    height, width = map_hw.shape[:2]
    x, y, w, h = region_xywh if region_xywh is not None else (0, 0) + tuple(transform.source_wh)
    matrix = frame_to_map_affine(transform, (width, height), (x, y))
    flags = (cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR) | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(map_hw, matrix, (int(w), int(h)), flags=flags, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=border_value)


def box_regions(boxes_xyxy: np.ndarray, frame_wh: Tuple[int, int]) -> np.ndarray:
    """(N, 4) int x y w h: the frame pixels whose centres lie inside each box (w or h may be 0).

    A pixel belongs to a box when its index satisfies x1 <= x < x2 (as Ultralytics' crop_mask
    compares the arange of pixel indices with the box), so the region is ceil(x1) .. ceil(x2).
    """
    width, height = frame_wh
    boxes = np.nan_to_num(np.asarray(boxes_xyxy, np.float64).reshape(-1, 4))
    x1 = np.clip(np.ceil(boxes[:, 0]), 0, width)
    y1 = np.clip(np.ceil(boxes[:, 1]), 0, height)
    x2 = np.clip(np.ceil(boxes[:, 2]), x1, width)
    y2 = np.clip(np.ceil(boxes[:, 3]), y1, height)
    return np.stack([x1, y1, x2 - x1, y2 - y1], axis=1).astype(np.int64)
