"""Check that this machine can run edge, and say how to fix what is wrong: ``python3 jetson/check_env.py``.

Prints one line per finding (board, L4T/JetPack, Python, OpenCV and GStreamer, TensorRT,
CUDA bindings, ONNX Runtime, edge backends, cameras, power mode), each wrong one with its fix.
Exit code 0 when edge can run here, 1 when something blocks it.

This file is the launcher: it parses and runs on any Python from 2.7 and 3.4 on (no f-strings,
no annotations, nothing beyond the standard library), so that the Python of an old board (L4T
R21's 3.4 on a TK1, JetPack 3's 3.5, anyone's ``python`` that is Python 2) is told what is wrong
and what to do instead of showing a SyntaxError. On Python 3.6+ it hands over to
``jetson/env_checks.py``, which does the checks.
"""

# ruff: noqa: UP010, UP024, UP031 - this file must parse and run on Python 2.7 and 3.4
from __future__ import print_function

import os
import platform
import re
import sys

JETSON_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(JETSON_DIR)
#: what env_checks.py and edge/board.py need to be parsed at all (f-strings, variable annotations)
CHECKS_MIN_PYTHON = (3, 6)
#: edge's floor when setup.py cannot be read (an installed copy of this file without its checkout)
DEFAULT_MIN_PYTHON = (3, 6)
NV_TEGRA_RELEASE = "/etc/nv_tegra_release"


def required_python(setup_text):
    """(major, minor) from setup.py's ``python_requires=">=3.8"``; None when there is none."""
    match = re.search(r"python_requires\s*=\s*[\"']\s*>=\s*(\d+)\.(\d+)", setup_text or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError, UnicodeDecodeError):
        return None


def edge_min_python():
    """The oldest Python edge runs on, from this checkout's setup.py (the one place that says it)."""
    return required_python(_read(os.path.join(REPO, "setup.py"))) or DEFAULT_MIN_PYTHON


def l4t_major(release_text):
    """The L4T major release (21, 28, 32, 35, ...) from /etc/nv_tegra_release text, or None."""
    match = re.search(r"^#\s*R(\d+)\s*\(", release_text or "", re.MULTILINE)
    return int(match.group(1)) if match else None


def advice(version_info, release_text, machine, min_python):
    """The report for a Python too old to run the checks: (finding lines, closing line).

    version_info: the running Python's (major, minor, micro); release_text: /etc/nv_tegra_release
    or None; machine: platform.machine(); min_python: the oldest Python edge runs on.
    """
    shown = ".".join(str(part) for part in version_info[:3])
    needed = "%d.%d" % tuple(min_python[:2])
    l4t = l4t_major(release_text)
    lines = []
    if version_info[0] < 3:
        problem = "Python %s is Python 2; edge and this check need Python %s or newer" % (shown, needed)
        fix = "run it with Python 3: python3 jetson/check_env.py (it says so if that Python is too old too)"
    elif l4t is not None and l4t <= 21 or machine in ("armv7l", "armv6l", "armhf"):
        problem = "Python %s is below %s, which edge needs; %s" % (
            shown, needed, "this is the Jetson TK1 line (L4T R%d, Ubuntu 14.04)" % l4t if l4t is not None
            else "this is a 32-bit ARM board (%s)" % machine)
        fix = ("edge runs there on the CPU only, with a newer OS: install a current Debian or Ubuntu for armhf "
               "(Debian 12 has Python 3.11), then: sudo apt install python3-numpy python3-opencv python3-onnx; "
               "pip install --no-deps . (from this checkout); no TensorRT exists for 32-bit ARM")
    elif l4t is not None and l4t < 32:
        board_fix = ("reflash with JetPack 4.6 (TX1, TX2, Nano: Python 3.6) or newer" if tuple(min_python) <= (3, 6)
                     else "reflash with JetPack 5.1 or newer (Xavier, Orin: Python 3.8+); TX1, TX2 and Nano "
                     "stop at JetPack 4.6 (Python 3.6)")
        problem = "Python %s is below %s, which edge needs; L4T R%d (JetPack 3.x or older) ships Python 3.5" % (
            shown, needed, l4t)
        fix = board_fix + "; or run edge on the CPU of another machine and stream the camera to it over RTSP"
    elif l4t is not None:
        problem = "Python %s is below %s, which edge needs" % (shown, needed)
        fix = "run it with the system's python3 (JetPack 4.6 has 3.6, 5.1 has 3.8): python3 jetson/check_env.py"
    else:
        problem = "Python %s is below %s, which edge needs" % (shown, needed)
        fix = ("install Python %s or newer (your distribution's python3, or pyenv) and run this with it" % needed)
    lines.append("[FAIL] python      %s (%s). Fix: %s." % (problem, sys.executable or "python", fix))
    return lines, "result: edge cannot run here: python: %s" % problem


def main(argv=None):
    """Print the report; return 0 when edge can run here, 1 when something blocks it."""
    args = sys.argv[1:] if argv is None else list(argv)
    min_python = edge_min_python()
    if tuple(sys.version_info[:2]) < CHECKS_MIN_PYTHON:
        if "-h" in args or "--help" in args:
            print(__doc__.split("\n\n")[0])
            return 0
        lines, closing = advice(tuple(sys.version_info[:3]), _read(NV_TEGRA_RELEASE), platform.machine(),
                                min_python)
        print("edge environment check")
        for line in lines:
            print(line)
        print(closing)
        return 1
    import importlib.util  # 3.6+ from here on

    path = os.path.join(JETSON_DIR, "env_checks.py")
    spec = importlib.util.spec_from_file_location("edge_env_checks", path)  # novermin - 3.6+ here
    checks = importlib.util.module_from_spec(spec)  # novermin
    sys.modules[spec.name] = checks
    spec.loader.exec_module(checks)
    return checks.main(args)


if __name__ == "__main__":
    sys.exit(main())
