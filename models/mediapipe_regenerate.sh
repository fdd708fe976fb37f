#!/usr/bin/env bash
# Shared by the zoo's MediaPipe models: regenerate one ONNX file from Google's TFLite model with edge's
# own export step. Called by models/<name>/regenerate.sh as
#   mediapipe_regenerate.sh FOLDER MEMBER TFLITE_SHA256 ONNX_NAME
# Needs pip and edge's 'export' extra (tflite2onnx; ai-edge-litert rewrites the graph and runs the
# parity check). The source is pinned: the mediapipe 0.10.21 wheel (Apache-2.0), downloaded here
# without its dependencies and checked by sha256, then MEMBER (the .tflite inside it), checked by sha256
# and kept in FOLDER. Runs are byte-identical (the export sorts initializers by name).
set -euo pipefail
folder="$1" member="$2" tflite_sha256="$3" onnx_name="$4"
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python}"
wheel_name="mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl"
wheel_sha256="05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_28_x86_64 --dest "$work" mediapipe==0.10.21
echo "$wheel_sha256  $work/$wheel_name" | sha256sum --check --quiet
tflite="$folder/$(basename "$member")"
"$python" -c 'import sys, zipfile; open(sys.argv[3], "wb").write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))' \
    "$work/$wheel_name" "$member" "$tflite"
echo "$tflite_sha256  $tflite" | sha256sum --check --quiet
cd "$root"
"$python" -m export onnx "$tflite" --config "$folder/edge_config.json" --output "$folder/$onnx_name"
