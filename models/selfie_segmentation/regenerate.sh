#!/usr/bin/env bash
# Regenerate selfie_segmentation.onnx from Google's MediaPipe TFLite model with edge's own export step:
#   bash models/selfie_segmentation/regenerate.sh
# Needs pip and edge's 'export' extra (tflite2onnx; ai-edge-litert rewrites the graph and runs the
# parity check). The source is pinned: the mediapipe 0.10.21 wheel (Apache-2.0), downloaded here
# without its dependencies and checked by sha256, then the .tflite inside it, checked by sha256 and
# kept beside this script. Runs are byte-identical (the export sorts initializers by name).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_28_x86_64 --dest "$work" mediapipe==0.10.21
echo "05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3  $work/mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl" | sha256sum --check --quiet
"$python" -c 'import sys, zipfile; open(sys.argv[3], "wb").write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))' \
    "$work/mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl" "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite" "$here/selfie_segmentation.tflite"
echo "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c  $here/selfie_segmentation.tflite" | sha256sum --check --quiet
cd "$root"
"$python" -m export onnx "$here/selfie_segmentation.tflite" --config "$here/edge_config.json" --output "$here/selfie_segmentation.onnx"
