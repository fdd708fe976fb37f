"""jetson/check_env.py (the launcher that runs on Python 2.7 and 3.4) and jetson/env_checks.py (the checks):
verdicts on recorded board output, the report on this machine, and the advice old interpreters get.
The parsers are edge.board's (tests/edge/test_board.py)."""

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
CHECKS = ROOT / "jetson" / "env_checks.py"
PYENV = Path("/root/.pyenv/versions")
PYTHON27 = PYENV / "2.7.18" / "bin" / "python2.7"
PYTHON36 = PYENV / "3.6.15" / "bin" / "python3.6"


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


check_env = _load("jetson_env_checks", CHECKS)  # the checks (Python 3.6+)
launcher = _load("jetson_check_env", SCRIPT)  # the launcher (Python 2.7 and 3.4+)
ON_JETSON = os.path.exists("/etc/nv_tegra_release")

# Recorded /etc/nv_tegra_release: JetPack 4.6.1 (L4T 32.7.1), 5.1.x (L4T 35.3.1), and the TK1's L4T R21.8.
RELEASES = [
    "# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref, EABI: aarch64, "
    "DATE: Sat Feb 19 17:05:08 UTC 2022\n",
    "# R35 (release), REVISION: 3.1, GCID: 32827747, BOARD: t186ref, EABI: aarch64, "
    "DATE: Sun Mar 19 15:19:21 UTC 2023\n"
    "# KERNEL_VARIANT: oot\nTARGET_USERSPACE_LIB_DIR=nvidia\n",
    "# R21 (release), REVISION: 8.0, GCID: 12345678, BOARD: ardbeg, EABI: hard, DATE: Thu Feb 16 00:00:00 UTC 2017\n",
]


@pytest.mark.parametrize("l4t, min_python, blocked_because", [
    ("21.8.0", (3, 8), "TK1"),
    ("28.2.1", (3, 8), "too old"),
    ("32.7.1", (3, 8), "Python 3.6"),
    ("35.3.1", (3, 8), None),
    ("36.4.3", (3, 8), None),
    ("38.2.0", (3, 8), None),
    ("nonsense", (3, 8), None),
    ("32", (3, 8), "Python 3.6"),
    # once edge runs on Python 3.6 (setup.py's python_requires), JetPack 4.6 is no longer blocked, older 4.x is
    ("32.7.1", (3, 6), None),
    ("32.6.1", (3, 6), None),
    ("32.5.1", (3, 6), "R32.5 predates JetPack 4.6"),
    ("21.8.0", (3, 6), "TK1"),
])
def test_l4t_blocker(l4t: str, min_python: Tuple[int, int], blocked_because: Optional[str]) -> None:
    reason = check_env.l4t_blocker(l4t, min_python)
    if blocked_because is None:
        assert reason is None
    else:
        assert reason is not None and blocked_because in reason


@pytest.mark.parametrize("cfg, expected", [
    ("home = /usr/bin\ninclude-system-site-packages = true\nversion = 3.8.10\n", True),
    ("home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.10.12\n", False),
    ("home = /usr/bin\n", None),
    (None, None),
])
def test_venv_includes_system_site(cfg: Any, expected: Optional[bool]) -> None:
    assert check_env.venv_includes_system_site(cfg) is expected


@pytest.mark.parametrize("version, min_python, level", [
    ((3, 6, 9), (3, 8), "FAIL"), ((3, 7, 17), (3, 8), "FAIL"), ((3, 8, 10), (3, 8), "ok"), ((3, 12, 3), (3, 8), "ok"),
    ((3, 6, 9), (3, 6), "ok"), ((3, 5, 2), (3, 6), "FAIL"),
])
def test_python_finding(version: Tuple[int, int, int], min_python: Tuple[int, int], level: str) -> None:
    finding = check_env.python_finding(version, min_python)
    assert finding.level == level
    assert (finding.fix != "") == (level == "FAIL")


def test_the_python_floor_is_setup_pys() -> None:
    setup = (ROOT / "setup.py").read_text(encoding="utf-8")
    assert check_env.MIN_PYTHON == launcher.edge_min_python() == launcher.required_python(setup)
    assert launcher.required_python('python_requires=">=3.6",') == (3, 6)
    assert launcher.required_python("python_requires = '>= 3.10'") == (3, 10)
    assert launcher.required_python("setup(name='x')") is None


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
    release.write_text(RELEASES[1])
    model = tmp_path / "model"
    model.write_bytes(b"NVIDIA Jetson Xavier NX Developer Kit\x00")
    monkeypatch.setattr(check_env, "NV_TEGRA_RELEASE", str(release))
    monkeypatch.setattr(check_env, "DEVICE_TREE_MODEL", str(model))
    code = check_env.main([])
    out = capsys.readouterr().out
    assert code in (0, 1)
    assert "NVIDIA Jetson Xavier NX Developer Kit" in out
    assert "L4T 35.3.1 -> JetPack 5.1.x" in out


def test_jetpack46_board_runs_edge_now_that_the_runtime_runs_on_python_36(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    release = tmp_path / "nv_tegra_release"
    release.write_text(RELEASES[0])  # L4T R32.7.1 = JetPack 4.6.1
    monkeypatch.setattr(check_env, "NV_TEGRA_RELEASE", str(release))
    assert check_env.MIN_PYTHON == (3, 6)  # setup.py's python_requires
    findings = check_env.collect()
    assert not any(f.topic == "l4t" and f.level == "FAIL" for f in findings)
    # were the floor above 3.6 again, JetPack 4.x would be refused with the reason
    blocker = check_env.l4t_blocker("32.7.1", min_python=(3, 8))
    assert blocker is not None and "Python 3.6" in blocker


def test_old_python_is_blocked_before_importing_edge() -> None:
    findings = check_env.collect(version_info=(3, 5, 9))
    assert check_env.verdict(findings)[0] == 1
    assert {f.topic for f in findings} <= {"python", "board", "l4t"}


def test_runs_as_a_script() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, str(SCRIPT)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, env=env, timeout=120)  # noqa: UP021 - keep 3.8 spelling
    assert done.returncode in (0, 1), done.stdout
    assert "result: edge" in done.stdout


