"""Tests for edge.preprocess: values against OpenCV's blobFromImage, layouts, colours, geometry, buffers."""

from typing import Any, Tuple

import numpy as np
import pytest
from tiny_models import colour_classifier_config

from edge.config import EdgeConfig, InputSpec, PreprocessSpec
from edge.errors import EdgeError
from edge.preprocess import Preprocessor, geometry

cv2 = pytest.importorskip("cv2")

BGR_PIXEL = (10, 20, 30)  # B, G, R


def make(size_wh: Tuple[int, int] = (32, 24), layout: str = "NCHW", dtype: str = "float32", channels: int = 3,
         **spec: Any) -> Preprocessor:
    width, height = size_wh
    shape = (1, channels, height, width) if layout == "NCHW" else (1, height, width, channels)
    return Preprocessor(InputSpec("image", shape, layout, dtype), PreprocessSpec(**spec))


def random_bgr(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.RandomState(seed).randint(0, 256, (height, width, 3)).astype(np.uint8)


def hwc(out: np.ndarray, layout: str) -> np.ndarray:
    """The (H, W, C) image inside a batch-of-1 tensor of either layout."""
    return out[0].transpose(1, 2, 0) if layout == "NCHW" else out[0]


# -- values ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source_hw, input_wh, scale, mean",
    [
        ((48, 64), (32, 24), 1 / 255, (0.0, 0.0, 0.0)),
        ((48, 64), (32, 24), 1 / 255, (0.485, 0.456, 0.406)),
        ((120, 90), (64, 64), 1 / 127.5, (1.0, 1.0, 1.0)),
        ((20, 30), (64, 48), 1.0, (104.0, 117.0, 123.0)),  # upscale, caffe-style mean
        ((24, 32), (32, 24), 1.0, (0.0, 0.0, 0.0)),  # same size: no resize at all
    ],
)
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_stretch_matches_blob_from_image(source_hw, input_wh, scale, mean, layout):
    image = random_bgr(*source_hw)
    out, _ = make(input_wh, layout, color="RGB", scale=scale, mean=mean)(image)
    if layout == "NHWC":
        out = out.transpose(0, 3, 1, 2)
    # blobFromImage: (resized pixel - mean') * scalefactor, mean' in the swapped (RGB) order;
    # ours: pixel * scale - mean, so mean' = mean / scale.
    blob_mean = tuple(m / scale for m in mean)
    blob = cv2.dnn.blobFromImage(image, scale, input_wh, blob_mean, swapRB=True, crop=False)
    assert out.shape == blob.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, blob, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "color, layout, expected",
    [
        # scale 1, mean (1, 2, 3), std (1, 2, 4) in model channel order
        ("RGB", "NCHW", ((30 - 1) / 1, (20 - 2) / 2, (10 - 3) / 4)),
        ("RGB", "NHWC", ((30 - 1) / 1, (20 - 2) / 2, (10 - 3) / 4)),
        ("BGR", "NCHW", ((10 - 1) / 1, (20 - 2) / 2, (30 - 3) / 4)),
        ("BGR", "NHWC", ((10 - 1) / 1, (20 - 2) / 2, (30 - 3) / 4)),
    ],
)
def test_colour_order_mean_and_per_channel_std(color, layout, expected):
    image = np.full((40, 50, 3), BGR_PIXEL, np.uint8)
    out, _ = make((16, 8), layout, color=color, scale=1.0, mean=(1, 2, 3), std=(1, 2, 4))(image)
    assert out.shape == ((1, 3, 8, 16) if layout == "NCHW" else (1, 8, 16, 3))
    np.testing.assert_allclose(hwc(out, layout), np.broadcast_to(expected, (8, 16, 3)), rtol=0, atol=1e-6)


