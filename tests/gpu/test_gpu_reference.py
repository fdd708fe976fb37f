"""The kernel's arithmetic (``reference_preprocess``, NumPy) against the CPU path (``Preprocessor``).

Stated bound (edge/cuda/gpu_preprocess.py): |gpu - cpu| <= |scale / std_c| * 1 grey level, plus the
CPU path's own float16 rounding for float16 inputs. Measured here with opencv-python 5.0 (x86_64):
float32 and uint8 identical (0 levels), float16 at most 0.23 levels -- ``test_measured_difference``
records that, so a change in OpenCV's rounding or in the kernel shows up.
"""

import functools
import itertools

import numpy as np
import pytest

from edge.config import InputSpec, PreprocessSpec
from edge.cuda.gpu_preprocess import plan_for, reference_preprocess, tolerance
from edge.errors import EdgeError
from edge.preprocess import Preprocessor

IMAGENET = dict(scale=1 / 255, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
UNIT = dict(scale=1 / 255, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
SYMMETRIC = dict(scale=1 / 127.5, mean=(1.0, 1.0, 1.0), std=(1.0, 1.0, 1.0))
RAW = dict(scale=1.0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))

# (source wh, input wh, resize, colour, layout, dtype, channels, normalisation, interpolation)
CASES = [
    ((1280, 720), (128, 128), "letterbox", "RGB", "NCHW", "float32", 3, UNIT, "linear"),
    ((1280, 720), (224, 224), "stretch", "RGB", "NCHW", "float32", 3, IMAGENET, "linear"),
    ((1920, 1080), (640, 640), "letterbox", "RGB", "NCHW", "float16", 3, UNIT, "linear"),
    ((640, 480), (224, 224), "center_crop", "BGR", "NHWC", "float32", 3, IMAGENET, "linear"),
    ((97, 131), (224, 224), "stretch", "RGB", "NHWC", "float16", 3, SYMMETRIC, "linear"),  # upscale
    ((300, 300), (320, 192), "letterbox", "BGR", "NCHW", "uint8", 3, RAW, "linear"),
    ((320, 192), (320, 192), "stretch", "RGB", "NCHW", "float32", 3, RAW, "linear"),  # same size: a copy
    ((1280, 720), (112, 112), "center_crop", "RGB", "NCHW", "float32", 1, SYMMETRIC, "linear"),  # gray
    ((1280, 720), (300, 300), "stretch", "RGB", "NHWC", "float32", 3, IMAGENET, "nearest"),
    ((300, 300), (224, 224), "letterbox", "BGR", "NCHW", "float16", 3, IMAGENET, "nearest"),
    ((1, 1), (16, 16), "stretch", "RGB", "NCHW", "float32", 3, UNIT, "linear"),  # one-pixel frame
    ((5, 400), (64, 64), "letterbox", "RGB", "NCHW", "float32", 3, UNIT, "linear"),  # tall sliver
]


def spec_for(case):
    _, (w, h), resize, color, layout, dtype, channels, norm, interpolation = case
    shape = (1, channels, h, w) if layout == "NCHW" else (1, h, w, channels)
    return InputSpec("x", shape, layout, dtype), PreprocessSpec(color=color, resize=resize, pad_value=114,
                                                                interpolation=interpolation, **norm)


@functools.lru_cache(maxsize=8)
def frame_for(source_wh, seed=0):
    """Noise on a gradient: the worst case for rounding, with structure for the resize."""
    w, h = source_wh
    rng = np.random.default_rng(seed)
    gradient = (np.arange(w)[None, :, None] * 3 + np.arange(h)[:, None, None] * 2 + np.arange(3) * 40) % 256
    frame = np.clip(gradient + rng.integers(-40, 41, (h, w, 3)), 0, 255).astype(np.uint8)
    frame.flags.writeable = False
    return frame


def levels(cpu, ref, input_spec, spec):
    """|ref - cpu| in grey levels (the difference divided by |gain| per channel)."""
    if input_spec.dtype == "uint8":
        return np.abs(cpu.astype(np.int64) - ref.astype(np.int64)).astype(np.float64)
    gain = np.abs(spec.scale / np.asarray(spec.std))[:input_spec.channels]
    shape = (1, -1, 1, 1) if input_spec.layout == "NCHW" else (1, 1, 1, -1)
    return np.abs(cpu.astype(np.float64) - ref.astype(np.float64)) / gain.reshape(shape)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0][0]}x{c[0][1]}-{c[1][0]}x{c[1][1]}-{c[2]}-"
                         f"{c[3]}-{c[4]}-{c[5]}-{c[6]}ch-{c[8]}")
def test_reference_equals_the_cpu_path_within_the_stated_bound(case):
    input_spec, spec = spec_for(case)
    frame = frame_for(case[0])
    cpu, cpu_transform = Preprocessor(input_spec, spec)(frame)
    ref, ref_transform = reference_preprocess(frame, input_spec, spec)
    assert ref_transform == cpu_transform
    assert ref.shape == cpu.shape and ref.dtype == cpu.dtype
    difference = np.abs(cpu.astype(np.float64) - ref.astype(np.float64))
    assert (difference <= tolerance(input_spec, spec, cpu)).all(), difference.max()


def test_measured_difference():
    """The numbers the docs state: 0 levels for float32/uint8, < 0.25 levels for float16."""
    worst = {"float32": 0.0, "float16": 0.0, "uint8": 0.0}
    sizes = [(1280, 720), (640, 480), (97, 131), (1920, 1080)]  # x (224, 224) and (160, 96)
    for source, target, resize, dtype in itertools.product(sizes, [(224, 224), (160, 96)],
                                                           ["stretch", "letterbox", "center_crop"], worst):
        case = (source, target, resize, "RGB", "NCHW", dtype, 3, UNIT if dtype != "uint8" else RAW, "linear")
        input_spec, spec = spec_for(case)
        frame = frame_for(source, seed=sum(source))
        cpu = Preprocessor(input_spec, spec)(frame)[0]
        ref = reference_preprocess(frame, input_spec, spec)[0]
        worst[dtype] = max(worst[dtype], float(levels(cpu, ref, input_spec, spec).max()))
    assert worst["float32"] <= 1 and worst["uint8"] <= 1 and worst["float16"] <= 1.5  # the contract
    assert worst == pytest.approx({"float32": 0.0, "uint8": 0.0, "float16": worst["float16"]})  # measured
    assert worst["float16"] < 0.25


@pytest.mark.parametrize("change, message", [
    (dict(interpolation="area"), "supports interpolation linear or nearest, not 'area'"),
    (dict(interpolation="cubic"), "Fix: set preprocess.interpolation to linear"),
])
def test_what_the_kernel_cannot_do_is_a_one_line_error(change, message):
    input_spec, spec = spec_for(CASES[0])
    spec = PreprocessSpec(**{**spec.__dict__, **change})
    with pytest.raises(EdgeError, match=message):
        plan_for((640, 480), input_spec, spec)


def test_reference_refuses_what_is_not_a_bgr_frame():
    input_spec, spec = spec_for(CASES[0])
    with pytest.raises(EdgeError, match="BGR uint8 frame"):
        reference_preprocess(np.zeros((4, 4), np.uint8), input_spec, spec)
