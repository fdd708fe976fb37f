"""edge.tensorrt.engine_io and what is TensorRT 8.2-specific in the runner: binding indices, several
optimization profiles, execute_async_v2's bindings list, and numpy without ``np.bool``.

The runner's shared contract (call order, dynamic shapes, failures, zero-copy, threads) runs on 8.2 too
in test_runner.py; the fake of 8.2 and its sources are described in fake_tensorrt.py.
"""

import warnings
from pathlib import Path

import numpy as np
import pytest
from fake_tensorrt import install_fake
from test_runner import BATCH, dynamic_colour_classifier, image, make_plan, reference
from tiny_models import make_colour_classifier

from edge.errors import EdgeError
from edge.tensorrt.api import features
from edge.tensorrt.engine_io import BindingIO, NamedIO, engine_io, engine_tensors
from edge.tensorrt.runner import TrtRunner

PROFILE_1 = ((9, 3, 8, 8), (12, 3, 8, 8), (16, 3, 8, 8))


def two_profile_plan(trt, path: Path) -> bytes:
    """A plan of the dynamic classifier with profile 0 = BATCH (batch 1-8) and profile 1 = batch 9-16."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
    assert trt.OnnxParser(network, logger).parse(path.read_bytes())
    config = builder.create_builder_config()
    for shapes in (BATCH["image"], PROFILE_1):
        profile = builder.create_optimization_profile()
        profile.set_shape("image", *shapes)
        assert config.add_optimization_profile(profile) >= 0
    return bytes(builder.build_serialized_network(network, config))


def engine_of(trt, plan: bytes):
    return trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(plan)


@pytest.mark.parametrize("version,adapter", [("8.2", BindingIO), ("8.5", NamedIO), ("10.3", NamedIO),
                                             ("11.1", NamedIO)])
def test_the_adapter_follows_the_features_and_lists_the_same_tensors(monkeypatch, tmp_path, version, adapter):
    trt = install_fake(monkeypatch, version).module
    engine = engine_of(trt, make_plan(trt, dynamic_colour_classifier(tmp_path / "d.onnx"), BATCH))
    tensors = engine_io(trt, features(trt), engine)
    assert type(tensors) is adapter and tensors.api == ("bindings" if version == "8.2" else "names")
    assert engine_tensors(trt, engine) == [
        {"name": "image", "mode": "input", "shape": [-1, 3, 8, 8], "dtype": "float"},
        {"name": "logits", "mode": "output", "shape": [-1, 3], "dtype": "float"}]
    assert tensors.profile("image", 0) == BATCH["image"]


def test_8_2_has_only_the_binding_api_and_the_runner_uses_it_without_deprecation(monkeypatch, tmp_path):
    fake = install_fake(monkeypatch, "8.2")
    trt = fake.module
    for cls, named in ((trt.ICudaEngine, "num_io_tensors"), (trt.IExecutionContext, "execute_async_v3"),
                       (trt.IExecutionContext, "set_input_shape"), (trt.IExecutionContext, "get_tensor_shape"),
                       (trt.IBuilderConfig, "set_memory_pool_limit")):
        assert not hasattr(cls, named), named  # a call to these would be an AttributeError on a Nano
    assert not hasattr(trt, "TensorIOMode") and not hasattr(trt, "MemoryPoolType")
    path = dynamic_colour_classifier(tmp_path / "d.onnx")
    plan = make_plan(trt, path, BATCH)
    fake.calls.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # 8.2's binding API is not deprecated (8.5 did that)
        with TrtRunner(plan, fake.cuda_layer()) as runner:
            x = image(5, 8)
            out = runner.infer({"image": x})
    np.testing.assert_allclose(out["logits"], reference(path, {"image": x})["logits"], atol=1e-6)
    assert [c for c in fake.calls if c.startswith("IExecutionContext.")] == [
        "IExecutionContext.set_binding_shape(0, (8, 3, 8, 8))",  # the profile MAX, before allocating
        "IExecutionContext.set_binding_shape(0, (5, 3, 8, 8))", "IExecutionContext.execute_async_v2()"]


def test_8_5_runs_the_named_api_and_touches_no_deprecated_binding_call(monkeypatch, tmp_path):
    fake = install_fake(monkeypatch, "8.5")  # both APIs; the binding one warns (deprecated in 8.5)
    path = dynamic_colour_classifier(tmp_path / "d.onnx")
    plan = make_plan(fake.module, path, BATCH)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        with TrtRunner(plan, fake.cuda_layer()) as runner:
            assert runner.tensors.api == "names"
            assert runner.infer({"image": image(3, 8)})["logits"].shape == (3, 3)
    assert not [c for c in fake.calls if "binding" in c or "execute_async_v2" in c]


def test_8_2_with_two_profiles_uses_profile_0s_bindings(monkeypatch, tmp_path):
    fake = install_fake(monkeypatch, "8.2")
    trt = fake.module
    path = dynamic_colour_classifier(tmp_path / "d.onnx")
    plan = two_profile_plan(trt, path)
    engine = engine_of(trt, plan)
    assert engine.num_bindings == 4 and engine.get_binding_name(2) == "image [profile 1]"
    tensors = engine_io(trt, features(trt), engine)
    assert tensors.names == ["image", "logits"]
    assert tensors.profile("image", 1) == PROFILE_1  # get_profile_shape(profile, binding): profile first
    with TrtRunner(plan, fake.cuda_layer()) as runner:
        buffers = runner._buffers
        assert runner.tensors.pointers == [buffers["image"].ptr, buffers["logits"].ptr, 0, 0]
        x = image(8, 8, seed=3)
        np.testing.assert_allclose(runner.infer({"image": x})["logits"], reference(path, {"image": x})["logits"],
                                   atol=1e-6)
        with pytest.raises(EdgeError, match=r"profile allows \[1, 3, 8, 8\] to \[8, 3, 8, 8\]"):
            runner.infer({"image": image(12, 8)})  # profile 1's batch: not the profile the runner uses


def test_the_bindings_list_must_cover_every_profile(monkeypatch, tmp_path):
    # the fake refuses what real TensorRT would read past the end of: a list shorter than num_bindings
    fake = install_fake(monkeypatch, "8.2")
    trt = fake.module
    engine = engine_of(trt, two_profile_plan(trt, dynamic_colour_classifier(tmp_path / "d.onnx")))
    context = engine.create_execution_context()
    assert context.set_binding_shape(0, (2, 3, 8, 8))
    assert not context.set_binding_shape(2, (12, 3, 8, 8))  # binding of profile 1 while profile 0 is active
    assert context.execute_async_v2([1, 2], 0) is False
    assert "bindings has 2 pointers, the engine has 4" in fake.log[-1][1]


def test_an_input_shape_tensorrt_still_lacks_is_an_edge_error(monkeypatch, tmp_path):
    fake = install_fake(monkeypatch, "8.2")
    plan = make_plan(fake.module, dynamic_colour_classifier(tmp_path / "d.onnx"), BATCH)
    monkeypatch.setattr(fake.module.IExecutionContext, "all_binding_shapes_specified", property(lambda self: False))
    layer = fake.cuda_layer()
    with pytest.raises(EdgeError, match=r"TensorRT still lacks the shapes of inputs \['image'\]"):
        TrtRunner(plan, layer)


@pytest.mark.parametrize("version", ["8.2", "8.5"])
def test_runs_on_numpy_without_np_bool_where_trt_nptype_raises(monkeypatch, tmp_path, version):
    # JetPack 5.1's TensorRT 8.5.2 (and 8.2) with numpy 1.24-1.26: trt.nptype raises AttributeError: np.bool
    fake = install_fake(monkeypatch, version, numpy_version=(1, 24))
    path = make_colour_classifier(tmp_path / "c.onnx")
    plan = make_plan(fake.module, path)
    with pytest.raises(AttributeError, match="np.bool"):
        fake.module.nptype(fake.module.DataType.FLOAT)
    with TrtRunner(plan, fake.cuda_layer()) as runner:
        assert [t.dtype for t in runner.io] == [np.dtype(np.float32)] * 2
        x = image()
        np.testing.assert_allclose(runner.infer({"image": x})["logits"], reference(path, {"image": x})["logits"],
                                   atol=1e-6)


def test_a_tensor_numpy_cannot_hold_is_an_edge_error(monkeypatch, tmp_path):
    fake = install_fake(monkeypatch, "10.3")
    plan = make_plan(fake.module, make_colour_classifier(tmp_path / "c.onnx"))
    bf16 = fake.module.DataType.BF16
    monkeypatch.setattr(fake.module.ICudaEngine, "get_tensor_dtype", lambda self, name: bf16)
    with pytest.raises(EdgeError, match="tensor 'image' has type BF16, which numpy cannot hold"):
        TrtRunner(plan, fake.cuda_layer())
