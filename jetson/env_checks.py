"""The checks behind ``python jetson/check_env.py``: one line per finding, each wrong one with its fix.

Findings: board, L4T/JetPack, Python, OpenCV and GStreamer, TensorRT, CUDA bindings, ONNX Runtime,
edge backends, cameras, power mode. ``main()`` returns 0 when edge can run here, 1 when something
blocks it. ``jetson/check_env.py`` (which parses on Python 2.7 and 3.4) runs this file only on
Python 3.6+ and answers older interpreters itself.

The board is read by :mod:`edge.board` (the checkout's copy, loaded by path, so the check runs
before edge is installed); the verdicts here (``python_finding``, ``l4t_blocker``, ``cv2_finding``)
take values and return findings, so tests feed them recorded output. Only the standard library is
imported at the top; cv2, tensorrt, onnxruntime and edge are imported lazily.
"""

import argparse
import os
import platform
import re
import sys
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

JETSON_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(JETSON_DIR)


def _load_by_path(name: str, path: str) -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _board_module() -> Any:
    """edge/board.py of this checkout (loaded by path: edge need not be installed), else the installed one."""
    path = os.path.join(REPO, "edge", "board.py")
    if os.path.isfile(path):
        return _load_by_path("edge_checkout_board", path)
    from edge import board

    return board


board = _board_module()
launcher = _load_by_path("edge_check_env_launcher", os.path.join(JETSON_DIR, "check_env.py"))
parse_l4t_release = board.parse_l4t_release
jetpack_for_l4t = board.jetpack_for_l4t
parse_nvpmodel = board.parse_nvpmodel
parse_device_model = board.parse_device_model
version_parts = board.version_parts
PowerMode = board.PowerMode
#: the oldest Python edge runs on: setup.py's python_requires, read by the launcher
MIN_PYTHON = launcher.edge_min_python()

# ---------------------------------------------------------------------------------------------
# Findings
# ---------------------------------------------------------------------------------------------

OK, INFO, WARN, FAIL = "ok", "info", "warn", "FAIL"


class Finding(NamedTuple):
    """One line of the report: level (ok/info/warn/FAIL), topic, what was found, and the fix."""

    level: str
    topic: str
    text: str
    fix: str = ""

    def line(self) -> str:
        """The finding as one line: ``[warn] cv2         … Fix: …``."""
        text = f"[{self.level}]".ljust(7) + f"{self.topic:<11} {self.text}"
        return f"{text}. Fix: {self.fix}" if self.fix else text


# ---------------------------------------------------------------------------------------------
# Verdicts: values in, findings out (the parsers are edge.board's)
# ---------------------------------------------------------------------------------------------

def l4t_blocker(version: Any, min_python: Tuple[int, int] = MIN_PYTHON) -> Optional[str]:
    """Why edge cannot run on this L4T line, or None when the line is supported (or unknown).

    min_python: the oldest Python edge runs on; JetPack 4.6 (L4T R32.6/32.7) ships Python 3.6.
    """
    parts = version_parts(version)
    if parts is None:
        return None
    if parts[0] <= 21:
        return ("L4T R21 is the Jetson TK1 line: 32-bit ARM, CUDA 6.5, no TensorRT and no modern Python; "
                "edge does not run there")
    if parts[0] < 32 or (parts[0] == 32 and len(parts) > 1 and parts[1] < 6):
        release = ".".join(str(p) for p in parts[:2])
        return f"L4T R{release} predates JetPack 4.6; its Python and TensorRT are too old for edge"
    if parts[0] == 32 and tuple(min_python) > (3, 6):
        return ("JetPack 4.x (L4T R32) ships Python 3.6 and its TensorRT/OpenCV bindings are built for 3.6 only; "
                f"edge needs Python {min_python[0]}.{min_python[1]}+")
    return None


