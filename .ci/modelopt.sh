#!/usr/bin/env bash
# edge-export quantize's NVIDIA ModelOpt path (the Q/DQ placement TensorRT itself documents), in its own
# venv: nvidia-modelopt[onnx] brings onnxruntime-gpu in place of onnxruntime and a CUDA PyTorch (~6.5 GB,
# from the package index's cache in seconds to minutes). Its quantizer runs on the CPU (calibration_eps
# cpu). The rest of the suite runs without it, on ONNX Runtime's quantization tools.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.ci-venv-modelopt
echo "== NVIDIA ModelOpt quantizer ($venv)"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet 'nvidia-modelopt[onnx]==0.47.0' opencv-python-headless 'pytest>=7'
PYTHONPATH="$PWD" "$venv/bin/python" -m pytest -q -p no:cacheprovider -rs tests/export/test_quantize.py -k modelopt
