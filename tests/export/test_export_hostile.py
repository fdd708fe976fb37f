"""``python -m export onnx`` against hostile inputs and places (issue 9 items 6, 7, 12, 13):
NaN/Inf outputs, files no backend here loads, non-regular or unwritable outputs, random bytes,
impossible shapes, missing external-data files, and the umask's mode on what is written."""

from __future__ import annotations

import os
import stat
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from export.__main__ import main

ROOT = Path(__file__).resolve().parents[2]
FACE = ROOT / "models" / "face_detection_short_range"
CLASSIFY = ["--task", "classify", "--preset", "imagenet"]

NETS = textwrap.dedent("""
    import torch

    def build():
        return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                   torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 4))

    def big():
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 64))  # 786 KB of weights

    def nan():
        class M(torch.nn.Module):
            def forward(self, x):
                return x.mean((2, 3)) * float("nan")
        return M()

    def inf():
        class M(torch.nn.Module):
            def forward(self, x):
                return torch.cat([x.mean((2, 3)), torch.full((x.shape[0], 1), float("inf"))], 1)
        return M()
""")


def _onnx_model(path: Path, custom_op: bool = False, external: str = "") -> Path:
    """A tiny classifier (input (1,3,8,8) -> mean -> MatMul): with a custom-domain op, or weights in a separate file."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3])
    weights = numpy_helper.from_array(np.eye(3, dtype=np.float32) * 0.5, "w")
    nodes = [helper.make_node("ReduceMean", ["input"], ["m"], axes=[2, 3], keepdims=0),
             helper.make_node("MatMul", ["m", "w"], ["output"] if not custom_op else ["z"])]
    opsets = [helper.make_opsetid("", 17)]
    if custom_op:
        nodes.append(helper.make_node("MyPlugin", ["z"], ["output"], domain="com.example"))
        opsets.append(helper.make_opsetid("com.example", 1))
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], initializer=[weights]), opset_imports=opsets)
    model.ir_version = 8
    if external:
        onnx.save(model, str(path), save_as_external_data=True, location=external, size_threshold=0)
    else:
        onnx.save(model, str(path))
    return path


@pytest.fixture()
def work(tmp_path, monkeypatch):
    pytest.importorskip("torch", reason="PyTorch export needs torch")
    (tmp_path / "hostile_nets.py").write_text(NETS)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    sys.modules.pop("hostile_nets", None)


def export(*args: str) -> int:
    return main(["onnx", *args])


def _random_bytes(path: Path) -> str:
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return str(path)


def _fifo(path: Path) -> str:
    os.mkfifo(str(path))
    return str(path)


def _char_device(path: Path) -> str:
    try:  # /dev/full's numbers, inside tmp_path: the real device is never at risk, fix or no fix
        os.mknod(str(path), stat.S_IFCHR | 0o666, os.makedev(1, 7))
    except OSError as exc:
        pytest.skip(f"cannot create a device node here ({exc})")
    return str(path)


def _folder(path: Path) -> str:
    path.mkdir()
    return str(path)


def _missing_external(path: Path) -> str:
    _onnx_model(path, external="weights.bin")
    (path.parent / "weights.bin").unlink()
    return str(path)


# (name, arguments built in the work folder, expected text of the one line, file kind that must survive)
HOSTILE = [
    ("random bytes as --weights", lambda w: ["hostile_nets.py:build", "--input-shape", "1,3,32,32", "--weights",
                                             _random_bytes(w / "random.pt")], "not a PyTorch weights file"),
    ("120 GB input shape", lambda w: ["hostile_nets.py:build", "--input-shape", "1,3,100000,100000"],
     "more than the 1 GiB export allows"),
    ("input shape past int64", lambda w: ["hostile_nets.py:build", "--input-shape", "99999999999999999999,3,32,32"],
     "more than the 1 GiB export allows"),
    ("--output a folder", lambda w: ["hostile_nets.py:build", "--input-shape", "1,3,32,32", "--output",
                                     _folder(w / "adir")], "the output is a folder"),
    ("--output a FIFO", lambda w: ["hostile_nets.py:build", "--input-shape", "1,3,32,32", "--output",
                                   _fifo(w / "fifo")], "the output is a FIFO"),
    ("--output a device", lambda w: ["hostile_nets.py:build", "--input-shape", "1,3,32,32", "--output",
                                     _char_device(w / "full")], "the output is a character device"),
    ("custom-domain operator", lambda w: [str(_onnx_model(w / "plugin.onnx", custom_op=True)), "--output", "out.onnx"],
     "no backend here can load the exported model"),
    ("missing external-data file", lambda w: [_missing_external(w / "ext.onnx"), "--output", "out.onnx"],
     "'weights.bin', which is not beside the model"),
]


@pytest.mark.parametrize("name, build_args, expected", HOSTILE, ids=[row[0] for row in HOSTILE])
def test_hostile_input_is_one_line_with_a_fix(work, capfd, name, build_args, expected):
    args = build_args(work)
    before = {p.name: stat.S_IFMT(os.lstat(str(p)).st_mode) for p in work.iterdir()}
    assert export(*args, *CLASSIFY) == 2
    out, err = capfd.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "Fix:" in lines[0], lines
    assert "pip install" not in lines[0] and "--opset" not in lines[0]  # item 13: no advice that cannot help
    assert out == ""
    after = {p.name: stat.S_IFMT(os.lstat(str(p)).st_mode) for p in work.iterdir() if p.name != "__pycache__"}
    assert after == {k: v for k, v in before.items() if k != "__pycache__"}  # nothing written, nothing replaced


@pytest.mark.parametrize("callable_name, reason", [("nan", "3 of 3 values are NaN/Inf"), ("inf", "1 of 4 values")])
def test_nan_or_inf_outputs_fail_parity(work, capsys, callable_name, reason):
    assert export(f"hostile_nets.py:{callable_name}", "--input-shape", "1,3,32,32", *CLASSIFY,
                  "--output", "bad.onnx") == 1
    out = capsys.readouterr().out
    assert reason in out and "verdict: FAIL" in out and "not written: bad.onnx" in out
    assert not (work / "bad.onnx").exists()


def test_allow_unloadable_writes_a_custom_operator_model(work, capsys):
    source = _onnx_model(work / "plugin.onnx", custom_op=True)
    assert export(str(source), *CLASSIFY, "--output", "out.onnx", "--allow-unloadable") == 0
    out = capsys.readouterr().out
    assert "written anyway (--allow-unloadable)" in out and "parity: not possible" in out
    assert (work / "out.onnx").is_file()


def test_external_data_is_inlined_so_the_export_stands_alone(work, capsys):
    source = _onnx_model(work / "ext.onnx", external="weights.bin")
    (work / "elsewhere").mkdir()
    assert export(str(source), *CLASSIFY, "--output", "elsewhere/out.onnx") == 0
    assert "load check: ok (onnxruntime-cpu)" in capsys.readouterr().out
    from edge.backends import create_backend

    with create_backend(work / "elsewhere" / "out.onnx", "onnxruntime-cpu") as backend:
        out = backend.infer({"input": np.ones((1, 3, 8, 8), np.float32)})
    np.testing.assert_allclose(out["output"], [[0.5, 0.5, 0.5]])


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_export_and_triton_entry_get_the_umask_mode(work, umask, mode):
    from edge.onnxfile import read_onnx
    from export.triton import write_triton_entry

    old = os.umask(umask)
    try:
        assert export(str(_onnx_model(work / "m.onnx")), *CLASSIFY, "--output", "out.onnx") == 0
        assert stat.S_IMODE((work / "out.onnx").stat().st_mode) == mode
        private = work / "private.onnx"
        private.write_bytes((work / "out.onnx").read_bytes())
        private.chmod(0o600)  # an export by an older edge (mkstemp's mode)
        from edge.model import resolve_config

        info = read_onnx(private)
        entry = write_triton_entry(private, resolve_config(info), info, repository=work / "repo", name="m")
        placed = entry / "1" / "model.onnx"
        assert stat.S_IMODE(placed.stat().st_mode) == mode and not placed.samefile(private)
        assert stat.S_IMODE(private.stat().st_mode) == 0o600  # the source is left as it was
    finally:
        os.umask(old)


@pytest.mark.parametrize("options, source, expected", [
    ("size=1m,ro", "pytorch", "Read-only file system"),
    ("size=1m,ro", "tflite", "Read-only file system"),
    ("size=1m,ro", "onnx", "Read-only file system"),
    ("size=16k", "pytorch", "No space left on device"),
    ("size=16k", "tflite", "No space left on device"),
    ("size=16k", "onnx", "No space left on device"),
])
def test_unwritable_output_file_system(work, capfd, mount_tmpfs, options, source, expected):
    mounted = mount_tmpfs(options, "mnt")
    args = {"pytorch": ["hostile_nets.py:big", "--input-shape", "1,3,32,32", *CLASSIFY],
            "tflite": [str(FACE / "face_detection_short_range.tflite")],
            "onnx": [str(FACE / "face_detection_short_range.onnx")]}[source]
    if source == "tflite":
        pytest.importorskip("tflite2onnx", reason="TFLite export needs tflite2onnx")
    assert export(*args, "--output", str(mounted / "x.onnx")) == 2
    lines = capfd.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "Fix:" in lines[0], lines
    assert "nothing was written" in lines[0] and "free space" in lines[0]  # not "report the model"
    assert os.listdir(str(mounted)) == []  # no partial file, no scratch folder
