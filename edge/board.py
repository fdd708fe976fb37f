"""The board edge runs on: Jetson model, L4T release and JetPack, power mode, clocks and temperatures.

Part of the installed package, so that ``edge-bench`` records the board wherever edge is installed,
and ``jetson/check_env.py`` and the benchmarks read the board with the same code. Two layers:

- parsers (``parse_l4t_release``, ``jetpack_for_l4t``, ``parse_nvpmodel``, ``parse_device_model``,
  ``parse_jetson_clocks_show``) take text and return a value or None; they never raise and do no
  I/O, so tests feed them recorded JetPack output;
- probes (``on_jetson``, ``clock_snapshot``, ``temperatures``, ``board_state``) read the machine
  under a ``root`` folder (a fake ``/sys`` + ``/etc`` tree in tests) and run commands through an
  injectable runner; an absent file, a missing command or a failing one gives None, never an error.

Standard library only, and Python 3.6 syntax: ``jetson/check_env.py`` loads this file by path when
edge is not installed yet.
"""

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

Runner = Callable[[List[str]], Optional[str]]

NV_TEGRA_RELEASE = "etc/nv_tegra_release"
DEVICE_TREE_MODEL = "proc/device-tree/model"
#: devfreq folders that hold the Jetson GPU, by release (JetPack 4: gpu.0; 5/6: the GPU's platform device)
GPU_DEVFREQ_GLOBS = ("sys/devices/gpu.0/devfreq/*", "sys/devices/platform/gpu.0/devfreq/*", "sys/class/devfreq/*")
GPU_DEVFREQ_NAMES = ("gpu", "gm20b", "gp10b", "gv11b", "ga10b", "17000000")
#: EMC (memory controller) clock in Hz: debugfs, readable by root only
EMC_RATE_FILES = ("sys/kernel/debug/bpmp/debug/clk/emc/rate", "sys/kernel/debug/clk/emc/clk_rate")
EMC_MAX_FILES = ("sys/kernel/debug/bpmp/debug/clk/emc/max_rate", "sys/kernel/debug/clk/emc/max_rate")


class PowerMode(NamedTuple):
    """The nvpmodel power mode: its name (``MAXN``, ``15W``) and numeric id when reported."""

    name: str
    mode_id: Optional[int]


# ------------------------------------------------------------------ parsers: text in, value or None out

_L4T_LINE = re.compile(r"^#\s*R(\d+)\s*\(\w+\)\s*,\s*REVISION:\s*(\d+)(?:\.(\d+))?", re.MULTILINE)

# (L4T prefix, JetPack); the longest matching prefix wins.
_JETPACK_BY_L4T: Tuple[Tuple[str, str], ...] = (
    ("24", "2.3.x"), ("27.1", "3.0"), ("28.1", "3.1"), ("28.2", "3.2/3.3"), ("28", "3.x"),
    ("32.1", "4.2"), ("32.2", "4.2.x"), ("32.3", "4.3"), ("32.4", "4.4.x"), ("32.5", "4.5.x"),
    ("32.6", "4.6"),
    ("32.7.1", "4.6.1"), ("32.7.2", "4.6.2"), ("32.7.3", "4.6.3"),
    ("32.7.4", "4.6.4"), ("32.7.5", "4.6.5"), ("32.7.6", "4.6.6"), ("32.7", "4.6.x"),
    ("34.1", "5.0 (developer preview)"),
    ("35.1", "5.0.2"),
    ("35.2", "5.1.x"), ("35.3", "5.1.x"), ("35.4", "5.1.x"), ("35.5", "5.1.x"), ("35.6", "5.1.x"),
    ("36.3", "6.0"),
    ("36.4.0", "6.1"), ("36.4.3", "6.2"), ("36.4.4", "6.2.1"), ("36.4.7", "6.2.1"), ("36.4", "6.1/6.2"),
    ("36.5.0", "6.2.2"), ("36.5.2", "6.2.3"), ("36.5", "6.2.x"),
    ("38.2", "7.0"), ("38.4", "7.1"), ("38", "7.0/7.1"),
    ("39", "7.2"),
)


def parse_l4t_release(text: Any) -> Optional[str]:
    """L4T version from /etc/nv_tegra_release text, e.g. ``# R35 (release), REVISION: 3.1, …`` -> "35.3.1"."""
    if not isinstance(text, str):
        return None
    match = _L4T_LINE.search(text)
    if not match:
        return None
    major, minor, patch = match.group(1), match.group(2), match.group(3)
    return f"{int(major)}.{int(minor)}.{int(patch or 0)}"


def version_parts(version: Any) -> Optional[List[int]]:
    """"35.3.1" -> [35, 3, 1]; None for anything that is not dotted numbers."""
    if not isinstance(version, str) or not re.fullmatch(r"\d+(\.\d+)*", version.strip()):
        return None
    return [int(part) for part in version.strip().split(".")]


