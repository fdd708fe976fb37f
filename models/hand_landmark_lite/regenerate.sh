#!/usr/bin/env bash
# Regenerate hand_landmark_lite.onnx from Google's MediaPipe TFLite model with edge's own export step:
#   bash models/hand_landmark_lite/regenerate.sh
# The pinned source (the mediapipe 0.10.21 wheel), the sha256 checks and the export are in
# models/mediapipe_regenerate.sh; this file names the model.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
exec bash "$here/../mediapipe_regenerate.sh" "$here" \
    mediapipe/modules/hand_landmark/hand_landmark_lite.tflite \
    048edd3645c9bf7397d19a9f6e3a42957d6e414c9bea6598030a2e9b624156e6 hand_landmark_lite.onnx
