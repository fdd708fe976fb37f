"""A TensorRT plan built from an Ultralytics ONNX keeps the config derived from its metadata in its sidecar.

Contract-tested with the fake tensorrt (ONNX Runtime underneath): this proves the plumbing, not TensorRT.
"""

import json
import shutil

import numpy as np
from test_backend_tensorrt import use_fake
from ultralytics_models import make_fake_ultralytics, ultralytics_metadata

from edge.backends.tensorrt import TensorRTBackend
from edge.model import Model


def test_plan_from_ultralytics_onnx_runs_with_the_derived_config(monkeypatch, tmp_path):
    use_fake(monkeypatch, tmp_path, "10.3")
    onnx_path = make_fake_ultralytics(tmp_path / "yolo.onnx", ultralytics_metadata(3))
    frame = np.full((24, 40, 3), 90, np.uint8)
    with Model(onnx_path, backend="tensorrt", config={"decoder": {"score_threshold": 0.1}}) as model:
        expected = model(frame)
        sidecar = json.loads(model.backend.plan_path.with_suffix(".json").read_text())
        plan_path = model.backend.plan_path
    config = sidecar["edge_config"]  # the resolved config the model ran with, overrides included
    assert config["decoder"]["type"] == "yolo" and config["decoder"]["score_threshold"] == 0.1
    assert config["labels"] == ["class0", "class1", "class2"] and config["preprocess"]["pad_value"] == 114
    shutil.copy(plan_path, tmp_path / "yolo.plan")
    shutil.copy(plan_path.with_suffix(".json"), tmp_path / "yolo.json")
    with Model(tmp_path / "yolo.plan") as model:
        assert model.decoder.kind == "yolo" and model.config.labels == ("class0", "class1", "class2")
        result = model(frame)
    np.testing.assert_allclose(result.boxes_xyxy, expected.boxes_xyxy, atol=1e-4)
    assert result.class_ids.tolist() == expected.class_ids.tolist()


def test_engine_built_without_a_model_derives_the_config(monkeypatch, tmp_path):
    use_fake(monkeypatch, tmp_path, "8.5")
    onnx_path = make_fake_ultralytics(tmp_path / "yolo.onnx", ultralytics_metadata(3))
    with TensorRTBackend(onnx_path, options={"report": lambda line: None}) as backend:  # as python -m export engine
        config = backend.sidecar["edge_config"]
    assert config["task"] == "detect" and config["decoder"]["type"] == "yolo"
    assert config["labels"] == ["class0", "class1", "class2"]
