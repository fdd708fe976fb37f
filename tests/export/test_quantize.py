"""edge-export quantize / edge.quantize: fp16 and int8 (Q/DQ) files made from the shipped models with real
ONNX Runtime, checked by what they do (faces found, digits read), their structure and their errors."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from edge.errors import EdgeError
from edge.model import Model
from edge.onnxfile import read_onnx
from edge.quantize import (
    METADATA_KEY,
    QuantizeOptions,
    file_precision,
    graph_precision,
    head_nodes,
    quantize_file,
    read_provenance,
)
from edge.samples import load_sample
from export.__main__ import main

pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[2]
FACE = ROOT / "models" / "face_detection_short_range" / "face_detection_short_range.onnx"
DIGITS = ROOT / "models" / "digits"
INT8 = onnx.TensorProto.INT8
UINT8 = onnx.TensorProto.UINT8


@pytest.fixture(scope="module")
def calib(tmp_path_factory) -> Path:
    """40 demo:// frames and the shipped samples: what a face detector on a camera sees."""
    import cv2

    from edge.sources import open_source

    folder = tmp_path_factory.mktemp("calib")
    with open_source("demo://") as source:
        for i, frame in enumerate(source):
            if i >= 40:
                break
            cv2.imwrite(str(folder / f"frame_{i:03d}.jpg"), frame.image)
    for sample in (ROOT / "edge" / "data" / "samples").glob("*.jpg"):
        shutil.copy(sample, folder / sample.name)
    return folder


@pytest.fixture(scope="module")
def face_int8(tmp_path_factory, calib) -> Path:
    out = tmp_path_factory.mktemp("int8") / "face.int8.onnx"
    assert main(["quantize", str(FACE), "--precision", "int8", "--calib-images", str(calib), "--output",
                 str(out), "--quantizer", "onnxruntime"]) == 0
    return out


def _face_box(path: Path) -> np.ndarray:
    with Model(path, backend="onnxruntime-cpu") as model:
        found = model(load_sample("astronaut"))
    assert len(found) == 1, f"{path.name}: {len(found)} faces on the astronaut"
    return found.boxes_xyxy[0]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    from edge.decoders.nms import pairwise_iou

    return float(pairwise_iou(a[None], b[None], dtype=np.float64)[0, 0])


