"""What a benchmark ran on: CPU, library versions, and on a Jetson the board's power and clock state.

Every read is tolerant: a file that is absent or unreadable, a command that is missing or
fails, gives None, never an exception. The file system root and the command runner are
parameters so that tests can run the capture against a fake ``/sys`` + ``/etc`` tree.

On a Jetson (``/etc/nv_tegra_release`` or a Jetson/NVIDIA ``/proc/device-tree/model``) the
board section comes from :mod:`edge.board` (installed with edge, so an installed ``edge-bench``
records it too): board model, L4T and JetPack guess, the power mode from ``nvpmodel -q``, the
clock lock from ``jetson_clocks --show`` (which needs root) or else from the GPU devfreq
min/cur/max frequencies, and temperatures from ``/sys/class/thermal``.
"""

import importlib
import importlib.util
import json
import os
import platform
import re
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import numpy as np

# The board probe lives in the installed package; its names stay importable from here.
from edge.board import (  # noqa: F401 - re-exported for the benchmarks and their tests
    EMC_MAX_FILES,
    EMC_RATE_FILES,
    GPU_DEVFREQ_GLOBS,
    GPU_DEVFREQ_NAMES,
    Runner,
    board_state,
    clock_snapshot,
    clocks_changed,
    clocks_locked_from_sysfs,
    gpu_devfreq,
    on_jetson,
    parse_jetson_clocks_show,
    read_number,
    read_text,
    run_command,
    temperatures,
)

# ARM "CPU part" ids seen on Jetson modules and ARM servers (lscpu's names)
_ARM_PARTS = {"0xd07": "Cortex-A57", "0xd08": "Cortex-A72", "0x004": "NVIDIA Carmel", "0xd42": "Cortex-A78AE",
              "0xd05": "Cortex-A55", "0xd0c": "Neoverse-N1", "0xd40": "Neoverse-V1", "0xd4f": "Neoverse-V2"}


# ------------------------------------------------------------------ versions and CPU


def dist_version(*names: str) -> Optional[str]:
    """The installed version of the first of these pip distributions that is installed."""
    try:
        from importlib import metadata  # novermin - 3.8+; pkg_resources (setuptools) before
    except ImportError:
        import pkg_resources

        for name in names:
            try:
                return pkg_resources.get_distribution(name).version
            except pkg_resources.DistributionNotFound:
                continue
        return None
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def module_version(name: str) -> Optional[str]:
    """``module.__version__`` of an importable module (JetPack's system cv2 and tensorrt are not pip dists)."""
    try:
        module = importlib.import_module(name)
    except Exception:  # noqa: BLE001 - a broken optional library is reported as absent, not raised
        return None
    version = getattr(module, "__version__", None)
    return str(version) if version is not None else None


def cuda_version(root: Path = Path("/")) -> Optional[str]:
    """The CUDA toolkit version: /usr/local/cuda/version.json or version.txt, else pip's CUDA runtime."""
    text = read_text(root / "usr/local/cuda/version.json")
    if text:
        try:
            return str(json.loads(text)["cuda"]["version"])
        except (ValueError, KeyError, TypeError):
            pass
    match = re.search(r"CUDA Version\s+([\d.]+)", read_text(root / "usr/local/cuda/version.txt") or "")
    if match:
        return match.group(1)
    return dist_version("nvidia-cuda-runtime-cu12", "nvidia-cuda-runtime-cu11", "nvidia-cuda-runtime")


def cpu_model(root: Path = Path("/")) -> str:
    """The CPU's name: /proc/cpuinfo 'model name', else the ARM part name, else platform's answer."""
    text = read_text(root / "proc/cpuinfo") or ""
    fields: Dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    if fields.get("model name"):
        return fields["model name"]
    part = fields.get("cpu part", "").lower()
    if part:
        return f"{_ARM_PARTS.get(part, 'ARM part ' + part)} ({platform.machine()})"
    return platform.processor() or platform.machine() or "unknown"


def usable_cores() -> Optional[int]:
    """CPUs this process may run on (affinity), where the OS says."""
    try:
        return len(os.sched_getaffinity(0))  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        return None


#: the ``environment.jetson`` object (kept under its old name)
jetson_state = board_state


def capture(threads: Optional[int] = None, root: Path = Path("/"), run: Runner = run_command) -> Dict[str, Any]:
    """The ``environment`` object of a result: CPU, cores, threads, library versions, Jetson state."""
    return {
        "python": platform.python_version(), "cpu": cpu_model(root), "cores": os.cpu_count() or 1,
        "cores_usable": usable_cores(), "threads": threads, "machine": platform.machine(),
        "os": f"{platform.system()} {platform.release()}", "numpy": np.__version__,
        "onnxruntime": dist_version("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino")
        or module_version("onnxruntime"),
        "opencv": dist_version("opencv-python", "opencv-python-headless", "opencv-contrib-python",
                               "opencv-contrib-python-headless") or module_version("cv2"),
        "tensorrt": dist_version("tensorrt", "tensorrt-cu12", "tensorrt-cu11") or _tensorrt_version(),
        "cuda": cuda_version(root), "torch": dist_version("torch"),
        "jetson": board_state(root, run),
    }


def _tensorrt_version() -> Optional[str]:
    # JetPack's tensorrt is a system package, not a pip dist; importing it is slow, so only where it exists.
    try:
        found = importlib.util.find_spec("tensorrt") is not None
    except (ImportError, ValueError):
        found = False
    return module_version("tensorrt") if found else None


def run_stability(start: Optional[Dict[str, Any]], end: Optional[Dict[str, Any]],
                  throttled: Sequence[bool] = ()) -> Optional[bool]:
    """False when clocks changed between two snapshots or any throttle was seen; None without clock info."""
    if any(throttled):
        return False
    if not start or not end:
        return None
    readable = any(start.get(k) is not None for k in ("gpu_mhz", "emc_mhz")) or any(start.get("cpu_mhz") or [])
    if not readable:
        return None
    return not clocks_changed(start, end)