# normalisations that take different code paths: per-channel gain and bias, one gain and a bias,
# one gain and no bias, and none at all
NORMALISATIONS = {
    "per-channel": dict(scale=1 / 255, mean=(0.4, 0.5, 0.6), std=(0.2, 0.3, 0.4)),
    "scalar-gain-bias": dict(scale=1 / 127.5, mean=(1.0, 1.0, 1.0), std=(1.0, 1.0, 1.0)),
    "scalar-gain": dict(scale=1 / 255, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)),
    "identity": dict(scale=1.0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)),
}


@pytest.mark.parametrize("dtype", ["float32", "float16", "uint8"])
@pytest.mark.parametrize("color", ["RGB", "BGR"])
@pytest.mark.parametrize("resize", ["stretch", "letterbox", "center_crop"])
@pytest.mark.parametrize("norm", list(NORMALISATIONS))
def test_nchw_and_nhwc_hold_the_same_values(dtype, color, resize, norm):
    image = random_bgr(37, 53)
    spec = dict(color=color, resize=resize, pad_value=7, **NORMALISATIONS[norm])
    nchw, _ = make((20, 12), "NCHW", dtype, **spec)(image)
    nhwc, _ = make((20, 12), "NHWC", dtype, **spec)(image)
    assert nchw.dtype == nhwc.dtype == np.dtype(dtype)
    assert nchw.shape == (1, 3, 12, 20) and nhwc.shape == (1, 12, 20, 3)
    np.testing.assert_array_equal(nchw[0].transpose(1, 2, 0), nhwc[0])


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_bgr_and_rgb_are_the_channels_swapped(layout):
    image = random_bgr(30, 40)
    spec = dict(scale=1 / 255, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    rgb = hwc(make((24, 16), layout, color="RGB", **spec)(image)[0], layout).copy()
    bgr = hwc(make((24, 16), layout, color="BGR", **spec)(image)[0], layout)
    np.testing.assert_array_equal(rgb, bgr[:, :, ::-1])


@pytest.mark.parametrize(
    "layout, color, expected_hwc",
    [
        ("NCHW", "RGB", lambda img: img[:, :, ::-1]),
        ("NHWC", "RGB", lambda img: img[:, :, ::-1]),
        ("NCHW", "BGR", lambda img: img),
        ("NHWC", "BGR", lambda img: img),
    ],
)
def test_uint8_input_passes_pixels_unchanged(layout, color, expected_hwc):
    image = random_bgr(24, 32)
    # scale/mean/std do not apply to a uint8 model input: it takes raw pixels
    pre = make((32, 24), layout, "uint8", color=color, scale=1 / 255, mean=(0.5, 0.5, 0.5), std=(2, 2, 2))
    out, _ = pre(image)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(hwc(out, layout), expected_hwc(image))


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("dtype, atol", [("float32", 1e-6), ("float16", 2e-3)])
@pytest.mark.parametrize("scale, mean, std", [(1 / 255, (0.5, 0, 0), (0.25, 1, 1)),  # only channel 0 applies
                                              (1 / 255, (0, 0, 0), (1, 1, 1)),
                                              (1.0, (0, 0, 0), (1, 1, 1))])
def test_one_channel_model_gets_grayscale(layout, dtype, atol, scale, mean, std):
    image = random_bgr(24, 32)
    out, _ = make((32, 24), layout, dtype, channels=1, scale=scale, mean=mean, std=std)(image)
    assert out.shape == ((1, 1, 24, 32) if layout == "NCHW" else (1, 24, 32, 1))
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float64)
    expected = (gray * scale - mean[0]) / std[0]
    np.testing.assert_allclose(hwc(out, layout)[:, :, 0], expected, rtol=atol, atol=atol)


@pytest.mark.parametrize("interpolation, flag", [("linear", "INTER_LINEAR"), ("nearest", "INTER_NEAREST"),
                                                 ("area", "INTER_AREA"), ("cubic", "INTER_CUBIC")])
def test_interpolation_is_opencv_resize(interpolation, flag):
    image = random_bgr(45, 61)
    out, _ = make((20, 16), "NHWC", "uint8", color="BGR", interpolation=interpolation)(image)
    np.testing.assert_array_equal(out[0], cv2.resize(image, (20, 16), interpolation=getattr(cv2, flag)))


