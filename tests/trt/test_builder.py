"""edge.tensorrt.builder contract tests against the fake tensorrt 8.5 / 10.3 / 11.1.

They prove which TensorRT calls are made, in which order, and that every failure is a one-line
EdgeError with a fix; the fake proves the logic, not TensorRT (see fake_tensorrt.py).
"""

import threading
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from fake_tensorrt import install_fake
from onnx import TensorProto, helper, numpy_helper
from tiny_models import make_colour_classifier

from edge.errors import EdgeError
from edge.tensorrt import builder as builder_module
from edge.tensorrt.builder import BuildOptions, Calibration, build_engine

VERSIONS = ["8.2", "8.5", "10.3", "11.1"]
WEAK = ["8.2", "8.5", "10.3"]  # weakly typed: FP16/INT8 builder flags


def workspace_call(version: str, mib: int) -> str:
    """How the workspace limit is set: the max_workspace_size property on 8.2, a memory pool from 8.4."""
    if version == "8.2":
        return f"IBuilderConfig.max_workspace_size={mib << 20}"
    return f"IBuilderConfig.set_memory_pool_limit(WORKSPACE, {mib << 20})"


def dynamic_colour(path: Path) -> Path:
    """The colour classifier with a dynamic batch dimension ("N") on its input and output."""
    model = onnx.load(str(make_colour_classifier(path)))
    for value in (model.graph.input[0], model.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    onnx.save(model, str(path))
    return path


def _save(path: Path, nodes, initializers) -> Path:
    graph = helper.make_graph(nodes, "colour",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def float16_colour(path: Path) -> Path:
    """A float16 graph behind float32 I/O (what onnxconverter-common's keep_io_types gives)."""
    nodes = [helper.make_node("Cast", ["image"], ["x16"], to=TensorProto.FLOAT16),
             helper.make_node("GlobalAveragePool", ["x16"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
             helper.make_node("Gemm", ["flat", "weight", "bias"], ["l16"]),
             helper.make_node("Cast", ["l16"], ["logits"], to=TensorProto.FLOAT)]
    return _save(path, nodes, [numpy_helper.from_array((np.eye(3) * 10).astype(np.float16), "weight"),
                               numpy_helper.from_array(np.zeros(3, np.float16), "bias")])


def qdq_colour(path: Path) -> Path:
    """An explicitly quantized (Q/DQ) graph, as NVIDIA ModelOpt writes."""
    nodes = [helper.make_node("QuantizeLinear", ["image", "scale", "zero"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["dq"]),
             helper.make_node("GlobalAveragePool", ["dq"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
             helper.make_node("Gemm", ["flat", "weight", "bias"], ["logits"])]
    return _save(path, nodes, [numpy_helper.from_array(np.float32(1 / 127), "scale"),
                               numpy_helper.from_array(np.int8(0), "zero"),
                               numpy_helper.from_array((np.eye(3) * 10).astype(np.float32), "weight"),
                               numpy_helper.from_array(np.zeros(3, np.float32), "bias")])


@pytest.fixture()
def lines():
    return []


def build(path, lines, **options):
    return build_engine(path, BuildOptions(**options), report=lines.append)


def order(fake, *prefixes):
    return [fake.index(p) for p in prefixes]


@pytest.mark.parametrize("version", VERSIONS)
def test_fp16_build_calls_in_order(monkeypatch, tmp_path, lines, version):
    fake = install_fake(monkeypatch, version)
    model = make_colour_classifier(tmp_path / "c.onnx") if version in WEAK else float16_colour(tmp_path / "c.onnx")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = build(model, lines, precision="fp16")
    assert not [w for w in caught if issubclass(w.category, DeprecationWarning)]  # no deprecated API on any version
    network = "Builder.create_network(1)" if version.startswith("8.") else "Builder.create_network(0)"
    positions = order(fake, "init_libnvinfer_plugins", "Builder()", network, "OnnxParser.parse_from_file",
                      "Builder.create_builder_config", workspace_call(version, 1024),
                      "IBuilderConfig.profiling_verbosity=DETAILED", "Builder.build_serialized_network",
                      "Runtime.deserialize_cuda_engine", "EngineInspector.get_engine_information(JSON)")
    assert positions == sorted(positions)
    flags = fake.called("IBuilderConfig.set_flag")
    assert flags == (["IBuilderConfig.set_flag(FP16)"] if version in WEAK else [])
    other_workspace = ("IBuilderConfig.set_memory_pool_limit" if version == "8.2" else
                       "IBuilderConfig.max_workspace_size")
    assert not fake.called(other_workspace) and not fake.called("IBuilderConfig.int8_calibrator")
    assert result.precision_asked == result.precision_obtained == "fp16"
    nodes = len(onnx.load(str(model)).graph.node)
    assert result.layer_precisions == {"fp16": nodes} and result.tensorrt_version == fake.version_string
    assert fake.plan_header(result.plan)["version"] == fake.version_string and result.build_seconds >= 0
    assert lines[0].startswith(f"building a fp16 TensorRT {fake.version_string} engine from c.onnx")
    assert "(this takes minutes on a Jetson)" in lines[0] and lines[-1].startswith("built in ")


@pytest.mark.parametrize("version", VERSIONS)
def test_fp32_build_sets_no_precision_flag(monkeypatch, tmp_path, lines, version):
    fake = install_fake(monkeypatch, version)
    result = build(make_colour_classifier(tmp_path / "c.onnx"), lines, precision="fp32", workspace_mib=256)
    assert not fake.called("IBuilderConfig.set_flag")
    assert fake.called(workspace_call(version, 256).split("(")[0].split("=")[0]) == [workspace_call(version, 256)]
    assert result.precision_obtained == "fp32" and result.layer_precisions == {"fp32": 3}


def one_line_error(call, *needles):
    with pytest.raises(EdgeError) as err:
        call()
    message = str(err.value)
    assert "\n" not in message and "Fix:" in message, message
    for needle in needles:
        assert needle in message, message
    return message


@pytest.mark.parametrize("version", VERSIONS)
def test_parser_error_names_the_node(monkeypatch, face_model_path, lines, version):
    install_fake(monkeypatch, version, unsupported_ops={"Conv"})
    message = one_line_error(lambda: build(face_model_path, lines, precision="fp32"), "cannot parse the model",
                             "node 'conv2d' (Conv): UNSUPPORTED_NODE", "--backend onnxruntime")
    assert ("more)" in message) == (not version.startswith("8."))  # 10.x reports every bad node; three listed


@pytest.mark.parametrize("version", VERSIONS)
def test_out_of_memory_build(monkeypatch, tmp_path, lines, version):
    install_fake(monkeypatch, version, out_of_memory=True)
    one_line_error(lambda: build(make_colour_classifier(tmp_path / "c.onnx"), lines, precision="fp32"),
                   "ran out of memory", "workspace 1024 MiB", "lower --workspace", "swap", "smaller batch")


@pytest.mark.parametrize("version", VERSIONS)
def test_build_returning_none(monkeypatch, tmp_path, lines, version):
    install_fake(monkeypatch, version, build_fails=True)
    one_line_error(lambda: build(make_colour_classifier(tmp_path / "c.onnx"), lines, precision="fp32"),
                   "could not build the engine", "Assertion engine != nullptr", "trtexec")


@pytest.mark.parametrize("version", VERSIONS)
def test_dynamic_input_without_profile_names_input_and_flags(monkeypatch, tmp_path, lines, version):
    fake = install_fake(monkeypatch, version)
    one_line_error(lambda: build(dynamic_colour(tmp_path / "d.onnx"), lines, precision="fp32"),
                   "input 'image' has dynamic shape ?x3x32x32", "--batch MIN:OPT:MAX", "--shape image:min:opt:max")
    assert not fake.called("Builder.build_serialized_network")


@pytest.mark.parametrize("version", VERSIONS)
def test_dynamic_input_with_profile(monkeypatch, tmp_path, lines, version):
    fake = install_fake(monkeypatch, version)
    model = dynamic_colour(tmp_path / "d.onnx")
    profile = ((1, 3, 32, 32), (4, 3, 32, 32), (8, 3, 32, 32))
    precision = "fp16" if version in WEAK else "fp32"
    result = build(model, lines, precision=precision, profiles={"image": profile})
    assert fake.called("IOptimizationProfile.set_shape") == [
        "IOptimizationProfile.set_shape('image', (1, 3, 32, 32), (4, 3, 32, 32), (8, 3, 32, 32))"]
    assert order(fake, "IOptimizationProfile.set_shape", "IBuilderConfig.add_optimization_profile",
                 "Builder.build_serialized_network") == sorted(order(fake, "IOptimizationProfile.set_shape",
                 "IBuilderConfig.add_optimization_profile", "Builder.build_serialized_network"))
    # formats of a dynamic engine are known only for given shapes: the builder sets the opt shape first
    opt_shape = ("IExecutionContext.set_binding_shape(0, (4, 3, 32, 32))" if version == "8.2" else
                 "IExecutionContext.set_input_shape('image', (4, 3, 32, 32))")
    assert opt_shape in fake.calls and "EngineInspector.execution_context=<IExecutionContext>" in fake.calls
    assert result.precision_obtained == precision


@pytest.mark.parametrize("profile", [((1, 3, 32, 32), (8, 3, 32, 32), (4, 3, 32, 32)),
                                     ((1, 3, 32, 32), (4, 3, 16, 16), (8, 3, 32, 32))])
def test_bad_profiles_are_refused(monkeypatch, tmp_path, lines, profile):
    install_fake(monkeypatch, "10.3")
    one_line_error(lambda: build(dynamic_colour(tmp_path / "d.onnx"), lines, profiles={"image": profile}),
                   "input 'image'", "min <= opt <= max")


def test_profile_for_an_unknown_input(monkeypatch, tmp_path, lines):
    install_fake(monkeypatch, "10.3")
    one_line_error(lambda: build(make_colour_classifier(tmp_path / "c.onnx"), lines,
                                 profiles={"images": ((1,), (1,), (1,))}), "'images', which is not an input", "image")


@pytest.mark.parametrize("version", WEAK + ["10.7"])  # 10.5+: deprecated in C++, still answered (issue 9 #15)
def test_fp16_asked_fp32_obtained(monkeypatch, tmp_path, lines, version):
    fake = install_fake(monkeypatch, version, fast_fp16=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        one_line_error(lambda: build(make_colour_classifier(tmp_path / "c.onnx"), lines, precision="fp16"),
                       "asked fp16, TensorRT built fp32 (this GPU has no fast fp16 or the layers do not support it",
                       "--precision fp32")
    assert not [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert "IBuilderConfig.set_flag(FP16)" in fake.calls
    assert any("no fast fp16" in line for line in lines)


@pytest.mark.parametrize("version", VERSIONS)
def test_cuda_that_cannot_start_is_a_one_line_error(monkeypatch, tmp_path, lines, version):
    # real bindings: trt.Builder(logger) -> TypeError "factory function returned nullptr" (test_bindings_surface)
    fake = install_fake(monkeypatch, version, cuda_fails=True)
    model = make_colour_classifier(tmp_path / "c.onnx") if version in WEAK else float16_colour(tmp_path / "c.onnx")
    one_line_error(lambda: build(model, lines, precision="fp16"), f"TensorRT {fake.version_string} could not start "
                   "CUDA (trt.Builder failed: CUDA initialization failure with error: 35.", "nvidia-smi",
                   "--backend onnxruntime")
    assert not fake.called("Builder.create_network")


@pytest.mark.parametrize("profile,selector", [
    (((-1, 3, 32, 32), (1, 3, 32, 32), (2, 3, 32, 32)), "min"),  # -1 passes edge's own checks; TensorRT refuses it
    (((-2, 3, 32, 32), (-1, 3, 32, 32), (1, 3, 32, 32)), "min"),
])
def test_shapes_tensorrt_refuses_are_a_one_line_error(monkeypatch, tmp_path, lines, profile, selector):
    install_fake(monkeypatch, "10.3")  # the binding raises ValueError from set_shape (pyCore.cpp)
    one_line_error(lambda: build(dynamic_colour(tmp_path / "d.onnx"), lines, precision="fp32",
                                 profiles={"image": profile}),
                   "TensorRT refused the shapes", f"Shape provided for {selector} is inconsistent", "--shape image:")


def test_fp16_on_11_needs_a_float16_onnx(monkeypatch, tmp_path, lines):
    fake = install_fake(monkeypatch, "11.1")
    model = make_colour_classifier(tmp_path / "c.onnx")
    one_line_error(lambda: build(model, lines, precision="fp16"), "TensorRT 11.1.0 takes precision from the ONNX",
                   "float16 ONNX", "edge-export quantize MODEL.onnx --precision fp16", "AutoCast")
    one_line_error(lambda: build(model, lines, precision="fp16", fp16_onnx_hint="run make fp16"), "Fix: run make fp16")
    assert not fake.called("Builder()")


def test_int8_on_11_needs_explicit_quantization(monkeypatch, tmp_path, lines):
    install_fake(monkeypatch, "11.1")
    one_line_error(lambda: build(make_colour_classifier(tmp_path / "c.onnx"), lines, precision="int8",
                                 calibration=Calibration(images=tmp_path)), "no INT8 calibration", "Q/DQ",
                   "edge-export quantize c.onnx --precision int8 --calib-images DIR", "ModelOpt")


@pytest.mark.parametrize("version", VERSIONS)
def test_int8_from_a_qdq_onnx_needs_no_calibrator(monkeypatch, tmp_path, lines, version):
    fake = install_fake(monkeypatch, version)
    result = build(qdq_colour(tmp_path / "q.onnx"), lines, precision="int8")
    assert result.precision_obtained == "int8"
    assert not fake.called("IBuilderConfig.int8_calibrator")
    assert ("IBuilderConfig.set_flag(INT8)" in fake.calls) == (version in WEAK)


@pytest.mark.parametrize("version", WEAK)
@pytest.mark.parametrize("calibration", [None, Calibration()])
def test_int8_without_images(monkeypatch, tmp_path, lines, version, calibration):
    fake = install_fake(monkeypatch, version)
    one_line_error(lambda: build(make_colour_classifier(tmp_path / "c.onnx"), lines, precision="int8",
                                 calibration=calibration), "int8 needs calibration images", "--calib-images")
    assert not fake.called("Builder()")


class BatchCalibrator:
    """A calibrator from a factory: two batches from FakeCudaLayer memory."""

    def __init__(self, trt, cuda, batch):
        trt.IInt8EntropyCalibrator2.__init__(self)
        self.cuda, self.batch, self.left, self.written = cuda, batch, 2, None
        with cuda.activate():
            self.host = cuda.alloc_host((batch, 3, 32, 32), np.float32)
            self.device = cuda.alloc_device(self.host.array.nbytes)

    def get_batch_size(self):
        return self.batch

    def get_batch(self, names):
        if not self.left:
            return None
        self.left -= 1
        with self.cuda.activate():
            self.host.array[:] = self.left
            stream = self.cuda.stream()
            self.cuda.copy_to_device(self.device.ptr, self.host.array, stream)
            stream.synchronize()
        return [self.device.ptr]

    def read_calibration_cache(self):
        return None

    def write_calibration_cache(self, cache):
        self.written = bytes(cache)


@pytest.mark.parametrize("version", WEAK)
@pytest.mark.filterwarnings("ignore:IInt8EntropyCalibrator2 is deprecated:DeprecationWarning")  # 10.x: expected
def test_int8_calibrator_wiring_on_a_dynamic_network(monkeypatch, tmp_path, lines, version):
    fake = install_fake(monkeypatch, version)
    made = []

    def factory(trt, batch):
        made.append(type("Calibrator", (BatchCalibrator, trt.IInt8EntropyCalibrator2), {})(trt, fake.cuda_layer(),
                                                                                            batch))
        return made[-1]

    profile = ((1, 3, 32, 32), (2, 3, 32, 32), (4, 3, 32, 32))
    result = build(dynamic_colour(tmp_path / "d.onnx"), lines, precision="int8", profiles={"image": profile},
                   calibration=Calibration(factory=factory))
    assert made[0].batch == 2  # the profile's opt batch
    prefixes = ("IBuilderConfig.set_flag(INT8)", "IBuilderConfig.int8_calibrator=<Calibrator>",
                "IBuilderConfig.set_calibration_profile", "Builder.build_serialized_network")
    assert order(fake, *prefixes) == sorted(order(fake, *prefixes))
    batches = fake.builds[-1]["calibration_batches"]
    assert [float(b["image"].mean()) for b in batches] == [1.0, 0.0] and batches[0]["image"].shape == (2, 3, 32, 32)
    assert made[0].written.startswith(b"TRT-") and result.precision_obtained == "int8"


@pytest.mark.parametrize("version", WEAK)
@pytest.mark.filterwarnings("ignore:IInt8EntropyCalibrator2 is deprecated:DeprecationWarning")  # 10.x: expected
def test_a_failure_inside_the_calibrator_is_raised_after_the_build(monkeypatch, tmp_path, lines, version):
    fake = install_fake(monkeypatch, version)

    def factory(trt, batch):
        class Broken(trt.IInt8EntropyCalibrator2):
            def __init__(self):
                trt.IInt8EntropyCalibrator2.__init__(self)
                self.error, self.closed = None, False

            def get_batch_size(self):
                return batch

            def get_batch(self, names):  # what make_calibrator's calibrators do: keep the error, end the data
                self.error = EdgeError("calibration image 3 is broken", fix="remove it")

            def read_calibration_cache(self):
                return None

            def close(self):
                self.closed = True

        made.append(Broken())
        return made[-1]

    made = []
    one_line_error(lambda: build(make_colour_classifier(tmp_path / "c.onnx"), lines, precision="int8",
                                 calibration=Calibration(factory=factory)), "image 3 is broken", "remove it")
    assert made[0].closed and any("no scaling factors" in message for _, message in fake.log)


@pytest.mark.parametrize("version", VERSIONS)
def test_timing_cache_is_saved_and_reused(monkeypatch, tmp_path, lines, version):
    model, cache = make_colour_classifier(tmp_path / "c.onnx"), tmp_path / "cache" / "timing.cache"
    fake = install_fake(monkeypatch, version)
    build(model, lines, precision="fp32", timing_cache=cache)
    assert cache.is_file() and fake.builds[-1]["timing_cache_hits"] == 0
    assert order(fake, "IBuilderConfig.create_timing_cache", "IBuilderConfig.set_timing_cache",
                 "Builder.build_serialized_network", "ITimingCache.serialize") == sorted(
        order(fake, "IBuilderConfig.create_timing_cache", "IBuilderConfig.set_timing_cache",
              "Builder.build_serialized_network", "ITimingCache.serialize"))
    again = install_fake(monkeypatch, version)
    build(model, lines, precision="fp32", timing_cache=cache)
    assert again.builds[-1]["timing_cache_hits"] == 3 and not any("fresh" in line for line in lines)
    assert list(tmp_path.joinpath("cache").iterdir()) == [cache]  # atomic write left no temporary file


@pytest.mark.parametrize("damage", ["other gpu", "garbage"])
def test_a_mismatched_timing_cache_starts_fresh(monkeypatch, tmp_path, lines, damage):
    model, cache = make_colour_classifier(tmp_path / "c.onnx"), tmp_path / "timing.cache"
    if damage == "garbage":
        cache.write_bytes(b"not a timing cache")
    else:
        install_fake(monkeypatch, "10.3", compute_capability=(7, 2))
        build(model, lines, precision="fp32", timing_cache=cache)
    fake = install_fake(monkeypatch, "10.3")
    build(model, lines, precision="fp32", timing_cache=cache)
    assert any("starting a fresh one" in line for line in lines) and fake.builds[-1]["timing_cache_hits"] == 0
    assert fake.called("IBuilderConfig.create_timing_cache")[-1] == "IBuilderConfig.create_timing_cache(<0 bytes>)"
    assert b'"cc": [8, 7]' in cache.read_bytes()


def test_ticker_reports_elapsed_time_while_building(monkeypatch, tmp_path):
    gate = threading.Event()
    install_fake(monkeypatch, "10.3", build_gate=gate)
    monkeypatch.setattr(builder_module, "TICK_S", 0.001)
    lines = []

    def report(line):
        lines.append(line)
        if sum("still building" in x for x in lines) >= 2:
            gate.set()  # the fake build returns only once two ticks were reported

    build_engine(make_colour_classifier(tmp_path / "c.onnx"), BuildOptions(precision="fp32"), report=report)
    ticks = [x for x in lines if "still building" in x]
    assert len(ticks) >= 2 and all(x.strip().startswith("still building: ") and x.endswith(" s elapsed") for x in ticks)
    assert lines[0].startswith("building a fp32") and lines[-1].startswith("built in ")
    assert lines.index(ticks[0]) > 0


@pytest.mark.parametrize("version", VERSIONS)
def test_dla_core(monkeypatch, tmp_path, lines, version):
    fake = install_fake(monkeypatch, version, dla_cores=2)
    model = make_colour_classifier(tmp_path / "c.onnx") if version in WEAK else float16_colour(tmp_path / "c.onnx")
    build(model, lines, precision="fp16", dla_core=1)
    assert ["IBuilderConfig.default_device_type=DLA", "IBuilderConfig.DLA_core=1",
            "IBuilderConfig.set_flag(GPU_FALLBACK)", "Runtime.DLA_core=1"  # the inspector loads it on that core
            ] == [c for c in fake.calls if "DLA" in c or "GPU_FALLBACK" in c]
    assert fake.plan_header(build(model, lines, precision="fp16", dla_core=0).plan)["device"] == "DLA"
    assert "on DLA core 0" in lines[-2]


@pytest.mark.parametrize("version,options,needles", [
    ("10.3", {"dla_core": 2}, ["DLA core 2 asked, this device has 2 DLA cores"]),
    ("10.3", {"dla_core": 0, "precision": "fp32"}, ["only fp16 or int8"]),
    ("11.0", {"dla_core": 0, "precision": "int8"}, ["TensorRT 11.0.0 does not support the DLA"]),
    ("10.3", {"precision": "bf16"}, ["unknown precision 'bf16'"]),
    ("10.3", {"workspace_mib": 0}, ["workspace must be positive"]),
])
def test_refused_options(monkeypatch, tmp_path, lines, version, options, needles):
    install_fake(monkeypatch, version, dla_cores=2)
    model = qdq_colour(tmp_path / "q.onnx")
    one_line_error(lambda: build(model, lines, **options), *needles)


@pytest.mark.parametrize("version,opset,warned", [("8.2", 13, False), ("8.2", 17, True), ("8.5", 17, False),
                                                  ("8.5", 18, True), ("10.3", 20, False)])
def test_an_opset_newer_than_the_parser_documents_is_a_warning_then_the_fix(monkeypatch, tmp_path, lines, version,
                                                                              opset, warned):
    # onnx-tensorrt READMEs: 8.0/8.2 "supports operators up to Opset 13", 8.4-8.6 up to 17
    install_fake(monkeypatch, version)
    model = make_colour_classifier(tmp_path / "c.onnx", opset=opset)
    result = build(model, lines, precision="fp32")
    warning = [line for line in lines if line.startswith("warning: c.onnx is ONNX opset")]
    assert bool(warning) == warned and result.precision_obtained == "fp32"
    if warned:
        newest = 13 if version == "8.2" else 17
        expected = f"documents opsets up to {newest} (edge-export onnx c.onnx --opset {newest} lowers it)"
        assert warning[0].endswith(expected)
    install_fake(monkeypatch, version, unsupported_ops={"Gemm"})
    message = one_line_error(lambda: build(model, [], precision="fp32"), "cannot parse the model")
    newest = 13 if version == "8.2" else 17
    assert (f"re-export with --opset {newest}," in message) == warned
    assert ("re-export with another --opset" in message) == (not warned)
