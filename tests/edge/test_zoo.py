"""Tests for edge.zoo: finding models and the --list-models table."""

import json

import pytest

from edge import zoo
from edge.errors import EdgeError


def test_every_manifest_model_is_listed_with_its_config_facts():
    entries = {entry.name: entry for entry in zoo.list_models()}
    assert set(entries) == set(zoo.zoo_names())
    face = entries["face_detection_short_range"]
    assert (face.task, face.input_wh, face.problem) == ("detect", (128, 128), None)
    assert "BlazeFace" in face.summary and face.path.is_file()
    assert (entries["digits"].task, entries["digits"].input_wh) == ("classify", (8, 8))
    for entry in entries.values():  # what the manifest says agrees with the model's own config
        assert entry.task == zoo.manifest()[entry.name].get("task", entry.task)


@pytest.mark.parametrize(
    "entry_kwargs, expected_start, expected_end",
    [
        ({"input_wh": (128, 128), "problem": None}, "face", "a face model"),
        ({"input_wh": None, "problem": "not found"}, "face", "a face model [unreadable: not found]"),
    ],
)
def test_table_rows(tmp_path, entry_kwargs, expected_start, expected_end):
    entry = zoo.ZooEntry("face", "detect", summary="a face model", path=tmp_path, **entry_kwargs)
    row = entry.row()
    assert row.startswith(expected_start) and row.endswith(expected_end)
    size = row.split()[2]
    assert size == ("128x128" if entry_kwargs["input_wh"] else "?")
    assert row.index("detect") == zoo.TABLE_HEADER.index("task")


def test_an_unreadable_model_is_a_row_not_a_crash(tmp_path, monkeypatch):
    (tmp_path / "broken.onnx").write_bytes(b"not onnx")
    manifest = {"models": {"broken": {"file": "broken.onnx", "task": "detect", "summary": "a broken file",
                                      "source": "nowhere"}}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    monkeypatch.setattr(zoo, "zoo_dir", lambda: tmp_path)
    [entry] = zoo.list_models()
    assert entry.input_wh is None and entry.problem and entry.task == "detect"
    assert entry.summary == "nowhere | a broken file"


def test_resolve_model_names_the_zoo_in_its_error():
    with pytest.raises(EdgeError, match="face_detection_short_range"):
        zoo.resolve_model("no_such_model")
