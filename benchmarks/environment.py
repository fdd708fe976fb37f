"""What a benchmark ran on: CPU, library versions, and on a Jetson the board's power and clock state.

Every read is tolerant: a file that is absent or unreadable, a command that is missing or
fails, gives None, never an exception. The file system root and the command runner are
parameters so that tests can run the capture against a fake ``/sys`` + ``/etc`` tree.

On a Jetson (``/etc/nv_tegra_release`` or a Jetson/NVIDIA ``/proc/device-tree/model``) the
board model, L4T and JetPack guess come from ``jetson/check_env.py``'s parsers (imported by
path when the repository's ``jetson/`` folder is there; otherwise those fields stay None),
the power mode from ``nvpmodel -q``, the clock lock from ``jetson_clocks --show`` (which needs
root) or else from the GPU devfreq min/cur/max frequencies, and temperatures from
``/sys/class/thermal``.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

Runner = Callable[[List[str]], Optional[str]]

CHECK_ENV = Path(__file__).resolve().parents[1] / "jetson" / "check_env.py"
#: devfreq folders that hold the Jetson GPU, by release (JetPack 4: gpu.0; 5/6: the GPU's platform device)
GPU_DEVFREQ_GLOBS = ("sys/devices/gpu.0/devfreq/*", "sys/devices/platform/gpu.0/devfreq/*", "sys/class/devfreq/*")
GPU_DEVFREQ_NAMES = ("gpu", "gm20b", "gp10b", "gv11b", "ga10b", "17000000")
#: EMC (memory controller) clock in Hz: debugfs, readable by root only
EMC_RATE_FILES = ("sys/kernel/debug/bpmp/debug/clk/emc/rate", "sys/kernel/debug/clk/emc/clk_rate")
EMC_MAX_FILES = ("sys/kernel/debug/bpmp/debug/clk/emc/max_rate", "sys/kernel/debug/clk/emc/max_rate")
# ARM "CPU part" ids seen on Jetson modules and ARM servers (lscpu's names)
_ARM_PARTS = {"0xd07": "Cortex-A57", "0xd08": "Cortex-A72", "0x004": "NVIDIA Carmel", "0xd42": "Cortex-A78AE",
              "0xd05": "Cortex-A55", "0xd0c": "Neoverse-N1", "0xd40": "Neoverse-V1", "0xd4f": "Neoverse-V2"}


def run_command(command: List[str], timeout_s: float = 10.0) -> Optional[str]:
    """stdout+stderr of a command, or None when it is missing, fails to start, exits non-zero or hangs."""
    if shutil.which(command[0]) is None:
        return None
    try:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=timeout_s)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def read_text(path: Path) -> Optional[str]:
    """A small file's text (NULs dropped, stripped), or None when absent or unreadable."""
    try:
        return path.read_bytes().decode("utf-8", errors="replace").replace("\x00", "").strip()
    except OSError:
        return None


def read_number(path: Path) -> Optional[float]:
    """A file holding one number, or None."""
    text = read_text(path)
    try:
        return float(text.split()[0]) if text else None
    except ValueError:
        return None


@functools.lru_cache(maxsize=1)
def check_env_module() -> Any:
    """jetson/check_env.py loaded by path (its parsers), or None outside a checkout."""
    if not CHECK_ENV.is_file():
        return None
    try:
        spec = importlib.util.spec_from_file_location("edge_jetson_check_env", CHECK_ENV)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except (OSError, SyntaxError, ImportError, AttributeError):
        return None
    return module


# ------------------------------------------------------------------ versions and CPU


def dist_version(*names: str) -> Optional[str]:
    """The installed version of the first of these pip distributions that is installed."""
    from importlib import metadata

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


# ------------------------------------------------------------------ Jetson state


def on_jetson(root: Path = Path("/")) -> bool:
    """Whether this is a Jetson: /etc/nv_tegra_release exists, or the device-tree model says so."""
    if (root / "etc/nv_tegra_release").is_file():
        return True
    model = (read_text(root / "proc/device-tree/model") or "").lower()
    return "jetson" in model or "nvidia" in model


def gpu_devfreq(root: Path = Path("/")) -> Optional[Path]:
    """The GPU's devfreq folder (cur_freq, min_freq, max_freq in Hz), or None."""
    for pattern in GPU_DEVFREQ_GLOBS:
        for folder in sorted(root.glob(pattern)):
            if pattern.startswith("sys/class") and not any(n in folder.name.lower() for n in GPU_DEVFREQ_NAMES):
                continue
            if (folder / "cur_freq").is_file():
                return folder
    return None


def _mhz(hz: Optional[float]) -> Optional[float]:
    return None if hz is None else hz / 1e6


def clock_snapshot(root: Path = Path("/")) -> Dict[str, Any]:
    """GPU, EMC and CPU clocks now, in MHz (None where unreadable)."""
    folder = gpu_devfreq(root)
    snap: Dict[str, Any] = {"gpu_mhz": None, "gpu_min_mhz": None, "gpu_max_mhz": None}
    if folder is not None:
        snap.update(gpu_mhz=_mhz(read_number(folder / "cur_freq")), gpu_min_mhz=_mhz(read_number(folder / "min_freq")),
                    gpu_max_mhz=_mhz(read_number(folder / "max_freq")))
    snap["emc_mhz"] = next((_mhz(v) for v in (read_number(root / p) for p in EMC_RATE_FILES) if v), None)
    snap["emc_max_mhz"] = next((_mhz(v) for v in (read_number(root / p) for p in EMC_MAX_FILES) if v), None)
    cpus = sorted(root.glob("sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq"),
                  key=lambda p: int(re.sub(r"\D", "", p.parent.parent.name) or 0))
    snap["cpu_mhz"] = [None if v is None else v / 1000 for v in (read_number(p) for p in cpus)]  # kHz
    return snap


