"""The tensorrt backend end to end with the fake tensorrt (8.5, 10.3, 11.1) and FakeCudaLayer.

The fake runs ONNX Runtime underneath, so agreement with onnxruntime-cpu proves the plumbing
(cache, builder call, runner buffers, config and I/O handling), not TensorRT's numerics: that needs
a real GPU (fp16/int8 engines differ from fp32 by design).
"""

import shutil
import sys
import threading
from pathlib import Path
from typing import Any, Dict

import numpy as np
import onnx
import pytest
from fake_tensorrt import install_fake
from tiny_models import make_colour_classifier

import edge.cuda
from edge.backends import BACKENDS
from edge.backends.tensorrt import TensorRTBackend, parse_batch, parse_shape, resolve_profiles
from edge.errors import EdgeError
from edge.model import Model
from edge.onnxfile import TensorSpec

VERSIONS = ["8.2", "8.5", "10.3", "11.1"]


def use_fake(monkeypatch: Any, tmp_path: Path, version: str, **knobs: Any) -> Any:
    """Install the fake tensorrt, a fake CUDA layer per open_cuda(), the backend, and a private cache."""
    fake = install_fake(monkeypatch, version, **knobs)
    monkeypatch.setattr(edge.cuda, "open_cuda", lambda prefer=None, device=0: fake.cuda_layer())
    monkeypatch.setattr(edge.cuda, "gpu_available", lambda: (True, "fake"))
    monkeypatch.setitem(BACKENDS, "tensorrt", TensorRTBackend)
    monkeypatch.setenv("EDGE_CACHE_DIR", str(tmp_path / "cache"))
    return fake


@pytest.fixture(params=VERSIONS)
def fake(request, monkeypatch, tmp_path):
    return use_fake(monkeypatch, tmp_path, request.param)


def builds(fake: Any) -> int:
    return len(fake.called("Builder.build_serialized_network"))


def raw_outputs(model: Model, frame: np.ndarray) -> Dict[str, np.ndarray]:
    tensor, _ = model.preprocess(frame)
    return model.infer(tensor)


# ------------------------------------------------------------------------------------------ agreement
@pytest.mark.parametrize("which", ["colour", "face"])
def test_same_outputs_as_onnxruntime_cpu(fake, which, tmp_path, face_model_path, astronaut):
    """Plumbing check only: the fake computes with ONNX Runtime (see the module docstring)."""
    path = make_colour_classifier(tmp_path / "colour.onnx") if which == "colour" else face_model_path
    lines = []
    with Model(path, backend="onnxruntime-cpu") as reference, \
            Model(path, backend="tensorrt", backend_options={"report": lines.append}) as model:
        expected, got = raw_outputs(reference, astronaut), raw_outputs(model, astronaut)
        assert set(got) == set(expected)
        for name in expected:
            assert got[name].shape == expected[name].shape and got[name].dtype == expected[name].dtype
            np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=1e-5)
        assert str(reference(astronaut)) == str(model(astronaut))
        assert model.backend.inputs == reference.backend.inputs
    assert lines[0] == "no engine for this model yet" and builds(fake) == 1


def test_second_model_loads_from_the_cache(fake, tmp_path, astronaut):
    path = make_colour_classifier(tmp_path / "colour.onnx")
    with Model(path, backend="tensorrt", backend_options={"report": lambda line: None}) as first:
        assert "plan built in" in first.backend.describe()
    fake.calls.clear()
    lines = []
    with Model(path, backend="tensorrt", backend_options={"report": lines.append}) as second:
        assert second(astronaut).labels[0] in ("red", "green", "blue")
        assert "plan cache hit" in second.backend.describe()
    assert builds(fake) == 0 and not fake.called("Builder") and lines == []
    assert fake.called("Runtime.deserialize_cuda_engine")


@pytest.mark.parametrize("version, knobs, expected", [
    ("8.5", {}, "fp16"), ("10.3", {}, "fp16"), ("10.3", {"fast_fp16": False}, "fp32"), ("11.1", {}, "fp32"),
    ("10.7", {"fast_fp16": False}, "fp32"),  # 10.5+: platform_has_fast_fp16 deprecated but answered (issue 9 #15)
])
def test_default_precision_and_describe(monkeypatch, tmp_path, version, knobs, expected):
    use_fake(monkeypatch, tmp_path, version, **knobs)
    path = make_colour_classifier(tmp_path / "colour.onnx")
    with TensorRTBackend(path, options={"report": lambda line: None}) as backend:
        assert (backend.precision_asked, backend.precision_obtained) == (expected, expected)
        assert backend.device == f"gpu (TensorRT {sys.modules['tensorrt'].__version__}, {expected})"
        assert backend.describe().startswith(f"tensorrt on {backend.device}: precision asked {expected}, obtained "
                                             f"{expected}; plan built in ")