def test_from_config_classifies_pure_colours():
    pre = Preprocessor.from_config(EdgeConfig.from_dict(colour_classifier_config("NHWC", 16)))
    for channel_bgr, model_channel in ((2, 0), (1, 1), (0, 2)):  # red, green, blue
        image = np.zeros((50, 70, 3), np.uint8)
        image[:, :, channel_bgr] = 255
        out, transform = pre(image)
        expected = np.zeros(3, np.float32)
        expected[model_channel] = 1.0
        np.testing.assert_allclose(out[0], np.broadcast_to(expected, (16, 16, 3)), atol=1e-6)
        assert transform.source_wh == (70, 50) and transform.input_wh == (16, 16)


def test_non_contiguous_frame_equals_its_copy():
    frame = random_bgr(100, 120)
    view = frame[10:90:1, 15:105]  # a region of a bigger frame (strided rows)
    first = make((32, 32), resize="letterbox", scale=1 / 255)(view)[0].copy()
    second = make((32, 32), resize="letterbox", scale=1 / 255)(np.ascontiguousarray(view))[0]
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("resize", ["stretch", "letterbox", "center_crop"])
@pytest.mark.parametrize("source_hw", [(24, 32), (48, 80)])
def test_the_frame_is_not_modified(resize, source_hw):
    image = random_bgr(*source_hw)
    before = image.copy()
    make((32, 24), resize=resize, scale=1 / 255, mean=(1, 1, 1))(image)
    np.testing.assert_array_equal(image, before)


# -- geometry --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source_wh, input_wh, resize, crop_xywh, resized_wh, paste_xy, scale_xy, offset_xy, error",
    [
        # source_wh, input_wh, resize,
        #   crop_xywh, resized_wh, paste_xy, scale_xy, offset_xy, error
        ((1280, 720), (128, 128), "letterbox",
         (0, 0, 1280, 720), (128, 72), (0, 28), (10, 10), (0, -280), None),
        ((720, 1280), (128, 128), "letterbox",
         (0, 0, 720, 1280), (72, 128), (28, 0), (10, 10), (-280, 0), None),
        ((640, 480), (320, 320), "letterbox",
         (0, 0, 640, 480), (320, 240), (0, 40), (2, 2), (0, -80), None),
        ((320, 320), (640, 480), "letterbox",
         (0, 0, 320, 320), (480, 480), (80, 0), (2 / 3, 2 / 3), (-160 / 3, 0), None),
        ((333, 333), (64, 48), "letterbox",
         (0, 0, 333, 333), (48, 48), (8, 0), (6.9375, 6.9375), (-55.5, 0), None),
        ((100, 100), (64, 64), "letterbox",
         (0, 0, 100, 100), (64, 64), (0, 0), (1.5625, 1.5625), (0, 0), None),
        ((1, 1000), (32, 32), "letterbox",
         (0, 0, 1, 1000), (1, 32), (15, 0), (1, 31.25), (-15, 0), None),
        ((1280, 720), (128, 128), "stretch",
         (0, 0, 1280, 720), (128, 128), (0, 0), (10, 5.625), (0, 0), None),
        ((64, 48), (64, 48), "stretch",
         (0, 0, 64, 48), (64, 48), (0, 0), (1, 1), (0, 0), None),
        ((1280, 720), (128, 128), "center_crop",
         (280, 0, 720, 720), (128, 128), (0, 0), (5.625, 5.625), (280, 0), None),
        ((720, 1280), (128, 128), "center_crop",
         (0, 280, 720, 720), (128, 128), (0, 0), (5.625, 5.625), (0, 280), None),
        ((640, 480), (224, 224), "center_crop",
         (80, 0, 480, 480), (224, 224), (0, 0), (480 / 224, 480 / 224), (80, 0), None),
        ((640, 480), (320, 160), "center_crop",
         (0, 80, 640, 320), (320, 160), (0, 0), (2, 2), (0, 80), None),
        ((100, 100), (100, 100), "center_crop",
         (0, 0, 100, 100), (100, 100), (0, 0), (1, 1), (0, 0), None),
        ((100, 100), (100, 100), "fit", None, None, None, None, None, ValueError),
    ],
)
def test_geometry(source_wh, input_wh, resize, crop_xywh, resized_wh, paste_xy, scale_xy, offset_xy, error):
    if error is not None:
        with pytest.raises(error, match="unknown resize mode 'fit'"):
            geometry(source_wh, input_wh, resize)
        return
    crop, resized, paste, transform = geometry(source_wh, input_wh, resize)
    assert (crop, resized, paste) == (crop_xywh, resized_wh, paste_xy)
    assert transform.scale_xy == pytest.approx(scale_xy)
    assert transform.offset_xy == pytest.approx(offset_xy)
    assert (transform.input_wh, transform.source_wh) == (input_wh, source_wh)
    # the content's corners in the model input map to the used region's corners in the frame
    corners = transform.to_source_xy([paste, (paste[0] + resized[0], paste[1] + resized[1])])
    x, y, w, h = crop
    np.testing.assert_allclose(corners, [(x, y), (x + w, y + h)], atol=1e-3)
    # and the preprocessor returns the same transform
    pre = make(input_wh, resize=resize)
    assert pre(np.zeros((source_wh[1], source_wh[0], 3), np.uint8))[1] == transform


