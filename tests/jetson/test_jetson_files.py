"""Tests for the board files in jetson/: setup.sh, the systemd unit, the Dockerfile and the camera notes."""

import configparser
import platform
import re
import shlex
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
JETSON = ROOT / "jetson"
needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


@needs_bash
def test_setup_sh_parses() -> None:
    done = subprocess.run(["bash", "-n", str(JETSON / "setup.sh")], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=30)
    assert done.returncode == 0, done.stdout


def test_setup_sh_is_strict_and_keeps_system_packages() -> None:
    text = (JETSON / "setup.sh").read_text(encoding="utf-8")
    assert "set -euo pipefail" in text
    assert "python3 -m venv --system-site-packages" in text
    assert "[cpu]" not in re.sub(r"#.*|echo .*", "", text)  # only ever mentioned, never installed


@needs_bash
@pytest.mark.skipif(platform.machine() == "aarch64", reason="checks the refusal on a machine that is not aarch64")
def test_setup_sh_refuses_other_machines() -> None:
    done = subprocess.run(["bash", str(JETSON / "setup.sh")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=30)  # noqa: UP021 - keep 3.8 spelling
    assert done.returncode == 1
    assert "not a Jetson" in done.stdout and "pip install '.[cpu]'" in done.stdout


@needs_bash
@pytest.mark.parametrize("args, code", [(["--help"], 0), (["--no-such-option"], 2)])
def test_setup_sh_options(args: list, code: int) -> None:
    done = subprocess.run(["bash", str(JETSON / "setup.sh"), *args], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=30)
    assert done.returncode == code


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read(JETSON / "edge-camera.service", encoding="utf-8")
    return parser


def test_service_runs_the_camera_app_headless() -> None:
    from edge.camera import build_parser

    unit = _unit()
    argv = shlex.split(unit["Service"]["ExecStart"])
    assert argv[1:3] == ["-m", "edge.camera"]
    args = build_parser().parse_args(argv[3:])  # every flag in the unit is one the app knows
    assert args.headless
    assert args.source == ["csi://0"]  # --source may be repeated (several streams): a list
    assert args.output == ["/var/lib/edge/detections.jsonl"]


def test_service_restarts_on_failure_as_a_dedicated_user() -> None:
    from edge.camera import main
    from edge.console import stop_exit_code
    from edge.sources.base import EXIT_SOURCE_LOST

    service = _unit()["Service"]
    assert service["Restart"] == "on-failure"
    assert service.get("User") not in (None, "", "root")
    # a clean stop (systemctl stop: SIGTERM, or SIGINT) must count as a success, not as a failure
    clean = service["SuccessExitStatus"].split()
    for signum in (signal.SIGTERM, signal.SIGINT):
        assert str(stop_exit_code(signum)) in clean and str(stop_exit_code(signum)) in (main.__doc__ or "")
    assert stop_exit_code(signal.SIGTERM) == 143
    # a source lost for good must be a failure, so Restart=on-failure restarts the app
    assert EXIT_SOURCE_LOST != 0 and str(EXIT_SOURCE_LOST) not in clean
    assert f"{EXIT_SOURCE_LOST} source lost" in (main.__doc__ or "")
    assert "WantedBy" in _unit()["Install"]


def test_dockerfile_base_and_install() -> None:
    text = (JETSON / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^ARG L4T_TAG=r36\.4\.0$", text, re.MULTILINE)
    assert re.search(r"^FROM nvcr\.io/nvidia/l4t-jetpack:\$\{L4T_TAG\}$", text, re.MULTILINE)
    installs = " ".join(line for line in text.splitlines() if "pip install" in line and not line.startswith("#"))
    assert "pip install" in installs and "[cpu]" not in installs and "opencv-python" not in installs
    for option in ("--runtime nvidia", "--device /dev/video0", "/tmp/argus_socket"):
        assert option in text


def test_cameras_md_quotes_the_pipelines_edge_builds() -> None:
    from edge.sources.capture import _csi_pipeline_for
    from edge.sources.uri import parse_source, rtsp_pipeline

    text = (JETSON / "CAMERAS.md").read_text(encoding="utf-8")
    url = "rtsp://cam.local:554/stream1"
    for pipeline in (
        _csi_pipeline_for(parse_source("csi://0")),
        _csi_pipeline_for(parse_source("csi://1?width=1280&height=720&fps=60&flip=rotate-180")),
        rtsp_pipeline(url, jetson=True),
        rtsp_pipeline(url, jetson=False),
    ):
        assert pipeline in text, f"CAMERAS.md is out of date with edge/sources/uri.py: {pipeline}"


def test_cameras_md_gst_examples_parse() -> None:
    from edge.sources.uri import parse_source

    text = (JETSON / "CAMERAS.md").read_text(encoding="utf-8")
    uris = re.findall(r'"?(gst://[^"`\n]+)', text)
    assert uris
    for uri in uris:
        assert parse_source(uri).kind == "gst"


def test_readme_covers_the_board_pitfalls() -> None:
    text = (JETSON / "README.md").read_text(encoding="utf-8")
    for needle in ("python3 -m venv --system-site-packages", "pip uninstall opencv-python", "nvargus-daemon",
                   "csi://0?flip=rotate-180", "v4l2-ctl", "--headless", "TK1", "JetPack 4.6", "check the index"):
        assert needle.lower() in text.lower(), needle