@pytest.mark.parametrize("version", VERSIONS)
def test_cuda_that_cannot_start_is_a_one_line_error(monkeypatch, tmp_path, version):
    use_fake(monkeypatch, tmp_path, version, cuda_fails=True)
    path = make_colour_classifier(tmp_path / "colour.onnx")
    with pytest.raises(EdgeError) as err:
        with TensorRTBackend(path, options={"report": lambda line: None}):
            pass
    assert "could not start CUDA (trt.Builder failed" in str(err.value) and "\n" not in str(err.value)


def test_explicit_fp32_and_workspace_reach_the_builder(fake, tmp_path):
    path = make_colour_classifier(tmp_path / "colour.onnx")
    with TensorRTBackend(path, options={"precision": "fp32", "workspace_mib": 256, "report": lambda line: None}):
        pass
    assert fake.builds[-1]["precision"] == "Float" and "FP16" not in fake.builds[-1]["flags"]
    assert 256 << 20 in list(fake.builds[-1]["pools"].values()) or fake.called("IBuilderConfig.max_workspace_size")


def test_dynamic_batch_profile(fake, tmp_path):
    path = make_colour_classifier(tmp_path / "dynamic.onnx", size=8)
    model = onnx.load(str(path))
    for value in (model.graph.input[0], model.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    onnx.save(model, str(path))
    with TensorRTBackend(path, options={"report": lambda line: None}) as single:  # the app feeds one frame
        assert single.infer({"image": np.zeros((1, 3, 8, 8), np.float32)})["logits"].shape == (1, 3)
        with pytest.raises(EdgeError, match="profile allows \\[1, 3, 8, 8\\] to \\[1, 3, 8, 8\\]"):
            single.infer({"image": np.zeros((2, 3, 8, 8), np.float32)})
    with pytest.raises(EdgeError, match="dynamic shape \\?x3x8x8.*Fix: pass --batch MIN:OPT:MAX"):
        from edge.backends.tensorrt import check_request

        check_request(path, {})  # ahead-of-time builds (edge-export engine) must say which batch
    with TensorRTBackend(path, options={"batch": "1:2:4", "report": lambda line: None}) as backend:
        assert backend.inputs[0].shape == (None, 3, 8, 8)
        for batch in (1, 4, 3):
            x = np.full((batch, 3, 8, 8), 0.5, np.float32)
            assert backend.infer({"image": x})["logits"].shape == (batch, 3)
        with pytest.raises(EdgeError, match="profile allows \\[1, 3, 8, 8\\] to \\[4, 3, 8, 8\\]"):
            backend.infer({"image": np.zeros((5, 3, 8, 8), np.float32)})


def test_zero_copy_option(fake, tmp_path, astronaut):
    path = make_colour_classifier(tmp_path / "colour.onnx")
    with Model(path, backend="tensorrt", backend_options={"zero_copy": True, "report": print}) as model:
        assert model.backend._runner.zero_copy
        assert model(astronaut).labels


def test_prepared_on_one_thread_inferred_on_another(fake, tmp_path):
    path = make_colour_classifier(tmp_path / "colour.onnx")
    backend = TensorRTBackend(path, options={"report": lambda line: None}).prepare()
    out, errors = {}, []
    x = np.zeros((1, 3, 32, 32), np.float32)
    x[:, 2] = 1.0

    def work() -> None:
        try:
            out.update(backend.infer({"image": x}))
        except Exception as exc:  # noqa: BLE001 - reported to the main thread
            errors.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(60)
    backend.close()
    backend.close()
    assert not errors and int(np.argmax(out["logits"])) == 2


# ------------------------------------------------------------------------------------------ .plan files
def _cached_plan(tmp_path: Path, to: Path) -> Path:
    path = make_colour_classifier(tmp_path / "colour.onnx")
    with TensorRTBackend(path, options={"report": lambda line: None}) as backend:
        shutil.copy(backend.plan_path, to)
        shutil.copy(backend.plan_path.with_suffix(".json"), to.with_suffix(".json"))
    return to


def test_a_plan_file_runs_with_its_sidecar(fake, tmp_path):
    plan = _cached_plan(tmp_path, tmp_path / "colour.plan")
    builds_before = builds(fake)
    with TensorRTBackend(plan) as backend:
        assert [i.name for i in backend.inputs] == ["image"] and backend.inputs[0].shape == (1, 3, 32, 32)
        x = np.zeros((1, 3, 32, 32), np.float32)
        x[:, 1] = 1.0
        assert int(np.argmax(backend.infer({"image": x})["logits"])) == 1
        assert "plan file colour.plan" in backend.describe()
        assert backend.sidecar["edge_config"]["name"] == "colour_nchw"
    assert builds(fake) == builds_before  # a plan is never rebuilt


def test_a_plan_without_its_sidecar_fails_clearly(fake, tmp_path):
    plan = _cached_plan(tmp_path, tmp_path / "colour.engine")
    plan.with_suffix(".json").unlink()
    with pytest.raises(EdgeError, match="no sidecar colour.json next to the plan.*Fix: copy it from the board"):
        TensorRTBackend(plan).prepare()


def test_a_plan_from_another_tensorrt_is_an_error_with_the_fix(monkeypatch, tmp_path):
    use_fake(monkeypatch, tmp_path, "8.5")
    plan = _cached_plan(tmp_path, tmp_path / "colour.plan")
    use_fake(monkeypatch, tmp_path, "10.3")
    with pytest.raises(EdgeError, match="built for TensorRT 8.5.2.2, this is 10.3.0; a plan cannot be rebuilt "
                                        "without its ONNX. Fix: rebuild it on this board: edge-export engine"):
        TensorRTBackend(plan).prepare()


def test_a_damaged_plan_is_an_error(fake, tmp_path):
    plan = _cached_plan(tmp_path, tmp_path / "colour.plan")
    plan.write_bytes(plan.read_bytes()[:-8] + b"garbage!")
    with pytest.raises(EdgeError, match="does not match its sidecar"):
        TensorRTBackend(plan).prepare()


def test_a_missing_plan_file(fake, tmp_path):
    with pytest.raises(EdgeError, match="plan file not found"):
        TensorRTBackend(tmp_path / "nothing.plan").prepare()


# ------------------------------------------------------------------------------------------ availability
def test_unavailable_without_tensorrt(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError
    monkeypatch.setitem(BACKENDS, "tensorrt", TensorRTBackend)
    assert TensorRTBackend.unavailable_reason() == "tensorrt is not installed"
    with pytest.raises(EdgeError, match="backend 'tensorrt' cannot run here: tensorrt is not installed.*"
                                        "system-site-packages.*pip install 'tensorrt"):
        TensorRTBackend(tmp_path / "x.onnx").prepare()


def test_unavailable_without_a_cuda_layer(monkeypatch):
    install_fake(monkeypatch, "10.3")
    monkeypatch.setattr(edge.cuda, "gpu_available", lambda: (False, "cuda-python: not installed; pycuda: too"))
    assert TensorRTBackend.unavailable_reason() == "no CUDA layer with a GPU (cuda-python or pycuda)"
    assert "cuda-python" in TensorRTBackend.install_hint()


def test_a_failed_build_closes_the_cuda_layer(monkeypatch, tmp_path):
    fake = use_fake(monkeypatch, tmp_path, "10.3", build_fails=True)
    layers = []
    monkeypatch.setattr(edge.cuda, "open_cuda", lambda prefer=None, device=0: layers.append(fake.cuda_layer())
                        or layers[-1])
    path = make_colour_classifier(tmp_path / "colour.onnx")
    with pytest.raises(EdgeError, match="could not build the engine"):
        TensorRTBackend(path, options={"report": lambda line: None}).prepare()
    assert layers and layers[0].closed
    assert not list((tmp_path / "cache" / "engines").glob("*.plan"))


# ------------------------------------------------------------------------------------------ option parsing
@pytest.mark.parametrize("text, expected", [("1:4:8", (1, 4, 8)), ((2, 2, 2), (2, 2, 2)), ("1:1:1", (1, 1, 1)),
                                            ("4:2:8", None), ("0:1:2", None), ("1:2", None), ("a:b:c", None)])
def test_parse_batch(text, expected):
    if expected is None:
        with pytest.raises(EdgeError, match="is not MIN:OPT:MAX"):
            parse_batch(text)
    else:
        assert parse_batch(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("images:1x3x320x320:4x3x640x640:8x3x640x640", ("images", ((1, 3, 320, 320), (4, 3, 640, 640), (8, 3, 640, 640)))),
    ("x:1x3", ("x", ((1, 3), (1, 3), (1, 3)))),
    ("x:1x3:2x3", None), ("x", None), (":1x3", None), ("x:0x3", None), ("x:ax3", None),
])
def test_parse_shape(text, expected):
    if expected is None:
        with pytest.raises(EdgeError, match="cannot read the shape profile"):
            parse_shape(text)
    else:
        assert parse_shape(text) == expected


def test_resolve_profiles():
    fixed = TensorSpec("a", (1, 3, 8, 8), np.dtype(np.float32))
    batch = TensorSpec("b", ("n", 3, 8, 8), np.dtype(np.float32))
    spatial = TensorSpec("c", ("n", 3, "h", "w"), np.dtype(np.float32))
    assert resolve_profiles([fixed], None, None, "m") == {}
    assert resolve_profiles([fixed, batch], "1:2:3", None, "m") == {
        "b": ((1, 3, 8, 8), (2, 3, 8, 8), (3, 3, 8, 8))}
    with pytest.raises(EdgeError, match="input 'c' has dynamic shape \\?x3x\\?x\\?.*--shape c:MIN:OPT:MAX"):
        resolve_profiles([spatial], "1:2:3", None, "m")
    shapes = {"c": [[1, 3, 8, 8], [1, 3, 16, 16], [2, 3, 32, 32]]}
    assert resolve_profiles([spatial], None, shapes, "m")["c"][2] == (2, 3, 32, 32)
    with pytest.raises(EdgeError, match="shape given for 'z', which is not an input"):
        resolve_profiles([fixed], None, {"z": [[1], [1], [1]]}, "m")
