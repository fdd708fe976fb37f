"""The project's own trained model: export, metadata and preprocessing keep what was trained."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "models" / "digits"
pytest.importorskip("sklearn", reason="the digits data ship with scikit-learn (pip install scikit-learn)")
sys.path.insert(0, str(DIGITS))
import train  # noqa: E402  (models/digits/train.py)


@pytest.mark.parametrize("backend", ["onnxruntime-cpu", "opencv"])
def test_committed_model_through_the_edge_runtime(backend):
    _, _, images, labels = train.split()
    accuracy = train.edge_accuracy(DIGITS / "digits.onnx", images, labels, backend=backend)
    assert accuracy >= 0.95, accuracy


def test_zoo_name_and_labels():
    import edge

    with edge.load_model("digits") as model:
        assert model.task == "classify" and model.config.labels[7] == "7"
        result = model(train.render(train.split()[2][0]))
        assert len(result.class_ids) == 3 and result.scores[0] > result.scores[1]


def test_retrained_and_exported_from_scratch(tmp_path):
    pytest.importorskip("torch", reason="retraining needs torch")
    output = tmp_path / "digits.onnx"
    done = subprocess.run([sys.executable, str(DIGITS / "train.py"), "--output", str(output), "--epochs", "40"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, cwd=ROOT,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "parity vs PyTorch" in done.stdout and "verdict: pass" in done.stdout
    _, _, images, labels = train.split()
    assert train.edge_accuracy(output, images, labels) >= 0.95
