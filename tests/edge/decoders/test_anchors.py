"""SSD anchors against hand-computed values and a plain-loop port of MediaPipe's calculator."""

import math

import numpy as np
import pytest

from edge.decoders.anchors import anchor_scale, ssd_anchors

BLAZEFACE_SHORT = dict(num_layers=4, min_scale=0.1484375, max_scale=0.75, input_size_wh=(128, 128),
                       anchor_offset_xy=(0.5, 0.5), strides=[8, 16, 16, 16], aspect_ratios=[1.0],
                       fixed_anchor_size=True)
BLAZEFACE_FULL = dict(num_layers=1, min_scale=0.1484375, max_scale=0.75, input_size_wh=(192, 192),
                      strides=[4], aspect_ratios=[1.0], interpolated_scale_aspect_ratio=0.0,
                      fixed_anchor_size=True)
# Non-square input, two aspect ratios, sizes from the scales: hand-computed below.
SIZED = dict(num_layers=2, min_scale=0.2, max_scale=0.6, input_size_wh=(64, 32), strides=[16, 32],
             aspect_ratios=[1.0, 2.0])
REDUCED = dict(num_layers=2, min_scale=0.2, max_scale=0.6, input_size_wh=(32, 32), strides=[16, 32],
               aspect_ratios=[1.0], reduce_boxes_in_lowest_layer=True)
R2 = math.sqrt(2.0)


def reference_anchors(num_layers, min_scale, max_scale, input_size_wh, strides, aspect_ratios,
                      anchor_offset_xy=(0.5, 0.5), interpolated_scale_aspect_ratio=1.0,
                      fixed_anchor_size=False, reduce_boxes_in_lowest_layer=False):
    """Line-by-line port of SsdAnchorsCalculator::GenerateAnchors, loops and all."""
    anchors = []
    layer_id = 0
    while layer_id < num_layers:
        heights, widths, ratios, scales = [], [], [], []
        last = layer_id
        while last < len(strides) and strides[last] == strides[layer_id]:
            scale = anchor_scale(min_scale, max_scale, last, len(strides))
            if last == 0 and reduce_boxes_in_lowest_layer:
                ratios += [1.0, 2.0, 0.5]
                scales += [0.1, scale, scale]
            else:
                for ratio in aspect_ratios:
                    ratios.append(ratio)
                    scales.append(scale)
                if interpolated_scale_aspect_ratio > 0.0:
                    nxt = 1.0 if last == len(strides) - 1 else anchor_scale(min_scale, max_scale, last + 1,
                                                                            len(strides))
                    scales.append(math.sqrt(scale * nxt))
                    ratios.append(interpolated_scale_aspect_ratio)
            last += 1
        for ratio, scale in zip(ratios, scales):
            heights.append(scale / math.sqrt(ratio))
            widths.append(scale * math.sqrt(ratio))
        fm_h = math.ceil(input_size_wh[1] / strides[layer_id])
        fm_w = math.ceil(input_size_wh[0] / strides[layer_id])
        for y in range(fm_h):
            for x in range(fm_w):
                for w, h in zip(widths, heights):
                    xc = (x + anchor_offset_xy[0]) / fm_w
                    yc = (y + anchor_offset_xy[1]) / fm_h
                    anchors.append([xc, yc, 1.0, 1.0] if fixed_anchor_size else [xc, yc, w, h])
        layer_id = last
    return np.asarray(anchors, dtype=np.float32)


@pytest.mark.parametrize("options, count", [
    (BLAZEFACE_SHORT, 16 * 16 * 2 + 8 * 8 * 6),
    (BLAZEFACE_FULL, 48 * 48),
    (SIZED, 4 * 2 * 3 + 2 * 1 * 3),
    (REDUCED, 2 * 2 * 3 + 1 * 1 * 2),
    (dict(SIZED, input_size_wh=(100, 60)), 7 * 4 * 3 + 4 * 2 * 3),  # grids round up: ceil(100 / 16) = 7
    (dict(SIZED, interpolated_scale_aspect_ratio=0.0), 4 * 2 * 2 + 2 * 1 * 2),
])
def test_anchor_count(options, count):
    anchors = ssd_anchors(**options)
    assert anchors.shape == (count, 4)
    assert anchors.dtype == np.float32


