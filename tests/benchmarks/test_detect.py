"""The end-to-end detector benchmark: its three paths must find the same boxes (never its timings)."""

import numpy as np
import pytest

from benchmarks.detect import build_paths, default_frame, main, measure, report


@pytest.fixture(scope="module")
def yolo_onnx(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("ultralytics")
    from ultralytics_models import export_yolo

    return export_yolo(tmp_path_factory.mktemp("yolo_bench"), "yolo11n", imgsz=320)


def _sorted(rows: np.ndarray) -> np.ndarray:
    return rows[np.lexsort((rows[:, 0], rows[:, 1], -rows[:, 4]))]


@pytest.mark.parametrize("sample, threshold", [("coffee", 0.02), ("astronaut", 0.05)])
def test_paths_agree_box_for_box(yolo_onnx, sample, threshold):
    from edge.model import Model
    from edge.samples import load_sample

    with Model(yolo_onnx, backend="onnxruntime-cpu", score_threshold=threshold) as model:
        paths = build_paths(model, load_sample(sample))
        assert set(paths) == {"edge", "bare + numpy", "bare + ultralytics"}
        results = {name: _sorted(np.asarray(fn(), np.float64)) for name, fn in paths.items()}
    edge = results["edge"]
    assert len(edge) >= 5, "the seeded model should find boxes at this threshold"
    # The hand-written path undoes the letterbox with 1/ratio, edge and Ultralytics with the real
    # rounded resize (213 rows for 400 * 320/600 = 213.3): up to ~0.6 px apart at the far edge.
    tolerance_px = {"edge": 0.0, "bare + ultralytics": 0.5, "bare + numpy": 1.0}
    for name, rows in results.items():
        assert rows.shape == edge.shape, name
        np.testing.assert_allclose(rows[:, :4], edge[:, :4], atol=tolerance_px[name], err_msg=name)
        np.testing.assert_allclose(rows[:, 4], edge[:, 4], atol=1e-4, err_msg=name)
        np.testing.assert_array_equal(rows[:, 5], edge[:, 5], err_msg=name)


def test_zoo_detector_agrees_with_ultralytics_post_processing():
    """The trained zoo detector through edge and through Ultralytics' own NMS on the same raw output."""
    pytest.importorskip("torch")
    pytest.importorskip("ultralytics")
    from edge.model import Model

    with Model("digit_detector", backend="onnxruntime-cpu", score_threshold=0.05) as model:
        paths = build_paths(model, default_frame())
        results = {name: _sorted(np.asarray(fn(), np.float64)) for name, fn in paths.items()}
    edge, reference = results["edge"], results["bare + ultralytics"]
    assert len(edge) >= 3 and edge.shape == reference.shape
    np.testing.assert_allclose(reference[:, :4], edge[:, :4], atol=0.5)
    np.testing.assert_allclose(reference[:, 4], edge[:, 4], atol=1e-4)
    np.testing.assert_array_equal(reference[:, 5], edge[:, 5])


def test_measure_row_and_report(yolo_onnx):
    from edge.samples import load_sample

    row = measure(str(yolo_onnx), count=3, frame_bgr=load_sample("coffee"), threshold=0.02)
    assert row["input_wh"] == [320, 320] and row["threshold"] == 0.02
    assert len(set(row["boxes_found"].values())) == 1 and row["boxes_found"]["edge"] > 0
    assert set(row["edge_minus_ms"]) == {"bare + numpy", "bare + ultralytics"}
    assert "| bare + numpy |" in report(row)


def test_default_frame_is_camera_sized_with_digits():
    frame = default_frame()
    assert frame.shape == (720, 1280, 3) and frame.dtype == np.uint8


def test_refuses_a_model_without_a_yolo_decoder():
    from edge.errors import EdgeError
    from edge.model import Model

    with Model(None, backend="onnxruntime-cpu") as model, pytest.raises(EdgeError, match="decoder is 'ssd_anchors'"):
        build_paths(model, np.zeros((64, 64, 3), np.uint8))


@pytest.mark.parametrize("argv, message", [
    (["--model", "face_detection_short_range"], "decoder is 'ssd_anchors'"),
    (["--model", "/nonexistent/yolo.onnx"], "model file not found"),
    (["--count", "0"], "--count must be at least 1"),
    (["--threshold", "2"], "threshold 2"),
    (["--source", "/nonexistent.jpg"], "cannot read this image"),
])
def test_cli_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err and "Fix:" in err
