"""Skip marks for what the oldest supported libraries cannot do, each with its reason.

The runtime's floors are JetPack 4.6's: Python 3.6, NumPy 1.19, onnx 1.11, OpenCV 4.1, ONNX Runtime 1.10;
CI runs the runtime's tests with exactly those. A test skips here only for a limit of that library
version, never of edge, and only below the version that lifted it.
"""

import sys
from typing import Optional, Tuple

import pytest


def _version(module: str) -> Optional[Tuple[int, ...]]:
    try:
        text = __import__(module).__version__
    except Exception:  # noqa: BLE001 - absent or broken: the tests that need it skip on their own
        return None
    return tuple(int(part) for part in text.split(".")[:2] if part.isdigit())


OPENCV = _version("cv2")
OLD_OPENCV = OPENCV is not None and OPENCV < (4, 5)

needs_export = pytest.mark.skipif(sys.version_info < (3, 8),
                                  reason="edge-export runs on Python 3.8+ (the training machine)")
opencv_loads_face_model = pytest.mark.skipif(
    OLD_OPENCV, reason="OpenCV DNN before 4.5 cannot load the face model (asymmetric Conv padding): on JetPack 4.6 "
                       "(OpenCV 4.1) it runs on ONNX Runtime or TensorRT")
opencv_fails_corrupt_frames = pytest.mark.skipif(
    OLD_OPENCV, reason="OpenCV 4.1's FFmpeg conceals a corrupt frame (returns it) instead of failing it: no frame "
                       "to skip and count")
opencv_draws_like_4_5 = pytest.mark.skipif(
    OLD_OPENCV, reason="OpenCV 4.1 anti-aliases and resamples differently from the 4.5+ the pictures were made with")

digits_drawn_like_training = pytest.mark.skipif(
    OPENCV is not None and OPENCV < (5, 0),
    reason="the digits are drawn with OpenCV's Hershey fonts, which OpenCV 4.x draws thinner and larger than the "
           "OpenCV 5 the digit detector was trained on (mAP 0.47 instead of 0.80 measured on 4.1.2)")
ORT = _version("onnxruntime")
ort_logs_placement = pytest.mark.skipif(
    ORT is not None and ORT < (1, 12),
    reason="ONNX Runtime before 1.12 does not log node placement in the form edge reads (the note is then left out)")
ort_quantizes = pytest.mark.skipif(
    ORT is not None and ORT < (1, 13),
    reason="ONNX Runtime before 1.13 writes wrong int8 files (edge refuses to quantize with it; JetPack 4.6 "
           "boards run int8 files made by edge-export quantize on the training machine)")