@pytest.mark.parametrize(
    "source_hw, pad_value, scale, mean, std, layout",
    [
        ((720, 1280), 0, 1 / 255, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "NCHW"),
        ((720, 1280), 114, 1 / 255, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "NCHW"),
        ((1280, 720), 114, 1 / 255, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "NHWC"),
        ((300, 200), 255, 1 / 127.5, (1.0, 1.0, 1.0), (1.0, 2.0, 4.0), "NHWC"),
        ((200, 300), 128, 1.0, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "NCHW"),
    ],
)
def test_letterbox_padding_values(source_hw, pad_value, scale, mean, std, layout):
    image = np.full(source_hw + (3,), 200, np.uint8)
    pre = make((64, 64), layout, resize="letterbox", pad_value=pad_value, scale=scale, mean=mean, std=std)
    out, _ = pre(image)
    _, (w, h), (px, py), _ = geometry((source_hw[1], source_hw[0]), (64, 64), "letterbox")
    img = hwc(out, layout)
    pad = np.ones((64, 64), bool)
    pad[py:py + h, px:px + w] = False
    assert pad.sum() > 0
    expected_pad = (pad_value * scale - np.array(mean)) / np.array(std)
    expected_content = (200 * scale - np.array(mean)) / np.array(std)
    np.testing.assert_allclose(img[pad], np.broadcast_to(expected_pad, (int(pad.sum()), 3)), atol=1e-5)
    content = np.broadcast_to(expected_content, (int((~pad).sum()), 3))
    np.testing.assert_allclose(img[~pad], content, atol=1e-5)


@pytest.mark.parametrize(
    "source_wh, input_wh",
    [((1280, 720), (128, 128)), ((720, 1280), (128, 128)), ((640, 480), (224, 224)),
     ((640, 480), (320, 160))],
)
def test_center_crop_uses_only_the_centre(source_wh, input_wh):
    (x, y, w, h), _, _, _ = geometry(source_wh, input_wh, "center_crop")
    image = np.zeros((source_wh[1], source_wh[0], 3), np.uint8)
    image[:, :, 2] = 255  # red outside the crop
    image[y:y + h, x:x + w] = (0, 255, 0)  # green inside
    out, _ = make(input_wh, "NHWC", "uint8", color="RGB", resize="center_crop")(image)
    np.testing.assert_array_equal(out[0], np.broadcast_to((0, 255, 0), out[0].shape))