def venv_includes_system_site(pyvenv_cfg: Any) -> Optional[bool]:
    """``include-system-site-packages`` from a pyvenv.cfg text; None when the key is absent."""
    if not isinstance(pyvenv_cfg, str):
        return None
    match = re.search(r"^\s*include-system-site-packages\s*=\s*(\w+)", pyvenv_cfg, re.MULTILINE | re.IGNORECASE)
    return match.group(1).lower() == "true" if match else None


def python_finding(version_info: Sequence[int], min_python: Tuple[int, int] = MIN_PYTHON) -> Finding:
    """The Python version verdict: FAIL below ``min_python`` (setup.py's python_requires), ok otherwise."""
    shown = ".".join(str(part) for part in version_info[:3])
    needed = f"{min_python[0]}.{min_python[1]}"
    if tuple(version_info[:2]) < tuple(min_python):
        fix = ("use JetPack 5.1+ (Python 3.8) or newer; JetPack 4.6 (Python 3.6) is not supported"
               if tuple(min_python) > (3, 6) else f"run this with Python {needed} or newer (python3 on JetPack 4.6+)")
        return Finding(FAIL, "python", f"{shown} is below {needed}, which edge needs", fix)
    return Finding(OK, "python", f"{shown} ({sys.executable})")


def cv2_finding(on_jetson: bool, version: str, location: str, gstreamer: bool,
                pip_dists: Sequence[Tuple[str, str]], shadowed: Sequence[str]) -> Finding:
    """The OpenCV verdict: on a Jetson, pip's opencv-python (no GStreamer) shadowing JetPack's is a warning."""
    text = f"{version} at {location}, GStreamer {'yes' if gstreamer else 'no'}"
    if pip_dists:
        text += "; pip has " + ", ".join(f"{name} {ver}" for name, ver in pip_dists)
    if shadowed:
        text += "; it shadows " + ", ".join(shadowed)
    if on_jetson and not gstreamer:
        names = " ".join(name for name, _ in pip_dists) or "opencv-python"
        fix = (f"pip uninstall {names}, then use JetPack's cv2 from a venv made with "
               "python3 -m venv --system-site-packages (sudo apt install nvidia-opencv if it is missing)")
        return Finding(WARN, "cv2", text + " (csi:// and rtsp:// need GStreamer)", fix)
    if shadowed:
        return Finding(WARN, "cv2", text, f"pip uninstall {' '.join(n for n, _ in pip_dists) or 'opencv-python'}")
    return Finding(OK, "cv2", text)


# ---------------------------------------------------------------------------------------------
# Probes: read the machine; each returns findings and never raises for a missing piece
# ---------------------------------------------------------------------------------------------

OPENCV_DISTS = ("opencv-python", "opencv-contrib-python", "opencv-python-headless", "opencv-contrib-python-headless")
NV_TEGRA_RELEASE = "/etc/nv_tegra_release"
DEVICE_TREE_MODEL = "/proc/device-tree/model"


def _read(path: str, binary: bool = False) -> Any:
    try:
        with open(path, "rb" if binary else "r") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return None