@pytest.mark.parametrize("path", [SCRIPT, CHECKS])
def test_top_level_imports_are_stdlib_only(path: Path) -> None:
    stdlib = {"argparse", "os", "platform", "re", "shutil", "subprocess", "sys", "typing", "importlib", "__future__"}
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Import):
            names = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [(node.module or "").split(".")[0]]
        else:
            continue
        assert set(names) <= stdlib, f"line {node.lineno} imports {names} at the top"


# ---------------------------------------------------------------------------------------------
# The launcher: Python 2.7 and 3.4 get advice, not a SyntaxError
# ---------------------------------------------------------------------------------------------

ADVICE = [
    # (Python, /etc/nv_tegra_release, machine, edge's floor) -> words the FAIL line must hold
    ((2, 7, 18), None, "x86_64", (3, 8), ["Python 2.7.18 is Python 2", "Fix: run it with Python 3: python3"]),
    ((2, 7, 12), RELEASES[0], "aarch64", (3, 6), ["is Python 2", "need Python 3.6 or newer", "python3 jetson"]),
    ((3, 4, 3), RELEASES[2], "armv7l", (3, 8), ["Python 3.4.3 is below 3.8", "Jetson TK1 line (L4T R21",
                                                "python3-opencv python3-onnx", "pip install --no-deps ."]),
    ((3, 4, 2), None, "armv7l", (3, 6), ["32-bit ARM board (armv7l)", "Debian 12 has Python 3.11"]),
    ((3, 5, 2), "# R28 (release), REVISION: 2.1, GCID: 1, BOARD: t186ref, EABI: aarch64\n", "aarch64", (3, 8),
     ["L4T R28 (JetPack 3.x or older) ships Python 3.5", "JetPack 5.1 or newer"]),
    ((3, 5, 2), "# R28 (release), REVISION: 2.1, GCID: 1, BOARD: t186ref, EABI: aarch64\n", "aarch64", (3, 6),
     ["reflash with JetPack 4.6 (TX1, TX2, Nano: Python 3.6)"]),
    ((3, 5, 3), None, "x86_64", (3, 6), ["Python 3.5.3 is below 3.6", "install Python 3.6 or newer"]),
]


@pytest.mark.parametrize("version, release, machine, min_python, words", ADVICE)
def test_advice_for_a_python_too_old_to_run_the_checks(version, release, machine, min_python, words) -> None:
    lines, closing = launcher.advice(version, release, machine, min_python)
    assert len(lines) == 1 and lines[0].startswith("[FAIL] python") and "Fix: " in lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert closing.startswith("result: edge cannot run here: python: ")


@pytest.mark.parametrize("minor", [4, 5])
def test_launcher_parses_with_python_34_and_35_grammar(minor: int) -> None:
    if sys.version_info < (3, 8):
        pytest.skip("ast.parse(feature_version=) needs Python 3.8")
    ast.parse(SCRIPT.read_text(encoding="utf-8"), feature_version=(3, minor))  # novermin - skipped above
    with pytest.raises(SyntaxError):  # the checks themselves need 3.6: that is why the launcher exists
        ast.parse(CHECKS.read_text(encoding="utf-8"), feature_version=(3, minor))  # novermin


@pytest.mark.skipif(not PYTHON27.exists(), reason="needs pyenv's Python 2.7.18")
def test_launcher_on_a_real_python27() -> None:
    done = subprocess.run([str(PYTHON27), str(SCRIPT)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=60)  # noqa: UP021 - keep 3.6 spelling
    assert done.returncode == 1, done.stdout
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "edge environment check" and len(lines) == 3, done.stdout
    assert "Python 2.7.18 is Python 2" in lines[1] and "python3 jetson/check_env.py" in lines[1]
    assert lines[2].startswith("result: edge cannot run here: python:")
    # the TK1's advice, computed by Python 2.7 itself
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import check_env; "
            "print(check_env.advice((3, 4, 3), sys.argv[2], 'armv7l', (3, 8))[0][0])")
    done = subprocess.run([str(PYTHON27), "-c", code, str(SCRIPT.parent), RELEASES[2]], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=60)  # noqa: UP021
    assert done.returncode == 0 and "Jetson TK1 line (L4T R21" in done.stdout, done.stdout


@pytest.mark.skipif(not PYTHON36.exists(), reason="needs pyenv's Python 3.6.15")
def test_launcher_runs_the_checks_on_a_real_python36() -> None:
    """Python 3.6 (JetPack 4.6) gets the full report: the checks and edge/board.py parse and run there."""
    done = subprocess.run([str(PYTHON36), str(SCRIPT)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=120)  # noqa: UP021
    assert "Traceback" not in done.stdout and "SyntaxError" not in done.stdout, done.stdout
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "edge environment check"
    python = [line for line in lines if line.split()[1:2] == ["python"]]
    expected = "ok" if check_env.MIN_PYTHON <= (3, 6) else "FAIL"
    assert len(python) == 1 and python[0].startswith(f"[{expected}]") and "3.6.15" in python[0], done.stdout
    assert any(line.split()[1:2] == ["board"] for line in lines)
    assert done.returncode == (1 if expected == "FAIL" else done.returncode) and done.returncode in (0, 1)
    assert lines[-1].startswith("result: edge can run here" if done.returncode == 0 else "result: edge cannot run here")
