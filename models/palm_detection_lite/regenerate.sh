#!/usr/bin/env bash
# Regenerate palm_detection_lite.onnx from Google's MediaPipe TFLite model with edge's own export step:
#   bash models/palm_detection_lite/regenerate.sh
# The pinned source (the mediapipe 0.10.21 wheel), the sha256 checks and the export are in
# models/mediapipe_regenerate.sh; this file names the model.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
exec bash "$here/../mediapipe_regenerate.sh" "$here" \
    mediapipe/modules/palm_detection/palm_detection_lite.tflite \
    e9a4aaddf90dda56a87235303cf00e4c2d3fb28725f68fd88772997dac905c18 palm_detection_lite.onnx
