"""Tests for edge.config (and the EdgeError it raises): schema v1 validation, round trips, merge, files."""

import json
from pathlib import Path
from typing import Any, Dict

import pytest
from tiny_models import COLOUR_LABELS, colour_classifier_config

from edge.config import (
    FLAG_FOR_FIELD,
    PRESETS,
    EdgeConfig,
    InputSpec,
    PreprocessSpec,
    load_json,
    merge,
    missing_config_error,
    missing_fields,
    sidecar_path,
)
from edge.errors import EdgeError, MissingDependency

DELETE = object()  # table value meaning "remove this field"


def with_field(data: Dict[str, Any], dotted: str, value: Any) -> Dict[str, Any]:
    """A deep copy of ``data`` with the dotted field set to ``value`` (or removed for DELETE)."""
    out = json.loads(json.dumps(data))
    *parents, last = dotted.split(".")
    node = out
    for key in parents:
        node = node[key]
    if value is DELETE:
        node.pop(last, None)
    else:
        node[last] = value
    return out


def full_config() -> Dict[str, Any]:
    """A config that sets every optional field too."""
    return merge(colour_classifier_config("NHWC", 48), {
        "preprocess": {"resize": "letterbox", "pad_value": 114, "interpolation": "area",
                       "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    })


def assert_one_line(exc: EdgeError, *needles: str) -> str:
    text = str(exc)
    assert "\n" not in text
    assert "Fix:" in text
    for needle in needles:
        assert needle in text, f"{needle!r} not in {text!r}"
    return text


# -- valid configs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        colour_classifier_config("NCHW", 32),
        colour_classifier_config("NHWC", 16),
        full_config(),
        with_field(colour_classifier_config(), "labels", DELETE),
        with_field(colour_classifier_config(), "input.shape", ["batch", 3, 32, 32]),
        with_field(colour_classifier_config(), "input.shape", [None, 3, 32, 32]),
    ],
    ids=["nchw", "nhwc", "every-field", "no-labels", "named-dynamic-batch", "null-dynamic-batch"],
)
def test_valid_config_round_trips(data):
    config = EdgeConfig.from_dict(data)
    again = EdgeConfig.from_dict(config.to_dict())
    assert again == config
    assert again.to_json() == config.to_json()
    assert json.loads(config.to_json()) == config.to_dict()
    # deterministic: key order of the input does not matter, output is sorted and compact
    reordered = {key: data[key] for key in reversed(list(data))}
    assert EdgeConfig.from_dict(reordered).to_json() == config.to_json()
    assert config.to_json() == json.dumps(json.loads(config.to_json()), sort_keys=True, separators=(",", ":"))


def test_to_json_exact_text():
    config = EdgeConfig.from_dict(colour_classifier_config("NCHW", 8))
    assert config.to_json() == (
        '{"decoder":{"activation":"softmax","top_k":3,"type":"classify"},"edge_config":1,'
        '"input":{"dtype":"float32","layout":"NCHW","name":"image","shape":[1,3,8,8]},'
        '"labels":["red","green","blue"],"name":"colour_nchw","outputs":["logits"],'
        '"preprocess":{"color":"RGB","interpolation":"linear","mean":[0.0,0.0,0.0],"pad_value":0,'
        '"resize":"stretch","scale":0.00392156862745098,"std":[1.0,1.0,1.0]},"task":"classify"}'
    )


def test_parsed_values_and_defaults():
    config = EdgeConfig.from_dict(colour_classifier_config("NCHW", 32))
    assert config.task == "classify"
    assert config.input == InputSpec("image", (1, 3, 32, 32), "NCHW", "float32")
    assert config.preprocess == PreprocessSpec("RGB", "stretch", 1 / 255, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 0,
                                               "linear")
    assert config.outputs == ("logits",)
    assert config.labels == tuple(COLOUR_LABELS)
    assert config.decoder == {"type": "classify", "activation": "softmax", "top_k": 3}
    assert config.name == "colour_nchw"
    bare_data = with_field(with_field(colour_classifier_config(), "name", DELETE), "outputs", DELETE)
    bare = EdgeConfig.from_dict(bare_data)
    assert (bare.name, bare.outputs) == ("", ())


def test_decoder_is_copied_not_shared():
    data = colour_classifier_config()
    config = EdgeConfig.from_dict(data)
    data["decoder"]["top_k"] = 99
    assert config.decoder["top_k"] == 3
    config.to_dict()["decoder"]["top_k"] = 42
    assert config.decoder["top_k"] == 3


@pytest.mark.parametrize(
    "field, value, attribute, expected",
    [
        ("task", "Classify", "task", "classify"),
        ("task", "DETECT", "task", "detect"),
        ("preprocess.color", "rgb", "preprocess.color", "RGB"),
        ("preprocess.color", "Bgr", "preprocess.color", "BGR"),
        ("preprocess.resize", "LetterBox", "preprocess.resize", "letterbox"),
        ("preprocess.resize", "CENTER_CROP", "preprocess.resize", "center_crop"),
        ("preprocess.interpolation", "Nearest", "preprocess.interpolation", "nearest"),
        ("input.layout", "nchw", "input.layout", "NCHW"),
        ("input.dtype", "UINT8", "input.dtype", "uint8"),
        ("input.dtype", DELETE, "input.dtype", "float32"),
        ("input.layout", DELETE, "input.layout", "NCHW"),
        ("preprocess.resize", DELETE, "preprocess.resize", "stretch"),
        ("preprocess.pad_value", DELETE, "preprocess.pad_value", 0),
        ("preprocess.pad_value", 255, "preprocess.pad_value", 255),
        ("preprocess.interpolation", DELETE, "preprocess.interpolation", "linear"),
        ("preprocess.mean", 0.5, "preprocess.mean", (0.5, 0.5, 0.5)),
        ("preprocess.std", 2, "preprocess.std", (2.0, 2.0, 2.0)),
        ("preprocess.scale", 1, "preprocess.scale", 1.0),
        ("labels", None, "labels", None),
        ("input.shape", [1, 1, 20, 10], "input.size_wh", (10, 20)),
        ("input.shape", [1, 1, 20, 10], "input.channels", 1),
    ],
)
def test_accepted_spellings_and_defaults(field, value, attribute, expected):
    config = EdgeConfig.from_dict(with_field(colour_classifier_config(), field, value))
    found: Any = config
    for part in attribute.split("."):
        found = getattr(found, part)
    assert found == expected


@pytest.mark.parametrize(
    "shape, layout, size_wh, channels",
    [
        ((1, 3, 240, 320), "NCHW", (320, 240), 3),
        ((1, 240, 320, 3), "NHWC", (320, 240), 3),
        (("N", 1, 64, 32), "NCHW", (32, 64), 1),
        ((None, 64, 32, 1), "NHWC", (32, 64), 1),
    ],
)
def test_input_spec_size_and_channels(shape, layout, size_wh, channels):
    spec = InputSpec("x", shape, layout)
    assert (spec.size_wh, spec.channels) == (size_wh, channels)


# -- invalid configs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value, needles",
    [
        ("task", "pose", ["field 'task'", "detect, classify, segment, keypoints, embed", "'pose'"]),
        ("task", 3, ["field 'task'"]),
        ("input", [1, 3, 32, 32], ["field 'input'"]),
        ("input.name", "", ["field 'input.name'"]),
        ("input.name", 7, ["field 'input.name'"]),
        ("input.shape", [1, 3, 32], ["field 'input.shape'", "4 dimensions"]),
        ("input.shape", "1x3x32x32", ["field 'input.shape'"]),
        ("input.shape", [1, 3, 0, 32], ["field 'input.shape'", "positive sizes"]),
        ("input.shape", [1, 3, "h", 32], ["field 'input.shape'", "only the batch may be dynamic"]),
        ("input.shape", [1, 3, 32.0, 32], ["field 'input.shape'"]),
        ("input.shape", [1, True, 32, 32], ["field 'input.shape'"]),
        ("input.layout", "NCWH", ["field 'input.layout'", "NCHW, NHWC"]),
        ("input.layout", "NHWC", ["field 'input.layout'", "1 or 3 channels"]),  # shape is NCHW
        ("input.dtype", "int8", ["field 'input.dtype'", "float32, float16, uint8"]),
        ("preprocess.color", "RGBA", ["field 'preprocess.color'", "RGB, BGR"]),
        ("preprocess.resize", "fit", ["field 'preprocess.resize'", "stretch, letterbox, center_crop"]),
        ("preprocess.scale", 0, ["field 'preprocess.scale'", "positive"]),
        ("preprocess.scale", -1 / 255, ["field 'preprocess.scale'", "positive"]),
        ("preprocess.scale", "1/255", ["field 'preprocess.scale'"]),
        ("preprocess.scale", True, ["field 'preprocess.scale'"]),
        ("preprocess.mean", [0.5, 0.5], ["field 'preprocess.mean'", "3 numbers"]),
        ("preprocess.mean", [0.5, "x", 0.5], ["field 'preprocess.mean'"]),
        ("preprocess.std", 0, ["field 'preprocess.std'", "positive"]),
        ("preprocess.std", [1, 0, 1], ["field 'preprocess.std'", "positive"]),
        ("preprocess.pad_value", 300, ["field 'preprocess.pad_value'", "0..255", "300"]),
        ("preprocess.pad_value", -1, ["field 'preprocess.pad_value'"]),
        ("preprocess.pad_value", 114.0, ["field 'preprocess.pad_value'"]),
        ("preprocess.interpolation", "bilinear",
         ["field 'preprocess.interpolation'", "linear, nearest, area, cubic"]),
        ("labels", [1, 2, 3], ["field 'labels'", "list of strings"]),
        ("labels", "red,green,blue", ["field 'labels'"]),
        ("outputs", "logits", ["field 'outputs'"]),
        ("decoder", {"activation": "softmax"}, ["field 'decoder'", "'type'"]),
        ("decoder", "classify", ["field 'decoder'"]),
        ("lables", COLOUR_LABELS,
         ["unknown field 'lables'",
          "valid: edge_config, name, task, input, preprocess, outputs, decoder, labels"]),
        ("preprocess.flip", True,
         ["unknown field 'preprocess.flip'",
          "valid: color, resize, scale, mean, std, pad_value, interpolation"]),
        ("input.format", "image", ["unknown field 'input.format'", "valid: name, shape, layout, dtype"]),
        ("edge_config", 2, ["version 2 is not supported", "reads version 1", "upgrade edge"]),
        ("task", DELETE, ["no complete edge config", "missing: task", "--task detect|classify"]),
        ("edge_config", DELETE, ["missing: edge_config"]),
    ],
)
def test_bad_field_names_the_field(field, value, needles):
    with pytest.raises(EdgeError) as info:
        EdgeConfig.from_dict(with_field(colour_classifier_config(), field, value), where="models/m.onnx")
    text = assert_one_line(info.value, *needles)
    assert text.startswith("models/m.onnx | ")


