"""Tests for jetson/check_env.py: parsers against recorded board output, the report on this machine."""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, List, Optional, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "jetson" / "check_env.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("jetson_check_env", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


check_env = _load()
ON_JETSON = os.path.exists("/etc/nv_tegra_release")

# Recorded /etc/nv_tegra_release contents, one per JetPack line (second lines as L4T writes them).
RELEASES: List[Tuple[str, str, str]] = [
    ("# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref, EABI: aarch64, "
     "DATE: Sat Feb 19 17:05:08 UTC 2022\n", "32.7.1", "4.6.1"),
    ("# R35 (release), REVISION: 3.1, GCID: 32827747, BOARD: t186ref, EABI: aarch64, "
     "DATE: Sun Mar 19 15:19:21 UTC 2023\n"
     "# KERNEL_VARIANT: oot\nTARGET_USERSPACE_LIB_DIR=nvidia\n"
     "TARGET_USERSPACE_LIB_DIR_PATH=usr/lib/aarch64-linux-gnu/nvidia\n", "35.3.1", "5.1.x"),
    ("# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, "
     "DATE: Tue Aug  1 19:57:35 UTC 2023\n", "35.4.1", "5.1.x"),
    ("# R36 (release), REVISION: 3.0, GCID: 36191598, BOARD: generic, EABI: aarch64, "
     "DATE: Mon May  6 17:34:21 UTC 2024\n# KERNEL_VARIANT: oot\nTARGET_USERSPACE_LIB_DIR=nvidia\n"
     "TARGET_USERSPACE_LIB_DIR_PATH=usr/lib/aarch64-linux-gnu/nvidia\n", "36.3.0", "6.0"),
    ("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, "
     "DATE: Wed Jan  8 01:49:37 UTC 2025\n# KERNEL_VARIANT: oot\n", "36.4.3", "6.2"),
    ("# R38 (release), REVISION: 2.0, GCID: 41844464, BOARD: generic, EABI: aarch64, "
     "DATE: Fri Aug 22 00:55:42 UTC 2025\n", "38.2.0", "7.0"),
]


@pytest.mark.parametrize("text, l4t, jetpack", RELEASES)
def test_parse_l4t_release_and_jetpack(text: str, l4t: str, jetpack: str) -> None:
    assert check_env.parse_l4t_release(text) == l4t
    assert check_env.jetpack_for_l4t(l4t) == jetpack


@pytest.mark.parametrize("text", [
    "", "garbage", "R35 REVISION 3.1", "# R35 (release), REVISION: x.y, GCID: 1",
    "\x00\xff\xfe", "REVISION: 3.1", None, 42, b"# R35 (release), REVISION: 3.1",
])
def test_parse_l4t_release_garbled_is_none(text: Any) -> None:
    assert check_env.parse_l4t_release(text) is None


@pytest.mark.parametrize("l4t, jetpack", [
    ("32.6.1", "4.6"),
    ("32.7.6", "4.6.6"),
    ("32.7.9", "4.6.x"),
    ("34.1.1", "5.0 (developer preview)"),
    ("35.1.0", "5.0.2"),
    ("35.2.1", "5.1.x"),
    ("35.5.0", "5.1.x"),
    ("35.6.4", "5.1.x"),
    ("36.4.0", "6.1"),
    ("36.4.4", "6.2.1"),
    ("36.4.9", "6.1/6.2"),
    ("36.5.0", "6.2.2"),
    ("38.4.0", "7.1"),
    ("38.9", "7.0/7.1"),
    ("39.2.0", "7.2"),
    ("21.8", None),
    ("36.10.0", None),
    ("99.1.0", None),
    ("", None),
    ("abc", None),
    ("35.x", None),
    (None, None),
    (35, None),
])
def test_jetpack_for_l4t(l4t: Any, jetpack: Optional[str]) -> None:
    assert check_env.jetpack_for_l4t(l4t) == jetpack


@pytest.mark.parametrize("l4t, blocked_because", [
    ("21.8.0", "TK1"),
    ("28.2.1", "too old"),
    ("32.7.1", "Python 3.6"),
    ("35.3.1", None),
    ("36.4.3", None),
    ("38.2.0", None),
    ("nonsense", None),
])
def test_l4t_blocker(l4t: str, blocked_because: Optional[str]) -> None:
    reason = check_env.l4t_blocker(l4t)
    if blocked_because is None:
        assert reason is None
    else:
        assert reason is not None and blocked_because in reason


@pytest.mark.parametrize("text, name, mode_id", [
    ("NV Power Mode: MAXN\n0", "MAXN", 0),
    ("NV Power Mode: 15W\n2", "15W", 2),
    ("NV Power Mode: MAXN\n0\n", "MAXN", 0),
    ("NVPM WARN: fan mode is not set!\nNV Power Mode: MAXN_SUPER\n2\n", "MAXN_SUPER", 2),
    ("NV Power Mode: 7W", "7W", None),
])
def test_parse_nvpmodel(text: str, name: str, mode_id: Optional[int]) -> None:
    assert check_env.parse_nvpmodel(text) == (name, mode_id)


@pytest.mark.parametrize("text", ["", "nvpmodel: command failed", "Power Mode MAXN", "NV Power Mode:", None, 3])
def test_parse_nvpmodel_garbled_is_none(text: Any) -> None:
    assert check_env.parse_nvpmodel(text) is None


