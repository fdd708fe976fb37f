#!/usr/bin/env bash
# Regenerate selfie_segmentation.onnx from Google's MediaPipe TFLite model with edge's own export step:
#   bash models/selfie_segmentation/regenerate.sh
# The pinned source (the mediapipe 0.10.21 wheel), the sha256 checks and the export are in
# models/mediapipe_regenerate.sh; this file names the model.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
exec bash "$here/../mediapipe_regenerate.sh" "$here" \
    mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite \
    9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c selfie_segmentation.onnx