@pytest.mark.parametrize("value", ["imagenet", ["RGB"]])
def test_preprocess_that_is_not_an_object_is_a_user_error(value):
    with pytest.raises(EdgeError, match="'preprocess'"):
        EdgeConfig.from_dict(with_field(colour_classifier_config(), "preprocess", value))


# -- missing fields and the message that lists them ------------------------------------------------

ALL_MISSING = ["edge_config", "task", "input", "decoder (detectors only)",
               "preprocess.color", "preprocess.scale", "preprocess.mean", "preprocess.std"]


@pytest.mark.parametrize(
    "data, expected",
    [
        ({}, ALL_MISSING),
        ({"edge_config": 1}, ALL_MISSING[1:]),
        ({"edge_config": 1, "task": None, "preprocess": None}, ALL_MISSING[1:]),
        ({"edge_config": 1, "task": "detect", "input": {}, "decoder": {"type": "x"},
          "preprocess": {"color": "RGB"}}, ["preprocess.scale", "preprocess.mean", "preprocess.std"]),
        # 0 counts as present (it is rejected later, by validation)
        ({"edge_config": 1, "task": "detect", "input": {}, "decoder": {"type": "x"},
          "preprocess": {"color": "RGB", "scale": 0, "mean": 0, "std": 0}}, []),
        (with_field(colour_classifier_config(), "decoder", DELETE), []),  # a classifier gets a default
        (merge(with_field(colour_classifier_config(), "decoder", DELETE), {"task": "detect"}), ["decoder"]),
        (with_field(colour_classifier_config(), "preprocess.color", DELETE), ["preprocess.color"]),
        (merge(colour_classifier_config(), {"preprocess": {"resize": "letterbox"}}), []),
        (colour_classifier_config(), []),
    ],
)
def test_missing_fields(data, expected):
    assert missing_fields(data) == expected


