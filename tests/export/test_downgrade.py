"""export/downgrade.py: lowering an ONNX model's opset (onnx.version_converter, else a checked relabel)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, version_converter

from edge.config import EdgeConfig
from edge.errors import EdgeError
from edge.onnxfile import read_onnx
from export import downgrade
from export.__main__ import main
from export.checks import parity, parity_inputs
from export.downgrade import default_opset, lower_opset, onnxruntime_runner

ort = pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[2]
ZOO = ("digits", "digit_detector", "digit_embedder")
FLOAT = TensorProto.FLOAT


def _model(nodes, opset, inputs=(("x", FLOAT, [2, 3, 4, 5]),), outputs=(("y", FLOAT, None),), inits=()):
    """A model of ``nodes``; outputs get the shapes shape inference gives them."""
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(*i) for i in inputs],
                              [helper.make_tensor_value_info(*o) for o in outputs], list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    inferred = onnx.shape_inference.infer_shapes(model).graph.output
    for output, known in zip(model.graph.output, inferred):
        output.CopyFrom(known)
    return model


def _int64(name, values):
    return helper.make_tensor(name, TensorProto.INT64, [len(values)], values)


def _floats(name, values):
    return helper.make_tensor(name, FLOAT, [len(values)], values)


def _run(model, feeds):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _zoo(name: str) -> Path:
    return ROOT / "models" / name / f"{name}.onnx"


@pytest.mark.parametrize("name", ZOO)
def test_zoo_model_is_opset_13_and_computes_what_its_opset_17_form_does(name, tmp_path):
    """The shipped file is opset 13 / IR 7; onnx's own up-adapters give back an opset-17 form; lowering that
    again gives the same nodes, and ONNX Runtime gives identical outputs on the model's own inputs."""
    shipped = onnx.load(str(_zoo(name)))
    assert (default_opset(shipped), shipped.ir_version) == (13, 7)
    upgraded = version_converter.convert_version(shipped, 17)
    assert default_opset(upgraded) == 17
    lowered, lines = lower_opset(upgraded, 13, name)
    assert "relabel" in lines[0] and default_opset(lowered) == 13
    assert list(lowered.graph.node) == list(shipped.graph.node)
    original = tmp_path / "opset17.onnx"
    onnx.save(upgraded, str(original))
    config = EdgeConfig.from_dict(read_onnx(_zoo(name)).embedded_config(), name)
    inputs = parity_inputs(config, 4, seed=1)
    assert len(inputs["real"]) >= 3
    names = [o.name for o in read_onnx(_zoo(name)).outputs]
    with onnxruntime_runner(original) as runner:
        report = parity(_zoo(name), runner, "opset 17", inputs, "fp32", names)
    assert report.passed and [row.max_abs for row in report.rows] == [0.0] * len(names)


@pytest.mark.parametrize("name", ZOO)
def test_cli_lowers_an_onnx_source_and_keeps_its_config(name, tmp_path, capsys):
    upgraded = version_converter.convert_version(onnx.load(str(_zoo(name))), 17)
    source = tmp_path / f"{name}17.onnx"
    onnx.save(upgraded, str(source))
    outputs = [tmp_path / "a.onnx", tmp_path / "b.onnx"]
    for output in outputs:
        assert main(["onnx", str(source), "--opset", "13", "--output", str(output)]) == 0
    out = capsys.readouterr().out
    assert "opset: 17 -> 13 (relabel" in out and "max abs 0," in out and "verdict: pass" in out
    assert outputs[0].read_bytes() == outputs[1].read_bytes()  # reproducible
    written = onnx.load(str(outputs[0]))
    assert default_opset(written) == 13 and list(written.graph.node) == list(onnx.load(str(_zoo(name))).graph.node)
    assert read_onnx(outputs[0]).embedded_config() == read_onnx(_zoo(name)).embedded_config()


def test_cli_without_opset_keeps_the_files_opset(tmp_path, capsys):
    source = tmp_path / "d17.onnx"
    onnx.save(version_converter.convert_version(onnx.load(str(_zoo("digits"))), 17), str(source))
    assert main(["onnx", str(source), "--output", str(tmp_path / "kept.onnx")]) == 0
    assert read_onnx(tmp_path / "kept.onnx").opset == 17
    assert "parity: not applicable" in capsys.readouterr().out


