"""The fake ``tensorrt`` modules against the real TensorRT Python bindings (8.6, 10.3, 10.13, 11.1), and
the 8.2 fake against the surface read from the 8.2.1 binding sources (no 8.2 wheel exists).

The real bindings wheels are imported over stub libraries (bindings_surface.py); the wheels come
from ``bash tests/trt/fetch_bindings.sh`` and every test here skips, saying so, when they are not in
the cache folder (no network during tests). What is compared:

* every class and member the fake offers exists in the real bindings (the fake never hides an
  AttributeError a real TensorRT would raise);
* every enum the fake defines has exactly the real members with the real numbers, and ``name`` is a
  method or a property as in the real bindings (ErrorCode: method on 8.6/10.x);
* every TensorRT name edge's code mentions exists in the fake exactly when it exists in the real module;
* trt.Builder / trt.Runtime fail as the real ones do when CUDA cannot start.
"""

import json
import re
from pathlib import Path
from typing import Any, Dict, Set, Tuple

import pytest
from bindings_surface import WHEELS, find_wheel, real_surface, run_with_bindings, surface, tools_missing
from fake_tensorrt import FakeTensorRT

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
EDGE_SOURCES = sorted((ROOT / "edge" / "tensorrt").glob("*.py")) + [ROOT / "edge" / "backends" / "tensorrt.py"]
_REAL: Dict[str, Dict[str, Any]] = {}
# Names edge uses on *other* objects, which match a real member of these classes only by name.
NAME_CLASHES = {
    "OnnxParser": {"set_flag"},  # edge calls IBuilderConfig.set_flag
    "INetworkDefinition": {"builder"},  # the module edge.tensorrt.builder
    "ICudaEngine": {"profiling_verbosity"},  # edge sets IBuilderConfig.profiling_verbosity
    "ITimingCache": {"update"},  # dict.update
    "IHostMemory": {"dtype"},  # numpy arrays' dtype
}


