"""``--precision fp16|int8`` on the CPU backends (edge/precision.py), with real ONNX Runtime and OpenCV.

The face detector is quantized into tmp folders; EDGE_CACHE_DIR points into tmp_path so nothing lands in
~/.cache.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from old_runtimes import ORT, opencv_loads_face_model, ort_quantizes

from edge.backends import create_backend
from edge.backends.onnxruntime import OnnxRuntimeCPUBackend
from edge.errors import EdgeError
from edge.model import Model
from edge.precision import file_to_run, runs_on_cpu
from edge.quantize import QuantizeOptions, file_precision, quantize_file, read_provenance

ROOT = Path(__file__).resolve().parents[2]
FACE = ROOT / "models" / "face_detection_short_range" / "face_detection_short_range.onnx"
ASTRONAUT = ROOT / "edge" / "data" / "samples" / "astronaut.jpg"


def box_iou(a, b) -> float:
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory) -> Path:
    """40 frames of demo:// and the shipped samples: what the camera would see."""
    from edge.sources import open_source

    folder = tmp_path_factory.mktemp("calib")
    with open_source("demo://?frames=40") as source:
        for frame in source:
            assert cv2.imwrite(str(folder / f"demo_{frame.index:03d}.jpg"), frame.image)
    for sample in (ROOT / "edge" / "data" / "samples").glob("*.jpg"):
        shutil.copy(str(sample), str(folder / sample.name))
    return folder