def test_cli_refusal_is_one_line_with_the_operator_and_writes_nothing(tmp_path, capfd):
    model = version_converter.convert_version(onnx.load(str(_zoo("digit_detector"))), 17)
    reshape = next(n for n in model.graph.node if n.op_type == "Reshape")
    del reshape.attribute[:]
    reshape.attribute.append(helper.make_attribute("allowzero", 1))
    source = tmp_path / "allowzero.onnx"
    onnx.save(model, str(source))
    assert main(["onnx", str(source), "--opset", "13", "--output", str(tmp_path / "out.onnx")]) == 2
    err = capfd.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "Reshape node" in err and "allowzero=1 needs Reshape-14 (opset 14)" in err and "Fix: keep opset 14" in err
    assert not (tmp_path / "out.onnx").exists()


REFUSED = [
    # (what, model, target, expected words in the one-line error)
    ("Reshape allowzero=1", _model([helper.make_node("Reshape", ["x", "s"], ["y"], allowzero=1)], 17,
                                   inits=[_int64("s", [2, 60])]), 13, "allowzero=1 needs Reshape-14"),
    ("Shape start=1", _model([helper.make_node("Shape", ["x"], ["y"], start=1)], 17,
                             outputs=[("y", TensorProto.INT64, None)]), 13, "start=1 needs Shape-15"),
    ("BatchNormalization training_mode=1",
     _model([helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y", "rm", "rv"], training_mode=1)],
            17, outputs=[("y", FLOAT, None), ("rm", FLOAT, None), ("rv", FLOAT, None)],
            inits=[_floats(n, [1.0, 1.0, 1.0]) for n in "sbmv"]), 13, "training_mode=1 needs BatchNormalization-14"),
    ("Resize antialias=1", _model([helper.make_node("Resize", ["x", "", "k"], ["y"], mode="linear", antialias=1)], 18,
                                  inits=[_floats("k", [1, 1, 0.5, 0.5])]), 13, "antialias=1 needs Resize-18"),
    ("Pad mode=wrap", _model([helper.make_node("Pad", ["x", "p"], ["y"], mode="wrap")], 19,
                             inits=[_int64("p", [0, 0, 1, 1, 0, 0, 1, 1])]), 13, "Pad-19 (opset 19) changed it: mode"),
    ("Relu on int8", _model([helper.make_node("Relu", ["x"], ["y"])], 17, inputs=[("x", TensorProto.INT8, [4])],
                            outputs=[("y", TensorProto.INT8, None)]), 13, "of type tensor(int8) needs Relu-14"),
    ("LayerNormalization", _model([helper.make_node("LayerNormalization", ["x", "s"], ["y"])], 17,
                                  inits=[_floats("s", [1.0] * 5)]), 13,
     "LayerNormalization does not exist at opset 13 (added in opset 17)"),
    ("GroupNormalization-21", _model([helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=3)],
                                     21, inits=[_floats("s", [1.0] * 3), _floats("b", [0.0] * 3)]), 18,
     "GroupNormalization-21 (opset 21) changed it"),
    ("RoiAlign-16 default", _model([helper.make_node("RoiAlign", ["x", "r", "i"], ["y"])], 16,
                                   inits=[helper.make_tensor("r", FLOAT, [1, 4], [0, 0, 2, 2]), _int64("i", [0])]),
     13,
     "coordinate_transformation_mode unset means half_pixel since RoiAlign-16"),
    ("below the checked range", _model([helper.make_node("Relu", ["x"], ["r"]),
                                        helper.make_node("Softmax", ["r"], ["y"])], 17), 11,
     "Relu-13 (opset 13) is older than the changes a relabel checks (opset 14 on)"),
]


@pytest.mark.parametrize("what, model, target, expected", REFUSED, ids=[r[0] for r in REFUSED])
def test_changed_meaning_is_refused_naming_the_operator_and_version(what, model, target, expected):
    with pytest.raises(EdgeError) as caught:
        lower_opset(model, target, "m.onnx")
    message = str(caught.value)
    assert expected in message and "Fix:" in message and "\n" not in message
    assert message.startswith("m.onnx | ")


