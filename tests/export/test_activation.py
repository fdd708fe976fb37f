"""A classifier that already ends in Softmax/Sigmoid gets activation none (export/activation.py), so the
runtime reports its real probabilities instead of a softmax of them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge.errors import EdgeError
from export.activation import resolve_activation, trailing_activation

HERE = Path(__file__).resolve().parent
PROBABILITIES = [0.1, 0.2, 0.25, 0.45]  # what the constant classifiers below output, whatever the image


def graph(*ops: str):
    """input -> ops[0] -> ops[1] -> ... -> 'scores' as an onnx GraphProto (attributes as the ops need)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    nodes, name = [], "x"
    for index, op in enumerate(ops):
        out = "scores" if index == len(ops) - 1 else f"t{index}"
        inputs = [name, "shape"] if op == "Reshape" else [name]
        nodes.append(helper.make_node(op, inputs, [out], **({"axis": 1} if op in ("Softmax", "Flatten") else {})))
        name = out
    shape = onnx.numpy_helper.from_array(np.array([1, 4], np.int64), "shape")
    return helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                             [helper.make_tensor_value_info("scores", TensorProto.FLOAT, None)], [shape])


@pytest.mark.parametrize("ops, expected", [
    (("Softmax",), "softmax"),
    (("Sigmoid",), "sigmoid"),
    (("Softmax", "Reshape"), "softmax"),
    (("Softmax", "Flatten", "Identity", "Squeeze"), "softmax"),
    (("Sigmoid", "Cast", "Unsqueeze"), "sigmoid"),
    (("Relu",), None),
    (("Softmax", "Relu"), None),  # something changed the values after the softmax
    (("LogSoftmax",), None),  # log-probabilities: the decoder's softmax gives the probabilities back
    (("Identity",), None),
])
def test_trailing_activation(ops, expected):
    assert trailing_activation(graph(*ops), "scores") == expected


@pytest.mark.parametrize("data, flag, ops, activation, line", [
    ({"task": "classify", "outputs": ["scores"]}, None, ("Softmax",), "none", "already ends in Softmax"),
    ({"task": "classify", "outputs": ["scores"]}, None, ("Sigmoid",), "none", "already ends in Sigmoid"),
    ({"task": "classify", "outputs": ["scores"]}, None, ("Relu",), None, None),  # logits: the default softmax
    ({"task": "classify", "outputs": ["scores"]}, "softmax", ("Softmax",), "softmax", "(--activation)"),
    ({"task": "classify", "outputs": ["scores"], "decoder": {"type": "classify", "activation": "none"}}, None,
     ("Relu",), "none", None),
    ({"task": "classify", "outputs": ["a", "scores"], "decoder": {"type": "classify", "output": "scores"}}, None,
     ("Softmax",), "none", "output 'scores'"),
    ({"task": "detect", "outputs": ["scores"], "decoder": {"type": "ssd_anchors"}}, None, ("Softmax",), None, None),
])
def test_resolve_activation(data, flag, ops, activation, line):
    lines = resolve_activation(data, graph(*ops), flag, "m.onnx")
    assert data.get("decoder", {}).get("activation") == activation
    assert (line is None and lines == []) or (line is not None and line in lines[0])


@pytest.mark.parametrize("data, flag, message", [
    ({"task": "classify", "outputs": ["scores"], "decoder": {"type": "classify", "activation": "softmax"}}, None,
     "already ends in Softmax: the scores would be squashed twice"),
    ({"task": "detect", "outputs": ["scores"], "decoder": {"type": "ssd_anchors"}}, "none",
     "--activation applies to classifiers"),
])
def test_resolve_activation_errors(data, flag, message):
    with pytest.raises(EdgeError) as error:
        resolve_activation(data, graph("Softmax"), flag, "m.onnx")
    assert message in str(error.value) and "Fix:" in str(error.value)


@pytest.fixture()
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "labels.txt").write_text("a\nb\nc\nd\n")
    return tmp_path


def export_and_classify(source: str, *flags: str):
    """Export ``source`` with ``flags``; the runtime's scores by label on a real photo."""
    import edge
    from edge.samples import load_sample
    from export.__main__ import main

    assert main(["onnx", source, "--task", "classify", "--preset", "unit", "--labels", "labels.txt",
                 "--output", "c.onnx", *flags]) == 0
    with edge.load_model("c.onnx") as model:
        result = model(load_sample("astronaut"))
    return {result.labels[int(i)]: float(s) for i, s in zip(result.class_ids, result.scores)}


def test_pytorch_softmax_head_reports_the_real_probabilities(work, capsys):
    pytest.importorskip("torch", reason="PyTorch export needs torch")
    shutil.copy(HERE / "real_models.py", work / "real_models.py")
    scores = export_and_classify("real_models.py:constant_softmax_classifier", "--input-shape", "1,3,32,32")
    out = capsys.readouterr().out
    assert "activation: none (output 'output' already ends in Softmax" in out and "verdict: pass" in out
    assert scores == pytest.approx(dict(zip("abcd", PROBABILITIES)), abs=1e-6)  # 0.25 stays 0.25
    # --activation overrides: a second softmax flattens the probabilities (what the bug looked like)
    again = export_and_classify("real_models.py:constant_softmax_classifier", "--input-shape", "1,3,32,32",
                                "--activation", "softmax")
    assert again["c"] == pytest.approx(float(np.exp(0.25) / np.exp(PROBABILITIES).sum()), abs=1e-6)


def test_keras_softmax_head_reports_the_real_probabilities(work, capsys):
    pytest.importorskip("torch", reason="Keras export runs on the torch backend")
    os.environ.setdefault("KERAS_BACKEND", "torch")  # before the first import of keras in this process
    pytest.importorskip("keras", reason="Keras export needs keras")
    import keras

    if keras.backend.backend() != "torch":
        pytest.skip("Keras was imported on another backend in this process")
    dense = keras.layers.Dense(4, activation="softmax")
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(2, 3), keras.layers.Flatten(), dense])
    dense.set_weights([np.zeros(dense.get_weights()[0].shape, np.float32), np.log(PROBABILITIES).astype(np.float32)])
    model.save(str(work / "softmax.keras"))
    scores = export_and_classify("softmax.keras")
    out = capsys.readouterr().out
    assert "already ends in Softmax" in out and "parity vs Keras" in out and "verdict: pass" in out
    assert scores == pytest.approx(dict(zip("abcd", PROBABILITIES)), abs=1e-6)
