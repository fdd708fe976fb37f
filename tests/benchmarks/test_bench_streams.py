"""``edge-bench streams`` in quick form: its rows, the dynamic-batch copy and the errors (never its timings)."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from benchmarks.__main__ import main as bench_main
from benchmarks.streams import _row, dynamic_batch_copy, format_table
from edge.errors import EdgeError
from edge.model import Model
from edge.zoo import resolve_model


def test_dynamic_batch_copy_of_the_face_detector_takes_any_batch(tmp_path: Path) -> None:
    path = dynamic_batch_copy(resolve_model(None), tmp_path / "face.onnx", check_batch=5)
    model = onnx.load(str(path))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    assert all(o.type.tensor_type.shape.dim[0].dim_param == "N" for o in model.graph.output)
    with Model(path, backend="onnxruntime-cpu") as loaded:
        assert loaded.batch_limit is None


def write_unbatchable(path: Path) -> Path:
    """A graph that folds its batch away: Reshape (1, 4) -> (2, 2), so no batch but one fits."""
    shape = numpy_helper.from_array(np.array([2, 2], np.int64), "shape")
    graph = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["y"])], "fold",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])], initializer=[shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_dynamic_batch_copy_refuses_a_graph_that_cannot_batch(tmp_path: Path) -> None:
    with pytest.raises(EdgeError, match="dynamic-batch copy"):
        dynamic_batch_copy(write_unbatchable(tmp_path / "fold.onnx"), tmp_path / "fold_n.onnx")


def test_row_and_table() -> None:
    row = _row(4, "batched", 4, [10.0, 20.0, 30.0, 40.0], 0.5)
    assert (row["frames"], row["fps"], row["fps_per_stream"], row["latency_p50_ms"]) == (4, 8.0, 2.0, 25.0)
    table = format_table([row], "title")
    assert table.splitlines()[0] == "title"
    assert table.splitlines()[2].split() == ["4", "batched", "4", "4", "8.0", "2.0", "25.00", "38.50"]


def test_streams_command_rows(tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "rows.json"
    code = bench_main(["streams", "--frames", "3", "--streams", "1,2", "--processes", "2", "--repeat", "2",
                       "--json", str(out)])
    assert code == 0
    rows = json.loads(out.read_text())
    assert [(r["streams"], r["mode"], r["batch"], r["frames"]) for r in rows] == [
        (1, "round-robin", 1, 3), (2, "batched", 2, 6), (2, "round-robin", 1, 6),
        (2, "batched", 2, 6), (2, "processes", 1, 6)]
    assert all(r["fps"] > 0 and r["latency_p95_ms"] >= r["latency_p50_ms"] > 0 for r in rows)
    assert all(len(r["runs"]) == 2 and r["fps"] in r["runs"] for r in rows)
    printed = capsys.readouterr().out
    assert "2 streams: batched in one process vs one process a stream" in printed


@pytest.mark.parametrize(("argv", "error"), [
    (["--streams", "two"], "cannot read stream counts"),
    (["--streams", "0"], "cannot read stream counts"),
    (["--frames", "1"], "too few"),
    (["--model", str(resolve_model(None)), "--streams", "2", "--processes", "0"], "fixed batch"),
])
def test_streams_command_errors(argv: list, error: str, capsys: Any) -> None:
    assert bench_main(["streams"] + argv) == 2
    assert error in capsys.readouterr().err
