#!/usr/bin/env bash
# The runtime (edge/, benchmarks/, jetson/) under a real Python 3.6 - JetPack 4.6's - with the oldest
# dependency versions setup.py allows: NumPy 1.19, onnx 1.11, ONNX Runtime 1.10, OpenCV 4.1. export/
# needs 3.8 (its tests are left out; its import says so in one line). Skipped, with a message, where no
# Python 3.6 interpreter exists.
set -euo pipefail
cd "$(dirname "$0")/.."
py36=""
for candidate in "$(command -v python3.6 2>/dev/null || true)" /root/.pyenv/versions/3.6*/bin/python3.6; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" --version >/dev/null 2>&1; then
        py36="$candidate"
        break
    fi
done
if [ -z "$py36" ]; then
    echo "== no Python 3.6 interpreter on this machine: the 3.6 floor is checked by vermin only"
    exit 0
fi
echo "== pytest on $("$py36" --version) with the oldest dependencies"
rm -rf .ci-venv36
"$py36" -m venv .ci-venv36
.ci-venv36/bin/python -m pip install --quiet --upgrade 'pip<22'   # 3.6's pip 18 cannot read manylinux2014 tags
.ci-venv36/bin/python -m pip install --quiet numpy==1.19.5 onnx==1.11.0 onnxruntime==1.10.0 \
    opencv-python-headless==4.1.2.30 'pytest>=7,<7.1' pyyaml dataclasses paho-mqtt==1.6.1
.ci-venv36/bin/python -m pip install --quiet --no-deps .   # setup.py itself must run on 3.6
.ci-venv36/bin/python - <<'PY'
import cv2, numpy, onnx, onnxruntime, sys
print("python", sys.version.split()[0], "numpy", numpy.__version__, "onnx", onnx.__version__,
      "onnxruntime", onnxruntime.__version__, "opencv", cv2.__version__)
PY
bash tests/trt/fetch_bindings.sh .ci-venv36/bin/python || true   # no bindings wheel for 3.6: those tests skip
.ci-venv36/bin/python -m pytest -q -p no:cacheprovider --ignore tests/export tests