def probe_board(state: Dict[str, Any]) -> List[Finding]:
    """Board model, CPU architecture, L4T release and JetPack guess."""
    model = parse_device_model(_read(DEVICE_TREE_MODEL, binary=True))
    release_text = _read(NV_TEGRA_RELEASE)
    l4t = parse_l4t_release(release_text)
    machine = platform.machine()
    state["on_jetson"] = release_text is not None or bool(model and ("jetson" in model.lower()
                                                                     or "nvidia" in model.lower()))
    state["l4t"] = l4t
    findings = []
    if machine in ("armv7l", "armv6l", "armhf"):
        findings.append(Finding(WARN, "board", f"{model or 'this board'} runs 32-bit ARM ({machine}): edge runs on "
                                "the CPU only (opencv backend); there is no TensorRT and no ONNX Runtime wheel for it",
                                "sudo apt install python3-numpy python3-opencv python3-onnx, then pip install "
                                "--no-deps . from the checkout; for the GPU use a 64-bit Jetson (Nano or newer)"))
    if not state["on_jetson"]:
        findings.append(Finding(INFO, "board", f"not a Jetson ({machine}, no {NV_TEGRA_RELEASE}): edge runs on the "
                                "CPU here (pip install '.[cpu]')"))
        return findings
    findings.append(Finding(OK, "board", f"{model or 'unknown Jetson model'} ({machine})"))
    if l4t is None:
        findings.append(Finding(WARN, "l4t", f"cannot read the L4T release from {NV_TEGRA_RELEASE}",
                                "check the file (cat /etc/nv_tegra_release) or apt show nvidia-jetpack"))
        return findings
    blocker = l4t_blocker(l4t)
    jetpack = jetpack_for_l4t(l4t)
    text = f"L4T {l4t} -> JetPack {jetpack or 'unknown (newer than this table?)'}"
    if blocker:
        findings.append(Finding(FAIL, "l4t", f"{text}: {blocker}",
                                "reflash with JetPack 5.1+ where the board supports it (Xavier, Orin), or run edge "
                                "on the CPU of another machine"))
    else:
        findings.append(Finding(OK, "l4t", text))
    return findings


def probe_venv(state: Dict[str, Any]) -> List[Finding]:
    """On a Jetson, a venv must see JetPack's cv2 and tensorrt (--system-site-packages)."""
    if sys.prefix == getattr(sys, "base_prefix", sys.prefix) or not state.get("on_jetson"):
        return []
    system_site = venv_includes_system_site(_read(os.path.join(sys.prefix, "pyvenv.cfg")))
    if system_site is False:
        return [Finding(WARN, "venv", f"{sys.prefix} hides JetPack's cv2 and tensorrt (no system site-packages)",
                        f"python3 -m venv --system-site-packages {sys.prefix} (keeps installed packages), "
                        "or run jetson/setup.sh")]
    return [Finding(OK, "venv", f"{sys.prefix} (with system site-packages)")]


def _pip_opencv_dists() -> List[Tuple[str, str]]:
    try:
        from importlib import metadata  # novermin - guarded: absent on 3.6/3.7
    except ImportError:  # Python < 3.8: the Python check already fails
        return []
    found = []
    for name in OPENCV_DISTS:
        try:
            found.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    return found


def _shadowed_cv2(cv2_dir: str) -> List[str]:
    """Other cv2 packages on sys.path or in the system dist-packages that the imported one hides."""
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    places = list(sys.path) + [f"/usr/lib/python{version}/dist-packages", "/usr/lib/python3/dist-packages",
                               f"/usr/local/lib/python{version}/dist-packages"]
    found: List[str] = []
    for place in places:
        candidate = os.path.join(place or ".", "cv2")
        if (os.path.isdir(candidate) and os.path.realpath(candidate) != os.path.realpath(cv2_dir)
                and candidate not in found):
            found.append(candidate)
    return found


def probe_cv2(state: Dict[str, Any]) -> List[Finding]:
    """cv2 version, location, GStreamer, and whether pip's opencv-python hides JetPack's."""
    try:
        from edge.cv import has_gstreamer, import_cv2, numpy_mismatch
    except (ImportError, SyntaxError):
        return []  # probe_edge says why edge does not import
    try:
        cv2 = import_cv2()
    except ImportError as exc:
        mismatch = numpy_mismatch(exc)
        if mismatch is not None:  # e.g. numpy 2 left behind by pip install '.[cpu]', JetPack's cv2 built for 1.x
            return [Finding(FAIL if state.get("on_jetson") else WARN, "cv2", mismatch.what, mismatch.fix or "")]
        fix = "pip install '.[cpu]'"
        if state.get("on_jetson"):
            fix = "sudo apt install nvidia-opencv and use a venv made with --system-site-packages"
        return [Finding(WARN, "cv2", f"not importable ({exc}): no camera, video or OpenCV backend", fix)]
    cv2_dir = os.path.dirname(os.path.abspath(cv2.__file__ or "cv2"))
    return [cv2_finding(bool(state.get("on_jetson")), cv2.__version__, cv2_dir, has_gstreamer(),
                        _pip_opencv_dists(), _shadowed_cv2(cv2_dir))]