def clocks_changed(before: Dict[str, Any], after: Dict[str, Any]) -> bool:
    """Whether a GPU, EMC or CPU clock differs between two snapshots (unreadable clocks are ignored)."""
    for key in ("gpu_mhz", "emc_mhz"):
        if before.get(key) is not None and after.get(key) is not None and before[key] != after[key]:
            return True
    pairs = zip(before.get("cpu_mhz") or [], after.get("cpu_mhz") or [])
    return any(a is not None and b is not None and a != b for a, b in pairs)


def parse_jetson_clocks_show(text: Optional[str]) -> Optional[bool]:
    """Whether ``jetson_clocks --show`` describes locked clocks: GPU and every online CPU at MinFreq == MaxFreq,
    and EMC overridden where the line says. None when the output has no GPU line (not root, not a Jetson)."""
    if not text:
        return None
    gpu = re.search(r"^GPU MinFreq=(\d+) MaxFreq=(\d+)", text, re.MULTILINE)
    if not gpu:
        return None
    locked = gpu.group(1) == gpu.group(2)
    for online, low, high in re.findall(r"^cpu\d+: Online=(\d) .*?MinFreq=(\d+) MaxFreq=(\d+)", text, re.MULTILINE):
        locked = locked and (online == "0" or low == high)
    emc = re.search(r"^EMC .*FreqOverride=(\d)", text, re.MULTILINE)
    return locked and (emc is None or emc.group(1) == "1")


def clocks_locked_from_sysfs(snap: Dict[str, Any]) -> Optional[bool]:
    """jetson_clocks state without root: GPU min == max (or cur == max), and EMC at its max where known."""
    low, cur, high = snap.get("gpu_min_mhz"), snap.get("gpu_mhz"), snap.get("gpu_max_mhz")
    if high is None or (low is None and cur is None):
        return None
    locked = low == high if low is not None else cur == high
    if snap.get("emc_mhz") is not None and snap.get("emc_max_mhz") is not None:
        locked = locked and snap["emc_mhz"] == snap["emc_max_mhz"]
    return locked


def temperatures(root: Path = Path("/")) -> Optional[Dict[str, float]]:
    """Thermal zone type -> °C from /sys/class/thermal (offline zones, below -40 °C, left out); None if none."""
    found: Dict[str, float] = {}
    zones = sorted(root.glob("sys/class/thermal/thermal_zone*"), key=lambda p: int(re.sub(r"\D", "", p.name) or 0))
    for zone in zones:
        name, milli = read_text(zone / "type"), read_number(zone / "temp")
        if not name or milli is None or milli / 1000 <= -40:
            continue
        key = name if name not in found else f"{name}.{zone.name[len('thermal_zone'):]}"
        found[key] = milli / 1000
    return found or None


def jetson_state(root: Path = Path("/"), run: Runner = run_command) -> Optional[Dict[str, Any]]:
    """The ``environment.jetson`` object, or None when this is not a Jetson."""
    if not on_jetson(root):
        return None
    parsers = check_env_module()
    board = l4t = jetpack = nvpmodel = mode_id = None
    if parsers is not None:
        try:
            board = parsers.parse_device_model(_read_bytes(root / "proc/device-tree/model"))
            l4t = parsers.parse_l4t_release(read_text(root / "etc/nv_tegra_release"))
            jetpack = parsers.jetpack_for_l4t(l4t)
            mode = parsers.parse_nvpmodel(run(["nvpmodel", "-q"]))
            nvpmodel, mode_id = (mode.name, mode.mode_id) if mode else (None, None)
        except Exception:  # noqa: BLE001 - a parser that changed shape must not stop a benchmark
            pass
    snap = clock_snapshot(root)
    show = run(["jetson_clocks", "--show"])
    locked = parse_jetson_clocks_show(show)
    if locked is None:
        locked = clocks_locked_from_sysfs(snap)
    if show and snap["gpu_mhz"] is None:
        match = re.search(r"^GPU .*CurrentFreq=(\d+)", show, re.MULTILINE)
        snap["gpu_mhz"] = _mhz(float(match.group(1))) if match else None
    if show and snap["emc_mhz"] is None:
        match = re.search(r"^EMC .*CurrentFreq=(\d+)", show, re.MULTILINE)
        snap["emc_mhz"] = _mhz(float(match.group(1))) if match else None
    return {"board": board, "l4t": l4t, "jetpack": jetpack, "nvpmodel": nvpmodel, "nvpmodel_id": mode_id,
            "jetson_clocks": locked, "gpu_mhz": snap["gpu_mhz"], "emc_mhz": snap["emc_mhz"],
            "temperature_c": temperatures(root), "clocks": snap}


def _read_bytes(path: Path) -> Optional[bytes]:
    try:
        return path.read_bytes()
    except OSError:
        return None


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
        "jetson": jetson_state(root, run),
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
