"""The triton backend against a real KServe v2 server (KServe's ModelServer over ONNX Runtime) on 127.0.0.1.

The repository entry is written by ``python -m export triton`` from the shipped face detector; the
server (tests/edge/backends/kserve_server.py) serves it over HTTP and gRPC, and the results must equal
the local onnxruntime-cpu backend's.
"""

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Optional

import numpy as np
import pytest

from edge.backends import AUTO_ORDER, BACKENDS
from edge.errors import EdgeError, MissingDependency
from edge.model import Model

# Looked up, not imported: kserve's gRPC messages share the 'inference' protobuf package with tritonclient's,
# so one process cannot import both (the server runs in its own).
if importlib.util.find_spec("kserve") is None or importlib.util.find_spec("onnxruntime") is None:
    pytest.skip("the test server needs KServe's model server and ONNX Runtime: pip install kserve onnxruntime",
                allow_module_level=True)

ROOT = Path(__file__).resolve().parents[3]
SERVER = Path(__file__).with_name("kserve_server.py")
FACE = "face_detection_short_range"
START_TIMEOUT_S = 120


def has_grpc_client() -> bool:
    try:
        import tritonclient.grpc  # noqa: F401
    except ImportError:
        return False
    return True


needs_grpc = pytest.mark.skipif(not has_grpc_client(),
                                reason="gRPC needs tritonclient: pip install 'tritonclient[grpc]'")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """A kserve_server.py process on free ports; stop() kills it."""

    def __init__(self, repository: Path, log: Path, http_port: Optional[int] = None) -> None:
        self.http_port, self.grpc_port = http_port or free_port(), free_port()
        self.log = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, str(SERVER), str(repository), "--http-port", str(self.http_port),
                 "--grpc-port", str(self.grpc_port)], stdout=out, stderr=subprocess.STDOUT, cwd=str(ROOT))
        self.wait_ready()

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc(self) -> str:
        return f"grpc://127.0.0.1:{self.grpc_port}"

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the test server exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.http + "/v2/health/ready", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"the test server did not start in {START_TIMEOUT_S} s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)