def probe_tensorrt(state: Dict[str, Any]) -> List[Finding]:
    """TensorRT Python bindings and a CUDA binding (pycuda or cuda-python) for them."""
    import importlib.util

    on_jetson = state.get("on_jetson")
    try:
        import tensorrt

        trt_text = f"{tensorrt.__version__} ({os.path.dirname(tensorrt.__file__ or '')})"
    except (ImportError, OSError):
        trt_text = None
    cuda_bindings = [name for name, module in (("pycuda", "pycuda"), ("cuda-python", "cuda"))
                     if importlib.util.find_spec(module) is not None]
    findings = []
    if trt_text:
        findings.append(Finding(OK, "tensorrt", trt_text))
    elif on_jetson:
        findings.append(Finding(WARN, "tensorrt", "not importable: no TensorRT backend",
                                "sudo apt install python3-libnvinfer (JetPack) and use a venv made with "
                                "--system-site-packages"))
    else:
        findings.append(Finding(INFO, "tensorrt", "absent (not needed on the CPU)"))
    if cuda_bindings:
        findings.append(Finding(OK, "cuda", ", ".join(cuda_bindings)))
    elif trt_text:
        findings.append(Finding(WARN, "cuda", "neither pycuda nor cuda-python: TensorRT cannot get GPU memory",
                                "PATH=/usr/local/cuda/bin:$PATH pip install pycuda"))
    return findings


def probe_onnxruntime(state: Dict[str, Any]) -> List[Finding]:
    """ONNX Runtime version and its (compile-time) execution providers."""
    try:
        import onnxruntime

        providers = list(onnxruntime.get_available_providers())
    except ImportError:
        fix = ("pip install onnxruntime-gpu from the Jetson AI Lab index for your JetPack (see jetson/README.md)"
               if state.get("on_jetson") else "pip install '.[cpu]'")
        return [Finding(INFO, "onnxruntime", "not installed", fix)]
    short = ", ".join(p.replace("ExecutionProvider", "") for p in providers)
    text = f"{onnxruntime.__version__}, providers: {short}"
    if state.get("on_jetson") and "CUDAExecutionProvider" not in providers:
        return [Finding(WARN, "onnxruntime", text + " (CPU only)",
                        "pip uninstall onnxruntime; pip install onnxruntime-gpu from the Jetson AI Lab index for your "
                        "JetPack (see jetson/README.md)")]
    return [Finding(OK, "onnxruntime", text)]


def probe_edge(state: Dict[str, Any]) -> List[Finding]:
    """Whether edge imports, and which of its backends can run here (none is a blocker)."""
    try:
        from edge.backends import availability
    except (ImportError, SyntaxError) as exc:
        return [Finding(FAIL, "edge", f"not importable in {sys.executable} ({exc})",
                        "run jetson/setup.sh, or pip install . from the checkout into this Python")]
    rows = availability()
    usable = [name for name, reason in rows if reason is None]
    findings = [Finding(OK if reason is None else INFO, "backend", f"{name}: {reason or 'runs here'}")
                for name, reason in rows]
    if not usable:
        findings.append(Finding(FAIL, "edge", "no backend can run here",
                                "on a Jetson: onnxruntime-gpu from the Jetson AI Lab index, or JetPack's cv2; "
                                "elsewhere: pip install '.[cpu]'"))
    return findings


