"""python -m export verify: real ONNX Runtime vs real OpenCV, failure detection, inputs and user errors."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_models import make_colour_classifier

from edge.backends import availability
from edge.model import resolve_config
from edge.onnxfile import read_onnx
from export.__main__ import main
from export.commands.verify import judge, pick_tolerance, random_inputs, run_backends
from export.compare import TOLERANCES

PAIR = "onnxruntime-cpu,opencv"


def _verify(capsys, *argv):
    code = main(["verify", *[str(a) for a in argv]])
    out, err = capsys.readouterr()
    return code, out, err


def test_face_model_onnxruntime_vs_opencv_agree(capsys, face_model_path):
    code, out, err = _verify(capsys, face_model_path, "--backends", PAIR)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith("face_detection_short_range.onnx: 3 random input sets (seed 0), pixels mapped")
    assert lines[1] == "tolerance fp32: atol 0.0001, rtol 0.001, cosine >= 0.9999, top-1 >= 100%"
    assert "opencv vs onnxruntime-cpu (reference)" in lines
    rows = {line.split()[0]: line.split() for line in lines if line.startswith("  ")}
    assert rows["regressors"][1] == "1x896x16" and rows["regressors"][-1] == "ok"
    assert rows["classificators"][1] == "1x896x1" and rows["classificators"][-2] == "-"  # one class: no top-1
    assert lines[-1] == "verify: PASS, 1 backend(s) agree with onnxruntime-cpu"


@pytest.mark.parametrize("argv", [
    ["--backends", PAIR],
    ["--backends", PAIR, "--precision", "fp16"],
    ["--backends", PAIR, "--precision", "int8", "--count", "1", "--seed", "5"],
    ["--backends", "onnxruntime-cpu,onnxruntime-cpu,opencv"],
])
def test_colour_classifier_agrees(capsys, colour_model_path, argv):
    code, out, _ = _verify(capsys, colour_model_path, *argv)
    assert code == 0, out
    assert "100.0%  ok" in out  # (N, C) logits get a top-1 column


def test_images_go_through_the_model_preprocessing(capsys, tmp_path, colour_model_path):
    import cv2

    folder = tmp_path / "images"
    folder.mkdir()
    for index, bgr in enumerate([(0, 0, 255), (0, 255, 0), (255, 0, 0)]):
        cv2.imwrite(str(folder / f"img{index}.png"), np.full((40, 60, 3), bgr, np.uint8))
    code, out, _ = _verify(capsys, colour_model_path, "--backends", PAIR, "--inputs", folder, "--count", "2")
    assert code == 0 and out.startswith(f"colour.onnx: 2 frames of {folder} through the model's preprocessing")
    code, out, _ = _verify(capsys, colour_model_path, "--backends", PAIR, "--inputs", folder / "img0.png")
    assert code == 0 and "1 frames of" in out


def test_model_without_config_gets_unit_random_inputs(capsys, tmp_path):
    path = make_colour_classifier(tmp_path / "bare.onnx", embed=False)
    code, out, _ = _verify(capsys, path, "--backends", PAIR)
    assert code == 0 and "U(0,1), no usable edge config" in out


def test_random_inputs_span_the_preprocessed_range(face_model_path, colour_model_path):
    face = read_onnx(face_model_path)
    (first,) = random_inputs(face, resolve_config(face), 1, seed=3)
    tensor = first["input"]
    assert tensor.shape == (1, 3, 128, 128) and tensor.dtype == np.float32
    assert -1.0 <= tensor.min() < -0.95 and 0.95 < tensor.max() <= 1.0  # pixel * 2/255 - 1
    again = random_inputs(face, resolve_config(face), 2, seed=3)
    assert np.array_equal(again[0]["input"], tensor) and not np.array_equal(again[1]["input"], tensor)
    colour = read_onnx(colour_model_path)
    (unit,) = random_inputs(colour, resolve_config(colour), 1, seed=0)
    assert 0.0 <= unit["image"].min() and unit["image"].max() <= 1.0
    steps = np.unique(np.round(unit["image"] * 255, 3))
    assert np.allclose(steps, np.round(steps))  # quantised like real pixels


def test_judge_detects_a_disagreeing_backend(face_model_path):
    """Failure detection at the command level: the real reference outputs against a perturbed copy."""
    info = read_onnx(face_model_path)
    feeds = random_inputs(info, resolve_config(info), 2, seed=1)
    (reference,) = run_backends(face_model_path, ["onnxruntime-cpu", "opencv"], feeds, "fp32")[:1]
    perturbed = [dict(outputs) for outputs in reference[1]]
    perturbed[1]["classificators"] = perturbed[1]["classificators"] + 0.5
    text, code = judge([reference, ("perturbed", perturbed)], TOLERANCES["fp32"])
    assert code == 1
    assert "perturbed vs onnxruntime-cpu (reference)" in text
    assert "FAIL: 1 of 2 outputs disagree" in text
    assert "classificators: input 2: 896 of 896 elements outside atol 0.0001 + rtol 0.001*|ref|" in text
    assert "5.00e-01" in text  # the numbers are printed, not only the verdict
    assert text.endswith("verify: FAIL, disagrees with onnxruntime-cpu: perturbed (classificators)")
    identical = [dict(outputs) for outputs in reference[1]]
    assert judge([reference, ("copy", identical)], TOLERANCES["fp32"])[1] == 0


def test_tolerance_flags_override_the_precision_default():
    assert pick_tolerance("fp16") == TOLERANCES["fp16"]
    custom = pick_tolerance("fp16", atol=0.0, rtol=0.5)
    assert (custom.atol, custom.rtol, custom.min_cosine) == (0.0, 0.5, TOLERANCES["fp16"].min_cosine)


def _unavailable_backend() -> str:
    missing = [name for name, reason in availability() if reason]
    if not missing:
        pytest.skip("every backend can run on this machine")
    return missing[0]


# (case, argv after the model, message fragment)
ERRORS = [
    ("unknown backend", ["--backends", "onnxruntime-cpu,nonsense"], "--backends | unknown backend 'nonsense'"),
    ("one backend", ["--backends", "onnxruntime-cpu"], "verify needs two backends to compare, got 1"),
    ("no backends", ["--backends", " , "], "got 0"),
    ("count 0", ["--count", "0"], "--count 0 is not a positive number"),
    ("negative atol", ["--atol", "-1"], "--atol -1.0 is negative"),
    ("missing images", ["--inputs", "/nonexistent/photos/"], "no such file or folder: /nonexistent/photos/"),
]


@pytest.mark.parametrize("argv, message", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_user_errors_exit_2_with_one_line(capsys, colour_model_path, argv, message):
    code, out, err = _verify(capsys, colour_model_path, *argv)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "absent.onnx", "model file not found"),
    (lambda d: make_colour_classifier(d / "bare.onnx", embed=False), "no complete edge config"),
])
def test_file_errors_exit_2(capsys, tmp_path, make, message):
    code, _, err = _verify(capsys, make(tmp_path), "--backends", PAIR, "--inputs", "demo://")
    assert code == 2 and message in err and err.count("\n") == 1, err


def test_backend_that_cannot_run_here_exits_2(capsys, colour_model_path):
    name = _unavailable_backend()
    code, _, err = _verify(capsys, colour_model_path, "--backends", f"onnxruntime-cpu,{name}")
    assert code == 2 and f"backend '{name}' cannot run here" in err, err


def test_unknown_precision_is_an_argparse_error(capsys, colour_model_path):
    with pytest.raises(SystemExit) as stop:
        main(["verify", str(colour_model_path), "--precision", "fp8"])
    assert stop.value.code == 2
    assert "invalid choice: 'fp8'" in capsys.readouterr().err


def test_help_lists_the_flags(capsys):
    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    out = capsys.readouterr().out
    for flag in ("--backends", "--precision", "--inputs", "--count", "--seed", "--atol", "--rtol"):
        assert flag in out