ACCEPTED = [
    # (what, model, path taken, operator versions crossed)
    ("Relu float", _model([helper.make_node("Relu", ["x"], ["y"])], 17), "relabel", "Relu-14"),
    ("Reshape allowzero=0 (dropped)", _model([helper.make_node("Reshape", ["x", "s"], ["y"], allowzero=0)], 17,
                                             inits=[_int64("s", [0, 60])]), "relabel", "Reshape-14"),
    ("Shape without start/end", _model([helper.make_node("Shape", ["x"], ["y"])], 17,
                                       outputs=[("y", TensorProto.INT64, None)]), "relabel", "Shape-15"),
    ("Pad mode=reflect", _model([helper.make_node("Pad", ["x", "p"], ["y"], mode="reflect")], 19,
                                inits=[_int64("p", [0, 0, 1, 1, 0, 0, 1, 1])]), "relabel", "Pad-19"),
    ("Resize antialias=0 (dropped)", _model([helper.make_node("Resize", ["x", "", "k"], ["y"], mode="linear",
                                                              antialias=0)], 18,
                                            inits=[_floats("k", [1, 1, 2, 2])]), "onnx.version_converter", ""),
    ("RoiAlign output_half_pixel (dropped)",
     _model([helper.make_node("RoiAlign", ["x", "r", "i"], ["y"], coordinate_transformation_mode="output_half_pixel")],
            16, inits=[helper.make_tensor("r", FLOAT, [1, 4], [0.5, 0.5, 2.5, 3]), _int64("i", [1])]),
     "relabel", "RoiAlign-16"),
    ("ReduceMean axes input", _model([helper.make_node("ReduceMean", ["x", "a"], ["y"], keepdims=1)], 18,
                                     inits=[_int64("a", [2])]), "onnx.version_converter", ""),
]


@pytest.mark.parametrize("what, model, path, crossed", ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_lowered_model_computes_the_same_on_onnx_runtime(what, model, path, crossed):
    lowered, lines = lower_opset(model, 13)
    assert default_opset(lowered) == 13 and crossed in lines[0]
    # onnx's converter gained adapters over its releases (the one on Python 3.8 has no Resize-18 -> 13):
    # where it cannot, the checked relabel takes over and must reach the same result
    assert f"({path}" in lines[0] or (path == "onnx.version_converter" and "(relabel" in lines[0]), lines[0]
    onnx.checker.check_model(lowered, full_check=True)
    onnx.shape_inference.infer_shapes(lowered, check_type=True, strict_mode=True)
    feeds = {"x": np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)}
    for before, after in zip(_run(model, feeds), _run(lowered, feeds)):
        assert before.dtype == after.dtype and np.array_equal(before, after)
    dropped = ("allowzero", "antialias", "coordinate_transformation_mode")
    assert all(a.name not in dropped for n in lowered.graph.node for a in n.attribute)


def test_version_converter_first_and_relabel_refuses_what_it_rewrites(monkeypatch):
    model = ACCEPTED[-1][1]
    lowered, _ = lower_opset(model, 13)
    node = lowered.graph.node[0]
    assert [a.name for a in node.attribute if a.name == "axes"] == ["axes"] and len(node.input) == 1
    monkeypatch.setattr(downgrade, "_version_converter", lambda model, target: None)
    with pytest.raises(EdgeError, match="ReduceMean-18"):
        lower_opset(model, 13)


@pytest.mark.parametrize("opset", [11, 13])
def test_model_at_or_below_the_target_is_unchanged(opset):
    model = _model([helper.make_node("Relu", ["x"], ["y"])], opset)
    before = model.SerializeToString()
    lowered, lines = lower_opset(model, 13)
    assert lowered is model and model.SerializeToString() == before
    assert lines == [f"opset: kept {opset} (already at or below 13)"]


def test_zoo_files_are_unchanged_by_a_second_lowering(tmp_path, capsys):
    for name in ZOO:
        output = tmp_path / f"{name}.onnx"
        assert main(["onnx", str(_zoo(name)), "--opset", "13", "--output", str(output), "--no-parity"]) == 0
        assert output.read_bytes() == _zoo(name).read_bytes()
    assert capsys.readouterr().out.count("opset: kept 13") == len(ZOO)