@pytest.fixture(params=sorted(WHEELS), scope="module")
def version(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def real(version, tmp_path_factory) -> Dict[str, Any]:
    """The real bindings' surface for ``version`` (built once per test session); "workdir": where they are."""
    why = tools_missing()
    if why:
        pytest.skip(why)
    wheel, why = find_wheel(version)
    if wheel is None:
        pytest.skip(why)
    if version not in _REAL:
        workdir = tmp_path_factory.mktemp(f"trt-{version}")
        _REAL[version] = dict(real_surface(wheel, workdir), workdir=workdir)
    return _REAL[version]


@pytest.fixture()
def fake(version) -> FakeTensorRT:
    return FakeTensorRT(version)


def _builtin_attributes(cls: type) -> Set[str]:
    """Members a fake class inherits from a builtin base (Dims is a tuple, IHostMemory bytes)."""
    return {a for base in cls.__mro__ if base.__module__ == "builtins" for a in dir(base)}


def _edge_mentions(module_level: bool = False) -> Set[str]:
    """Identifiers edge's TensorRT code reaches for: ``x.attr`` and quoted names (hasattr/getattr), or with
    ``module_level`` the ``trt.NAME`` and ``hasattr(trt, "NAME")`` ones."""
    text = "\n".join(path.read_text() for path in EDGE_SOURCES)
    if module_level:
        return set(re.findall(r"\btrt\.([A-Za-z_]\w*)", text)) | set(
            re.findall(r"attr\(trt, [\"']([A-Za-z_]\w*)[\"']", text))
    return set(re.findall(r"\.([A-Za-z_]\w*)", text)) | set(re.findall(r"[\"']([A-Za-z_]\w*)[\"']", text))


def test_the_real_bindings_are_the_version_compared(real, version):
    assert real["version"].startswith(WHEELS[version][1])


def test_the_fake_offers_only_what_the_real_bindings_have(real, fake):
    module = fake.module
    fake_surface = surface(module)
    missing_classes = sorted(set(fake_surface["classes"]) - set(real["classes"]))
    assert not missing_classes, f"the fake has classes the real bindings lack: {missing_classes}"
    extra = {}
    for name, attributes in fake_surface["classes"].items():
        own = set(attributes) - _builtin_attributes(getattr(module, name))
        if own - set(real["classes"][name]):
            extra[name] = sorted(own - set(real["classes"][name]))
    assert not extra, f"members only the fake has: {extra}"
    assert not set(fake_surface["enums"]) - set(real["enums"])


def test_enums_match_member_for_member(real, fake):
    fake_surface = surface(fake.module)
    for name, members in fake_surface["enums"].items():
        assert members == real["enums"][name], name
        assert fake_surface["enum_name_kind"][name] == real["enum_name_kind"][name], name


def test_what_edge_uses_exists_in_the_fake_exactly_when_it_is_real(real, fake):
    _edge_uses_match(real, fake)


def _edge_uses_match(real: Dict[str, Any], fake: FakeTensorRT) -> None:
    fake_surface = surface(fake.module)
    mentions = _edge_mentions()
    top = {n for n in set(real["names"]) | set(fake_surface["names"]) if n in _edge_mentions(module_level=True)}
    assert {n for n in top if n in fake_surface["names"]} == {n for n in top if n in real["names"]}
    differ = {}
    for name in set(real["classes"]) & set(fake_surface["classes"]):
        fake_attrs = set(fake_surface["classes"][name]) - _builtin_attributes(getattr(fake.module, name))
        real_attrs = set(real["classes"][name])
        used = (real_attrs | fake_attrs) & mentions - NAME_CLASHES.get(name, set())
        if (used & real_attrs) != (used & fake_attrs):
            differ[name] = sorted(used ^ (used & real_attrs & fake_attrs))
    assert not differ, f"edge uses these; present in only one of fake/real: {differ}"
    for name, members in real["enums"].items():
        owner = fake.module
        for part in name.split("."):
            owner = getattr(owner, part, None)
        used = set(members) & mentions
        if owner is not None:
            assert used <= set(owner.__members__), f"{name}: edge uses {sorted(used - set(owner.__members__))}"


# ------------------------------------------------------------------ 8.2: no wheel, the binding sources
# PyPI has no bindings wheel before 8.6.1; the surface of 8.2.1 was read from NVIDIA/TensorRT's sources at tag
# 8.2.1 by sources_surface.py (which reproduces the real 8.6.1 wheel when run on release/8.6) and committed.
SOURCE_SURFACES = {"8.2": HERE / "tensorrt_8_2_1_surface.json"}


@pytest.fixture(params=sorted(SOURCE_SURFACES))
def from_sources(request) -> Tuple[Dict[str, Any], FakeTensorRT]:
    return json.loads(SOURCE_SURFACES[request.param].read_text()), FakeTensorRT(request.param)


def test_the_8_2_fake_offers_only_what_the_8_2_sources_bind(from_sources):
    real, fake = from_sources
    assert fake.version_string.startswith(real["version"])
    module = fake.module
    fake_surface = surface(module)
    assert not set(fake_surface["classes"]) - set(real["classes"])
    extra = {name: sorted(set(attributes) - _builtin_attributes(getattr(module, name)) - set(real["classes"][name]))
             for name, attributes in fake_surface["classes"].items()}
    assert not {k: v for k, v in extra.items() if v}, "members only the fake has"
    assert not set(fake_surface["names"]) - set(real["names"])
    for name, members in fake_surface["enums"].items():
        assert set(members) == set(real["enums"][name]), name
        numbered = {k: v for k, v in real["enums"][name].items() if v is not None}
        assert {k: members[k] for k in numbered} == numbered, name


def test_what_edge_uses_exists_in_the_8_2_fake_exactly_when_in_the_sources(from_sources):
    real, fake = from_sources
    _edge_uses_match(real, fake)
    assert not hasattr(fake.module.ICudaEngine, "num_io_tensors") and "num_bindings" in real["classes"]["ICudaEngine"]


def test_cuda_failure_and_error_names_read_as_in_the_real_bindings(real, version):
    fake = FakeTensorRT(version, cuda_fails=True)
    trt = fake.module
    for kind, key in (("Builder", "builder_without_cuda"), ("Runtime", "runtime_without_cuda")):
        with pytest.raises(TypeError) as err:
            getattr(trt, kind)(trt.Logger(trt.Logger.WARNING))
        assert f"TypeError: {err.value}" == real[key]
    member = trt.ErrorCode.UNSUPPORTED_NODE
    assert (member.name() if callable(member.name) else member.name) == real["error_code_name"]
    assert str(member) == real["error_code_str"]


END_TO_END = """
import sys
sys.path.insert(0, sys.argv[2])
from fake_tensorrt import FakeCudaLayer
from edge.errors import EdgeError
from edge.tensorrt.builder import BuildOptions, build_engine
from edge.tensorrt.runner import TrtRunner
for attempt in (lambda: build_engine(sys.argv[1], BuildOptions(precision="fp32"), report=lambda line: None),
                lambda: TrtRunner(b"plan", FakeCudaLayer(), where="m.plan")):
    try:
        attempt()
        print("no error")
    except EdgeError as exc:
        print(str(exc))
"""


def test_edge_on_the_real_bindings_without_cuda_ends_with_one_line(real, tmp_path):
    # the real trt.Builder / trt.Runtime raise TypeError when CUDA cannot start: edge says so in one line
    pytest.importorskip("onnx")
    from tiny_models import make_colour_classifier

    model = make_colour_classifier(tmp_path / "c.onnx")
    done = run_with_bindings(real["workdir"], END_TO_END, str(model), str(Path(__file__).resolve().parent))
    assert done.returncode == 0, done.stderr[-3000:]
    builder_line, runner_line = done.stdout.splitlines()
    version = real["version"]
    assert builder_line.startswith(f"{model} | TensorRT {version} could not start CUDA (trt.Builder failed:")
    assert runner_line.startswith(f"m.plan | TensorRT {version} could not start CUDA (trt.Runtime failed:")
    assert "Fix: check that the NVIDIA driver works" in builder_line and "Traceback" not in done.stderr
