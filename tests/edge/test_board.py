"""edge/board.py: the board probe's parsers against recorded JetPack output, and its Python 3.6 floor."""

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any, List, Optional, Tuple

import pytest

from edge import board

ROOT = Path(__file__).resolve().parents[2]
PYTHON36 = Path("/root/.pyenv/versions/3.6.15/bin/python3.6")

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
    assert board.parse_l4t_release(text) == l4t
    assert board.jetpack_for_l4t(l4t) == jetpack


@pytest.mark.parametrize("text", [
    "", "garbage", "R35 REVISION 3.1", "# R35 (release), REVISION: x.y, GCID: 1",
    "\x00\xff\xfe", "REVISION: 3.1", None, 42, b"# R35 (release), REVISION: 3.1",
])
def test_parse_l4t_release_garbled_is_none(text: Any) -> None:
    assert board.parse_l4t_release(text) is None


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
    ("28.2.1", "3.2/3.3"),
    ("32.4.4", "4.4.x"),
    ("32.5.1", "4.5.x"),
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
    assert board.jetpack_for_l4t(l4t) == jetpack


@pytest.mark.parametrize("text, name, mode_id", [
    ("NV Power Mode: MAXN\n0", "MAXN", 0),
    ("NV Power Mode: 15W\n2", "15W", 2),
    ("NV Power Mode: MAXN\n0\n", "MAXN", 0),
    ("NVPM WARN: fan mode is not set!\nNV Power Mode: MAXN_SUPER\n2\n", "MAXN_SUPER", 2),
    ("NV Power Mode: 7W", "7W", None),
])
def test_parse_nvpmodel(text: str, name: str, mode_id: Optional[int]) -> None:
    assert board.parse_nvpmodel(text) == (name, mode_id)


@pytest.mark.parametrize("text", ["", "nvpmodel: command failed", "Power Mode MAXN", "NV Power Mode:", None, 3])
def test_parse_nvpmodel_garbled_is_none(text: Any) -> None:
    assert board.parse_nvpmodel(text) is None


@pytest.mark.parametrize("raw, model", [
    (b"NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super\x00",
     "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super"),
    (b"NVIDIA Jetson Nano Developer Kit\x00", "NVIDIA Jetson Nano Developer Kit"),
    ("Jetson-AGX\x00", "Jetson-AGX"),
    (b"\x00", None),
    (None, None),
])
def test_parse_device_model(raw: Any, model: Optional[str]) -> None:
    assert board.parse_device_model(raw) == model




def test_board_is_stdlib_only_and_python36_syntax() -> None:
    """jetson/check_env.py loads edge/board.py by path on Python 3.6, before edge is installed."""
    text = (ROOT / "edge" / "board.py").read_text(encoding="utf-8")
    if sys.version_info < (3, 8):
        pytest.skip("ast.parse(feature_version=) needs Python 3.8 (on 3.6 the import itself is the check)")
    tree = ast.parse(text, feature_version=(3, 6))  # novermin - skipped above before 3.8
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.module in ("re", "shutil", "subprocess", "pathlib", "typing"), node.module
            assert node.module != "__future__"
        elif isinstance(node, ast.Import):
            assert {alias.name for alias in node.names} <= {"re", "shutil", "subprocess"}


@pytest.mark.skipif(not PYTHON36.exists(), reason="needs pyenv's Python 3.6.15")
def test_board_runs_on_a_real_python36(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "nv_tegra_release").write_text(RELEASES[0][0])
    (tmp_path / "proc" / "device-tree").mkdir(parents=True)
    (tmp_path / "proc" / "device-tree" / "model").write_bytes(b"NVIDIA Jetson Nano Developer Kit\x00")
    code = ("import importlib.util, sys; spec = importlib.util.spec_from_file_location('b', sys.argv[1]); "
            "b = importlib.util.module_from_spec(spec); spec.loader.exec_module(b); from pathlib import Path; "
            "s = b.board_state(Path(sys.argv[2]), run=lambda c: 'NV Power Mode: MAXN\\n0\\n' if c[0] == 'nvpmodel' "
            "else None); print(s['board'], s['l4t'], s['jetpack'], s['nvpmodel'], s['nvpmodel_id'])")
    done = subprocess.run([str(PYTHON36), "-c", code, str(ROOT / "edge" / "board.py"), str(tmp_path)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=60)
    assert done.returncode == 0, done.stdout
    assert done.stdout.strip() == "NVIDIA Jetson Nano Developer Kit 32.7.1 4.6.1 MAXN 0"