@pytest.mark.parametrize(
    "frame_wh, input_wh, resize, square_xyxy",
    [
        ((1000, 600), (100, 100), "letterbox", (305, 215, 405, 315)),
        ((600, 1000), (100, 100), "letterbox", (120, 610, 300, 790)),
        ((1280, 720), (128, 128), "letterbox", (0, 0, 200, 100)),  # at the corner of the content
        ((1280, 720), (160, 96), "letterbox", (1000, 600, 1280, 720)),
        ((1280, 720), (128, 128), "center_crop", (500, 300, 700, 500)),
        ((1280, 720), (128, 128), "stretch", (100, 50, 300, 250)),
    ],
)
def test_content_lands_where_the_transform_says(frame_wh, input_wh, resize, square_xyxy):
    frame = np.zeros((frame_wh[1], frame_wh[0], 3), np.uint8)
    x1, y1, x2, y2 = square_xyxy
    frame[y1:y2, x1:x2] = 255
    out, transform = make(input_wh, "NHWC", scale=1 / 255, resize=resize)(frame)
    ys, xs = np.nonzero(out[0, :, :, 0] > 0.5)
    found = np.array([[xs.min(), ys.min()], [xs.max() + 1, ys.max() + 1]], np.float32)  # input pixel edges
    back = transform.to_source_xy(found)
    one_input_pixel = np.array(transform.scale_xy)  # one model pixel, in source pixels
    assert np.all(np.abs(back - [(x1, y1), (x2, y2)]) <= one_input_pixel), (back, square_xyxy)
    np.testing.assert_allclose(transform.to_input_xy(back), found, atol=1e-3)


# -- buffers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("resize", ["stretch", "letterbox"])
def test_returned_tensor_is_a_reused_buffer(layout, resize):
    """Documented contract: the tensor is the preprocessor's own buffer, overwritten by the next call."""
    pre = make((16, 16), layout, resize=resize, scale=1 / 255)
    first, _ = pre(np.full((40, 30, 3), 255, np.uint8))
    kept = first.copy()
    second, _ = pre(np.zeros((40, 30, 3), np.uint8))
    assert second is first
    assert np.all(kept[kept != 0] == 1.0) and kept.max() == 1.0
    assert first.max() == 0.0  # the first result now holds the second frame


@pytest.mark.parametrize("first_wh, second_wh", [((1280, 720), (720, 1280)), ((200, 150), (400, 100))])
def test_letterbox_of_a_new_frame_size_is_not_stale(first_wh, second_wh):
    pre = make((128, 128), resize="letterbox", scale=1 / 255)
    pre(np.full((first_wh[1], first_wh[0], 3), 255, np.uint8))
    second = np.full((second_wh[1], second_wh[0], 3), 255, np.uint8)
    out, _ = pre(second)
    fresh, _ = make((128, 128), resize="letterbox", scale=1 / 255)(second)
    np.testing.assert_array_equal(out, fresh)


# -- bad images ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image, needles",
    [
        (np.zeros((8, 8, 3), np.float32), ["expected a BGR uint8 image", "dtype float32"]),
        (np.zeros((8, 8), np.uint8), ["shape (8, 8) "]),
        (np.zeros((8, 8, 4), np.uint8), ["shape (8, 8, 4)"]),
        (np.zeros((8, 8, 1), np.uint8), ["shape (8, 8, 1)"]),
        (np.zeros((0, 8, 3), np.uint8), ["image is empty"]),
        (np.zeros((8, 0, 3), np.uint8), ["image is empty"]),
        ([[[0, 0, 0]]], ["got list"]),
        (None, ["got NoneType"]),
    ],
)
@pytest.mark.parametrize("method", ["__call__", "resize"])
def test_bad_images_raise_edge_error(image, needles, method):
    pre = make((16, 16))
    with pytest.raises(EdgeError) as info:
        getattr(pre, method)(image)
    text = str(info.value)
    assert text.startswith("preprocess | ") and "\n" not in text and "Fix:" in text
    for needle in needles:
        assert needle in text
