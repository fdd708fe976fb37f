"""python -m export inspect: ONNX reports (operators, parameters, FLOPs, config, provenance), plans, errors."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from tiny_models import colour_classifier_config, make_colour_classifier

from export.__main__ import main
from export.commands.inspect import NO_CONFIG, estimate_flops

ROOT = Path(__file__).resolve().parents[2]


def _inspect(capsys, *argv):
    code = main(["inspect", *[str(a) for a in argv]])
    out, err = capsys.readouterr()
    return code, out, err


def _inspect_json(capsys, path):
    code, out, err = _inspect(capsys, path, "--json")
    assert (code, err) == (0, "")
    return json.loads(out)


def test_colour_classifier_report(capsys, colour_model_path):
    report = _inspect_json(capsys, colour_model_path)
    assert report["operators"] == {"Flatten": 1, "Gemm": 1, "GlobalAveragePool": 1}
    assert report["parameters"] == {"count": 12, "bytes": 48}  # 3x3 weight + 3 bias, float32
    flops = report["flops"]
    assert flops["by_op"] == {"GlobalAveragePool": 3 * 32 * 32, "Gemm": 2 * 3 * 3 + 3}  # MACs x 2 + bias adds
    assert flops["total"] == 3 * 32 * 32 + 21
    assert flops["not_counted"] == {"Flatten": 1}
    assert report["inputs"] == [{"name": "image", "shape": [1, 3, 32, 32], "dtype": "float32"}]
    assert report["outputs"] == [{"name": "logits", "shape": [1, 3], "dtype": "float32"}]
    assert (report["ir_version"], report["opset"], report["producer"]) == (8, {"ai.onnx": 13}, "edge-tests")
    assert report["edge_config_status"] == "valid" and report["edge_config"]["labels"] == ["red", "green", "blue"]
    provenance = report["provenance"]
    data = colour_model_path.read_bytes()
    assert provenance == {"sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data),
                          "metadata": {"author": "edge tests"}}


def test_colour_classifier_text(capsys, colour_model_path):
    code, out, err = _inspect(capsys, colour_model_path)
    assert (code, err) == (0, "")
    for expected in ("ONNX, IR version 8, opset ai.onnx 13, producer edge-tests",
                     "operators (3 nodes): Flatten 1, Gemm 1, GlobalAveragePool 1",
                     "parameters: 12 (48 B in initializers)", "FLOPs (estimate): 3.09 k per inference",
                     "not counted: Flatten 1", "edge config (valid):", '"task": "classify"',
                     "other metadata_props: author='edge tests'"):
        assert expected in out, expected


def test_face_model(capsys, face_model_path):
    code, out, _ = _inspect(capsys, face_model_path)
    assert code == 0
    assert "operators (94 nodes): Conv 37, Relu 17, Add 16" in out
    assert "edge config (valid):" in out and '"type": "ssd_anchors"' in out
    report = _inspect_json(capsys, face_model_path)
    assert report["operators"]["Conv"] == 37
    assert report["flops"]["by_op"]["Conv"] > 50e6 and "Pad" in report["flops"]["not_counted"]


def test_model_without_config(capsys, tmp_path):
    path = make_colour_classifier(tmp_path / "bare.onnx", embed=False)
    code, out, _ = _inspect(capsys, path)
    assert code == 0 and f"edge config: {NO_CONFIG}" in out
    assert "edge-export onnx MODEL --config edge.json" in NO_CONFIG


def test_invalid_embedded_config_is_reported_not_raised(capsys, tmp_path):
    config = colour_classifier_config()
    config["preprocess"] = dict(config["preprocess"], scale=-1)
    path = tmp_path / "bad.onnx"
    make_colour_classifier(path, embed=False)
    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key, entry.value = "edge_config", json.dumps(config)
    onnx.save(model, str(path))
    report = _inspect_json(capsys, path)
    assert report["edge_config_status"].startswith("invalid: edge config field 'preprocess.scale'")


def _graph_model(nodes, inputs, output, initializers=()):
    graph = helper.make_graph(nodes, "g", inputs, [output], initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _f32(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _weight(name, shape):
    return numpy_helper.from_array(np.ones(shape, np.float32), name)


# (case, model, expected by_op, note mentions dynamic)
FLOP_CASES = [
    ("conv 3x3 with bias", _graph_model(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1])],
        [_f32("x", [1, 2, 8, 8])], _f32("y", None), [_weight("w", (4, 2, 3, 3)), _weight("b", (4,))]),
     {"Conv": 2 * (4 * 8 * 8) * (2 * 3 * 3) + 4 * 8 * 8}, False),
    ("conv transpose (approximate)", _graph_model(
        [helper.make_node("ConvTranspose", ["x", "w"], ["y"])],
        [_f32("x", [1, 4, 4, 4])], _f32("y", None), [_weight("w", (4, 2, 3, 3))]),
     {"ConvTranspose": 2 * (4 * 4 * 4) * (2 * 3 * 3)}, False),
    ("gemm transA with bias", _graph_model(
        [helper.make_node("Gemm", ["a", "w", "b"], ["y"], transA=1)],
        [_f32("a", [6, 2])], _f32("y", None), [_weight("w", (6, 5)), _weight("b", (5,))]),
     {"Gemm": 2 * 2 * 5 * 6 + 2 * 5}, False),
    ("matmul with dynamic batch, then relu", _graph_model(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        [_f32("x", ["N", 4])], _f32("y", None), [_weight("w", (4, 5))]),
     {"MatMul": 2 * 5 * 4, "Relu": 5}, True),
    ("maxpool 2x2 and reshape", _graph_model(
        [helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
         helper.make_node("Flatten", ["p"], ["y"])],
        [_f32("x", [1, 3, 8, 8])], _f32("y", None)),
     {"MaxPool": 3 * 4 * 4 * 4}, False),
]


@pytest.mark.parametrize("model, by_op, dynamic", [c[1:] for c in FLOP_CASES], ids=[c[0] for c in FLOP_CASES])
def test_flop_estimate(model, by_op, dynamic):
    flops = estimate_flops(model)
    assert flops["by_op"] == by_op
    assert flops["total"] == sum(by_op.values())
    assert ("dynamic dimensions counted as 1" in flops["note"]) is dynamic


SIDECAR = {
    "edge_config": 1, "name": "colour", "task": "classify",
    "input": {"name": "image", "shape": [1, 3, 32, 32], "layout": "NCHW", "dtype": "float32"},
    "preprocess": {"color": "RGB", "scale": 0.00392156862745098, "mean": [0, 0, 0], "std": [1, 1, 1]},
    "outputs": ["logits"],
    "provenance": {"onnx_sha256": "ab" * 32, "tensorrt_version": "10.3.0", "cuda_version": "12.6",
                   "jetpack": "6.2", "l4t": "36.4.3", "compute_capability": "8.7", "precision_requested": "fp16",
                   "precision_obtained": "fp16", "profiles": {"image": [[1, 3, 32, 32]] * 3},
                   "build_time_s": 41.5},
}


def _fake_plan(folder: Path, suffix: str = ".plan") -> Path:
    plan = folder / f"colour{suffix}"
    plan.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return plan


@pytest.mark.parametrize("suffix, sidecar_name", [(".plan", "colour.json"), (".engine", "colour.engine.json"),
                                                  (".trt", "colour.json")])
def test_plan_with_sidecar(capsys, tmp_path, suffix, sidecar_name):
    plan = _fake_plan(tmp_path, suffix)
    (tmp_path / sidecar_name).write_text(json.dumps(SIDECAR))
    code, out, err = _inspect(capsys, plan)
    assert (code, err) == (0, "")
    assert f"TensorRT plan, 4,096 bytes, sha256 {hashlib.sha256(plan.read_bytes()).hexdigest()}" in out
    for expected in ("tensorrt_version: 10.3.0", "compute_capability: 8.7", "precision_obtained: fp16",
                     'profiles: {"image": [[1, 3, 32, 32], [1, 3, 32, 32], [1, 3, 32, 32]]}', "build_time_s: 41.5",
                     "edge config (valid):", f"sidecar: {tmp_path / sidecar_name} — found"):
        assert expected in out, expected
    report = _inspect_json(capsys, plan)
    assert report["build"]["jetpack"] == "6.2" and report["edge_config"]["task"] == "classify"
    if importlib.util.find_spec("tensorrt") is None:
        assert report["tensors"] is None and report["tensorrt"].startswith("not installed here")


def test_plan_sidecar_hash_mismatch_is_flagged(capsys, tmp_path):
    plan = _fake_plan(tmp_path)
    data = dict(SIDECAR, provenance=dict(SIDECAR["provenance"], plan_sha256="00" * 32))
    (tmp_path / "colour.json").write_text(json.dumps(data))
    assert "plan sha256 DOES NOT MATCH" in _inspect(capsys, plan)[1]


def test_plan_without_sidecar_says_so_with_the_fix(capsys, tmp_path):
    plan = _fake_plan(tmp_path)
    code, out, _ = _inspect(capsys, plan)
    assert code == 0
    assert "sidecar: none — colour.json not found" in out and "Fix: rebuild with edge-export engine" in out
    assert _inspect_json(capsys, plan)["edge_config"] is None


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _plan_with_bad_sidecar(folder: Path) -> Path:
    (folder / "colour.json").write_text("{")
    return _fake_plan(folder)


# (case, make the file, message fragment)
ERRORS = [
    ("missing onnx", lambda d: d / "absent.onnx", "model file not found"),
    ("corrupt onnx", lambda d: _write(d / "broken.onnx", b"\x08\x07not protobuf \xff\xfe" * 3),
     "not a readable ONNX model"),
    ("empty onnx", lambda d: _write(d / "empty.onnx", b""), "model file is empty"),
    ("unknown extension", lambda d: _write(d / "model.pt", b"x"), "cannot inspect '.pt'"),
    ("missing plan", lambda d: d / "absent.plan", "engine file not found"),
    ("sidecar not JSON", _plan_with_bad_sidecar, "not valid JSON"),
]


@pytest.mark.parametrize("make, message", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_user_errors_exit_2_with_one_line(capsys, tmp_path, make, message):
    code, out, err = _inspect(capsys, make(tmp_path))
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err


def test_entry_point_runs_as_a_module(colour_model_path):
    done = subprocess.run([sys.executable, "-m", "export", "inspect", str(colour_model_path), "--json"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["operators"]["Gemm"] == 1


@pytest.mark.parametrize("metadata_extra, status, config_fields", [
    ({}, "derived from Ultralytics metadata, none embedded; valid",
     {"task": "detect", "labels": ["class0", "class1", "class2"]}),
    ({"head": "RTDETRDecoder"}, "derived from Ultralytics metadata, none embedded; valid",
     {"preprocess": {"resize": "stretch"}}),
    ({"imgsz": "[640, 640]"}, "none embedded; deriving one from Ultralytics metadata fails: Ultralytics metadata "
                              "says imgsz [640, 640]", None),
])
def test_ultralytics_export_shows_the_derived_config(capsys, tmp_path, metadata_extra, status, config_fields):
    from ultralytics_models import make_fake_ultralytics, ultralytics_metadata

    head = "head" in metadata_extra
    path = make_fake_ultralytics(tmp_path / "yolo11n.onnx", ultralytics_metadata(3, **metadata_extra),
                                 output_shape=(1, 16, 6) if head else (1, 7, 16))
    report = _inspect_json(capsys, path)
    assert report["edge_config_status"].startswith(status)
    if config_fields is None:
        assert report["edge_config"] is None
        return
    for key, value in config_fields.items():
        if isinstance(value, dict):
            assert {k: report["edge_config"][key][k] for k in value} == value
        else:
            assert report["edge_config"][key] == value
    code, out, _ = _inspect(capsys, path)
    assert code == 0 and f"edge config ({status}):" in out and "edge config: none" not in out


@pytest.mark.parametrize("command", [[], ["onnx"], ["inspect"], ["verify"], ["engine"], ["deepstream"], ["triton"]])
def test_help_shows_no_rst_backticks(command, capsys):
    from export.__main__ import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(command + ["--help"])
    assert "``" not in capsys.readouterr().out
