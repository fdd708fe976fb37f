"""TrtRunner contract tests against the fake tensorrt (8.2, 8.5, 10.3, 11.1) and FakeCudaLayer.

The fake computes with ONNX Runtime, so these tests prove the call order, the buffer plumbing and
the error handling, not TensorRT itself (see tests/trt/fake_tensorrt.py for what is modelled).
"""

import threading
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import numpy as np
import onnx
import pytest
from fake_tensorrt import install_fake
from tiny_models import make_colour_classifier

from edge.errors import EdgeError
from edge.tensorrt.runner import TrtRunner

VERSIONS = ["8.2", "8.5", "10.3", "11.1"]
BATCH = {"image": ((1, 3, 8, 8), (4, 3, 8, 8), (8, 3, 8, 8))}


def dynamic_colour_classifier(path: Path) -> Path:
    """The colour classifier with a dynamic batch dimension ('batch' x 3 x 8 x 8 -> 'batch' x 3)."""
    model = onnx.load(str(make_colour_classifier(path, size=8)))
    for value in (model.graph.input[0], model.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    onnx.save(model, str(path))
    return path


def make_plan(trt: Any, onnx_path: Path, profiles: Optional[Dict[str, Sequence[Sequence[int]]]] = None) -> bytes:
    """A plan built by hand with the fake's builder API (independent of edge.tensorrt.builder)."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flag = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
    network = builder.create_network(0 if flag is None else 1 << int(flag))
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(Path(onnx_path).read_bytes())
    config = builder.create_builder_config()
    if profiles:
        profile = builder.create_optimization_profile()
        for name, (low, opt, high) in profiles.items():
            profile.set_shape(name, low, opt, high)
        config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    assert plan is not None
    return bytes(plan)


def execute_call(version: str) -> str:
    """The call that runs the engine: execute_async_v2 with a bindings list on 8.2, execute_async_v3 from 8.5."""
    return "IExecutionContext.execute_async_v2()" if version == "8.2" else "IExecutionContext.execute_async_v3()"


def shape_call(version: str, shape: Sequence[int]) -> str:
    """How the runner sets input 'image' (binding 0) to ``shape``."""
    if version == "8.2":
        return f"IExecutionContext.set_binding_shape(0, {tuple(shape)})"
    return f"IExecutionContext.set_input_shape('image', {tuple(shape)})"


def version_of(fake: Any) -> str:
    return ".".join(str(v) for v in fake.version)


def reference(onnx_path: Path, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


def image(batch: int = 1, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((batch, 3, size, size), dtype=np.float32)


@pytest.fixture(params=VERSIONS)
def fake(request, monkeypatch):
    return install_fake(monkeypatch, request.param)


@pytest.fixture()
def static_plan(fake, tmp_path):
    path = make_colour_classifier(tmp_path / "colour.onnx")
    return path, make_plan(fake.module, path)


@pytest.fixture()
def dynamic_plan(fake, tmp_path):
    path = dynamic_colour_classifier(tmp_path / "dynamic.onnx")
    return path, make_plan(fake.module, path, BATCH)


# ------------------------------------------------------------------------------------------ order and values
def test_call_order_and_outputs(fake, static_plan):
    path, plan = static_plan
    layer = fake.cuda_layer()
    fake.calls.clear()
    with TrtRunner(plan, layer) as runner:
        load = list(fake.calls)
        assert load.index(f"Runtime.deserialize_cuda_engine(<{len(plan)} bytes>)") < \
            load.index("ICudaEngine.create_execution_context()")
        addresses = [c for c in load if c.startswith("IExecutionContext.set_tensor_address")]
        if version_of(fake) == "8.2":  # no addresses to set: they travel in execute_async_v2's bindings list
            assert addresses == [] and runner.tensors.pointers == [b.ptr for b in runner._buffers.values()]
        else:
            assert addresses == ["IExecutionContext.set_tensor_address('image')",
                                 "IExecutionContext.set_tensor_address('logits')"]
            assert load.index(addresses[0]) > load.index("ICudaEngine.create_execution_context()")
        assert not [c for c in load if "execute" in c]
        x = image()
        for _ in range(2):
            before_trt, before_cuda = len(fake.calls), len(layer.calls)
            out = runner.infer({"image": x})
            np.testing.assert_allclose(out["logits"], reference(path, {"image": x})["logits"], rtol=0, atol=1e-6)
            assert fake.calls[before_trt:] == [execute_call(version_of(fake))]  # static: no shape call
            assert layer.calls[before_cuda:] == [f"copy_to_device({x.nbytes})", "copy_to_host(12)"]
    assert [c.split("(")[0] for c in layer.calls[:5]] == ["stream", "alloc_host", "alloc_device", "alloc_host",
                                                          "alloc_device"]


def test_io_is_exposed(fake, dynamic_plan):
    _, plan = dynamic_plan
    with TrtRunner(plan, fake.cuda_layer()) as runner:
        image_io, logits_io = runner.io
        assert (image_io.name, image_io.mode, image_io.shape, image_io.dtype) == ("image", "input", (-1, 3, 8, 8),
                                                                                  np.dtype(np.float32))
        assert image_io.profile == BATCH["image"]
        assert (logits_io.name, logits_io.mode, logits_io.shape, logits_io.profile) == ("logits", "output", (-1, 3),
                                                                                         None)
        assert [t.name for t in runner.inputs] == ["image"] and [t.name for t in runner.outputs] == ["logits"]
        runner.infer({"image": image(2, 8)})
        assert set(runner.last_timings_ms) == {"stage", "enqueue", "wait", "total"}
        assert all(v >= 0 for v in runner.last_timings_ms.values())


def test_plan_path_is_accepted(fake, static_plan, tmp_path):
    _, plan = static_plan
    file = tmp_path / "colour.plan"
    file.write_bytes(plan)
    with TrtRunner(file, fake.cuda_layer()) as runner:
        assert runner.infer({"image": image()})["logits"].shape == (1, 3)


# ------------------------------------------------------------------------------------------ dynamic shapes
def test_dynamic_batch_allocates_the_profile_max_and_returns_each_batch(fake, dynamic_plan):
    path, plan = dynamic_plan
    layer = fake.cuda_layer()
    with TrtRunner(plan, layer) as runner:
        assert shape_call(version_of(fake), (8, 3, 8, 8)) in fake.calls  # the MAX, before allocation
        assert "alloc_host((8, 3, 8, 8), float32, mapped=False)" in layer.calls
        assert "alloc_host((8, 3), float32, mapped=False)" in layer.calls
        for batch in list(range(1, 9)) + [3, 3]:
            x = image(batch, 8, seed=batch)
            before = len(fake.calls)
            out = runner.infer({"image": x})
            assert out["logits"].shape == (batch, 3)
            np.testing.assert_allclose(out["logits"], reference(path, {"image": x})["logits"], atol=1e-6)
            assert fake.calls[-1] == execute_call(version_of(fake)) and len(fake.calls) > before
    assert fake.calls.count(shape_call(version_of(fake), (3, 3, 8, 8))) == 2  # only on change


def test_a_shape_outside_the_profile_is_an_error_naming_the_range(fake, dynamic_plan):
    _, plan = dynamic_plan
    with TrtRunner(plan, fake.cuda_layer()) as runner:
        with pytest.raises(EdgeError, match=r"input 'image' of shape \[9, 3, 8, 8\] does not fit the engine: the "
                                            r"engine's profile allows \[1, 3, 8, 8\] to \[8, 3, 8, 8\]"):
            runner.infer({"image": image(9, 8)})
        assert runner.infer({"image": image(8, 8)})["logits"].shape == (8, 3)  # still usable


def test_a_static_input_of_another_shape_is_an_error(fake, static_plan):
    _, plan = static_plan
    with TrtRunner(plan, fake.cuda_layer()) as runner:
        with pytest.raises(EdgeError, match=r"input 'image' of shape \[2, 3, 32, 32\].*fixed at \[1, 3, 32, 32\]"):
            runner.infer({"image": image(2)})
        with pytest.raises(EdgeError, match="input 'image' is missing"):
            runner.infer({"other": image()})


# ------------------------------------------------------------------------------------------ failures by return value
def test_foreign_bytes_are_an_edge_error(fake):
    with pytest.raises(EdgeError, match="plan built for another TensorRT version or GPU, or damaged.*Fix: delete it"):
        TrtRunner(b"not a plan", fake.cuda_layer())


def test_cuda_that_cannot_start_is_an_edge_error(fake, static_plan):
    # real bindings: trt.Runtime(logger) -> TypeError "factory function returned nullptr" (issue 9 #15)
    fake.cuda_fails = True
    layer = fake.cuda_layer()
    with pytest.raises(EdgeError) as err:
        TrtRunner(static_plan[1], layer, where="m.plan")
    message = str(err.value)
    assert message.startswith(f"m.plan | TensorRT {fake.version_string} could not start CUDA (trt.Runtime failed")
    assert "nvidia-smi" in message and "\n" not in message


def test_a_plan_from_another_tensorrt_or_gpu_is_an_edge_error(monkeypatch, tmp_path):
    path = make_colour_classifier(tmp_path / "colour.onnx")
    plan = make_plan(install_fake(monkeypatch, "8.5").module, path)
    newer = install_fake(monkeypatch, "10.3")
    with pytest.raises(EdgeError, match="another TensorRT version or GPU"):
        TrtRunner(plan, newer.cuda_layer())
    other_gpu = install_fake(monkeypatch, "8.5", compute_capability=(7, 2))
    with pytest.raises(EdgeError, match="compute capability 7.2"):
        TrtRunner(plan, other_gpu.cuda_layer())


@pytest.mark.parametrize("cls, method, message", [
    ("ICudaEngine", "create_execution_context", "could not create an execution context"),
    ("IExecutionContext", "set_tensor_address", "refused the address of tensor 'image'"),
    ("IExecutionContext", "set_input_shape", "input 'image' of shape \\[8, 3, 8, 8\\] does not fit"),
])
def test_load_failures_are_edge_errors_and_free_what_was_allocated(fake, dynamic_plan, cls, method, message,
                                                                   monkeypatch):
    _, plan = dynamic_plan
    if version_of(fake) == "8.2":
        if method == "set_tensor_address":
            pytest.skip("TensorRT 8.2 has no set_tensor_address: pointers go in execute_async_v2's bindings list")
        method = {"set_input_shape": "set_binding_shape"}.get(method, method)
    monkeypatch.setattr(getattr(fake.module, cls), method, lambda self, *args: None if "create" in method else False)
    layer = fake.cuda_layer()
    blocks = set(fake.memory.blocks)
    with pytest.raises(EdgeError, match=message):
        TrtRunner(plan, layer)
    leaked = set(fake.memory.blocks) - blocks
    assert len(leaked) <= 1  # at most the stream, which the layer owns and frees on close


def test_execute_failure_is_an_edge_error(fake, static_plan, monkeypatch):
    _, plan = static_plan
    with TrtRunner(plan, fake.cuda_layer()) as runner:
        call = execute_call(version_of(fake)).split(".")[1].rstrip("()")
        monkeypatch.setattr(fake.module.IExecutionContext, call, lambda self, *args: False)
        with pytest.raises(EdgeError, match=f"{call} returned False"):
            runner.infer({"image": image()})


def test_tensorrt_older_than_8_is_refused(monkeypatch, tmp_path):
    old = install_fake(monkeypatch, "7.1.3.0")
    monkeypatch.delattr(old.module.Builder, "build_serialized_network")  # 7.x: build_engine only
    with pytest.raises(EdgeError, match="TensorRT 7.1.3.0 is too old: edge needs TensorRT 8.2 or newer"):
        TrtRunner(b"whatever", old.cuda_layer())


# ------------------------------------------------------------------------------------------ zero-copy, threads, close
def test_zero_copy_registers_mapped_pointers_and_copies_nothing(fake, dynamic_plan):
    path, plan = dynamic_plan
    layer = fake.cuda_layer()
    with TrtRunner(plan, layer, zero_copy=True) as runner:
        assert not [c for c in layer.calls if c.startswith("alloc_device")]
        assert all("mapped=True" in c for c in layer.calls if c.startswith("alloc_host"))
        for name, buffer in runner._buffers.items():
            if version_of(fake) == "8.2":
                assert runner.tensors.pointers[runner.tensors.index[name]] == buffer.host.device_ptr
            else:
                assert runner.context.get_tensor_address(name) == buffer.host.device_ptr
        before = len(layer.calls)
        x = image(5, 8)
        out = runner.infer({"image": x})
        assert not [c for c in layer.calls[before:] if c.startswith("copy_")]
        np.testing.assert_allclose(out["logits"], reference(path, {"image": x})["logits"], atol=1e-6)


def test_zero_copy_on_a_discrete_gpu_is_refused(fake, static_plan):
    _, plan = static_plan
    layer = fake.cuda_layer()
    layer.info = layer.info.__class__(0, "RTX (fake)", (8, 9), 1 << 30, False)
    with pytest.raises(EdgeError, match="zero-copy needs an integrated GPU"):
        TrtRunner(plan, layer, zero_copy=True)


def test_created_on_one_thread_used_on_another(fake, static_plan):
    path, plan = static_plan
    runner = TrtRunner(plan, fake.cuda_layer())
    x, result, errors = image(), {}, []

    def work() -> None:
        try:
            result.update(runner.infer({"image": x}))
        except Exception as exc:  # noqa: BLE001 - reported to the main thread
            errors.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(60)
    assert not errors, errors
    np.testing.assert_allclose(result["logits"], reference(path, {"image": x})["logits"], atol=1e-6)
    runner.close()


def test_close_frees_buffers_and_is_idempotent(fake, static_plan):
    _, plan = static_plan
    runner = TrtRunner(plan, fake.cuda_layer())
    pointers = [b.ptr for b in runner._buffers.values()]
    assert all(p in fake.memory.blocks for p in pointers)
    runner.close()
    runner.close()
    assert not any(p in fake.memory.blocks for p in pointers)
    assert runner.context is None and runner.engine is None
    with pytest.raises(EdgeError, match="runner is closed"):
        runner.infer({"image": image()})
