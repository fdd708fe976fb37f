#!/usr/bin/env bash
# Regenerate face_detection_full_range.onnx from Google's MediaPipe TFLite model with edge's own export step:
#   bash models/face_detection_full_range/regenerate.sh
# The pinned source (the mediapipe 0.10.21 wheel), the sha256 checks and the export are in
# models/mediapipe_regenerate.sh; this file names the model.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
exec bash "$here/../mediapipe_regenerate.sh" "$here" \
    mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite \
    2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1 face_detection_full_range.onnx
