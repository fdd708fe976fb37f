"""Tests for edge.onnxfile: signatures, embedded configs, atomic writes, canonical bytes, one-line errors."""

import json
from pathlib import Path
from typing import List, Tuple

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from tiny_models import colour_classifier_config, make_colour_classifier, write_bad_model

from edge.config import METADATA_KEY, EdgeConfig, merge
from edge.errors import EdgeError
from edge.onnxfile import (
    TensorSpec,
    canonicalize,
    embed_config,
    load_onnx,
    read_onnx,
    save_atomic,
    write_metadata,
)


def metadata_items(path: Path) -> List[Tuple[str, str]]:
    return [(p.key, p.value) for p in onnx.load(str(path)).metadata_props]


def renamed_config() -> EdgeConfig:
    data = merge(colour_classifier_config(), {"name": "renamed", "labels": ["r", "g", "b"]})
    return EdgeConfig.from_dict(data)


def shuffled(model: onnx.ModelProto, order: List[int]) -> onnx.ModelProto:
    """A copy of ``model`` with initializers and value_info in the given order."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for field in (out.graph.initializer, out.graph.value_info):
        entries = list(field)
        picked = [entries[i] for i in order if i < len(entries)]
        copies = []
        for entry in picked:
            copy_ = type(entry)()
            copy_.CopyFrom(entry)
            copies.append(copy_)
        del field[:]
        field.extend(copies)
    return out


def with_value_info(model: onnx.ModelProto) -> onnx.ModelProto:
    names = ["pooled", "flat", "nchw"]
    model.graph.value_info.extend(helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names)
    return model


# -- reading ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "layout, size, opset, input_shape",
    [
        ("NCHW", 32, 13, (1, 3, 32, 32)),
        ("NHWC", 16, 13, (1, 16, 16, 3)),
        ("NCHW", 8, 11, (1, 3, 8, 8)),
        ("NHWC", 24, 17, (1, 24, 24, 3)),
    ],
)
def test_read_colour_classifier(tmp_path: Path, layout, size, opset, input_shape):
    path = make_colour_classifier(tmp_path / "c.onnx", layout, size, opset=opset)
    info = read_onnx(path)
    assert info.path == path
    assert info.inputs == (TensorSpec("image", input_shape, np.dtype(np.float32)),)  # no weight/bias
    assert info.outputs == (TensorSpec("logits", (1, 3), np.dtype(np.float32)),)
    assert info.opset == opset
    assert set(info.metadata) == {METADATA_KEY, "author"}
    assert info.metadata["author"] == "edge tests"
    assert info.embedded_config() == EdgeConfig.from_dict(colour_classifier_config(layout, size)).to_dict()
    assert not info.inputs[0].is_dynamic()


def test_read_model_without_config(tmp_path: Path):
    info = read_onnx(make_colour_classifier(tmp_path / "c.onnx", embed=False))
    assert info.metadata == {"author": "edge tests"}
    assert info.embedded_config() is None


def test_initializers_listed_as_inputs_are_not_inputs(tmp_path: Path, colour_model_path: Path):
    # IR < 4 exporters list every initializer in graph.input as well
    model = onnx.load(str(colour_model_path))
    model.graph.input.extend([helper.make_tensor_value_info("weight", TensorProto.FLOAT, [3, 3]),
                              helper.make_tensor_value_info("bias", TensorProto.FLOAT, [3])])
    onnx.save(model, str(tmp_path / "old.onnx"))
    assert [spec.name for spec in read_onnx(tmp_path / "old.onnx").inputs] == ["image"]


@pytest.mark.parametrize(
    "batch, expected_shape, dynamic",
    [
        ("batch", ("batch", 3, 32, 32), True),
        (None, (None, 3, 32, 32), True),
        (4, (4, 3, 32, 32), False),
    ],
)
def test_dynamic_dimensions(tmp_path: Path, colour_model_path: Path, batch, expected_shape, dynamic):
    model = onnx.load(str(colour_model_path))
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    if isinstance(batch, str):
        dim.dim_param = batch
    elif batch is None:
        dim.Clear()
    else:
        dim.dim_value = batch
    onnx.save(model, str(tmp_path / "dyn.onnx"))
    spec = read_onnx(tmp_path / "dyn.onnx").inputs[0]
    assert spec.shape == expected_shape
    assert spec.is_dynamic() is dynamic


@pytest.mark.parametrize(
    "text, needles",
    [
        ("{not json", ["the embedded edge config is not valid JSON", "line 1 column 2"]),
        ("", ["the embedded edge config is not valid JSON"]),
        ("[1, 2]", ["the embedded edge config is not a JSON object"]),
        ('"classify"', ["the embedded edge config is not a JSON object"]),
    ],
)
def test_embedded_config_that_is_not_an_object(tmp_path: Path, colour_model_path: Path, text, needles):
    model = onnx.load(str(colour_model_path))
    write_metadata(model, {METADATA_KEY: text})
    path = tmp_path / "bad_meta.onnx"
    onnx.save(model, str(path))
    info = read_onnx(path)
    assert info.metadata[METADATA_KEY] == text
    with pytest.raises(EdgeError) as error:
        info.embedded_config()
    message = str(error.value)
    assert message.startswith(f"{path} | ") and "\n" not in message
    assert "Fix: re-embed it with edge-export onnx" in message
    for needle in needles:
        assert needle in message


# -- bad files -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, needles",
    [
        ("missing", ["model file not found", "Fix: check the path"]),
        ("folder", ["model path is not a file", "give a .onnx file, not a folder"]),
        ("empty", ["model file is empty", "re-export or re-download"]),
        ("truncated", ["not a readable ONNX model", "truncated or not ONNX"]),
        ("text", ["not a readable ONNX model", "truncated or not ONNX"]),
        ("graphless", ["ONNX file has an empty graph"]),
        ("no-nodes", ["ONNX file has an empty graph"]),
    ],
)
@pytest.mark.parametrize("reader", [load_onnx, read_onnx, lambda p: embed_config(p, renamed_config())],
                         ids=["load_onnx", "read_onnx", "embed_config"])
def test_bad_files_are_one_line_errors(tmp_path: Path, colour_model_path: Path, kind, needles, reader):
    path = write_bad_model(tmp_path, kind, colour_model_path)
    with pytest.raises(EdgeError) as error:
        reader(path)
    message = str(error.value)
    assert message.startswith(f"{path} | ")
    assert "\n" not in message and "Fix:" in message
    for needle in needles:
        assert needle in message


@pytest.mark.parametrize("cut", [1, 10, 100, -100, -10, -1])
def test_every_truncation_is_an_edge_error_or_a_model(tmp_path: Path, colour_model_path: Path, cut):
    data = colour_model_path.read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[:cut])
    with pytest.raises(EdgeError, match="Fix:"):
        load_onnx(path)


# -- writing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("embed", [True, False], ids=["replace", "add"])
@pytest.mark.parametrize("destination", [None, "out.onnx", "sub/..//out.onnx"])
def test_embed_config_replaces_config_and_keeps_foreign_keys(tmp_path: Path, embed, destination):
    source = make_colour_classifier(tmp_path / "c.onnx", embed=embed)
    source_bytes = source.read_bytes()
    (tmp_path / "sub").mkdir()
    config = renamed_config()
    target = embed_config(source, config, None if destination is None else tmp_path / destination)
    assert target == (source if destination is None else tmp_path / destination)
    if destination is not None:
        assert source.read_bytes() == source_bytes  # the source is untouched
    items = dict(metadata_items(target))
    assert len(metadata_items(target)) == 2  # one edge_config key, not two
    assert items["author"] == "edge tests"
    assert items[METADATA_KEY] == config.to_json()
    info = read_onnx(target)
    assert EdgeConfig.from_dict(info.embedded_config()) == config
    onnx.checker.check_model(onnx.load(str(target)))
    # the graph itself is unchanged (up to the canonical initializer order)
    reference = onnx.load(str(make_colour_classifier(tmp_path / "sub" / "ref.onnx", embed=embed)))
    canonicalize(reference)
    assert onnx.load(str(target)).graph.SerializeToString() == reference.graph.SerializeToString()


def test_embed_leaves_no_temporary_files(tmp_path: Path):
    source = make_colour_classifier(tmp_path / "c.onnx")
    embed_config(source, renamed_config())
    embed_config(source, renamed_config(), tmp_path / "copy.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.onnx", "copy.onnx"]


def test_save_atomic_failure_keeps_the_old_file(tmp_path: Path, monkeypatch, colour_model_path: Path):
    target = tmp_path / "colour.onnx"
    assert colour_model_path == target
    old = target.read_bytes()

    def half_then_fail(model, path):
        Path(path).write_bytes(b"\x08\x08half")
        raise OSError("No space left on device")

    monkeypatch.setattr(onnx, "save", half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        save_atomic(onnx.load(str(target)), target)
    assert target.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["colour.onnx"]


@pytest.mark.parametrize(
    "existing, props, expected",
    [
        ([], {"a": "1"}, [("a", "1")]),
        ([("author", "x")], {METADATA_KEY: "{}"}, [("author", "x"), (METADATA_KEY, "{}")]),
        ([("author", "x"), (METADATA_KEY, "old")], {METADATA_KEY: "new"},
         [("author", "x"), (METADATA_KEY, "new")]),
        ([("a", "1"), ("b", "2")], {"b": "3", "c": "4", "a": "5"}, [("a", "5"), ("b", "3"), ("c", "4")]),
        ([("a", "1")], {}, [("a", "1")]),
    ],
)
def test_write_metadata_merges_in_place(existing, props, expected):
    model = onnx.ModelProto()
    for key, value in existing:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    write_metadata(model, props)
    assert [(p.key, p.value) for p in model.metadata_props] == expected


@pytest.mark.parametrize("order_a, order_b",
                         [([0, 1], [1, 0]), ([1, 0, 2], [2, 1, 0]), ([0, 1, 2], [0, 1, 2])])
def test_canonicalize_gives_identical_bytes(colour_model_path: Path, order_a, order_b):
    model = with_value_info(onnx.load(str(colour_model_path)))
    first, second = shuffled(model, order_a), shuffled(model, order_b)
    if order_a != order_b:
        assert first.SerializeToString() != second.SerializeToString()
    canonicalize(first)
    canonicalize(second)
    assert first.SerializeToString() == second.SerializeToString()
    assert [i.name for i in first.graph.initializer] == ["bias", "weight"]
    assert [v.name for v in first.graph.value_info] == sorted(v.name for v in first.graph.value_info)
    # nothing lost, values intact, and idempotent
    assert {i.name: onnx.numpy_helper.to_array(i).tolist() for i in first.graph.initializer} == {
        i.name: onnx.numpy_helper.to_array(i).tolist() for i in model.graph.initializer}
    again = onnx.ModelProto()
    again.CopyFrom(first)
    canonicalize(again)
    assert again.SerializeToString() == first.SerializeToString()


def test_embed_config_output_is_deterministic(tmp_path: Path, colour_model_path: Path):
    model = onnx.load(str(colour_model_path))
    onnx.save(shuffled(model, [1, 0]), str(tmp_path / "b.onnx"))
    first = embed_config(colour_model_path, renamed_config(), tmp_path / "out1.onnx")
    second = embed_config(tmp_path / "b.onnx", renamed_config(), tmp_path / "out2.onnx")
    assert first.read_bytes() == second.read_bytes()
    assert json.loads(read_onnx(first).metadata[METADATA_KEY])["name"] == "renamed"
