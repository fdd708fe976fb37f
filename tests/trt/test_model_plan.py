"""``Model(x.plan)``: a TensorRT plan runs through the Model API with the edge config from its sidecar.

Contract-tested with the fake tensorrt (ONNX Runtime underneath): this proves the plumbing, not TensorRT.
"""

import numpy as np
import pytest
from test_backend_tensorrt import _cached_plan, use_fake

from edge.errors import EdgeError
from edge.model import Model


@pytest.mark.parametrize("version", ["8.5", "10.3", "11.1"])
def test_plan_runs_through_the_model_api(monkeypatch, tmp_path, version):
    use_fake(monkeypatch, tmp_path, version)
    plan = _cached_plan(tmp_path, tmp_path / "colour.plan")
    frame = np.zeros((40, 60, 3), np.uint8)
    frame[:, :, 1] = 220  # green in BGR
    with Model(plan) as model:
        assert model.backend.name == "tensorrt" and model.config.labels == ("red", "green", "blue")
        assert model(frame).top_label == "green"
    with pytest.raises(EdgeError, match="runs on the tensorrt backend"):
        Model(plan, backend="onnxruntime-cpu")


def test_plan_without_config_asks_for_the_facts(monkeypatch, tmp_path):
    import json

    use_fake(monkeypatch, tmp_path, "10.3")
    plan = _cached_plan(tmp_path, tmp_path / "colour.plan")
    sidecar = plan.with_suffix(".json")
    data = json.loads(sidecar.read_text())
    data["edge_config"] = None
    sidecar.write_text(json.dumps(data))
    with pytest.raises(EdgeError, match="no complete edge config"):
        Model(plan)
    with Model(plan, config={"task": "classify", "preprocess": {"color": "RGB", "scale": 1 / 255, "mean": [0, 0, 0],
                                                                 "std": [1, 1, 1]}}) as model:
        assert model.task == "classify"
