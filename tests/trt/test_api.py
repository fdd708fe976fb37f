"""edge.tensorrt.api against the fake tensorrt of each API generation: import, features, the calls that differ."""

import re
import sys
import types
from pathlib import Path

import pytest
from fake_tensorrt import install_fake
from tiny_models import make_colour_classifier

from edge.errors import EdgeError, MissingDependency
from edge.tensorrt import api

VERSIONS = ["8.2", "8.5", "10.3", "11.1"]


def test_missing_tensorrt_names_jetpack_package_and_pip(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import raises ImportError
    with pytest.raises(MissingDependency) as err:
        api.import_tensorrt()
    assert "python3-libnvinfer" in str(err.value) and "--system-site-packages" in str(err.value)
    assert "pip install 'tensorrt" in str(err.value) and "\n" not in str(err.value)


def test_a_folder_named_tensorrt_is_not_tensorrt(monkeypatch):
    shadow = types.ModuleType("tensorrt")
    shadow.__path__ = ["/somewhere/tests/tensorrt"]  # what a namespace package looks like: no __file__
    monkeypatch.setitem(sys.modules, "tensorrt", shadow)
    with pytest.raises(MissingDependency, match="plain folder"):
        api.import_tensorrt()


def test_import_returns_the_installed_module(monkeypatch):
    fake = install_fake(monkeypatch, "10.3")
    assert api.import_tensorrt() is fake.module


#            version  explicit pool   flags  calib  fast16 names  dla    binding named_io
FEATURES = [("8.2",   True,    False, True,  True,  True,  False, True,  True,   False),
            ("8.5",   True,    True,  True,  True,  True,  False, True,  True,   True),
            ("8.6",   True,    True,  True,  True,  True,  False, True,  True,   True),
            ("10.3",  False,   True,  True,  True,  True,  True,  True,  False,  True),
            ("10.7",  False,   True,  True,  True,  True,  True,  True,  False,  True),  # fast16: deprecated
            ("11.0",  False,   True,  False, False, False, True,  False, False,  True),
            ("11.1",  False,   True,  False, False, False, True,  True,  False,  True)]


@pytest.mark.parametrize("version,explicit,pool,flags,calib,fast16,names,dla,binding,named_io", FEATURES)
def test_features_follow_the_api_matrix(monkeypatch, version, explicit, pool, flags, calib, fast16, names, dla,
                                        binding, named_io):
    feats = api.features(install_fake(monkeypatch, version).module)
    assert feats.engine_inspector and feats.timing_cache and feats.calibration_profile == calib
    assert (feats.explicit_batch_flag, feats.pool_limit, feats.precision_flags, feats.int8_calibration,
            feats.fast_fp16_query, feats.parser_node_names, feats.dla, feats.binding_api, feats.named_io) == (
        explicit, pool, flags, calib, fast16, names, dla, binding, named_io)
    assert feats.io_api == ("names" if named_io else "bindings")
    assert feats.strongly_typed == (not flags)
    assert feats.version[:2] == tuple(int(x) for x in version.split(".")) and feats.major == feats.version[0]


def test_tensorrt_7_is_refused_with_the_jetpack_fix(monkeypatch):
    # TensorRT 7.x had build_engine only (build_serialized_network arrived in 8.0): model it on the 8.2 fake
    trt = install_fake(monkeypatch, "7.1.3.0").module
    monkeypatch.delattr(trt.Builder, "build_serialized_network")
    with pytest.raises(EdgeError) as err:
        api.features(trt)
    message = str(err.value)
    assert "TensorRT 7.1.3.0 is too old: edge needs TensorRT 8.2 or newer" in message
    assert "JetPack 4.6.1" in message and "--backend onnxruntime" in message and "\n" not in message


def test_a_tensorrt_with_neither_io_api_is_refused(monkeypatch):
    trt = install_fake(monkeypatch, "8.2").module
    monkeypatch.delattr(trt.IExecutionContext, "execute_async_v2")
    with pytest.raises(EdgeError, match="too old"):
        api.features(trt)


@pytest.mark.parametrize("text,expected", [("8.5.2.2", (8, 5, 2, 2)), ("10.3.0", (10, 3, 0)),
                                           ("10.3.0.post1", (10, 3, 0)), ("11.1.0rc1", (11, 1, 0))])
def test_parse_version(text, expected):
    assert api.parse_version(text) == expected


@pytest.mark.parametrize("version,flags", [("8.2", 1), ("8.5", 1), ("10.3", 0), ("11.1", 0)])
def test_network_flags(monkeypatch, version, flags):
    trt = install_fake(monkeypatch, version).module
    assert api.network_flags(trt, api.features(trt)) == flags


@pytest.mark.parametrize("version", VERSIONS)
def test_workspace_goes_through_the_memory_pool_limit(monkeypatch, version):
    fake = install_fake(monkeypatch, version)
    trt = fake.module
    config = trt.Builder(trt.Logger()).create_builder_config()
    api.set_workspace(config, trt, api.features(trt), 256 << 20)
    if version == "8.2":  # no memory pools before 8.4: the max_workspace_size property
        assert not hasattr(config, "set_memory_pool_limit") and not hasattr(trt, "MemoryPoolType")
        assert fake.called("IBuilderConfig.max_workspace_size") == [f"IBuilderConfig.max_workspace_size={256 << 20}"]
        assert config.max_workspace_size == 256 << 20
        return
    assert fake.called("IBuilderConfig.set_memory_pool_limit") == [
        f"IBuilderConfig.set_memory_pool_limit(WORKSPACE, {256 << 20})"]
    assert not fake.called("IBuilderConfig.max_workspace_size")


def _failed_parser(trt, path):
    logger = trt.Logger()
    builder = trt.Builder(logger)
    network = builder.create_network(api.network_flags(trt, api.features(trt)))
    parser = trt.OnnxParser(network, logger)
    assert not parser.parse_from_file(str(path))
    return parser


@pytest.mark.parametrize("version", VERSIONS)
def test_parser_errors_name_the_node(monkeypatch, face_model_path, version):
    trt = install_fake(monkeypatch, version, unsupported_ops={"Pad"}).module
    errors = api.parser_errors(_failed_parser(trt, face_model_path))
    import onnx

    pads = [(i, n.name) for i, n in enumerate(onnx.load(str(face_model_path)).graph.node) if n.op_type == "Pad"]
    if version.startswith("8."):  # 8.x knows only the node index
        assert len(errors) == 1 and errors[0].startswith(f"node #{pads[0][0]}: UNSUPPORTED_NODE: ")
    else:  # 10.x names every unsupported node
        assert len(errors) == len(pads) and errors[0].startswith(f"node '{pads[0][1]}' (Pad): UNSUPPORTED_NODE: ")
    assert all("\n" not in e for e in errors)


@pytest.mark.parametrize("version,name_is_method", [("8.5", True), ("8.6", True), ("10.3", True), ("10.13", True),
                                                    ("11.1", False)])
def test_error_code_names_read_as_text_on_every_binding(monkeypatch, tmp_path, version, name_is_method):
    # 8.6/10.x bind ErrorCode.name as a method: "<bound method PyCapsule.name ...>" in messages (issue 9 #15)
    trt = install_fake(monkeypatch, version, unsupported_ops={"Gemm"}).module
    assert callable(trt.ErrorCode.UNSUPPORTED_NODE.name) == name_is_method
    assert api.enum_name(trt.ErrorCode.UNSUPPORTED_NODE) == "UNSUPPORTED_NODE"
    assert api.enum_name(trt.DataType.HALF) == "HALF"
    errors = api.parser_errors(_failed_parser(trt, make_colour_classifier(tmp_path / "c.onnx")))
    assert ": UNSUPPORTED_NODE: No importer registered for op: Gemm" in errors[0] and "bound method" not in errors[0]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("kind", ["Builder", "Runtime"])
def test_cuda_that_cannot_start(monkeypatch, version, kind):
    fake = install_fake(monkeypatch, version, cuda_fails=True)
    trt = fake.module
    create = api.create_builder if kind == "Builder" else api.create_runtime

    class Lines(trt.ILogger):  # keeps what TensorRT logs, as the builder's logger does
        def __init__(self):
            trt.ILogger.__init__(self)
            self.lines = []

        def log(self, severity, msg):
            self.lines.append((severity, msg))

    with pytest.raises(EdgeError) as err:
        create(trt, Lines(), "m.onnx")
    message = str(err.value)
    assert message.startswith(f"m.onnx | TensorRT {fake.version_string} could not start CUDA (trt.{kind} failed: "
                               "CUDA initialization failure with error: 35.") and "\n" not in message
    with pytest.raises(EdgeError, match="TensorRT's log line above says why"):
        create(trt, trt.Logger())  # trt.Logger prints TensorRT's line itself
    fake.cuda_fails = False
    assert type(create(trt, trt.Logger())).__name__ == kind
    with pytest.raises(TypeError, match="must be called"):  # a bug (logger lacking ILogger.__init__): a traceback
        create(trt, object.__new__(Lines))


def test_parser_errors_take_node_names_from_the_onnx_on_8x(monkeypatch, tmp_path):
    trt = install_fake(monkeypatch, "8.5", unsupported_ops={"Gemm"}).module
    parser = _failed_parser(trt, make_colour_classifier(tmp_path / "c.onnx"))
    assert api.parser_errors(parser, [("pool", "GlobalAveragePool"), ("flat", "Flatten"), ("fc", "Gemm")])[0] \
        .startswith("node 'fc' (Gemm): UNSUPPORTED_NODE")
    assert api.parser_errors(parser, [("", "GlobalAveragePool"), ("", "Flatten"), ("", "Gemm")])[0] \
        .startswith("node #2 (Gemm)")


def test_parser_refuses_implicit_batch_networks_on_8x(monkeypatch, tmp_path):
    trt = install_fake(monkeypatch, "8.5").module
    logger = trt.Logger()
    parser = trt.OnnxParser(trt.Builder(logger).create_network(0), logger)
    assert not parser.parse_from_file(str(make_colour_classifier(tmp_path / "c.onnx")))
    assert "EXPLICIT_BATCH" in api.parser_errors(parser)[0] and api.parser_errors(parser)[0].startswith("model: ")


def _layer(kind, fmt):
    return {"Name": "l", "LayerType": kind, "Inputs": [{"Format/Datatype": fmt}], "Outputs": [{"Format/Datatype": fmt}]}


@pytest.mark.parametrize("layers,counts,obtained", [
    ([_layer("CaskConvolution", "Row major linear FP16 format"), _layer("Reformat", "Row major linear FP32")],
     {"fp16": 1}, "fp16"),
    ([_layer("CaskConvolution", "Half"), _layer("PointWiseV2", "Float")], {"fp16": 1, "fp32": 1}, "fp16"),
    ([_layer("CaskConvolution", "Thirty-two wide channel vectorized row major Int8 format."),
      _layer("CaskConvolution", "Float")], {"int8": 1, "fp32": 1}, "int8"),
    ([_layer("CaskConvolution", "Float")], {"fp32": 1}, "fp32"),
    ([_layer("CaskConvolution", "BFloat16")], {"bf16": 1}, "bf16"),
    ([_layer("NoOp", "N/A due to dynamic shapes")], {"unknown": 1}, "unknown"),
    (["conv1", "relu1"], {}, "unknown"),  # built without ProfilingVerbosity.DETAILED: names only
])
def test_layer_precisions_read_both_inspector_formats(layers, counts, obtained):
    found = api.layer_precisions({"Layers": layers, "Bindings": []})
    assert found == counts and api.obtained_precision(found) == obtained


# ------------------------------------------------------------------------------------------ numpy dtypes
@pytest.mark.parametrize("version,member,dtype", [
    ("8.2", "FLOAT", "float32"), ("8.2", "HALF", "float16"), ("8.2", "INT8", "int8"), ("8.2", "INT32", "int32"),
    ("8.2", "BOOL", "bool"), ("8.5", "UINT8", "uint8"), ("10.3", "INT64", "int64"), ("10.3", "BF16", None),
    ("8.6", "FP8", None), ("10.3", "INT4", None), ("11.1", "HALF", "float16")])
def test_numpy_dtype_by_member_name(monkeypatch, version, member, dtype):
    trt = install_fake(monkeypatch, version).module
    found = api.numpy_dtype(trt.DataType[member])
    assert (None if found is None else found.name) == dtype


@pytest.mark.parametrize("version", ["8.2", "8.5"])
def test_trt_nptype_of_8_2_to_8_5_2_breaks_on_numpy_1_24_and_edge_does_not_use_it(monkeypatch, version):
    import numpy as np

    trt = install_fake(monkeypatch, version, numpy_version=(1, 19)).module  # JetPack 4.6's numpy: fine
    assert trt.nptype(trt.DataType.FLOAT) is np.float32
    trt = install_fake(monkeypatch, version, numpy_version=(1, 24)).module  # np.bool removed in 1.24
    with pytest.raises(AttributeError, match="module 'numpy' has no attribute 'bool'"):
        trt.nptype(trt.DataType.FLOAT)  # the real helper builds its table with np.bool on every call
    assert api.numpy_dtype(trt.DataType.FLOAT) == np.dtype(np.float32)
    assert api.numpy_dtype(trt.DataType.BOOL) == np.dtype(np.bool_)
    sources = sorted((Path(api.__file__).parent).glob("*.py")) + [Path(api.__file__).parents[1] / "backends" /
                                                                  "tensorrt.py"]
    assert not [p.name for p in sources if re.search(r"\.nptype\(", p.read_text())]


def test_trt_nptype_of_8_5_3_and_later_is_fine_on_numpy_1_24(monkeypatch):
    import numpy as np

    trt = install_fake(monkeypatch, "8.5.3.1", numpy_version=(1, 24)).module
    assert trt.nptype(trt.DataType.BOOL) is np.bool_