@pytest.mark.parametrize("raw, model", [
    (b"NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super\x00",
     "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super"),
    (b"NVIDIA Jetson Nano Developer Kit\x00", "NVIDIA Jetson Nano Developer Kit"),
    ("Jetson-AGX\x00", "Jetson-AGX"),
    (b"\x00", None),
    (None, None),
])
def test_parse_device_model(raw: Any, model: Optional[str]) -> None:
    assert check_env.parse_device_model(raw) == model


@pytest.mark.parametrize("cfg, expected", [
    ("home = /usr/bin\ninclude-system-site-packages = true\nversion = 3.8.10\n", True),
    ("home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.10.12\n", False),
    ("home = /usr/bin\n", None),
    (None, None),
])
def test_venv_includes_system_site(cfg: Any, expected: Optional[bool]) -> None:
    assert check_env.venv_includes_system_site(cfg) is expected


@pytest.mark.parametrize("version, level", [((3, 6, 9), "FAIL"), ((3, 7, 17), "FAIL"), ((3, 8, 10), "ok"),
                                            ((3, 12, 3), "ok")])
def test_python_finding(version: Tuple[int, int, int], level: str) -> None:
    finding = check_env.python_finding(version)
    assert finding.level == level
    assert (finding.fix != "") == (level == "FAIL")


PIP_CV = [("opencv-python", "4.10.0.84")]


@pytest.mark.parametrize("on_jetson, gstreamer, pip_dists, shadowed, level, fix_has", [
    (True, False, PIP_CV, ["/usr/lib/python3.8/dist-packages/cv2"], "warn", "pip uninstall opencv-python"),
    (True, False, [], [], "warn", "--system-site-packages"),
    (True, True, [], [], "ok", ""),
    (False, False, PIP_CV, [], "ok", ""),
    (False, True, PIP_CV, ["/usr/lib/python3/dist-packages/cv2"], "warn", "pip uninstall opencv-python"),
])
def test_cv2_finding(on_jetson: bool, gstreamer: bool, pip_dists: List[Tuple[str, str]], shadowed: List[str],
                     level: str, fix_has: str) -> None:
    finding = check_env.cv2_finding(on_jetson, "4.10.0", "/venv/cv2", gstreamer, pip_dists, shadowed)
    assert finding.level == level
    assert fix_has in finding.fix
    assert "\n" not in finding.line()


@pytest.mark.parametrize("levels, code", [(["ok", "info"], 0), (["ok", "warn"], 0), (["ok", "FAIL", "warn"], 1)])
def test_verdict(levels: List[str], code: int) -> None:
    findings = [check_env.Finding(level, "topic", "text", "fix" if level != "ok" else "") for level in levels]
    assert check_env.verdict(findings)[0] == code


def test_finding_line_is_one_line_with_fix() -> None:
    line = check_env.Finding("warn", "cv2", "no GStreamer", "pip uninstall opencv-python").line()
    assert line.startswith("[warn]") and line.endswith("Fix: pip uninstall opencv-python")


@pytest.mark.skipif(ON_JETSON, reason="asserts the non-Jetson report")
def test_main_on_this_machine_says_not_a_jetson(capsys: pytest.CaptureFixture[str]) -> None:
    code = check_env.main([])
    out = capsys.readouterr().out
    assert code in (0, 1)
    assert "not a Jetson" in out
    assert out.strip().splitlines()[-1].startswith("result: edge can" if code == 0 else "result: edge cannot")


def test_main_with_a_recorded_jetson(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    release = tmp_path / "nv_tegra_release"
    release.write_text(RELEASES[1][0])
    model = tmp_path / "model"
    model.write_bytes(b"NVIDIA Jetson Xavier NX Developer Kit\x00")
    monkeypatch.setattr(check_env, "NV_TEGRA_RELEASE", str(release))
    monkeypatch.setattr(check_env, "DEVICE_TREE_MODEL", str(model))
    code = check_env.main([])
    out = capsys.readouterr().out
    assert code in (0, 1)
    assert "NVIDIA Jetson Xavier NX Developer Kit" in out
    assert "L4T 35.3.1 -> JetPack 5.1.x" in out


def test_jetpack4_board_is_blocked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = tmp_path / "nv_tegra_release"
    release.write_text(RELEASES[0][0])
    monkeypatch.setattr(check_env, "NV_TEGRA_RELEASE", str(release))
    findings = check_env.collect()
    code, closing = check_env.verdict(findings)
    assert code == 1
    assert any(f.topic == "l4t" and f.level == "FAIL" and "3.6" in f.text for f in findings)


def test_old_python_is_blocked_before_importing_edge() -> None:
    findings = check_env.collect(version_info=(3, 6, 9))
    assert check_env.verdict(findings)[0] == 1
    assert {f.topic for f in findings} <= {"python", "board", "l4t"}


def test_runs_as_a_script() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, str(SCRIPT)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, env=env, timeout=120)  # noqa: UP021 - keep 3.8 spelling
    assert done.returncode in (0, 1), done.stdout
    assert "result: edge" in done.stdout


def test_top_level_imports_are_stdlib_only() -> None:
    stdlib = {"argparse", "os", "platform", "re", "shutil", "subprocess", "sys", "typing", "importlib"}
    tree = ast.parse(SCRIPT.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Import):
            names = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [(node.module or "").split(".")[0]]
        else:
            continue
        assert set(names) <= stdlib, f"line {node.lineno} imports {names} at the top"