def probe_cameras(state: Dict[str, Any]) -> List[Finding]:
    """Cameras found, whether this user may open them, and nvargus-daemon for CSI sensors."""
    try:
        from edge.sources import list_cameras
    except (ImportError, SyntaxError):
        return []
    cameras = list_cameras()
    if not cameras:
        return [Finding(INFO, "camera", "none found; use --source demo://, a video file or rtsp://")]
    findings = []
    for camera in cameras:
        findings.append(Finding(OK, "camera", f"{camera.uri} ({camera.name})"))
    devices = sorted(d for d in os.listdir("/dev") if re.fullmatch(r"video\d+", d)) if os.path.isdir("/dev") else []
    denied = [f"/dev/{d}" for d in devices if not os.access(f"/dev/{d}", os.R_OK | os.W_OK)]
    if denied:
        findings.append(Finding(WARN, "camera", f"no read/write access to {', '.join(denied)}",
                                "sudo usermod -aG video $USER, then log out and in again"))
    if any(camera.kind == "csi" for camera in cameras):
        status = board.run_command(["systemctl", "is-active", "nvargus-daemon"], any_exit=True)
        if status is not None and status.strip() != "active":
            findings.append(Finding(WARN, "camera", f"nvargus-daemon is {status.strip() or 'not running'}: csi:// "
                                    "cannot start", "sudo systemctl restart nvargus-daemon"))
    return findings


def probe_power(state: Dict[str, Any]) -> List[Finding]:
    """nvpmodel power mode: anything but MAXN is slower than the published numbers."""
    if not state.get("on_jetson"):
        return []
    output = board.run_command(["nvpmodel", "-q"], any_exit=True)
    mode = parse_nvpmodel(output)
    if mode is None:
        return [Finding(INFO, "power", "nvpmodel not found or unreadable; clocks unknown")]
    shown = mode.name + (f" (mode {mode.mode_id})" if mode.mode_id is not None else "")
    if not mode.name.upper().startswith("MAXN"):
        return [Finding(INFO, "power", f"{shown}: slower than MAXN; fine for power-limited use",
                        "for benchmarks: sudo nvpmodel -q --verbose lists modes, sudo nvpmodel -m <MAXN id>, "
                        "sudo jetson_clocks")]
    return [Finding(OK, "power", shown)]


PROBES: Tuple[Callable[[Dict[str, Any]], List[Finding]], ...] = (
    probe_board, probe_venv, probe_cv2, probe_tensorrt, probe_onnxruntime, probe_edge, probe_cameras, probe_power,
)


def collect(version_info: Optional[Sequence[int]] = None) -> List[Finding]:
    """Every finding for this machine, in report order; ``version_info`` overrides the running Python's."""
    state: Dict[str, Any] = {}
    findings = [python_finding(tuple(version_info or sys.version_info)[:3])]
    if findings[0].level == FAIL:  # edge and its libraries do not import on this Python
        return probe_board(state) + findings
    for probe in PROBES:
        findings.extend(probe(state))
    return findings


def verdict(findings: Sequence[Finding]) -> Tuple[int, str]:
    """Exit code and closing line: 1 and the first blocker when any finding is FAIL, else 0."""
    blockers = [f for f in findings if f.level == FAIL]
    warnings = sum(1 for f in findings if f.level == WARN)
    if blockers:
        return 1, f"result: edge cannot run here: {blockers[0].topic}: {blockers[0].text}"
    suffix = f" ({warnings} warning{'s' if warnings != 1 else ''} above)" if warnings else ""
    return 0, f"result: edge can run here{suffix}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print the report; return 0 when edge can run here, 1 when something blocks it."""
    parser = argparse.ArgumentParser(prog="python jetson/check_env.py", description=launcher.__doc__.split("\n\n")[0])
    parser.parse_args(argv)
    findings = collect()
    print("edge environment check")
    for finding in findings:
        print(finding.line())
    code, closing = verdict(findings)
    print(closing)
    return code

