"""export/triton.py and ``python -m export triton``: config.pbtxt parsed back with a minimal pbtxt reader."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import onnx
import pytest
from tiny_models import COLOUR_LABELS, colour_classifier_config, make_colour_classifier

import export.__main__ as export_main
from edge.config import EdgeConfig
from edge.errors import EdgeError
from edge.model import resolve_config
from edge.onnxfile import OnnxInfo, TensorSpec, read_onnx
from edge.zoo import resolve_model
from export.triton import triton_config, write_triton_entry

# --- a minimal protobuf text-format reader: `key: value`, `key { ... }`, `key [ ... ]`, comments ---

TOKEN = re.compile(r'\s+|#[^\n]*|"(?:[^"\\]|\\.)*"|[{}\[\]:,]|[^\s{}\[\]:,"#]+')


def tokens(text: str) -> List[str]:
    found = [m.group(0) for m in TOKEN.finditer(text)]
    assert "".join(found) == text, "untokenisable text"
    return [t for t in found if not t.isspace() and not t.startswith("#")]


def scalar(token: str) -> Any:
    if token.startswith('"'):
        return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), token[1:-1])
    if re.fullmatch(r"-?\d+", token):
        return int(token)
    return token  # an enum value such as TYPE_FP32


def parse_pbtxt(text: str) -> Dict[str, List[Any]]:
    """Each field name -> the list of its occurrences (a message is a dict, a list stays a list)."""
    items = tokens(text)
    position = 0

    def value() -> Any:
        nonlocal position
        token = items[position]
        position += 1
        if token == "{":
            return message("}")
        if token == "[":
            values = []
            while items[position] != "]":
                values.append(value())
                if items[position] == ",":
                    position += 1
            position += 1
            return values
        return scalar(token)

    def message(end: str) -> Dict[str, List[Any]]:
        nonlocal position
        fields: Dict[str, List[Any]] = {}
        while position < len(items) and items[position] != end:
            key = items[position]
            position += 1
            if items[position] == ":":
                position += 1
            fields.setdefault(key, []).append(value())
        position += 1
        return fields

    return message("")


def one(fields: Dict[str, List[Any]], key: str) -> Any:
    assert len(fields[key]) == 1, key
    return fields[key][0]


# --- models ---

def dynamic_classifier(path: Path, layout: str = "NCHW") -> Path:
    """The colour classifier with a dynamic batch dimension ('N') on its input and output."""
    data = copy.deepcopy(colour_classifier_config(layout))
    data["input"]["shape"][0] = None
    make_colour_classifier(path, layout=layout, config=data)
    model = onnx.load(str(path))
    for value in (model.graph.input[0], model.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    onnx.save(model, str(path))
    return path


def loaded(path: Path) -> Tuple[OnnxInfo, EdgeConfig]:
    info = read_onnx(path)
    return info, resolve_config(info)


def entry_config(entry: Path) -> Dict[str, List[Any]]:
    return parse_pbtxt((entry / "config.pbtxt").read_text(encoding="utf-8"))


def test_dynamic_batch_classifier_entry(tmp_path):
    path = dynamic_classifier(tmp_path / "dyn.onnx")
    info, config = loaded(path)
    entry = write_triton_entry(path, config, info, repository=tmp_path / "repo")
    assert entry == tmp_path / "repo" / "colour_nchw"
    parsed = entry_config(entry)
    assert (one(parsed, "name"), one(parsed, "backend"), one(parsed, "max_batch_size")) == ("colour_nchw",
                                                                                          "onnxruntime", 8)
    image = one(parsed, "input")[0]
    assert (one(image, "name"), one(image, "data_type"), one(image, "format")) == ("image", "TYPE_FP32",
                                                                                 "FORMAT_NCHW")
    assert one(image, "dims") == [3, 32, 32]  # no batch dim when Triton batches
    logits = one(parsed, "output")[0]
    assert (one(logits, "name"), one(logits, "dims"), one(logits, "label_filename")) == ("logits", [3], "labels.txt")
    group = one(parsed, "instance_group")[0]
    assert (one(group, "count"), one(group, "kind")) == (1, "KIND_GPU")
    assert "optimization" not in parsed
    assert (entry / "labels.txt").read_text(encoding="utf-8").splitlines() == COLOUR_LABELS
    assert (entry / "1" / "model.onnx").read_bytes() == path.read_bytes()
    stored = json.loads((entry / "edge_config.json").read_text(encoding="utf-8"))
    assert EdgeConfig.from_dict(stored) == config
    parameter = one(parsed, "parameters")
    assert one(parameter, "key") == "edge_preprocess"
    assert "resize=stretch" in one(one(parameter, "value"), "string_value")


def test_static_batch_face_model_keeps_the_batch_dim():
    info, config = loaded(resolve_model(None))
    parsed = parse_pbtxt(triton_config(config, info, name="face", max_batch_size=0))
    assert one(parsed, "max_batch_size") == 0
    image = one(parsed, "input")[0]
    assert one(image, "dims") == [1, 3, 128, 128]
    assert "format" not in image  # Triton allows FORMAT_NCHW only with 3 dims
    outputs = {one(o, "name"): o for o in one(parsed, "output")}
    assert one(outputs["regressors"], "dims") == [1, 896, 16]
    assert one(outputs["classificators"], "dims") == [1, 896, 1]
    assert all("label_filename" not in o for o in outputs.values())  # a detector has no class output
    assert all(one(o, "data_type") == "TYPE_FP32" for o in outputs.values())


def test_nhwc_format_instances_cpu_and_accelerator(tmp_path):
    info, config = loaded(dynamic_classifier(tmp_path / "nhwc.onnx", "NHWC"))
    parsed = parse_pbtxt(triton_config(config, info, name="c", max_batch_size=4, instances=3, kind="cpu"))
    image = one(parsed, "input")[0]
    assert (one(image, "format"), one(image, "dims")) == ("FORMAT_NHWC", [32, 32, 3])
    group = one(parsed, "instance_group")[0]
    assert (one(parsed, "max_batch_size"), one(group, "count"), one(group, "kind")) == (4, 3, "KIND_CPU")
    parsed = parse_pbtxt(triton_config(config, info, name="c", max_batch_size=4, tensorrt_precision="fp16"))
    accelerator = one(one(one(parsed, "optimization"), "execution_accelerators"), "gpu_execution_accelerator")[0]
    assert one(accelerator, "name") == "tensorrt"
    parameter = one(accelerator, "parameters")
    assert (one(parameter, "key"), one(parameter, "value")) == ("precision_mode", "FP16")


@pytest.mark.parametrize("dtype, expected", [
    ("float32", "TYPE_FP32"), ("float16", "TYPE_FP16"), ("uint8", "TYPE_UINT8"),
])
def test_data_types_follow_the_tensors(dtype, expected):
    data = colour_classifier_config()
    data["input"]["dtype"] = dtype
    config = EdgeConfig.from_dict(data)
    info = OnnxInfo(Path("m.onnx"), (TensorSpec("image", (1, 3, 32, 32), np.dtype(dtype)),),
                    (TensorSpec("logits", (1, 3), np.dtype("int64")),), {}, 13)
    parsed = parse_pbtxt(triton_config(config, info, name="m", max_batch_size=0))
    assert one(one(parsed, "input")[0], "data_type") == expected
    assert one(one(parsed, "output")[0], "data_type") == "TYPE_INT64"


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "cpu", "tensorrt_precision": "fp16"}, "GPU instances only"),
    ({"kind": "tpu"}, "unknown instance kind"),
    ({"instances": 0}, "instances"),
    ({"tensorrt_precision": "int8"}, "unknown TensorRT precision"),
])
def test_bad_options_are_errors(kwargs, message):
    info, config = loaded(resolve_model(None))
    with pytest.raises(EdgeError, match=message):
        triton_config(config, info, name="face", max_batch_size=0, **kwargs)


def test_max_batch_size_rules(tmp_path):
    face = resolve_model(None)
    info, config = loaded(face)
    with pytest.raises(EdgeError, match="fixed at 1"):
        write_triton_entry(face, config, info, repository=tmp_path / "r", max_batch_size=4)
    path = dynamic_classifier(tmp_path / "dyn.onnx")
    info, config = loaded(path)
    entry = write_triton_entry(path, config, info, repository=tmp_path / "r", max_batch_size=0)
    image = one(entry_config(entry), "input")[0]
    assert one(image, "dims") == [-1, 3, 32, 32]  # no batching: the dynamic batch dim stays, as -1


def test_same_inputs_give_the_same_bytes(tmp_path):
    path = dynamic_classifier(tmp_path / "dyn.onnx")
    info, config = loaded(path)
    first = write_triton_entry(path, config, info, repository=tmp_path / "a", tensorrt_precision="fp16")
    second = write_triton_entry(path, config, info, repository=tmp_path / "b", tensorrt_precision="fp16")
    for name in ("config.pbtxt", "edge_config.json", "labels.txt", "1/model.onnx"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    assert triton_config(config, info, name="x", max_batch_size=8) == triton_config(config, info, name="x",
                                                                                    max_batch_size=8)


def test_existing_entry_with_another_model_needs_force(tmp_path):
    repo = tmp_path / "repo"
    first = make_colour_classifier(tmp_path / "first.onnx")
    info, config = loaded(first)
    write_triton_entry(first, config, info, repository=repo, name="m")
    write_triton_entry(first, config, info, repository=repo, name="m")  # the same model again is fine
    other = dynamic_classifier(tmp_path / "other.onnx")
    other_info, other_config = loaded(other)
    with pytest.raises(EdgeError, match="different model") as caught:
        write_triton_entry(other, other_config, other_info, repository=repo, name="m")
    assert "--force" in str(caught.value)
    assert (repo / "m" / "1" / "model.onnx").read_bytes() == first.read_bytes()  # untouched
    write_triton_entry(other, other_config, other_info, repository=repo, name="m", force=True)
    assert (repo / "m" / "1" / "model.onnx").read_bytes() == other.read_bytes()
    assert first.read_bytes() != other.read_bytes()  # replacing the link did not write through to the source


def test_detector_entry_drops_a_stale_labels_file(tmp_path):
    repo = tmp_path / "repo"
    classifier = make_colour_classifier(tmp_path / "c.onnx")
    info, config = loaded(classifier)
    write_triton_entry(classifier, config, info, repository=repo, name="m")
    face = resolve_model(None)
    face_info, face_config = loaded(face)
    entry = write_triton_entry(face, face_config, face_info, repository=repo, name="m", force=True)
    assert not (entry / "labels.txt").exists()


@pytest.mark.parametrize("name", ["a/b", "..", ""])
def test_bad_names(tmp_path, name):
    path = make_colour_classifier(tmp_path / "c.onnx")
    info, config = loaded(path)
    with pytest.raises(EdgeError, match="cannot be a Triton model name"):
        write_triton_entry(path, config, info, repository=tmp_path / "r", name=name)


def run_cli(monkeypatch, argv: List[str]) -> int:
    """export.__main__.main with this command registered and only commands whose modules exist."""
    names = tuple(dict.fromkeys(tuple(export_main.COMMANDS) + (argv[0],)))
    present = tuple(n for n in names if importlib.util.find_spec(f"export.commands.{n}") is not None)
    monkeypatch.setattr(export_main, "COMMANDS", present)
    return export_main.main(argv)


def test_cli_writes_the_entry(tmp_path, monkeypatch, capsys):
    path = dynamic_classifier(tmp_path / "dyn.onnx")
    argv = ["triton", str(path), "--repository", str(tmp_path / "repo"), "--name", "colour", "--version", "3",
            "--max-batch-size", "16", "--instances", "2", "--kind", "gpu", "--tensorrt-accelerator", "fp32"]
    assert run_cli(monkeypatch, argv) == 0
    assert "wrote" in capsys.readouterr().out
    entry = tmp_path / "repo" / "colour"
    parsed = entry_config(entry)
    assert (one(parsed, "name"), one(parsed, "max_batch_size")) == ("colour", 16)
    assert one(one(parsed, "instance_group")[0], "count") == 2
    assert (entry / "3" / "model.onnx").is_file()


def test_cli_user_errors_exit_2(tmp_path, monkeypatch, capsys):
    repo = tmp_path / "repo"
    assert run_cli(monkeypatch, ["triton", str(make_colour_classifier(tmp_path / "a.onnx")), "--repository",
                                 str(repo), "--name", "m"]) == 0
    capsys.readouterr()
    other = dynamic_classifier(tmp_path / "b.onnx")
    assert run_cli(monkeypatch, ["triton", str(other), "--repository", str(repo), "--name", "m"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "--force" in err and "\n" not in err
    assert run_cli(monkeypatch, ["triton", str(other), "--repository", str(repo), "--name", "m", "--force"]) == 0