@pytest.mark.parametrize("index, expected_xywh", [
    (0, [0.03125, 0.03125, 1, 1]),       # layer 1 (stride 8): cell (0, 0), anchor 0
    (1, [0.03125, 0.03125, 1, 1]),       # two anchors per cell in layer 1
    (2, [0.09375, 0.03125, 1, 1]),       # next cell along x
    (32, [0.03125, 0.09375, 1, 1]),      # 16 cells x 2 anchors later: next row
    (511, [0.96875, 0.96875, 1, 1]),     # last of layer 1
    (512, [0.0625, 0.0625, 1, 1]),       # merged stride-16 layers: 6 anchors per cell
    (517, [0.0625, 0.0625, 1, 1]),
    (518, [0.1875, 0.0625, 1, 1]),
    (895, [0.9375, 0.9375, 1, 1]),
])
def test_blazeface_anchor_values(index, expected_xywh):
    np.testing.assert_allclose(ssd_anchors(**BLAZEFACE_SHORT)[index], expected_xywh, atol=1e-7)


def test_blazeface_order_is_row_major_with_anchors_innermost():
    grid = ssd_anchors(**BLAZEFACE_SHORT)[:512].reshape(16, 16, 2, 4)  # (y, x, anchor, xywh)
    centres = (np.arange(16) + 0.5) / 16
    np.testing.assert_allclose(grid[3, :, 1, 0], centres)  # x varies along axis 1
    np.testing.assert_allclose(grid[:, 3, 0, 1], centres)  # y varies along axis 0
    np.testing.assert_array_equal(grid[:, :, 0], grid[:, :, 1])


@pytest.mark.parametrize("options, index, expected_xywh", [
    (SIZED, 0, [0.125, 0.25, 0.2, 0.2]),                            # scale 0.2, ratio 1
    (SIZED, 1, [0.125, 0.25, 0.2 * R2, 0.2 / R2]),                  # ratio 2: wider
    (SIZED, 2, [0.125, 0.25, math.sqrt(0.12), math.sqrt(0.12)]),    # interpolated: sqrt(0.2 * 0.6)
    (SIZED, 3, [0.375, 0.25, 0.2, 0.2]),                            # next cell: 4 cells across
    (SIZED, 12, [0.125, 0.75, 0.2, 0.2]),                           # second row: 2 rows in 32 px
    (SIZED, 24, [0.25, 0.5, 0.6, 0.6]),                             # layer 2, scale 0.6
    (SIZED, 25, [0.25, 0.5, 0.6 * R2, 0.6 / R2]),
    (SIZED, 29, [0.75, 0.5, math.sqrt(0.6), math.sqrt(0.6)]),       # last layer interpolates with 1.0
    (REDUCED, 0, [0.25, 0.25, 0.1, 0.1]),                           # predefined lowest-layer anchors
    (REDUCED, 1, [0.25, 0.25, 0.2 * R2, 0.2 / R2]),
    (REDUCED, 2, [0.25, 0.25, 0.2 / R2, 0.2 * R2]),
    (REDUCED, 12, [0.5, 0.5, 0.6, 0.6]),
    (REDUCED, 13, [0.5, 0.5, math.sqrt(0.6), math.sqrt(0.6)]),
    (dict(SIZED, anchor_offset_xy=(0.0, 1.0)), 0, [0.0, 0.5, 0.2, 0.2]),
])
def test_sized_anchor_values(options, index, expected_xywh):
    np.testing.assert_allclose(ssd_anchors(**options)[index], expected_xywh, rtol=1e-6)


@pytest.mark.parametrize("min_scale, max_scale, index, count, expected", [
    (0.2, 0.6, 0, 1, 0.4),   # a single layer takes the midpoint
    (0.2, 0.6, 0, 3, 0.2),
    (0.2, 0.6, 1, 3, 0.4),
    (0.2, 0.6, 2, 3, 0.6),
])
def test_anchor_scale(min_scale, max_scale, index, count, expected):
    assert anchor_scale(min_scale, max_scale, index, count) == pytest.approx(expected)


@pytest.mark.parametrize("options", [
    BLAZEFACE_SHORT, BLAZEFACE_FULL, SIZED, REDUCED,
    dict(SIZED, input_size_wh=(100, 60), anchor_offset_xy=(0.25, 0.75)),
    dict(num_layers=5, min_scale=0.1171875, max_scale=0.75, input_size_wh=(256, 256),
         strides=[8, 16, 32, 32, 32], aspect_ratios=[1.0]),
    dict(num_layers=6, min_scale=0.2, max_scale=0.95, input_size_wh=(300, 300),
         strides=[16, 32, 64, 128, 256, 512], aspect_ratios=[1.0, 2.0, 0.5, 3.0, 0.3333],
         reduce_boxes_in_lowest_layer=True),
])
def test_matches_loop_port(options):
    np.testing.assert_allclose(ssd_anchors(**options), reference_anchors(**options), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("options", [
    dict(SIZED, num_layers=3),
    dict(SIZED, num_layers=0, strides=[]),
    dict(SIZED, aspect_ratios=[]),
])
def test_bad_options_raise(options):
    with pytest.raises(ValueError):
        ssd_anchors(**options)
