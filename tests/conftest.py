"""Shared fixtures: the shipped face model and samples, tiny models, and capability marks."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def pytest_configure(config: pytest.Config) -> None:
    for mark, why in (("gpu", "needs a CUDA GPU"), ("tensorrt", "needs TensorRT"), ("jetson", "needs a Jetson"),
                      ("gstreamer", "needs OpenCV built with GStreamer")):
        config.addinivalue_line("markers", f"{mark}: {why}")


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """edge's caches (quantized copies, thread choices) in a folder of this test session, for this process and
    the apps the tests start: a test never reads a choice a real run made, nor leaves one behind."""
    import os

    if os.environ.get("EDGE_CACHE_DIR"):
        yield
        return
    patch = pytest.MonkeyPatch()
    patch.setenv("EDGE_CACHE_DIR", str(tmp_path_factory.mktemp("edge-cache")))
    yield
    patch.undo()


@pytest.fixture(scope="session")
def face_model_path() -> Path:
    from edge.zoo import resolve_model

    return resolve_model(None)


@pytest.fixture(scope="session")
def astronaut():
    from edge.samples import load_sample

    return load_sample("astronaut")


@pytest.fixture(scope="session")
def face_model(face_model_path):
    from edge.model import Model

    with Model(face_model_path, backend="onnxruntime-cpu") as model:
        yield model


@pytest.fixture()
def colour_model_path(tmp_path: Path) -> Path:
    from tiny_models import make_colour_classifier

    return make_colour_classifier(tmp_path / "colour.onnx")


@pytest.fixture()
def mount_tmpfs(tmp_path: Path):
    """Mount small tmpfs folders for full-disk and read-only tests: ``mount_tmpfs("size=3m")`` -> the folder.

    Needs root on Linux; the test is skipped with the reason when the mount fails. Unmounted afterwards.
    """
    import os
    import subprocess

    mounted = []

    def mount(options: str, name: str = "tmpfs") -> Path:
        if sys.platform != "linux" or os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root on Linux")
        folder = tmp_path / name
        folder.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE,
                              universal_newlines=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode})")
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], check=False)
