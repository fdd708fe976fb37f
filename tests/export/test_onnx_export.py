"""``python -m export onnx`` for real: PyTorch, TorchScript, Keras, TFLite and ONNX sources."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edge.onnxfile import read_onnx
from export.__main__ import main

ROOT = Path(__file__).resolve().parents[2]
FACE = ROOT / "models" / "face_detection_short_range"
CLASSIFY = ["--task", "classify", "--preset", "imagenet"]

NETS = textwrap.dedent("""
    import torch

    def build():
        return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                   torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 4))

    def two_heads():
        class TwoHeads(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.body = build()

            def forward(self, x):
                y = self.body(x)
                return y, y.softmax(1)
        return TwoHeads()

    def not_a_module():
        return 42

    def raises():
        raise RuntimeError("weights server unreachable")

    def returns_none():
        class M(torch.nn.Module):
            def forward(self, x):
                return x.mean((2, 3)), None
        return M()

    def asserts():
        class M(torch.nn.Module):
            def forward(self, x):
                assert x.shape[1] == 4, "expects 4 channels"
                return x.mean((2, 3))
        return M()

    def fft():
        class M(torch.nn.Module):
            def forward(self, x):
                return torch.fft.fft2(x).abs().mean((2, 3))
        return M()

    def constant():
        class M(torch.nn.Module):
            def forward(self, x):
                return torch.tensor(x.mean((2, 3)).tolist())  # traced as a constant
        return M()

    def channel_means():
        class M(torch.nn.Module):
            def forward(self, x):
                return x.mean((0, 2, 3))  # (3,): no batch axis
        return M()

    def grid_sampler():
        class G(torch.nn.Module):
            def forward(self, x):
                grid = torch.zeros(1, 4, 4, 2)
                return torch.nn.functional.grid_sample(x, grid, align_corners=False).mean((2, 3))
        return G()
""")


@pytest.fixture()
def work(tmp_path, monkeypatch):
    pytest.importorskip("torch", reason="PyTorch export needs torch")
    import torch

    (tmp_path / "nets.py").write_text(NETS)
    sys.path.insert(0, str(tmp_path))
    import nets

    torch.manual_seed(0)
    model = nets.build().eval()
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    torch.save(torch.nn.Linear(3, 3).state_dict(), tmp_path / "other.pt")
    torch.jit.script(model).save(str(tmp_path / "scripted.ts"))
    (tmp_path / "labels.txt").write_text("a\nb\nc\nd\n")
    (tmp_path / "two.txt").write_text("a\nb\n")
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    sys.path.remove(str(tmp_path))
    sys.modules.pop("nets", None)


def export(*args: str) -> int:
    return main(["onnx", *args])


def test_pytorch_callable_with_weights_runs_in_edge_without_flags(work, capsys):
    rc = export("nets.py:build", "--weights", "weights.pt", "--input-shape", "1,3,32,32", *CLASSIFY,
                "--labels", "labels.txt", "--output", "net.onnx")
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "parity vs PyTorch" in out and "verdict: pass" in out and "onnx.checker: ok" in out
    info = read_onnx(work / "net.onnx")
    assert info.opset == 17 and [o.name for o in info.outputs] == ["output"]
    import torch

    import edge

    frame = (np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)
    with edge.load_model(work / "net.onnx") as model:  # no further flags
        result = model(frame)
    assert result.labels == ["a", "b", "c", "d"]
    import nets

    reference = nets.build()
    reference.load_state_dict(torch.load(work / "weights.pt"))
    tensor = model.preprocess(frame)[0]
    expected = reference.eval()(torch.from_numpy(tensor.copy())).softmax(1)[0].detach().numpy()
    assert int(result.class_ids[0]) == int(expected.argmax())
    assert result.scores[0] == pytest.approx(expected.max(), abs=1e-5)


def test_camera_app_runs_the_export(work, tmp_path):
    assert export("nets.py:build", "--input-shape", "1,3,32,32", *CLASSIFY, "--output", "net.onnx") == 0
    frames = tmp_path / "frames"
    frames.mkdir()
    import cv2

    for i in range(3):
        cv2.imwrite(str(frames / f"{i}.png"), np.full((40, 50, 3), 60 * i, np.uint8))
    done = subprocess.run([sys.executable, "-m", "edge.camera", "--model", "net.onnx", "--source", str(frames),
                           "--headless", "--output", "-", "--quiet"], capture_output=True, text=True, cwd=work,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(records) == 3 and all(r["result"]["task"] == "classify" for r in records)


def test_torchscript_with_dynamic_batch(work, capsys):
    assert export("scripted.ts", "--input-shape", "1,3,32,32", "--dynamic-batch", *CLASSIFY,
                  "--output", "ts.onnx") == 0
    info = read_onnx(work / "ts.onnx")
    assert not isinstance(info.inputs[0].shape[0], int) and info.inputs[0].shape[1:] == (3, 32, 32)
    from edge.backends import create_backend

    with create_backend(work / "ts.onnx", "onnxruntime-cpu") as backend:
        out = backend.infer({"input": np.zeros((5, 3, 32, 32), np.float32)})
    assert out["output"].shape == (5, 4)


def test_output_names_for_several_outputs(work):
    assert export("nets.py:two_heads", "--input-shape", "1,3,32,32", *CLASSIFY, "--output-names", "logits,probs",
                  "--output", "two.onnx", "--config", _write(work / "c.json", {"decoder": {"type": "classify",
                                                                                        "output": "logits"}})) == 0
    assert [o.name for o in read_onnx(work / "two.onnx").outputs] == ["logits", "probs"]


def test_exports_are_byte_identical(work):
    for name in ("a.onnx", "b.onnx"):
        assert export("nets.py:build", "--weights", "weights.pt", "--input-shape", "1,3,32,32", *CLASSIFY,
                      "--output", name) == 0
    assert (work / "a.onnx").read_bytes() == (work / "b.onnx").read_bytes()


@pytest.mark.parametrize("args, expected", [
    (["nomodule.nets:build", "--input-shape", "1,3,32,32"], "cannot import 'nomodule.nets'"),
    (["nets.py:missing", "--input-shape", "1,3,32,32"], "has no callable 'missing'"),
    (["nets.py:not_a_module", "--input-shape", "1,3,32,32"], "not a torch.nn.Module"),
    (["nets.py:build", "--weights", "other.pt", "--input-shape", "1,3,32,32"], "weights do not match"),
    (["nets.py:build", "--weights", "nope.pt", "--input-shape", "1,3,32,32"], "weights file not found"),
    (["nets.py:build", "--input-shape", "1,3,32"], "not 4 positive sizes"),
    (["nets.py:build", "--input-shape", "1,1,32,32"], "does not run on an input of shape [1, 1, 32, 32]"),
    (["nets.py:build"], "does not record its input shape"),
    (["nets.py:grid_sampler", "--input-shape", "1,3,32,32", "--opset", "13"], "cannot be expressed in ONNX opset 13"),
    (["nets.py:build", "--input-shape", "1,3,32,32", "--labels", "two.txt"], "2 labels but output 'output' scores 4"),
    (["nets.py:two_heads", "--input-shape", "1,3,32,32", "--output-names", "one"], "gives 1 names but"),
    (["labels.txt"], "cannot tell what kind of model"),
    (["weights.pt"], "not a TorchScript file"),
    (["missing.keras"], "not found"),
    (["labels.tflite"], "not a TFLite flatbuffer"),
    (["labels.onnx"], "not a readable ONNX model"),
    (["nets.py:build", "--input-shape", "1,3,32,32", "--output", "no/dir/x.onnx"], "mkdir -p no/dir"),
    # converter and user-code failures: one line each, never a traceback
    (["nets.py:raises", "--input-shape", "1,3,32,32"], "building the model raised RuntimeError: weights server"),
    (["nets.py:returns_none", "--input-shape", "1,3,32,32"], "output 'output1' of the model is a NoneType"),
    (["nets.py:asserts", "--input-shape", "1,3,32,32"], "(AssertionError: expects 4 channels)"),
    (["nets.py:fft", "--input-shape", "1,3,32,32"], "'aten::fft_fft2' to ONNX opset version 17 is not supported"),
    (["nets.py:constant", "--input-shape", "1,3,32,32"], "the exported graph does not use its input"),
    (["nameerror.py:build", "--input-shape", "1,3,32,32"], "importing 'nameerror.py' raised NameError"),
    (["syntax.py:build", "--input-shape", "1,3,32,32"], "importing 'syntax.py' raised SyntaxError"),
    (["missing_dep.py:build", "--input-shape", "1,3,32,32"], "Fix: install what it imports"),
    (["nets.py:two_heads", "--input-shape", "1,3,32,32", "--keep-outputs", "y"], "the model's outputs are output0"),
    (["labels.tflite", "--keep-outputs", "output0"], "apply to PyTorch and Keras"),
    (["nets.py:channel_means", "--input-shape", "1,3,32,32", "--dynamic-batch"], "has shape [3] for a batch of 1"),
    (["broken.keras"], "keras"),  # Keras cannot load it, or Keras is not installed: either way one line
    (["broken.h5"], "keras"),
    (["broken.tflite"], "tflite2onnx"),  # a TFL3 header and garbage: converter crash, or not installed
])
def test_bad_input_is_one_line_with_a_fix(work, capfd, args, expected):
    for name in ("labels.tflite", "labels.onnx", "broken.h5"):
        (work / name).write_text("not a model\n")
    (work / "broken.keras").write_bytes(b"PK\x03\x04 not a zip")
    (work / "broken.tflite").write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
    (work / "nameerror.py").write_text("import torch\nundefined_name\n")
    (work / "syntax.py").write_text("def build(:\n")
    (work / "missing_dep.py").write_text("import no_such_module_here\n")
    extra = [] if any(a.startswith("--task") for a in args) else CLASSIFY
    assert export(*args, *extra) == 2
    out, err = capfd.readouterr()  # file-descriptor level: also what native code prints
    err = err.strip().splitlines()
    assert len(err) == 1 and expected in err[0] and "Fix:" in err[0], err
    assert out == "", out  # no report, no dump of torch's IR graph
    leftovers = [p.name for p in work.iterdir() if p.suffix == ".onnx" or p.name.startswith("tmp")]
    assert leftovers == ["labels.onnx"], leftovers  # nothing written, no scratch folder left behind


def test_missing_facts_name_the_flags(work, capsys):
    assert export("nets.py:build", "--input-shape", "1,3,32,32") == 2
    err = capsys.readouterr().err
    assert "missing: task" in err and "--task detect|classify" in err and "--config edge.json" in err


def test_keras_files(work, capsys):
    os.environ.setdefault("KERAS_BACKEND", "torch")  # before the first import of keras in this process
    pytest.importorskip("keras", reason="Keras export needs keras")
    import keras

    if keras.backend.backend() != "torch":
        pytest.skip("Keras was imported on another backend in this process")
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.MaxPooling2D(), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    model.save(str(work / "course.keras"))
    model.save(str(work / "course.h5"))
    for source in ("course.keras", "course.h5"):
        rc = export(source, "--task", "classify", "--preset", "unit", "--output", source + ".onnx")
        out = capsys.readouterr().out
        assert rc == 0 and "parity vs Keras" in out and "verdict: pass" in out, out
        info = read_onnx(work / (source + ".onnx"))
        config = info.embedded_config()
        assert config["input"]["layout"] == "NHWC" and config["input"]["shape"] == [1, 28, 28, 1]
    assert (work / "course.keras.onnx").read_bytes() == (work / "course.h5.onnx").read_bytes()


def test_tflite_source_reproduces_the_shipped_model(tmp_path, capsys):
    pytest.importorskip("tflite2onnx", reason="TFLite export needs tflite2onnx")
    output = tmp_path / "face.onnx"
    assert main(["onnx", str(FACE / "face_detection_short_range.tflite"), "--config",
                 str(FACE / "edge_config.json"), "--output", str(output)]) == 0
    out = capsys.readouterr().out
    assert output.read_bytes() == (FACE / "face_detection_short_range.onnx").read_bytes()
    try:
        import ai_edge_litert  # noqa: F401
    except ImportError:
        assert "parity: skipped" in out
    else:
        assert "parity vs TFLite" in out and "verdict: pass" in out


def test_onnx_source_gets_a_new_config_and_keeps_the_rest(tmp_path, capsys):
    from tiny_models import make_colour_classifier

    source = make_colour_classifier(tmp_path / "bare.onnx", embed=False)
    output = tmp_path / "with_config.onnx"
    assert main(["onnx", str(source), "--task", "classify", "--preset", "unit", "--labels",
                 _write_text(tmp_path / "l.txt", "red\ngreen\nblue\n"), "--output", str(output)]) == 0
    info = read_onnx(output)
    assert info.metadata["author"] == "edge tests" and json.loads(info.metadata["edge_config"])["labels"][2] == "blue"
    assert "parity: not applicable" in capsys.readouterr().out


def test_yaml_config(tmp_path, capsys):
    yaml = pytest.importorskip("yaml")
    from tiny_models import make_colour_classifier

    source = make_colour_classifier(tmp_path / "bare.onnx", embed=False)
    config = tmp_path / "edge.yaml"
    preprocess = {"color": "BGR", "scale": 1.0, "mean": [0, 0, 0], "std": [1, 1, 1]}
    config.write_text(yaml.safe_dump({"task": "classify", "labels": ["r", "g", "b"], "preprocess": preprocess}))
    assert main(["onnx", str(source), "--config", str(config), "--output", str(tmp_path / "y.onnx")]) == 0
    assert read_onnx(tmp_path / "y.onnx").embedded_config()["preprocess"]["color"] == "BGR"


def _write(path: Path, data: dict) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def _write_text(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_parity_failure_writes_nothing(work, capsys, monkeypatch):
    import export.pytorch as pytorch_export

    honest = pytorch_export.pytorch_runner

    def drifting_runner(module, kept=None):
        run = honest(module, kept)
        return lambda batch: [o + 0.05 for o in run(batch)]  # what a silently wrong export looks like

    monkeypatch.setattr(pytorch_export, "pytorch_runner", drifting_runner)
    assert export("nets.py:build", "--input-shape", "1,3,32,32", *CLASSIFY, "--output", "drift.onnx") == 1
    out = capsys.readouterr().out
    assert "verdict: FAIL" in out and "not written: drift.onnx" in out
    assert not (work / "drift.onnx").exists()
    # a looser precision's tolerance accepts the same drift
    assert export("nets.py:build", "--input-shape", "1,3,32,32", *CLASSIFY, "--output", "drift.onnx",
                  "--precision", "int8") == 0


def test_simplify_with_onnxslim(work, capsys):
    pytest.importorskip("onnxslim", reason="--simplify needs onnxslim")
    assert export("nets.py:build", "--input-shape", "1,3,32,32", *CLASSIFY, "--simplify", "--output", "s.onnx") == 0
    out = capsys.readouterr().out
    assert "onnxslim:" in out and "verdict: pass" in out


def test_ultralytics_onnx_gets_a_small_override_on_its_derived_config(tmp_path, capsys):
    from ultralytics_models import make_fake_ultralytics, ultralytics_metadata

    source = make_fake_ultralytics(tmp_path / "yolo11n.onnx", ultralytics_metadata(3))
    output = tmp_path / "re.onnx"
    config = _write(tmp_path / "p1.json", {"decoder": {"score_threshold": 0.5}})
    assert main(["onnx", str(source), "--config", config, "--output", str(output)]) == 0
    embedded = read_onnx(output).embedded_config()
    assert embedded["decoder"]["score_threshold"] == 0.5 and embedded["decoder"]["type"] == "yolo"
    assert embedded["decoder"]["nms"]["iou_threshold"] == 0.7  # the rest as derived from the metadata
    assert embedded["labels"] == ["class0", "class1", "class2"] and embedded["preprocess"]["resize"] == "letterbox"
    assert read_onnx(output).metadata["task"] == "detect"  # Ultralytics' metadata is kept
    assert "edge config: detect, 1x3x32x32 NCHW RGB, letterbox" in capsys.readouterr().out


def test_ultralytics_onnx_with_a_decoder_of_another_type(tmp_path):
    from ultralytics_models import make_fake_ultralytics, ultralytics_metadata

    source = make_fake_ultralytics(tmp_path / "yolo11n.onnx", ultralytics_metadata(3), output_shape=(1, 16, 6))
    boxes = {"type": "boxes", "output": "output0", "score_threshold": 0.4}
    config = _write(tmp_path / "boxes.json", {"decoder": boxes})
    assert main(["onnx", str(source), "--config", config, "--output", str(tmp_path / "b.onnx")]) == 0
    assert read_onnx(tmp_path / "b.onnx").embedded_config()["decoder"] == boxes  # not mixed with yolo's fields


def test_dynamic_ultralytics_onnx_input_shape_must_suit_the_stride(tmp_path, capsys):
    import onnx
    from ultralytics_models import make_fake_ultralytics, ultralytics_metadata

    source = make_fake_ultralytics(tmp_path / "dyn.onnx", ultralytics_metadata(3))
    model = onnx.load(str(source))
    for dim, name in zip(model.graph.input[0].type.tensor_type.shape.dim[2:], ("height", "width")):
        dim.dim_param = name
    onnx.save(model, str(source))
    config = _write(tmp_path / "shape.json", {"input": {"shape": [1, 3, 40, 40]}})
    assert main(["onnx", str(source), "--config", config, "--output", str(tmp_path / "d.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a positive multiple of the model's stride 32" in err and len(err.splitlines()) == 1
