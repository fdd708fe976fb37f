"""Real detectors through ``python -m export onnx``: torchvision SSDLite / Faster R-CNN (List[Dict] outputs with
a dynamic detection count) and an Ultralytics YOLOv8 nn.Module (nested (y, {...}) output). One export per
model per session; the models are seeded random inits (tests/export/real_models.py)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "real_models.py"
TORCHVISION_NAMES = {"ssdlite": ["boxes", "scores", "labels"], "fasterrcnn": ["boxes", "labels", "scores"]}
SCORE_THRESHOLD = {"ssdlite": 0.3, "fasterrcnn": 0.1}  # the builders' own thresholds (score > threshold)


def builders():
    """tests/export/real_models.py, imported by path (tests/export is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("real_models", SOURCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def export(*args: str):
    """Run ``python -m export onnx ARGS``; (exit code, stdout)."""
    from export.__main__ import main

    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        code = main(["onnx", *args])
    return code, captured.getvalue()


def decoder_available(kind: str) -> bool:
    from edge.decoders import DECODER_TYPES

    return kind in DECODER_TYPES


def torchvision_config(folder: Path, name: str) -> Path:
    """The edge config of a torchvision detector: stretch to 320x320, RGB, x/255, the boxes decoder."""
    config = {"task": "detect",
              "preprocess": {"color": "RGB", "resize": "stretch", "scale": 1 / 255, "mean": [0, 0, 0],
                             "std": [1, 1, 1]},
              "decoder": {"type": "boxes", "boxes_output": "boxes", "scores_output": "scores",
                          "classes_output": "labels", "box_format": "xyxy", "normalized": False,
                          "score_threshold": SCORE_THRESHOLD[name]}}
    path = folder / f"{name}.json"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture(scope="session", params=sorted(TORCHVISION_NAMES))
def torchvision_export(request, tmp_path_factory):
    """(name, onnx path, stdout) of one torchvision detector exported through the CLI."""
    pytest.importorskip("torch", reason="PyTorch export needs torch")
    weights = pytest.importorskip("torchvision.models.detection", reason="needs torchvision")
    if not decoder_available("boxes"):
        pytest.skip("the 'boxes' decoder is not in this checkout yet")
    name = request.param
    folder = tmp_path_factory.mktemp(name)
    labels = folder / "coco.txt"
    labels.write_text("\n".join(weights.SSDLite320_MobileNet_V3_Large_Weights.COCO_V1.meta["categories"]) + "\n")
    output = folder / f"{name}.onnx"
    code, out = export(f"{SOURCE}:{name}", "--input-shape", "1,3,320,320", "--config",
                       str(torchvision_config(folder, name)), "--labels", str(labels), "--parity-samples", "2",
                       "--output", str(output))
    assert code == 0, out
    return name, output, out


def test_torchvision_detector_exports_with_named_dynamic_outputs(torchvision_export):
    from edge.onnxfile import read_onnx

    name, path, out = torchvision_export
    info = read_onnx(path)
    assert [o.name for o in info.outputs] == TORCHVISION_NAMES[name]  # the dict keys, in the model's order
    shapes = {o.name: o.shape for o in info.outputs}
    assert shapes["boxes"][1:] == (4,) and len(shapes["scores"]) == 1 and len(shapes["labels"]) == 1
    assert all(not isinstance(s[0], int) for s in shapes.values())  # K, the number of detections, is dynamic
    assert "parity vs PyTorch (2 random, 3 real inputs" in out and "verdict: pass" in out, out
    counts = [line for line in out.splitlines() if "(dynamic count) per input" in line]
    assert counts and not counts[0].endswith(" 0..0"), out  # boxes were really compared, not empty outputs
    config = info.embedded_config()
    assert config["decoder"]["type"] == "boxes" and len(config["labels"]) == 91 and config["labels"][1] == "person"


def test_torchvision_detector_runs_in_edge_like_in_torchvision(torchvision_export):
    """The ONNX through edge.load_model on a photo == the torchvision model on the same preprocessed input,
    its boxes mapped back to the photo: same detections, boxes within 0.5 px, same scores and labels."""
    import torch

    import edge
    from edge.samples import load_sample
    from export.rowmatch import pairing

    name, path, _ = torchvision_export
    frame = load_sample("astronaut")
    with edge.load_model(path, backend="onnxruntime-cpu") as model:
        result = model(frame)
        tensor, transform = model.preprocess(frame)
        tensor = tensor.copy()
    with torch.no_grad():
        expected = getattr(builders(), name)()(torch.from_numpy(tensor))[0]
    keep = expected["scores"].numpy() > SCORE_THRESHOLD[name]
    boxes = transform.to_source_boxes(expected["boxes"].numpy()[keep])
    scores, labels = expected["scores"].numpy()[keep], expected["labels"].numpy()[keep]
    assert len(result) == int(keep.sum()) > 0
    # near-equal scores may be listed in another order: pair each expected detection with its closest
    table = np.column_stack([boxes, scores, labels])
    order = pairing(table, np.column_stack([result.boxes_xyxy, result.scores, result.class_ids]), 0.5, 0.0)
    np.testing.assert_allclose(result.boxes_xyxy[order], boxes, atol=0.5)
    np.testing.assert_allclose(result.scores[order], scores, atol=1e-4)
    np.testing.assert_array_equal(result.class_ids[order], labels)
    from torchvision.models.detection import SSDLite320_MobileNet_V3_Large_Weights as Coco

    assert result.labels == Coco.COCO_V1.meta["categories"]  # class id = index in the COCO category list


@pytest.fixture(scope="session")
def yolo_module():
    pytest.importorskip("torch", reason="PyTorch export needs torch")
    pytest.importorskip("ultralytics", reason="needs ultralytics (used only as a reference model)")
    return builders().yolov8n()


def test_yolo_nested_outputs_export_leaf_by_leaf(yolo_module, tmp_path):
    """(y, {"boxes", "scores", "feats": [p3, p4, p5]}): six named ONNX outputs, each compared with PyTorch."""
    from edge.onnxfile import read_onnx
    from export.checks import parity
    from export.pytorch import pytorch_runner, pytorch_to_onnx

    path = tmp_path / "yolo.onnx"
    kept = pytorch_to_onnx(yolo_module, path, (1, 3, 160, 160), opset=17, dynamic_batch=False, input_name="images",
                           output_names=None)
    names = [o.name for o in read_onnx(path).outputs]
    assert names == ["output0", "output1.boxes", "output1.scores", "output1.feats.0", "output1.feats.1",
                     "output1.feats.2"]
    assert read_onnx(path).outputs[0].shape == (1, 84, 525)  # 4 box rows + 80 classes, 20*20 + 10*10 + 5*5 cells
    rng = np.random.default_rng(0)
    inputs = {"random": [rng.random((1, 3, 160, 160), dtype=np.float32) for _ in range(2)]}
    report = parity(path, pytorch_runner(yolo_module, kept), "PyTorch", inputs, "fp32", names)
    assert report.passed, report.lines()
    assert [row.name for row in report.rows] == names


def test_yolo_keep_only_y_through_the_cli(yolo_module, tmp_path, monkeypatch):
    """--keep-outputs output0: one output, named as Ultralytics' own export names it, for the yolo decoder."""
    if not decoder_available("yolo"):
        pytest.skip("the 'yolo' decoder is not in this checkout yet")
    from edge.onnxfile import read_onnx

    config = {"task": "detect", "preprocess": {"color": "RGB", "resize": "letterbox", "pad_value": 114,
                                               "scale": 1 / 255, "mean": [0, 0, 0], "std": [1, 1, 1]},
              "decoder": {"type": "yolo", "output": "output0", "score_threshold": 0.25}}
    (tmp_path / "yolo.json").write_text(json.dumps(config))
    code, out = export(f"{SOURCE}:yolov8n", "--input-shape", "1,3,160,160", "--keep-outputs", "output0",
                       "--input-name", "images", "--config", str(tmp_path / "yolo.json"), "--parity-samples", "1",
                       "--output", str(tmp_path / "y.onnx"))
    assert code == 0 and "verdict: pass" in out, out
    info = read_onnx(tmp_path / "y.onnx")
    assert [o.name for o in info.outputs] == ["output0"] and info.inputs[0].name == "images"
    # the wrapper that picks the output leaves the parameter names as in YOLO's state_dict (model.0.conv...)
    import onnx

    names = [i.name for i in onnx.load(str(tmp_path / "y.onnx")).graph.initializer]
    assert names and not any(n.startswith("model.model.") for n in names), names[:5]
