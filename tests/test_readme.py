"""The README's examples run (STYLE rule 11); .ci/run runs its two shell commands itself."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from old_runtimes import needs_export, opencv_draws_like_4_5

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PYTHON_BLOCKS = re.findall(r"<!-- ci:python -->\s*```python\n(.+?)```", README, flags=re.S)


def test_readme_has_the_two_commands():
    for name in ("run", "test"):
        assert re.search(rf"<!-- ci:{name} -->\s*```bash\n.+?\n```", README), name


@pytest.mark.parametrize("code", PYTHON_BLOCKS)
def test_readme_python_example_runs(code, tmp_path):
    done = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, cwd=tmp_path, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("line", [line for line in README.splitlines() if line.startswith("python -m edge.camera --")])
def test_readme_cli_examples_parse(line):
    from edge.camera import build_parser

    args = line.split("#")[0].split()[3:]
    build_parser().parse_args(args)


@needs_export
@pytest.mark.parametrize("line", [line for line in README.splitlines()
                                  if line.startswith("edge-export ") and not line.rstrip().endswith("\\")])
def test_readme_export_examples_parse(line):
    from export.__main__ import build_parser

    args = line.split("#")[0].split()[1:]
    build_parser().parse_args(args)


PICTURE_COMMANDS = [line for block in re.findall(r"<!-- ci:picture -->\s*```bash\n(.+?)```", README, flags=re.S)
                    for line in block.splitlines() if line.startswith("python -m edge.camera ")]


def test_readme_has_a_picture_per_new_task():
    assert len(PICTURE_COMMANDS) >= 3
    for command in PICTURE_COMMANDS:
        picture = command.split("--output ")[1].split()[0]
        assert f"]({picture})" in README, picture


@opencv_draws_like_4_5
@pytest.mark.parametrize("command", PICTURE_COMMANDS)
def test_readme_pictures_are_what_their_commands_draw(command, tmp_path):
    """Each committed picture is remade by its command (into a scratch folder) and compared pixel by pixel."""
    import shlex

    cv2 = pytest.importorskip("cv2")
    args = shlex.split(command)[3:]
    picture = args[args.index("--output") + 1]
    args[args.index("--output") + 1] = str(tmp_path / "remade.png")
    done = subprocess.run([sys.executable, "-m", "edge.camera", *args, "--backend", "onnxruntime-cpu", "--quiet"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, cwd=ROOT,
                          timeout=300,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    committed, remade = cv2.imread(str(ROOT / picture)), cv2.imread(str(tmp_path / "remade.png"))
    assert committed.shape == remade.shape
    differ = np.abs(committed.astype(np.int16) - remade.astype(np.int16)).max(axis=2) > 8
    assert differ.mean() < 0.002, f"{picture}: {differ.mean():.2%} of the pixels differ; remake it with its command"


def _detector_configs():
    """The JSON configs quoted in the README's table of detector families."""
    import json

    section = README.split("## Detectors:", 1)[1].split("\n## ", 1)[0]
    configs = []
    for text in re.findall(r"`(\{[^`]+\})`", section):
        try:
            configs.append(json.loads(text))
        except ValueError:
            continue  # a shorter quote such as `{label or id: threshold}`
    return configs


def test_readme_lists_detector_configs():
    assert len(_detector_configs()) >= 3


@pytest.mark.parametrize("config", _detector_configs())
def test_readme_detector_configs_are_valid(config):
    """Every config quoted for a model family is accepted by the config and decoder validation."""
    from edge.config import EdgeConfig, merge
    from edge.decoders import build_decoder

    base = {"edge_config": 1, "task": "detect",
            "input": {"name": "images", "shape": [1, 3, 320, 320], "layout": "NCHW"},
            "preprocess": {"color": "RGB", "scale": 1 / 255, "mean": 0, "std": 1}}
    edge_config = EdgeConfig.from_dict(merge(base, config), where="README")
    build_decoder(edge_config.decoder, labels=None, input_wh=edge_config.input.size_wh, where="README")