@pytest.mark.parametrize(
    "missing, present, absent",
    [
        (["task", "preprocess.color"],
         ["missing: task, preprocess.color", "--task detect|classify|segment|keypoints; --color RGB|BGR"],
         ["--preset"]),
        (["preprocess.scale", "preprocess.mean", "preprocess.std"],
         ["--scale", "--mean R,G,B or --preset", "--std R,G,B or --preset"], ["--task"]),
        (["decoder"], ["--config decoder.json"], ["--color"]),
        (["decoder (detectors only)"], ["--config decoder.json for a detector"], ["--color"]),
        (ALL_MISSING, ["missing: " + ", ".join(ALL_MISSING)] + [FLAG_FOR_FIELD[f] for f in ALL_MISSING[1:]
                                                                 if f in FLAG_FOR_FIELD], []),
    ],
)
def test_missing_config_error_lists_fields_and_flags(missing, present, absent):
    error = missing_config_error(missing, "cam.onnx")
    text = assert_one_line(error, "cam.onnx | the model has no complete edge config", *present)
    for needle in absent:
        assert needle not in text
    assert "sidecar JSON" in text and "edge-export onnx" in text
    flags = [FLAG_FOR_FIELD[f] for f in missing if f in FLAG_FOR_FIELD]
    assert [text.count(flag) for flag in dict.fromkeys(flags)] == [1] * len(dict.fromkeys(flags))


