#!/usr/bin/env bash
# Regenerate digit_detector.onnx from nothing but this repository (no download):
#   bash models/digit_detector/regenerate.sh
# Renders the synthetic training frames, trains on the CPU (fixed seeds and thread count),
# exports with `python -m export onnx` (checker, shape inference, parity vs PyTorch) and prints
# mAP@0.5 on 500 held-out frames measured through the edge runtime. Needs torch (CPU is enough).
# About 10 minutes on two cores. Same machine and torch version: the same bytes; elsewhere the
# weights may round differently, so compare the mAP (README), not the sha256.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
python "$here/train.py" --output "$here/digit_detector.onnx" "$@"
sha256sum "$here/digit_detector.onnx"