@pytest.fixture(scope="module")
def quantized(tmp_path_factory, calib_dir) -> dict:
    """The face detector at int8 for the CPU, int8 for TensorRT and fp16, written by edge.quantize."""
    folder = tmp_path_factory.mktemp("quantized")
    files = {}
    for key, options in (("int8-cpu", QuantizeOptions("int8", "cpu", calib_images=calib_dir)),
                         ("int8-tensorrt", QuantizeOptions("int8", "tensorrt", calib_images=calib_dir,
                                                           quantizer="onnxruntime")),
                         ("fp16", QuantizeOptions("fp16"))):
        files[key] = quantize_file(FACE, folder / f"face.{key}.onnx", options).path
    return files


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("EDGE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "quantized"


@pytest.fixture()
def model_dir(tmp_path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(str(FACE), str(folder / "face.onnx"))
    return folder


@pytest.fixture(scope="module")
def fp32_box():
    with Model(FACE, backend="onnxruntime-cpu") as model:
        found = model(cv2.imread(str(ASTRONAUT)))
    assert len(found.boxes_xyxy) == 1
    return found.boxes_xyxy[0].tolist()


def load(path, backend="onnxruntime-cpu", **options):
    """Model(path) with backend options; returns (model, report lines). The caller closes the model."""
    lines = []
    model = Model(path, backend=backend, backend_options=options, report=lines.append)
    return model, lines


def assert_finds_the_face(model, fp32_box):
    found = model(cv2.imread(str(ASTRONAUT)))
    assert len(found.boxes_xyxy) == 1
    assert box_iou(found.boxes_xyxy[0].tolist(), fp32_box) >= 0.9


@ort_quantizes
def test_a_file_already_at_the_precision_runs_as_it_is(quantized, cache, fp32_box):
    model, lines = load(quantized["int8-cpu"], precision="int8")
    with model:
        assert model.running.path == quantized["int8-cpu"] and model.running.origin == "model"
        assert model.backend.model_path == quantized["int8-cpu"]
        assert "running int8 file face.int8-cpu.onnx" in model.describe()
        assert_finds_the_face(model, fp32_box)
    assert not cache.exists() and not any("note:" in line for line in lines)


@ort_quantizes
def test_a_sibling_made_from_this_model_runs(quantized, model_dir, cache, fp32_box):
    shutil.copy(str(quantized["int8-cpu"]), str(model_dir / "face.int8.onnx"))
    model, lines = load(model_dir / "face.onnx", precision="int8")
    with model:
        assert model.backend.model_path == model_dir / "face.int8.onnx"
        assert model.running.origin == "sibling" and model.running.precision == "int8"
        assert "running int8 file face.int8.onnx" in model.describe()
        assert_finds_the_face(model, fp32_box)
    assert [line for line in lines if line.startswith("precision:")] == [
        f"precision: int8 runs {model_dir / 'face.int8.onnx'} (made by edge-export quantize from face.onnx)"]
    assert not cache.exists()


def _other_face(path: Path) -> None:
    """The face detector with other bytes (one more metadata entry): a sibling of the original is stale for it."""
    from edge.onnxfile import load_onnx, save_atomic, write_metadata

    onnx_model = load_onnx(FACE)
    write_metadata(onnx_model, {"retrained": "yes"})
    save_atomic(onnx_model, path)


@ort_quantizes
def test_a_sibling_made_from_other_bytes_is_not_used(quantized, model_dir, calib_dir, cache):
    _other_face(model_dir / "face.onnx")
    shutil.copy(str(quantized["int8-cpu"]), str(model_dir / "face.int8.onnx"))
    with pytest.raises(EdgeError, match="int8 on the CPU needs a quantized file"):
        load(model_dir / "face.onnx", precision="int8")
    model, lines = load(model_dir / "face.onnx", precision="int8", calib_images=str(calib_dir))
    with model:
        assert model.running.origin == "cache" and model.backend.model_path.parent == cache
    assert "note: face.int8.onnx was made from another face.onnx (its source sha256 differs); not used (re-run " \
           "edge-export quantize to refresh it)" in lines


@ort_quantizes
def test_calibration_images_quantize_once_then_the_cached_copy_runs(model_dir, calib_dir, cache, fp32_box):
    first, lines = load(model_dir / "face.onnx", backend="auto", precision="int8", calib_images=str(calib_dir))
    with first:
        made = first.running.path
        assert made.parent == cache and file_precision(made) == "int8"
        assert read_provenance(made)["target"] == "cpu"
        assert f"running int8 file {made}" in first.describe()
        assert_finds_the_face(first, fp32_box)
    assert any(line.startswith("int8 model: quantizing face.onnx (once") for line in lines)
    stamp = made.stat().st_mtime_ns

    second, again = load(model_dir / "face.onnx", backend="auto", precision="int8", calib_images=str(calib_dir))
    with second:
        assert second.running.path == made
    assert f"int8 model: cached {made}" in again and not any("quantizing" in line for line in again)
    assert made.stat().st_mtime_ns == stamp and list(cache.iterdir()) == [made]


def test_int8_without_a_quantized_file_or_calibration_is_a_one_line_error(model_dir, cache):
    with pytest.raises(EdgeError) as caught:
        load(model_dir / "face.onnx", precision="int8")
    message = str(caught.value)
    assert "\n" not in message and "face.onnx is fp32" in message
    assert f"edge-export quantize {model_dir / 'face.onnx'} --precision int8 --target cpu --calib-images DIR" \
        in message and "or pass --calib-images DIR" in message
    assert not cache.exists()


@pytest.mark.parametrize("backend, note", [
    ("onnxruntime-cpu", "note: ONNX Runtime's CPU has few fp16 kernels"),
    pytest.param("opencv", None, marks=opencv_loads_face_model),  # OpenCV's new engine runs the fp16 file
])
def test_fp16_is_converted_without_images(model_dir, cache, fp32_box, backend, note):
    model, lines = load(model_dir / "face.onnx", backend=backend, precision="fp16")
    with model:
        assert model.running.origin == "cache" and model.running.precision == "fp16"
        assert file_precision(model.backend.model_path) == "fp16"
        assert_finds_the_face(model, fp32_box)
    notes = [line for line in lines if line.startswith("note:")]
    assert [n.startswith(note) for n in notes] == [True] if note else notes == []


@ort_quantizes
def test_fp32_asked_of_a_reduced_file_runs_it_with_a_note(quantized):
    model, lines = load(quantized["int8-cpu"], precision="fp32")
    with model:
        assert model.backend.model_path == quantized["int8-cpu"] and "running int8 file" in model.describe()
    assert "note: --precision fp32, but face.int8-cpu.onnx is itself int8; it runs as it is (give the float32 " \
           "model it was made from for fp32)" in lines


def test_calibration_images_without_int8_are_said_unused(model_dir, calib_dir, cache):
    model, lines = load(model_dir / "face.onnx", precision=None, calib_images=str(calib_dir))
    with model:
        assert model.backend.model_path == model_dir / "face.onnx" and "running fp32 file face.onnx" in model.describe()
    assert any(line.startswith("note: --calib-images calibrates int8") for line in lines) and not cache.exists()


@ort_quantizes
def test_the_tensorrt_placement_on_onnxruntime_cpu_runs_with_a_note(quantized, fp32_box):
    model, lines = load(quantized["int8-tensorrt"], precision="int8")
    with model:
        assert_finds_the_face(model, fp32_box)
    assert any(line.startswith("note: face.int8-tensorrt.onnx is int8 placed for TensorRT") and "51 ms vs 17.9 ms"
               in line for line in lines)


@ort_quantizes
@pytest.mark.parametrize("key, runs", [("int8-cpu", True), ("fp16", True), ("int8-tensorrt", False)])
def test_opencv_runs_the_cpu_placement_and_fp16_and_refuses_the_tensorrt_one(quantized, fp32_box, key, runs):
    if runs:
        model, _ = load(quantized[key], backend="opencv", precision=key[:4])
        with model:
            assert_finds_the_face(model, fp32_box)
        return
    with pytest.raises(EdgeError, match=r"OpenCV DNN loads this int8 \(Q/DQ\) model but cannot run it .*"
                                        r"Fix: use --backend onnxruntime-cpu") as caught:
        load(quantized[key], backend="opencv", precision="int8")
    assert "\n" not in str(caught.value)


@ort_quantizes
@pytest.mark.parametrize("key, chosen", [("int8-tensorrt", None), ("int8-cpu", "opencv")])
def test_auto_skips_opencv_for_a_file_it_cannot_run(quantized, monkeypatch, key, chosen):
    # ONNX Runtime made unavailable (as on a board without it): auto is left with OpenCV
    monkeypatch.setattr(OnnxRuntimeCPUBackend, "unavailable_reason", classmethod(lambda cls: "not here (test)"))
    lines = []
    if chosen is None:
        with pytest.raises(EdgeError, match="no backend can run this model here"):
            create_backend(quantized[key], "auto", report=lines.append)
        assert any(line.startswith("backend opencv: skipped, OpenCV DNN loads this int8 (Q/DQ) model but cannot "
                                   "run it") for line in lines)
        return
    with create_backend(quantized[key], "auto", report=lines.append) as backend:
        assert backend.name == chosen


@pytest.mark.parametrize("backend, cpu", [("onnxruntime-cpu", True), ("opencv", True), ("tensorrt", False),
                                          ("onnxruntime-cuda", False), ("onnxruntime-tensorrt", False)])
def test_gpu_backends_keep_their_own_precision_handling(model_dir, backend, cpu):
    with Model(model_dir / "face.onnx", backend="onnxruntime-cpu") as model:
        config = model.config
    assert runs_on_cpu(backend) is cpu
    run = file_to_run(model_dir / "face.onnx", backend, {"precision": "fp32"}, config)
    assert (run is not None) is cpu


# --- the camera app, as a user runs it ---------------------------------------------------------------------------

def run_camera(*args: str, cache_dir: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), EDGE_CACHE_DIR=str(cache_dir))
    env.pop("DISPLAY", None)
    return subprocess.run([sys.executable, "-m", "edge.camera", *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=300, env=env, cwd=str(ROOT))


def faces(path: Path) -> list:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(records) == 1
    return [d["box_xyxy"] for d in records[0]["result"]["detections"]]


@ort_quantizes
@pytest.mark.skipif(not runs_on_cpu("auto"), reason="a GPU backend is available: auto builds a TensorRT engine")
def test_camera_int8_with_calibration_images_finds_the_fp32_face(tmp_path, calib_dir):
    fp32 = run_camera("--source", str(ASTRONAUT), "--headless", "--output", str(tmp_path / "fp32.jsonl"),
                      cache_dir=tmp_path / "cache")
    assert fp32.returncode == 0, fp32.stderr
    int8 = run_camera("--source", str(ASTRONAUT), "--headless", "--output", str(tmp_path / "out.jsonl"),
                      "--precision", "int8", "--calib-images", str(calib_dir), cache_dir=tmp_path / "cache")
    assert int8.returncode == 0, int8.stderr
    assert "backend onnxruntime-cpu: chosen" in int8.stderr and "int8 model: quantizing" in int8.stderr
    assert f"running int8 file {tmp_path / 'cache' / 'quantized'}" in int8.stderr
    [reference], [found] = faces(tmp_path / "fp32.jsonl"), faces(tmp_path / "out.jsonl")
    assert box_iou(found, reference) >= 0.9


def test_camera_int8_on_the_cpu_without_calibration_exits_with_one_line(tmp_path):
    done = run_camera("--headless", "--max-frames", "1", "--backend", "onnxruntime-cpu", "--precision", "int8",
                      "--source", "demo://?frames=1", "--output", "none", cache_dir=tmp_path / "cache")
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "int8 on the CPU needs a quantized file" in errors[0]
    assert "ignored here" not in done.stderr and not (tmp_path / "cache").exists()


@pytest.mark.skipif(ORT is None or ORT >= (1, 13), reason="ONNX Runtime 1.13+ quantizes")
def test_old_onnxruntime_refuses_to_quantize_in_one_line_and_names_the_way_out(model_dir, calib_dir, cache):
    with pytest.raises(EdgeError) as caught:
        load(model_dir / "face.onnx", precision="int8", calib_images=str(calib_dir))
    message = str(caught.value)
    assert "writes wrong int8 files" in message and "edge-export quantize" in message
    assert "\n" not in message and not cache.exists()