@pytest.mark.parametrize("missing", [["edge_config"], ["input"], ["edge_config", "input"]])
def test_missing_config_error_without_flags_reads_well(missing):
    assert "or pass ." not in str(missing_config_error(missing, "m.onnx"))


# -- merge and presets ---------------------------------------------------------------------------

BASE = {"a": 1, "p": {"x": 1, "y": 2}, "l": [1, 2]}


@pytest.mark.parametrize(
    "override, expected",
    [
        ({}, BASE),
        ({"p": {"y": 3}}, {"a": 1, "p": {"x": 1, "y": 3}, "l": [1, 2]}),
        ({"a": None, "p": None}, BASE),
        ({"p": {"x": None, "z": 4}}, {"a": 1, "p": {"x": 1, "y": 2, "z": 4}, "l": [1, 2]}),
        ({"p": 5}, {"a": 1, "p": 5, "l": [1, 2]}),
        ({"a": {"b": 1}}, {"a": {"b": 1}, "p": {"x": 1, "y": 2}, "l": [1, 2]}),
        ({"l": [3]}, {"a": 1, "p": {"x": 1, "y": 2}, "l": [3]}),
        ({"new": {"n": [0]}}, {"a": 1, "p": {"x": 1, "y": 2}, "l": [1, 2], "new": {"n": [0]}}),
    ],
)
def test_merge_deep_merges_and_ignores_none(override, expected):
    base_before = json.loads(json.dumps(BASE))
    override_before = json.loads(json.dumps(override))
    merged = merge(BASE, override)
    assert merged == expected
    assert BASE == base_before and override == override_before  # inputs untouched
    for value in override.values():  # nothing in the result aliases the override
        if isinstance(value, (dict, list)):
            assert all(v is not value for v in merged.values())


@pytest.mark.parametrize(
    "preset, pixels, expected",
    [
        ("imagenet", [0, 255], [[-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225],
                                [0.515 / 0.229, 0.544 / 0.224, 0.594 / 0.225]]),
        ("unit", [0, 255], [[0, 0, 0], [1, 1, 1]]),
        ("symmetric", [0, 255], [[-1, -1, -1], [1, 1, 1]]),
        ("raw", [0, 255], [[0, 0, 0], [255, 255, 255]]),
    ],
)
def test_presets_merge_into_a_valid_config(preset, pixels, expected):
    data = merge(colour_classifier_config(), {"preprocess": {"color": "BGR"}})
    data = merge(data, {"preprocess": PRESETS[preset]})
    pre = EdgeConfig.from_dict(data).preprocess
    assert pre.color == PRESETS[preset].get("color", "BGR")
    for pixel, row in zip(pixels, expected):
        values = [(pixel * pre.scale - m) / s for m, s in zip(pre.mean, pre.std)]
        assert values == pytest.approx(row, abs=1e-9)


# -- files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content, needles",
    [
        (None, ["config file not found", "check the path"]),
        ("{'task': 'detect'}", ["config file is not valid JSON", "line 1 column 2"]),
        ('{"task": "detect",\n\n"input": }', ["config file is not valid JSON", "line 3"]),
        ("", ["config file is not valid JSON"]),
        (b"\xff\xfe{}", ["config file is not valid JSON"]),
        ("[1, 2]", ["config file must hold a JSON object", "wrap the fields in { }"]),
        ('"detect"', ["config file must hold a JSON object"]),
        # issue 9 item 11: these were RecursionError tracebacks (json.loads, then deepcopy in merge)
        ("[" * 100000 + "]" * 100000, ["config file is not an edge config (nested deeper than 32 levels)"]),
        ('{"a": ' * 500 + "1" + "}" * 500, ["nested deeper than 32 levels", "nests 4 levels at most"]),
        ('{"decoder": ' * 33 + "{}" + "}" * 33, ["nested deeper than 32 levels"]),
        ("folder", []),
    ],
)
def test_load_json_errors_are_one_line(tmp_path: Path, content, needles):
    path = tmp_path / "edge.json"
    if content == "folder":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(EdgeError) as info:
        load_json(path)
    assert_one_line(info.value, f"{path} | ", *needles)
    with pytest.raises(EdgeError) as info:
        load_json(path, where="sidecar")
    assert str(info.value).startswith("sidecar | ")


