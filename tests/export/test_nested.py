"""Nested model outputs -> flat, named ONNX outputs (export/nested.py): naming, selection, renaming."""

from __future__ import annotations

import numpy as np
import pytest

from edge.errors import EdgeError
from export.nested import final_names, is_flat, leaf_names, leaves, select

T = np.zeros(1)  # any leaf


@pytest.mark.parametrize("result, names, flat", [
    (T, ["output"], True),
    ((T,), ["output"], True),
    ([T], ["output"], True),
    ((T, T), ["output0", "output1"], True),
    ({"boxes": T, "scores": T, "labels": T}, ["boxes", "scores", "labels"], False),
    ([{"boxes": T, "labels": T, "scores": T}], ["boxes", "labels", "scores"], False),  # torchvision, batch 1
    ([{"boxes": T}, {"boxes": T}], ["output0.boxes", "output1.boxes"], False),  # torchvision, batch 2
    ((T, [T, T, T]), ["output0", "output1.0", "output1.1", "output1.2"], False),  # (y, [p3, p4, p5])
    ((T, {"boxes": T, "feats": [T, T]}), ["output0", "output1.boxes", "output1.feats.0", "output1.feats.1"], False),
    ({"out": T, "aux": (T, T)}, ["out", "aux.0", "aux.1"], False),
    ({0: T, 1: T}, ["output0", "output1"], False),
])
def test_leaf_names(result, names, flat):
    assert leaf_names(result) == names
    assert len(leaves(result)) == len(names)
    assert is_flat(result) is flat


def test_leaves_keep_the_order_of_the_containers():
    a, b, c = np.array([1]), np.array([2]), np.array([3])
    assert [int(v[0]) for _, v in leaves((a, {"z": b, "a": c}))] == [1, 2, 3]  # dict insertion order, not sorted


@pytest.mark.parametrize("names, keep, expected", [
    (["output0", "output1.0", "output1.1"], None, [0, 1, 2]),
    (["output0", "output1.0", "output1.1"], ["output0"], [0]),
    (["output0", "output1.0", "output1.1"], ["output1.1", "output0"], [0, 2]),  # the model's order stays
])
def test_select(names, keep, expected):
    assert select(names, keep) == expected


@pytest.mark.parametrize("call, message", [
    (lambda: select(["output0", "output1.0"], ["y"]), "names 'y' but the model's outputs are output0, output1.0"),
    (lambda: select(["output0"], ["output0", "output0"]), "names an output twice"),
    (lambda: final_names(["boxes", "scores", "labels"], ["a"]),
     "gives 1 names but the model has 3 outputs (boxes, scores, labels)"),
    (lambda: final_names(["a", "b"], ["x", "x"]), "empty or repeated name"),
])
def test_bad_selections_are_one_line_errors(call, message):
    with pytest.raises(EdgeError) as error:
        call()
    assert message in str(error.value) and "Fix:" in str(error.value)


def test_final_names_rename_in_order():
    assert final_names(["boxes", "scores"], None) == ["boxes", "scores"]
    assert final_names(["boxes", "scores"], ["b", "s"]) == ["b", "s"]


NESTED = '''
import torch


class Nested(torch.nn.Module):
    """forward returns (logits, [feature map, pooled]): the shape of (y, [p3, p4, p5])."""

    def __init__(self, as_dict=False):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.head = torch.nn.Linear(4, 4)
        self.as_dict = as_dict

    def forward(self, x):
        features = self.conv(x)
        pooled = features.mean((2, 3))
        if self.as_dict:
            return {"logits": self.head(pooled), "aux": [features, pooled]}
        return self.head(pooled), [features, pooled]


def tuple_list():
    torch.manual_seed(0)
    return Nested()


def dict_list():
    torch.manual_seed(0)
    return Nested(as_dict=True)
'''


@pytest.fixture()
def nested_work(tmp_path, monkeypatch):
    pytest.importorskip("torch", reason="PyTorch export needs torch")
    (tmp_path / "nested_nets.py").write_text(NESTED)
    monkeypatch.chdir(tmp_path)
    return tmp_path


CLASSIFY_OUTPUT0 = '{"task": "classify", "decoder": {"type": "classify", "output": "%s"}}'


@pytest.mark.parametrize("source, flags, names", [
    ("tuple_list", [], ["output0", "output1.0", "output1.1"]),
    ("tuple_list", ["--keep-outputs", "output0"], ["output0"]),
    ("tuple_list", ["--keep-outputs", "output0,output1.1", "--output-names", "logits,pooled"], ["logits", "pooled"]),
    ("dict_list", [], ["logits", "aux.0", "aux.1"]),
    ("dict_list", ["--output-names", "scores,features,pooled"], ["scores", "features", "pooled"]),
])
def test_nested_outputs_export_and_pass_parity_leaf_by_leaf(nested_work, capsys, source, flags, names):
    from edge.onnxfile import read_onnx
    from export.__main__ import main

    (nested_work / "c.json").write_text(CLASSIFY_OUTPUT0 % names[0])
    assert main(["onnx", f"nested_nets.py:{source}", "--input-shape", "1,3,16,16", "--preset", "unit",
                 "--config", "c.json", "--output", "n.onnx", *flags]) == 0
    out = capsys.readouterr().out
    assert [o.name for o in read_onnx(nested_work / "n.onnx").outputs] == names
    assert all(f"  {name}: max abs" in out for name in names) and "verdict: pass" in out, out


@pytest.mark.parametrize("source, flags, message", [
    ("dict_list", ["--output-names", "a,b"], "gives 2 names but the model has 3 outputs (logits, aux.0, aux.1)"),
    ("tuple_list", ["--keep-outputs", "y"], "names 'y' but the model's outputs are output0, output1.0, output1.1"),
])
def test_nested_output_flags_are_checked(nested_work, capsys, source, flags, message):
    from export.__main__ import main

    (nested_work / "c.json").write_text(CLASSIFY_OUTPUT0 % "output0")
    assert main(["onnx", f"nested_nets.py:{source}", "--input-shape", "1,3,16,16", "--preset", "unit",
                 "--config", "c.json", "--output", "n.onnx", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Fix:" in err[0], err
    assert not (nested_work / "n.onnx").exists()
