"""SSD anchor grids, computed exactly as MediaPipe's SsdAnchorsCalculator does.

Anchors are normalised to the model input: ``[x_center, y_center, w, h]`` in [0, 1] units of the
input width and height. Consecutive layers with the same stride are merged into one feature map whose
cells carry the anchors of all those layers (that is how BlazeFace gets 16x16x2 + 8x8x6 = 896).
Order: layer, then feature-map row (y), then column (x), then anchor within the cell.
"""

import math
from typing import List, Sequence, Tuple

import numpy as np


def anchor_scale(min_scale: float, max_scale: float, stride_index: int, num_strides: int) -> float:
    """The scale of layer ``stride_index``: linear from min_scale to max_scale over the layers."""
    if num_strides == 1:
        return (min_scale + max_scale) * 0.5
    return min_scale + (max_scale - min_scale) * stride_index / (num_strides - 1.0)


def _cell_anchor_sizes(
    first: int,
    last: int,
    *,
    min_scale: float,
    max_scale: float,
    strides: Sequence[int],
    aspect_ratios: Sequence[float],
    interpolated_scale_aspect_ratio: float,
    reduce_boxes_in_lowest_layer: bool,
) -> Tuple[np.ndarray, np.ndarray]:
    """Normalised (w, h) of the anchors in one cell of the merged layers first..last-1."""
    ratios: List[float] = []
    scales: List[float] = []
    for layer in range(first, last):
        scale = anchor_scale(min_scale, max_scale, layer, len(strides))
        if layer == 0 and reduce_boxes_in_lowest_layer:
            # MediaPipe's predefined lowest-layer anchors: a small square and two elongated boxes.
            ratios += [1.0, 2.0, 0.5]
            scales += [0.1, scale, scale]
            continue
        ratios += list(aspect_ratios)
        scales += [scale] * len(aspect_ratios)
        if interpolated_scale_aspect_ratio > 0.0:
            is_last = layer == len(strides) - 1
            scale_next = 1.0 if is_last else anchor_scale(min_scale, max_scale, layer + 1, len(strides))
            scales.append(math.sqrt(scale * scale_next))
            ratios.append(interpolated_scale_aspect_ratio)
    ratio_sqrt = np.sqrt(np.asarray(ratios, dtype=np.float64))
    scales_arr = np.asarray(scales, dtype=np.float64)
    return scales_arr * ratio_sqrt, scales_arr / ratio_sqrt


def ssd_anchors(
    *,
    num_layers: int,
    min_scale: float,
    max_scale: float,
    input_size_wh: Tuple[int, int],
    strides: Sequence[int],
    aspect_ratios: Sequence[float],
    anchor_offset_xy: Tuple[float, float] = (0.5, 0.5),
    interpolated_scale_aspect_ratio: float = 1.0,
    fixed_anchor_size: bool = False,
    reduce_boxes_in_lowest_layer: bool = False,
) -> np.ndarray:
    """MediaPipe SSD anchors as an (N, 4) float32 array of normalised ``[x_center, y_center, w, h]``.

    num_layers: number of entries in ``strides`` that are used (MediaPipe's num_layers).
    min_scale, max_scale: anchor scale of the first and last layer, as a fraction of the input size.
    input_size_wh: model input (width, height) in pixels; a layer's grid is ceil(size / stride) cells.
    strides: feature-map stride of each layer, in input pixels; equal consecutive strides are merged.
    aspect_ratios: width / height of the anchors of each layer.
    anchor_offset_xy: anchor centre inside its cell, in cells (0.5 = the cell centre).
    interpolated_scale_aspect_ratio: > 0 adds one anchor per layer with scale sqrt(scale * next_scale)
        and this aspect ratio; 0 adds none.
    fixed_anchor_size: all anchors get w = h = 1 (the model regresses sizes directly).
    reduce_boxes_in_lowest_layer: layer 0 uses MediaPipe's three predefined anchors.
    """
    if num_layers < 1 or len(strides) != num_layers:
        raise ValueError(f"need num_layers >= 1 strides: num_layers={num_layers}, strides={list(strides)}")
    if not aspect_ratios:
        raise ValueError("need at least one aspect ratio")
    width_px, height_px = input_size_wh
    offset_x, offset_y = anchor_offset_xy
    grids: List[np.ndarray] = []
    layer = 0
    while layer < num_layers:
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            last += 1
        anchor_w, anchor_h = _cell_anchor_sizes(
            layer, last, min_scale=min_scale, max_scale=max_scale, strides=strides,
            aspect_ratios=aspect_ratios, interpolated_scale_aspect_ratio=interpolated_scale_aspect_ratio,
            reduce_boxes_in_lowest_layer=reduce_boxes_in_lowest_layer,
        )
        cells_x = math.ceil(width_px / strides[layer])
        cells_y = math.ceil(height_px / strides[layer])
        per_cell = len(anchor_w)
        grid = np.empty((cells_y, cells_x, per_cell, 4), dtype=np.float64)
        grid[..., 0] = ((np.arange(cells_x) + offset_x) / cells_x)[None, :, None]
        grid[..., 1] = ((np.arange(cells_y) + offset_y) / cells_y)[:, None, None]
        grid[..., 2] = 1.0 if fixed_anchor_size else anchor_w
        grid[..., 3] = 1.0 if fixed_anchor_size else anchor_h
        grids.append(grid.reshape(-1, 4))
        layer = last
    return np.concatenate(grids).astype(np.float32)