def test_int8_for_tensorrt_finds_the_face_and_has_the_qdq_tensorrt_accepts(face_int8, calib, capsys):
    assert _iou(_face_box(face_int8), _face_box(FACE)) >= 0.9
    model = onnx.load(str(face_int8))
    onnx.checker.check_model(model)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") > 20 and ops.count("DequantizeLinear") > 20
    inits = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:  # signed int8, zero point 0, constant positive scales: TensorRT's Q/DQ
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            scale = onnx.numpy_helper.to_array(inits[node.input[1]])
            assert np.all(scale > 0) and np.all(np.isfinite(scale))
            zero = inits[node.input[2]]
            assert zero.data_type == INT8 and not np.any(onnx.numpy_helper.to_array(zero))
    producer = {o: n.op_type for n in model.graph.node for o in n.output}
    heads = [n for n in model.graph.node if n.name in set(head_nodes(onnx.load(str(FACE)))) and n.op_type == "Conv"]
    assert len(heads) == 4  # the two classificators and two regressors compute in float: float weights
    floats = {t.name for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    assert all(n.input[1] in floats and producer.get(n.input[1]) is None for n in heads)
    provenance = read_provenance(face_int8)
    assert provenance["precision"] == "int8" and provenance["target"] == "tensorrt"
    assert provenance["quantizer"] == "onnxruntime"
    from edge.config import EdgeConfig
    from edge.quantize import sha256_file
    from edge.tensorrt.builder import Calibration
    from edge.tensorrt.cache import calibration_set_sha256

    config = EdgeConfig.from_dict(read_onnx(FACE).embedded_config())
    assert provenance["source_sha256"] == sha256_file(FACE)
    assert provenance["calibration"]["sha256"] == calibration_set_sha256(Calibration(images=calib, config=config))
    assert provenance["calibration"]["images"] == 43
    assert read_onnx(face_int8).metadata["edge_config"] == read_onnx(FACE).metadata["edge_config"]
    assert file_precision(face_int8) == "int8"


def test_int8_report_judges_by_the_task_metric(tmp_path, calib, capsys):
    out = tmp_path / "face.int8.onnx"
    assert main(["quantize", str(FACE), "--precision", "int8", "--calib-images", str(calib), "--output",
                 str(out), "--eval-frames", "30", "--quantizer", "onnxruntime"]) == 0
    text = capsys.readouterr().out
    assert "parity vs the float32 model" in text and "task metric (detect" in text
    assert "demo://, 30 frames" in text and "int8 recall" in text
    assert "the task metric below decides" in text


def test_int8_for_cpu_uses_unsigned_activations(tmp_path, calib):
    out = tmp_path / "face.cpu.onnx"
    quantize_file(FACE, out, QuantizeOptions("int8", target="cpu", calib_images=calib))
    model = onnx.load(str(out))
    zero_types = {t.data_type for t in model.graph.initializer if t.name.endswith("zero_point")}
    assert UINT8 in zero_types  # activations
    assert read_provenance(out)["activations"] == "uint8 asymmetric"
    assert _iou(_face_box(out), _face_box(FACE)) >= 0.9


def test_fp16_keeps_float32_io_and_finds_the_same_face(tmp_path):
    out = tmp_path / "face.fp16.onnx"
    assert main(["quantize", str(FACE), "--precision", "fp16", "--output", str(out)]) == 0
    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    assert graph_precision(model) == "fp16"
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    info = read_onnx(out)
    assert all(t.dtype == np.float32 for t in info.inputs + info.outputs)
    assert _iou(_face_box(out), _face_box(FACE)) >= 0.98
    assert out.stat().st_size < 0.6 * FACE.stat().st_size


def test_fp16_keeps_softmax_in_float32(tmp_path):
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [4, 3], np.linspace(-1, 1, 12).astype(np.float32))
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"]),
                               helper.make_node("Softmax", ["y"], ["p"], axis=1)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("p", TensorProto.FLOAT, [1, 3])], [weight])
    source = tmp_path / "tiny.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(source))
    out = tmp_path / "tiny.fp16.onnx"
    made = quantize_file(source, out, QuantizeOptions("fp16"))
    model = onnx.load(str(out))
    softmax = next(n for n in model.graph.node if n.op_type == "Softmax")
    casts = {n.output[0]: n for n in model.graph.node if n.op_type == "Cast"}
    feeding = casts.get(softmax.input[0])
    assert feeding is not None and helper.get_attribute_value(feeding.attribute[0]) == TensorProto.FLOAT
    assert "kept in float32: Softmax" in made.notes
    import onnxruntime as ort

    x = np.array([[0.5, -1.0, 2.0, 0.25]], np.float32)
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    want = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.allclose(got, want, atol=1e-3)


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_same_inputs_give_byte_identical_files(tmp_path, calib, precision):
    images = ["--calib-images", str(calib), "--calib-count", "12", "--quantizer", "onnxruntime"] if (
        precision == "int8") else []
    outs = [tmp_path / f"{k}.onnx" for k in "ab"]
    for out in outs:
        assert main(["quantize", str(FACE), "--precision", precision, *images, "--output", str(out),
                     "--eval-source", "none", "--parity-samples", "1"]) == 0
    assert outs[0].read_bytes() == outs[1].read_bytes()


@pytest.fixture(scope="module")
def digits_data(tmp_path_factory):
    pytest.importorskip("sklearn", reason="the digits data ship with scikit-learn (pip install scikit-learn)")
    import cv2

    sys.path.insert(0, str(DIGITS))
    try:
        import train  # models/digits/train.py
    finally:
        sys.path.remove(str(DIGITS))
    x_train, _, x_test, y_test = train.split()
    folder = tmp_path_factory.mktemp("digits_calib")
    for i in range(200):  # training images only: the held-out quarter stays unseen
        cv2.imwrite(str(folder / f"d{i:03d}.png"), train.render(x_train[i]))
    return train, folder, x_test, y_test