def export_entry(model: Path, repository: Path, *extra: str) -> Path:
    done = subprocess.run([sys.executable, "-m", "export", "triton", str(model), "--repository", str(repository),
                           *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          cwd=str(ROOT), env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300)
    assert done.returncode == 0, done.stderr
    return repository / (extra[extra.index("--name") + 1] if "--name" in extra else model.stem)


def write_small_face(path: Path) -> Path:
    """A model with the face detector's tensor names but a 64x64 input: what a wrongly loaded entry serves."""
    import onnx
    from onnx import TensorProto, helper

    image = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 64, 64])
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 3, 64, 64])
               for name in ("regressors", "classificators")]
    nodes = [helper.make_node("Identity", ["input"], [name]) for name in ("regressors", "classificators")]
    model = helper.make_model(helper.make_graph(nodes, "small", [image], outputs),
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def entry(face_model_path, tmp_path_factory) -> Path:
    """The face detector's repository entry, written by edge-export triton (the client's copy)."""
    return export_entry(face_model_path, tmp_path_factory.mktemp("client") / "repository")


@pytest.fixture(scope="module")
def server_repository(face_model_path, tmp_path_factory) -> Path:
    """The server's repository: the face entry, and 'small_face' (same names, another input size)."""
    repository = tmp_path_factory.mktemp("server") / "repository"
    export_entry(face_model_path, repository)
    small = write_small_face(tmp_path_factory.mktemp("small") / "small.onnx")
    (repository / "small_face" / "1").mkdir(parents=True)
    (small).replace(repository / "small_face" / "1" / "model.onnx")
    return repository


@pytest.fixture(scope="module")
def server(server_repository, tmp_path_factory):
    running = Server(server_repository, tmp_path_factory.mktemp("log") / "server.log")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def reference(face_model_path):
    with Model(face_model_path, backend="onnxruntime-cpu") as model:
        yield model


def urls(server):
    """(transport, backend options) for every transport this machine can test."""
    found = [("http binary", {"triton_url": server.http, "triton_binary": True}),
             ("http json", {"triton_url": server.http, "triton_binary": False}),
             ("http auto", {"triton_url": server.http})]
    if has_grpc_client():
        found.append(("grpc", {"triton_url": server.grpc}))
    return found


def test_triton_is_registered_but_never_chosen_by_auto():
    assert "triton" in BACKENDS and "triton" not in AUTO_ORDER
    assert BACKENDS["triton"].unavailable_reason() is None  # HTTP needs only the standard library


def test_raw_outputs_equal_local_onnxruntime(server, entry, reference, astronaut):
    tensor, _ = reference.preprocess(astronaut)
    tensor = tensor.copy()
    expected = reference.infer(tensor)
    for transport, options in urls(server):
        with Model(entry, backend="triton", backend_options=options) as remote:
            got = remote.infer(tensor)
            assert set(got) == set(expected), transport
            for name, array in expected.items():
                assert got[name].shape == array.shape and got[name].dtype == array.dtype, (transport, name)
                assert np.abs(got[name] - array).max() <= 1e-4, (transport, name)
            backend = remote.backend
            assert 0 < backend.last_network_ms <= backend.last_infer_ms, transport
            assert "127.0.0.1" in remote.describe() and FACE in remote.describe()


def same_detections(got, expected, where):
    assert len(got) == len(expected), where
    assert np.abs(got.boxes_xyxy - expected.boxes_xyxy).max(initial=0) <= 1e-4, where
    assert np.abs(got.scores - expected.scores).max(initial=0) <= 1e-4, where


def test_decoded_boxes_equal_local_on_the_sample_and_demo_frames(server, entry, reference, astronaut):
    from edge.sources import open_source

    with open_source("demo://?frames=12") as source:
        frames = [astronaut] + [frame.image.copy() for frame in source]
    expected = [reference(frame) for frame in frames]
    assert sum(len(d) for d in expected) >= 10  # the face is found: the comparison has boxes to compare
    for transport, options in urls(server):
        with Model(entry, backend="triton", backend_options=options) as remote:
            for index, frame in enumerate(frames):
                same_detections(remote(frame), expected[index], (transport, index))


def test_the_onnx_inside_the_entry_and_its_edge_config_json(server, entry, tmp_path, astronaut):
    """The model name comes from the entry folder; the config from edge_config.json, not the ONNX's own."""
    import shutil

    copy = tmp_path / "repository" / FACE
    shutil.copytree(str(entry), str(copy))
    config = json.loads((copy / "edge_config.json").read_text())
    config["labels"] = ["person's face"]
    (copy / "edge_config.json").write_text(json.dumps(config))
    with Model(copy / "1" / "model.onnx", backend="triton", backend_options={"triton_url": server.http}) as remote:
        assert remote.backend.model == FACE and remote.backend.max_batch_size == 0  # a fixed batch of 1
        assert remote(astronaut).labels == ["person's face"]


def one_line_error(entry, options, **kwargs) -> str:
    with pytest.raises(EdgeError) as caught:
        Model(entry, backend="triton", backend_options=options, **kwargs).close()
    text = str(caught.value)
    assert "\n" not in text and "Fix:" in text, text
    return text


# (case, options from the server's URLs, fragments of the one-line error)
ERRORS = [
    ("unknown model over http", lambda s: {"triton_url": s.http, "triton_model": "nope"},
     ["has no ready model 'nope'", f"models there: {FACE}, small_face"]),
    ("input shape differs over http", lambda s: {"triton_url": s.http, "triton_model": "small_face"},
     ["input 'input' is [1, 3, 64, 64] FP32 on the server but [1, 3, 128, 128] float32"]),
    ("no scheme", lambda s: {"triton_url": f"127.0.0.1:{s.http_port}"}, ["is not a server address"]),
    ("no url", lambda s: {}, ["needs the server's address", "--triton-url http://HOST:8000"]),
]
GRPC_ERRORS = [
    ("unknown model over grpc", lambda s: {"triton_url": s.grpc, "triton_model": "nope"},
     ["has no ready model 'nope'"]),
    ("input shape differs over grpc", lambda s: {"triton_url": s.grpc, "triton_model": "small_face"},
     ["input 'input' is [1, 3, 64, 64] FP32 on the server"]),
]


@pytest.mark.parametrize("case, options, fragments", ERRORS + [pytest.param(*row, marks=needs_grpc)
                                                               for row in GRPC_ERRORS], ids=lambda v: v if
                         isinstance(v, str) else "")
def test_one_line_errors(server, entry, case, options, fragments):
    text = one_line_error(entry, options(server))
    for fragment in fragments:
        assert fragment in text, (case, text)


@pytest.mark.parametrize("scheme", ["http", pytest.param("grpc", marks=needs_grpc)])
def test_unreachable_server_names_the_url(entry, scheme):
    url = f"{scheme}://127.0.0.1:{free_port()}"
    text = one_line_error(entry, {"triton_url": url})
    assert f"cannot reach the inference server at {url}" in text


def test_grpc_without_tritonclient_names_the_pip_line(entry, monkeypatch):
    monkeypatch.setitem(sys.modules, "tritonclient.grpc", None)  # what a missing package looks like to import
    with pytest.raises(MissingDependency) as caught:
        Model(entry, backend="triton", backend_options={"triton_url": "grpc://127.0.0.1:1"}).close()
    assert "pip install 'tritonclient[grpc]'" in str(caught.value)


def test_a_restarted_server_is_reconnected(server_repository, entry, reference, astronaut, tmp_path):
    """A kept-alive connection closed by a server restart is replaced once, silently."""
    tensor, _ = reference.preprocess(astronaut)
    tensor = tensor.copy()
    servers = [Server(server_repository, tmp_path / "first.log")]
    try:
        with Model(entry, backend="triton", backend_options={"triton_url": servers[0].http}) as remote:
            remote.infer(tensor)
            servers[0].stop()
            servers.append(Server(server_repository, tmp_path / "second.log", http_port=servers[0].http_port))
            got = remote.infer(tensor)
        assert np.abs(got["classificators"] - reference.infer(tensor)["classificators"]).max() <= 1e-4
    finally:
        for running in servers:
            running.stop()


@pytest.mark.parametrize("transport", ["http", pytest.param("grpc", marks=needs_grpc)])
def test_server_killed_mid_run_stops_the_pipeline_with_one_line_and_files_finalised(
        server_repository, entry, tmp_path, transport):
    from edge.pipeline import Pipeline
    from edge.sinks import open_sinks
    from edge.sources import open_source

    doomed = Server(server_repository, tmp_path / "server.log")
    output = tmp_path / "out.jsonl"
    try:
        url = doomed.http if transport == "http" else doomed.grpc
        with Model(entry, backend="triton", backend_options={"triton_url": url}) as remote, \
                open_source("demo://?frames=200") as source:
            sinks = open_sinks([str(output)], headless=True, fps=None)

            def kill_at_20(summary):
                if summary.frames == 20:
                    doomed.stop()

            pipeline = Pipeline(remote, source, sinks, progress=kill_at_20)
            with pytest.raises(EdgeError) as caught:
                pipeline.run()
    finally:
        doomed.stop()
    text = str(caught.value)
    assert "\n" not in text and f"lost the inference server at {url}" in text, text
    lines = output.read_text().splitlines()
    assert 20 <= len(lines) < 200
    records = [json.loads(line) for line in lines]
    assert [r["frame"] for r in records] == sorted(r["frame"] for r in records)
    assert pipeline.summary.times.percentiles("infer") is not None


def camera_has_triton_flags() -> bool:
    done = subprocess.run([sys.executable, "-m", "edge.camera", "--help"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, cwd=str(ROOT),
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    return "--triton-url" in done.stdout


def test_camera_app_exits_with_one_line_when_the_server_dies(server_repository, entry, tmp_path):
    if not camera_has_triton_flags():
        pytest.skip("edge.camera has no --triton-url yet")
    doomed = Server(server_repository, tmp_path / "server.log")
    output = tmp_path / "out.jsonl"
    try:
        camera = subprocess.Popen(
            [sys.executable, "-m", "edge.camera", "--model", str(entry), "--source", "demo://?frames=400",
             "--headless", "--output", str(output), "--backend", "triton", "--triton-url", doomed.http,
             "--triton-model", FACE, "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            universal_newlines=True, cwd=str(ROOT), env=dict(os.environ, PYTHONPATH=str(ROOT)))
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and camera.poll() is None:
            if output.is_file() and output.read_text().count("\n") >= 20:
                break
            time.sleep(0.05)
        doomed.stop()
        _, stderr = camera.communicate(timeout=120)
    finally:
        doomed.stop()
    assert camera.returncode in (2, 3), stderr
    errors = [line for line in stderr.splitlines() if "lost the inference server" in line]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    lines = output.read_text().splitlines()
    assert 20 <= len(lines) < 400
    for line in lines:
        json.loads(line)
