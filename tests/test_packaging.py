"""setup.py's dependencies against what the code imports and what the README promises (issue 9, item 16).

setup.py is run with ``setuptools.setup`` replaced by a recorder, so nothing is built or installed.
"""

import re
import runpy
from pathlib import Path

import pytest
from old_runtimes import needs_export

ROOT = Path(__file__).resolve().parents[1]
Requirement = pytest.importorskip("packaging.requirements").Requirement
pytest.importorskip("setuptools")


@pytest.fixture(scope="module")
def setup_kwargs():
    import setuptools

    seen = {}
    real = setuptools.setup
    setuptools.setup = lambda **kwargs: seen.update(kwargs)
    try:
        runpy.run_path(str(ROOT / "setup.py"), run_name="__main__")
    finally:
        setuptools.setup = real
    return seen


def names(requirements, python="3.11", platform="linux", system="Linux"):
    """Distribution names pip would install for these requirement strings on that Python and OS."""
    env = {"python_version": python, "sys_platform": platform, "platform_system": system,
           "platform_machine": "x86_64", "extra": ""}
    return {Requirement(r).name.lower() for r in requirements
            if Requirement(r).marker is None or Requirement(r).marker.evaluate(env)}


# (module the runtime imports, the distribution that must be a hard dependency)
RUNTIME_IMPORTS = [("yaml", "pyyaml"), ("numpy", "numpy"), ("onnx", "onnx")]


@pytest.mark.parametrize("module, distribution", RUNTIME_IMPORTS)
def test_what_edge_imports_at_runtime_is_installed_by_plain_pip_install(module, distribution, setup_kwargs):
    imported = [p.name for p in (ROOT / "edge").rglob("*.py")
                if re.search(rf"^\s*(import {module}\b|from {module}\b)", p.read_text(encoding="utf-8"), re.M)]
    assert imported, f"edge/ no longer imports {module}: drop this row"
    assert distribution in names(setup_kwargs["install_requires"])


def test_only_the_cpu_extra_brings_pip_opencv(setup_kwargs):
    """README: never pip's opencv-python on a Jetson; only 'cpu' (laptops, CI) may bring it."""
    for extra, requirements in setup_kwargs["extras_require"].items():
        opencv = {n for n in names(requirements, system="Linux") if n.startswith("opencv")}
        assert opencv == ({"opencv-python"} if extra == "cpu" else set()), extra


def test_no_extra_asks_pip_for_tensorrt(setup_kwargs):
    """PyPI's tensorrt is a stub fetching from NVIDIA's own index; on a Jetson it comes with JetPack."""
    for extra, requirements in setup_kwargs["extras_require"].items():
        assert not {n for n in names(requirements) if n.startswith("tensorrt")}, extra
    text = (ROOT / "setup.py").read_text(encoding="utf-8")
    assert "JetPack" in text and "NVIDIA's package index" in text  # the comment says how it is really installed


# (python, what the test extra brings for the kernel-compile tests: cuda-python + the NVRTC of the same major)
TEST_EXTRA_CUDA = [
    ("3.8", set()),  # CI's 3.8 run installs only '.[cpu]' + pytest; nothing that cannot install on 3.8
    ("3.9", {"cuda-python", "nvidia-cuda-nvrtc-cu12"}),
    ("3.10", {"cuda-python", "nvidia-cuda-nvrtc"}),
    ("3.11", {"cuda-python", "nvidia-cuda-nvrtc"}),
    ("3.12", {"cuda-python", "nvidia-cuda-nvrtc"}),
]


@pytest.mark.parametrize("python, expected", TEST_EXTRA_CUDA)
def test_the_test_extra_brings_nvrtc_so_the_kernel_compiles_without_a_gpu(python, expected, setup_kwargs):
    brought = {n for n in names(setup_kwargs["extras_require"]["test"], python=python)
               if n.startswith(("cuda", "nvidia"))}
    assert brought == expected
    assert names(setup_kwargs["extras_require"]["test"], python=python, platform="darwin", system="Darwin") \
        .isdisjoint({"cuda-python", "nvidia-cuda-nvrtc", "nvidia-cuda-nvrtc-cu12"})  # no wheels for macOS


def test_the_cuda_majors_of_the_test_extra_agree(setup_kwargs):
    """cuda-bindings N loads libnvrtc.so.N: a 13 binding with a 12 NVRTC would skip every compile test."""
    for python in ("3.9", "3.10", "3.11"):
        env = {"python_version": python, "sys_platform": "linux", "platform_system": "Linux", "extra": ""}
        chosen = [Requirement(r) for r in setup_kwargs["extras_require"]["test"]
                  if Requirement(r).name.startswith(("cuda-python", "nvidia-cuda-nvrtc"))
                  and Requirement(r).marker.evaluate(env)]
        python_req = next(r for r in chosen if r.name == "cuda-python")
        nvrtc = next(r for r in chosen if r.name.startswith("nvidia-cuda-nvrtc"))
        major = 12 if nvrtc.name.endswith("-cu12") else 13
        assert python_req.specifier.contains(f"{major}.9.0") and not python_req.specifier.contains(f"{major + 1}.0")


def test_export_and_benchmarks_are_installed_under_names_that_belong_to_edge(setup_kwargs):
    """The folders keep their names (export/, benchmarks/), but site-packages gets edge, edge_export and
    edge_benchmarks only: a top-level 'export' or 'benchmarks' would collide with any other project's."""
    packages = setup_kwargs["packages"]
    assert {name.split(".")[0] for name in packages} == {"edge", "edge_export", "edge_benchmarks"}
    assert {"edge_export", "edge_export.commands", "edge_benchmarks"} <= set(packages)
    folders = setup_kwargs["package_dir"]
    for package in packages:
        top = package.split(".")[0]
        if top in folders:  # every renamed package maps onto a real folder of the checkout
            folder = ROOT / folders[top] / Path(*package.split(".")[1:])
            assert (folder / "__init__.py").is_file(), package
    assert "edge_benchmarks" in setup_kwargs["package_data"] and "benchmarks" not in setup_kwargs["package_data"]


def test_installed_code_never_imports_its_own_folder_by_the_checkout_name():
    """Inside export/ and benchmarks/ siblings are imported relatively: 'from export.x' works in a checkout and
    breaks once installed as edge_export."""
    offenders = []
    for folder in ("export", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            if path.name == "gpu_check.py":  # also a script: its absolute imports sit behind `if __package__`
                text = text.split("else:  # python benchmarks/gpu_check.py", 1)[0]
            if re.search(rf"^\s*(from|import) {folder}(\.|\s)", text, re.M) or f'"{folder}.' in text:
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders


@pytest.mark.parametrize("script", ["edge-camera", pytest.param("edge-export", marks=needs_export), "edge-bench"])
def test_console_scripts_point_at_real_entry_points(setup_kwargs, script):
    import importlib

    entries = dict(line.split(" = ") for line in setup_kwargs["entry_points"]["console_scripts"])
    module, function = entries[script].split(":")
    module = module.replace("edge_export", "export").replace("edge_benchmarks", "benchmarks")  # the checkout
    assert callable(getattr(importlib.import_module(module), function))


def test_program_names_follow_how_the_command_was_started(monkeypatch):
    from edge.flags import program_name

    monkeypatch.setattr("sys.argv", ["/venv/bin/edge-export", "onnx"])
    assert program_name("edge_export", "edge-export") == "edge-export"
    monkeypatch.setattr("sys.argv", ["/repo/export/__main__.py", "onnx"])
    assert program_name("export", "edge-export") == "python -m export"