def test_digits_int8_within_one_point_of_fp32_on_the_held_out_set(tmp_path, digits_data, capsys):
    import cv2

    train, folder, images, labels = digits_data
    held_out = tmp_path / "held_out"
    for i, (image, label) in enumerate(zip(images, labels)):  # one sub-folder per class, named by its label
        (held_out / str(label)).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(held_out / str(label) / f"{i:03d}.png"), train.render(image))
    out = tmp_path / "digits.int8.onnx"
    assert main(["quantize", str(DIGITS / "digits.onnx"), "--precision", "int8", "--calib-images", str(folder),
                 "--output", str(out), "--eval-images", str(held_out)]) == 0
    fp32 = train.edge_accuracy(DIGITS / "digits.onnx", images, labels)
    int8 = train.edge_accuracy(out, images, labels)
    assert fp32 >= 0.95 and int8 >= fp32 - 0.01, (fp32, int8)
    report = capsys.readouterr().out  # the command's own accuracy line agrees with the runtime's
    assert (f"accuracy on {len(labels)} images of --eval-images: fp32 {100 * fp32:.1f}%, int8 {100 * int8:.1f}%"
            in report), report


def test_poor_calibration_is_caught_by_the_task_metric_and_nothing_is_written(tmp_path, capsys):
    import cv2

    folder = tmp_path / "black"
    folder.mkdir()
    cv2.imwrite(str(folder / "black.png"), np.zeros((128, 128, 3), np.uint8))  # ranges of an empty frame only
    out = tmp_path / "face.int8.onnx"
    assert main(["quantize", str(FACE), "--precision", "int8", "--calib-images", str(folder), "--output",
                 str(out)]) == 1
    text = capsys.readouterr().out
    assert "verdict: FAIL" in text and "not written" in text
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["black"]


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def test_calibration_errors_are_one_line_and_write_nothing(tmp_path, calib, capsys):
    out = tmp_path / "out.onnx"
    base = ["quantize", str(FACE), "--precision", "int8", "--output", str(out)]
    assert "int8 needs calibration images" in _error(capsys, base)
    assert "folder not found" in _error(capsys, base + ["--calib-images", str(tmp_path / "missing")])
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no images in the calibration folder" in _error(capsys, base + ["--calib-images", str(empty)])
    assert "fewer than the 100 asked" in _error(capsys, base + ["--calib-images", str(calib), "--calib-count", "100"])
    broken = tmp_path / "broken"
    shutil.copytree(calib, broken)
    (broken / "frame_005.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    err = _error(capsys, base + ["--calib-images", str(broken)])
    assert "does not decode" in err and "frame_005.jpg" in err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken", "empty"]


def test_input_errors_are_one_line(tmp_path, face_int8, calib, capsys):
    assert "model file not found" in _error(capsys, ["quantize", str(tmp_path / "nope.onnx"), "--precision", "fp16"])
    assert "already int8" in _error(capsys, ["quantize", str(face_int8), "--precision", "fp16", "--output",
                                             str(tmp_path / "x.onnx")])
    assert "would replace the float32 model" in _error(capsys, ["quantize", str(FACE), "--precision", "fp16",
                                                                "--output", str(FACE)])
    bare = tmp_path / "bare.onnx"
    model = onnx.load(str(FACE))
    del model.metadata_props[:]
    onnx.save(model, str(bare))
    err = _error(capsys, ["quantize", str(bare), "--precision", "int8", "--calib-images", str(calib)])
    assert "no complete edge config" in err and "pass --config edge.json" in err and "--preset" not in err
    assert "--calib-count must be at least 1" in _error(capsys, ["quantize", str(FACE), "--precision", "int8",
                                                                 "--calib-images", str(calib), "--calib-count", "0"])


def test_modelopt_asked_without_it_installed_names_the_package(tmp_path, calib, capsys, monkeypatch):
    monkeypatch.setenv("EDGE_NO_MODELOPT", "1")
    err = _error(capsys, ["quantize", str(FACE), "--precision", "int8", "--calib-images", str(calib),
                          "--quantizer", "modelopt", "--output", str(tmp_path / "x.onnx")])
    assert "nvidia-modelopt" in err


def test_old_ir_model_with_initializer_inputs_is_prepared(tmp_path, calib):
    """onnx's light ResNet-50 (IR 3, opset 9: weights listed as graph inputs, one unused input)."""
    light = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / "light_resnet50.onnx"
    if not light.is_file():
        pytest.skip("this onnx wheel has no light models")
    from benchmarks.suite import imagenet_config
    from edge.config import EdgeConfig

    config = EdgeConfig.from_dict(imagenet_config("resnet50", "gpu_0/data_0", "none"))
    out = tmp_path / "resnet50.int8.onnx"
    made = quantize_file(light, out, QuantizeOptions("int8", target="cpu", calib_images=calib, calib_count=4,
                                                     config=config))
    assert any("opset raised from 9 to 13" in n for n in made.notes)
    assert any("unused graph input dropped" in n for n in made.notes)
    assert [i.name for i in read_onnx(out).inputs] == ["gpu_0/data_0"]
    assert METADATA_KEY in read_onnx(out).metadata


def test_quantize_file_refuses_bad_options():
    for options, text in ((QuantizeOptions("int4"), "unknown precision"),
                          (QuantizeOptions("int8", target="dla", calib_images=Path(".")), "unknown target"),
                          (QuantizeOptions("int8", target="cpu", calib_images=Path("."), quantizer="modelopt"),
                           "TensorRT only")):
        with pytest.raises(EdgeError, match=text):
            quantize_file(FACE, Path("unused.onnx"), options)


def test_modelopt_places_tensorrt_qdq_that_finds_the_face(tmp_path, calib, capsys):
    """NVIDIA ModelOpt (CI installs it in its own venv: it brings onnxruntime-gpu and a CUDA PyTorch)."""
    pytest.importorskip("modelopt.onnx.quantization", reason="pip install 'nvidia-modelopt[onnx]'")
    outs = [tmp_path / f"face.{k}.onnx" for k in "ab"]
    for out in outs:
        assert main(["quantize", str(FACE), "--precision", "int8", "--calib-images", str(calib), "--output",
                     str(out)]) == 0  # auto picks ModelOpt for target tensorrt
    text = capsys.readouterr().out
    assert "modelopt" in text and "verdict: pass" in text
    assert outs[0].read_bytes() == outs[1].read_bytes()
    provenance = read_provenance(outs[0])
    assert provenance["quantizer"] == "modelopt" and provenance["activations"] == "int8 symmetric"
    model = onnx.load(str(outs[0]))
    onnx.checker.check_model(model)
    inits = {t.name: t for t in model.graph.initializer}
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert len(qdq) > 20
    for node in qdq:
        if len(node.input) > 2 and node.input[2] in inits:
            zero = inits[node.input[2]]
            assert zero.data_type == INT8 and not np.any(onnx.numpy_helper.to_array(zero))
    assert _iou(_face_box(outs[0]), _face_box(FACE)) >= 0.9


def test_inspect_says_what_the_file_computes_in_and_how_it_was_made(face_int8, capsys):
    assert main(["inspect", str(face_int8)]) == 0
    text = capsys.readouterr().out
    line = next(line for line in text.splitlines() if line.startswith("precision: "))
    assert line.startswith("precision: int8 (edge-export quantize: target tensorrt, onnxruntime ")
    assert "calibrated on 43 images (minmax)" in line
    assert main(["inspect", str(FACE)]) == 0
    assert "\nprecision: fp32\n" in capsys.readouterr().out


def test_an_ultralytics_export_without_an_edge_config_quantizes_with_the_config_edge_derives(tmp_path, calib, capsys):
    """Another tool's file: Ultralytics' own ONNX export (seeded weights), whose config edge derives from its
    metadata, as the runtime does; the written file keeps that metadata and the runtime runs it."""
    pytest.importorskip("torch")
    pytest.importorskip("ultralytics")
    from ultralytics_models import export_yolo

    source = export_yolo(tmp_path / "exports", "yolov8n")
    assert "edge_config" not in read_onnx(source).metadata
    out = tmp_path / "yolov8n.int8.onnx"
    # --no-parity: seeded random weights box noise, which int8 moves (the task metric says so and would refuse)
    assert main(["quantize", str(source), "--precision", "int8", "--target", "cpu", "--calib-images", str(calib),
                 "--calib-count", "8", "--output", str(out), "--no-parity"]) == 0, capsys.readouterr().out
    assert "task metric (detect" in capsys.readouterr().out
    assert read_onnx(out).metadata["imgsz"] == read_onnx(source).metadata["imgsz"]
    with Model(out, backend="onnxruntime-cpu") as model:
        assert model.decoder.kind == "yolo" and len(model.config.labels) == 80
        model(load_sample("astronaut"))
