#!/usr/bin/env bash
# Install edge on a Jetson board from this checkout; safe to run again (it only adds what is missing).
#
#   bash jetson/setup.sh                 # venv at ~/edge-venv
#   bash jetson/setup.sh --venv DIR      # venv elsewhere
#   bash jetson/setup.sh --editable      # pip install -e (for working on edge itself)
#   bash jetson/setup.sh --force         # run on a machine that is not aarch64 anyway
#
# What it does, and why (jetson/README.md has the long form):
#   1. refuses non-aarch64 machines: a laptop wants pip install '.[cpu]' instead;
#   2. makes the venv with --system-site-packages, so JetPack's cv2 (built with GStreamer) and
#      tensorrt stay importable;
#   3. installs edge WITHOUT the cpu extra: pip's opencv-python has no GStreamer and would
#      shadow JetPack's OpenCV; numpy stays below 2 because JetPack's cv2 and tensorrt are
#      built against numpy 1.x;
#   4. warns (does not fail) when cv2 has no GStreamer or pip's opencv-python is installed;
#   5. runs jetson/check_env.py and exits with its code (0: edge can run, 1: something blocks it).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HOME}/edge-venv"
FORCE=0
EDITABLE=0

usage() {
    sed -n '2,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

while [ "$#" -gt 0 ]; do
    case "$1" in
        --venv) VENV="${2:?--venv needs a folder}"; shift 2 ;;
        --editable) EDITABLE=1; shift ;;
        --force) FORCE=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "setup.sh: unknown option '$1'. Fix: see bash jetson/setup.sh --help" >&2; exit 2 ;;
    esac
done

say() { echo "setup.sh: $*"; }
warn() { echo "setup.sh: warning: $*" >&2; }

arch="$(uname -m)"
if [ "$arch" != "aarch64" ] && [ "$FORCE" -ne 1 ]; then
    echo "setup.sh: this machine is $arch, not a Jetson (aarch64); this script sets up a board." >&2
    echo "setup.sh: on a laptop, desktop or CI use: pip install '.[cpu]'  (or rerun with --force)" >&2
    exit 1
fi

if ! python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 8) else 1)'; then
    echo "setup.sh: $(python3 --version 2>&1) is too old; edge needs Python 3.8+." \
         "JetPack 4.6 (Python 3.6) is not supported: use JetPack 5.1+ or run edge on another machine's CPU." >&2
    exit 1
fi

# 1. the venv, with the system site-packages visible (JetPack's cv2 and tensorrt live there)
if [ -x "$VENV/bin/python" ]; then
    if grep -qiE '^\s*include-system-site-packages\s*=\s*true' "$VENV/pyvenv.cfg" 2>/dev/null; then
        say "venv $VENV exists (with system site-packages)"
    else
        warn "$VENV hides JetPack's cv2 and tensorrt; recreating its config with --system-site-packages"
        python3 -m venv --system-site-packages "$VENV"
    fi
else
    say "creating venv $VENV (--system-site-packages)"
    if ! python3 -m venv --system-site-packages "$VENV"; then
        echo "setup.sh: cannot create the venv. Fix: sudo apt install python3-venv, then rerun" >&2
        exit 1
    fi
fi
PY="$VENV/bin/python"

# 2. edge itself, without the cpu extra (no pip opencv-python on a board)
"$PY" -m pip install --quiet --upgrade pip
if [ "$EDITABLE" -eq 1 ]; then
    say "installing edge (editable) from $REPO"
    "$PY" -m pip install --quiet -e "$REPO" "numpy<2"
else
    say "installing edge from $REPO"
    "$PY" -m pip install --quiet "$REPO" "numpy<2"
fi

# 3. OpenCV: warn, do not fail (USB cameras, files and demo:// work without GStreamer)
pip_opencv="$("$PY" -m pip list --format=freeze 2>/dev/null \
    | grep -iE '^opencv-(contrib-)?python(-headless)?==' | cut -d= -f1 | tr '\n' ' ' || true)"
if [ -n "$pip_opencv" ]; then
    warn "pip's ${pip_opencv% } is installed and shadows JetPack's GStreamer OpenCV." \
         "Fix: $PY -m pip uninstall ${pip_opencv% }"
fi
if ! "$PY" -c 'import sys
from edge.cv import has_gstreamer
sys.exit(0 if has_gstreamer() else 1)' 2>/dev/null; then
    warn "this venv's cv2 is missing or has no GStreamer: csi:// and rtsp:// will not open." \
         "Fix: sudo apt install nvidia-opencv, and pip uninstall opencv-python if the line above names it"
fi

# 4. the report; its exit code is ours
say "checking the environment (python jetson/check_env.py)"
status=0
"$PY" "$REPO/jetson/check_env.py" || status=$?
if [ "$status" -eq 0 ]; then
    say "done. Activate with: source $VENV/bin/activate; try: python -m edge.camera --source demo:// --headless --max-frames 100"
fi
exit "$status"