def test_load_json_reads_an_object(tmp_path: Path):
    path = tmp_path / "edge.json"
    path.write_text(EdgeConfig.from_dict(full_config()).to_json(), encoding="utf-8")
    assert EdgeConfig.from_dict(load_json(path)) == EdgeConfig.from_dict(full_config())


@pytest.mark.parametrize(
    "model, sidecar",
    [
        ("models/face.onnx", "models/face.json"),
        ("face.fp16.onnx", "face.fp16.json"),
        ("engine.plan", "engine.json"),
        ("noext", "noext.json"),
    ],
)
def test_sidecar_path(model, sidecar):
    assert sidecar_path(Path(model)) == Path(sidecar)


# -- EdgeError itself (edge/errors.py) ----------------------------------------------------------


@pytest.mark.parametrize(
    "what, fix, where, expected",
    [
        ("file missing", "check the path", "m.onnx", "m.onnx | file missing. Fix: check the path."),
        ("file missing.", "check the path.", None, "file missing. Fix: check the path."),
        ("line one\nline two", "do\n  this", "w", "w | line one line two. Fix: do this."),
        ("no fix", None, None, "no fix."),
    ],
)
def test_edge_error_message_is_one_line(what, fix, where, expected):
    error = EdgeError(what, fix=fix, where=where)
    assert str(error) == error.message() == expected
    assert (error.what, error.fix, error.where) == (what, fix, where)


def test_missing_dependency_is_an_edge_error():
    error = MissingDependency("tensorrt", "the TensorRT backend", "install JetPack")
    assert isinstance(error, EdgeError) and error.module == "tensorrt"
    assert str(error) == ("the TensorRT backend needs the Python module 'tensorrt', which is not installed. "
                          "Fix: install JetPack.")


def _lists(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def _cycle() -> Any:
    value: list = []
    value.append(value)
    return value


def _shared_bomb() -> Any:
    """Nine levels of nine references to one list: 9**9 paths, 10 containers (a YAML alias bomb)."""
    value: Any = [1] * 9
    for _ in range(9):
        value = [value] * 9
    return value


@pytest.mark.parametrize("data, depth", [
    (1, 0), ("text", 0), ([], 1), ({}, 1), ({"a": [1, {"b": 2}]}, 3), ([[]] * 3, 2),
    (_lists(32), 32), (_lists(33), 33), (_lists(100000), 33),  # counting stops past the limit
    (_cycle(), 33), (_shared_bomb(), 10),
])
def test_json_depth(data, depth):
    from edge.config import json_depth

    assert json_depth(data) == depth


@pytest.mark.parametrize("text, expected", [
    ("[" * 32 + "]" * 32, None),
    ("[" * 33 + "]" * 33, "nested deeper than 32 levels"),
    ("[" * 100000 + "]" * 100000, "nested deeper than 32 levels"),  # RecursionError inside json.loads
    ("{", "Expecting property name"),
])
def test_loads_json_raises_value_error_not_recursion_error(text, expected):
    from edge.config import loads_json

    if expected is None:
        assert isinstance(loads_json(text), list)
        return
    with pytest.raises(ValueError, match=expected):
        loads_json(text)


# issue 9 item 11: random bytes as --labels were a UnicodeDecodeError traceback
@pytest.mark.parametrize("content, needles", [
    (bytes(range(128, 256)), ["labels file is not UTF-8 text (byte 0 cannot be decoded)", "saved as UTF-8"]),
    (b"cat\ndog\n\xff\xfe\n", ["labels file is not UTF-8 text (byte 8 cannot be decoded)"]),
    (b"", ["labels file is empty"]),
    (b"\n \n", ["labels file is empty"]),
    (None, ["cannot read labels file (No such file or directory)"]),
    ("folder", ["cannot read labels file (Is a directory)"]),
])
def test_read_labels_errors_are_one_line(tmp_path: Path, content, needles):
    from edge.flags import read_labels

    path = tmp_path / "labels.txt"
    if content == "folder":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(EdgeError) as info:
        read_labels(str(path))
    assert_one_line(info.value, f"{path} | ", *needles)


def test_read_labels_reads_names(tmp_path: Path):
    from edge.flags import read_labels

    path = tmp_path / "labels.txt"
    path.write_text("cat\n\n dog \nchat noir\n", encoding="utf-8")
    assert read_labels(str(path)) == ["cat", "dog", "chat noir"]