def jetpack_for_l4t(version: Any) -> Optional[str]:
    """JetPack release for an L4T version ("35.3.1" -> "5.1.x", "36.4.3" -> "6.2"); None when unknown."""
    parts = version_parts(version)
    if parts is None:
        return None
    best: Optional[Tuple[int, str]] = None
    for prefix, jetpack in _JETPACK_BY_L4T:
        want = [int(p) for p in prefix.split(".")]
        if parts[: len(want)] == want and (best is None or len(want) > best[0]):
            best = (len(want), jetpack)
    return best[1] if best else None


def parse_nvpmodel(text: Any) -> Optional[PowerMode]:
    """Power mode from ``nvpmodel -q`` output ("NV Power Mode: MAXN\\n0" -> PowerMode("MAXN", 0))."""
    if not isinstance(text, str):
        return None
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = re.search(r"NV Power Mode\s*:\s*(\S.*?)\s*$", line)
        if match:
            mode_id = None
            for following in lines[i + 1:]:
                if following.strip().isdigit():
                    mode_id = int(following.strip())
                    break
            return PowerMode(match.group(1), mode_id)
    return None


def parse_device_model(raw: Any) -> Optional[str]:
    """Board name from /proc/device-tree/model (NUL-terminated), or None when empty."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    if not isinstance(raw, str):
        return None
    name = raw.replace("\x00", "").strip()
    return name or None


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


# ------------------------------------------------------------------ reading the machine


def run_command(command: List[str], timeout_s: float = 10.0, any_exit: bool = False) -> Optional[str]:
    """stdout+stderr of a command, or None when it is missing, fails to start, hangs or (unless ``any_exit``:
    ``systemctl is-active`` exits 3 for "inactive") exits non-zero."""
    if shutil.which(command[0]) is None:
        return None
    try:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True, timeout=timeout_s)  # noqa: UP021 - text= is 3.7+
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 or any_exit else None


def read_bytes(path: Path) -> Optional[bytes]:
    """A file's bytes, or None when absent or unreadable."""
    try:
        return path.read_bytes()
    except OSError:
        return None


def read_text(path: Path) -> Optional[str]:
    """A small file's text (NULs dropped, stripped), or None when absent or unreadable."""
    raw = read_bytes(path)
    return None if raw is None else raw.decode("utf-8", errors="replace").replace("\x00", "").strip()


def read_number(path: Path) -> Optional[float]:
    """A file holding one number, or None."""
    text = read_text(path)
    try:
        return float(text.split()[0]) if text else None
    except ValueError:
        return None


def on_jetson(root: Path = Path("/")) -> bool:
    """Whether this is a Jetson: /etc/nv_tegra_release exists, or the device-tree model says so."""
    if (root / NV_TEGRA_RELEASE).is_file():
        return True
    model = (read_text(root / DEVICE_TREE_MODEL) or "").lower()
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
        key = name if name not in found else "{}.{}".format(name, zone.name[len("thermal_zone"):])
        found[key] = milli / 1000
    return found or None


def board_state(root: Path = Path("/"), run: Runner = run_command) -> Optional[Dict[str, Any]]:
    """What a benchmark records about a Jetson (the ``environment.jetson`` object), or None off a Jetson.

    board, l4t, jetpack, nvpmodel (name), nvpmodel_id, jetson_clocks (locked: True/False, None unknown),
    gpu_mhz, emc_mhz, temperature_c, clocks (the full snapshot).
    """
    if not on_jetson(root):
        return None
    l4t = parse_l4t_release(read_text(root / NV_TEGRA_RELEASE))
    mode = parse_nvpmodel(run(["nvpmodel", "-q"]))
    snap = clock_snapshot(root)
    show = run(["jetson_clocks", "--show"])
    locked = parse_jetson_clocks_show(show)
    if locked is None:
        locked = clocks_locked_from_sysfs(snap)
    for key, line in (("gpu_mhz", "GPU"), ("emc_mhz", "EMC")):
        if show and snap[key] is None:
            match = re.search(rf"^{line} .*CurrentFreq=(\d+)", show, re.MULTILINE)
            snap[key] = _mhz(float(match.group(1))) if match else None
    return {"board": parse_device_model(read_bytes(root / DEVICE_TREE_MODEL)), "l4t": l4t,
            "jetpack": jetpack_for_l4t(l4t), "nvpmodel": mode.name if mode else None,
            "nvpmodel_id": mode.mode_id if mode else None, "jetson_clocks": locked, "gpu_mhz": snap["gpu_mhz"],
            "emc_mhz": snap["emc_mhz"], "temperature_c": temperatures(root), "clocks": snap}
