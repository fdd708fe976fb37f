"""The README's examples run (STYLE rule 11); .ci/run runs its two shell commands itself."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PYTHON_BLOCKS = re.findall(r"<!-- ci:python -->\s*```python\n(.+?)```", README, flags=re.S)


def test_readme_has_the_two_commands():
    for name in ("run", "test"):
        assert re.search(rf"<!-- ci:{name} -->\s*```bash\n.+?\n```", README), name


@pytest.mark.parametrize("code", PYTHON_BLOCKS)
def test_readme_python_example_runs(code, tmp_path):
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("line", [line for line in README.splitlines() if line.startswith("python -m edge.camera --")])
def test_readme_cli_examples_parse(line):
    from edge.camera import build_parser

    args = line.split("#")[0].split()[3:]
    build_parser().parse_args(args)


@pytest.mark.parametrize("line", [line for line in README.splitlines()
                                  if line.startswith("python -m export ") and not line.rstrip().endswith("\\")])
def test_readme_export_examples_parse(line):
    from export.__main__ import build_parser

    args = line.split("#")[0].split()[3:]
    build_parser().parse_args(args)
