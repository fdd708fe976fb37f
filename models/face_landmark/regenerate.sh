#!/usr/bin/env bash
# Regenerate face_landmark.onnx from Google's MediaPipe TFLite model with edge's own export step:
#   bash models/face_landmark/regenerate.sh
# The pinned source (the mediapipe 0.10.21 wheel), the sha256 checks and the export are in
# models/mediapipe_regenerate.sh; this file names the model.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
exec bash "$here/../mediapipe_regenerate.sh" "$here" \
    mediapipe/modules/face_landmark/face_landmark.tflite \
    1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814 face_landmark.onnx
