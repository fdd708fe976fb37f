"""Tests for edge.transform: the affine map between model-input pixels and source-frame pixels."""

import numpy as np
import pytest

from edge.transform import Transform

IDENTITY = Transform((1.0, 1.0), (0.0, 0.0), (64, 48), (64, 48))
STRETCH = Transform((10.0, 5.625), (0.0, 0.0), (128, 128), (1280, 720))
LETTERBOX = Transform((10.0, 10.0), (0.0, -280.0), (128, 128), (1280, 720))  # 1280x720 -> 128x128
PILLARBOX = Transform((10.0, 10.0), (-280.0, 0.0), (128, 128), (720, 1280))  # 720x1280 -> 128x128
CENTER_CROP = Transform((5.625, 5.625), (280.0, 0.0), (128, 128), (1280, 720))  # 1280x720 -> 128x128
UPSCALE = Transform((0.5, 0.25), (3.0, -2.0), (100, 100), (50, 25))


@pytest.mark.parametrize(
    "transform, input_xy, source_xy",
    [
        (IDENTITY, [(0, 0), (63.5, 47.5)], [(0, 0), (63.5, 47.5)]),
        (STRETCH, [(0, 0), (128, 128), (64, 64)], [(0, 0), (1280, 720), (640, 360)]),
        (LETTERBOX, [(0, 28), (128, 100), (64, 64)], [(0, 0), (1280, 720), (640, 360)]),
        (LETTERBOX, [(0, 0), (128, 128)], [(0, -280), (1280, 1000)]),  # padding maps outside the frame
        (PILLARBOX, [(28, 0), (100, 128)], [(0, 0), (720, 1280)]),
        (CENTER_CROP, [(0, 0), (128, 128), (64, 64)], [(280, 0), (1000, 720), (640, 360)]),
        (UPSCALE, [(0, 0), (10, 10), (-2, 8)], [(3, -2), (8, 0.5), (2, 0)]),
    ],
)
def test_known_mappings(transform, input_xy, source_xy):
    mapped = transform.to_source_xy(np.array(input_xy))
    assert mapped.dtype == np.float32 and mapped.shape == (len(input_xy), 2)
    np.testing.assert_allclose(mapped, source_xy, atol=1e-4)
    np.testing.assert_allclose(transform.to_input_xy(np.array(source_xy)), input_xy, atol=1e-4)


@pytest.mark.parametrize("transform", [IDENTITY, STRETCH, LETTERBOX, PILLARBOX, CENTER_CROP, UPSCALE])
@pytest.mark.parametrize("shape", [(2,), (7, 2), (3, 4, 2), (0, 2)])
def test_round_trip_keeps_shape_and_values(transform, shape):
    points = np.random.RandomState(1).uniform(-50, 200, shape)
    source = transform.to_source_xy(points)
    assert source.shape == shape and source.dtype == np.float32
    back = transform.to_input_xy(source)
    assert back.shape == shape and back.dtype == np.float32
    np.testing.assert_allclose(back, points, rtol=1e-5, atol=1e-4)
    again = transform.to_source_xy(transform.to_input_xy(points))
    np.testing.assert_allclose(again, points, rtol=1e-5, atol=1e-3)


def test_accepts_lists_and_tuples():
    assert LETTERBOX.to_source_xy((64, 64)).tolist() == [640.0, 360.0]
    assert LETTERBOX.to_input_xy([[640, 360]]).tolist() == [[64.0, 64.0]]


@pytest.mark.parametrize(
    "transform, boxes_xyxy, clip, expected",
    [
        (LETTERBOX, [(10, 38, 20, 48)], True, [(100, 100, 200, 200)]),
        (LETTERBOX, [(0, 0, 128, 128)], True, [(0, 0, 1280, 720)]),  # the whole input covers padding too
        (LETTERBOX, [(0, 0, 128, 128)], False, [(0, -280, 1280, 1000)]),
        (LETTERBOX, [(-10, 20, 140, 110)], True, [(0, 0, 1280, 720)]),
        (PILLARBOX, [(20, 10, 40, 20)], True, [(0, 100, 120, 200)]),
        (STRETCH, [(64, 64, 200, 200), (-5, -5, 1, 1)], True, [(640, 360, 1280, 720), (0, 0, 10, 5.625)]),
        (CENTER_CROP, [(0, 0, 64, 64)], True, [(280, 0, 640, 360)]),
        (UPSCALE, [(-100, -100, 1000, 1000)], True, [(0, 0, 50, 25)]),
        (UPSCALE, [(-100, -100, 1000, 1000)], False, [(-47, -27, 503, 248)]),
        (IDENTITY, np.zeros((0, 4)), True, np.zeros((0, 4))),
    ],
)
def test_to_source_boxes(transform, boxes_xyxy, clip, expected):
    boxes = transform.to_source_boxes(np.array(boxes_xyxy, np.float32), clip=clip)
    assert boxes.dtype == np.float32 and boxes.shape == (len(expected), 4)
    np.testing.assert_allclose(boxes, np.array(expected, np.float32).reshape(-1, 4), atol=1e-4)
    if clip and len(boxes):
        width, height = transform.source_wh
        assert boxes[:, 0::2].min() >= 0 and boxes[:, 0::2].max() <= width
        assert boxes[:, 1::2].min() >= 0 and boxes[:, 1::2].max() <= height


def test_to_source_boxes_does_not_modify_its_input():
    boxes = np.array([[-10.0, 20.0, 140.0, 110.0]], np.float32)
    LETTERBOX.to_source_boxes(boxes)
    assert boxes.tolist() == [[-10.0, 20.0, 140.0, 110.0]]


def test_transform_is_a_value():
    assert Transform((10.0, 10.0), (0.0, -280.0), (128, 128), (1280, 720)) == LETTERBOX
    with pytest.raises(AttributeError):
        LETTERBOX.scale_xy = (1.0, 1.0)  # type: ignore[misc]
