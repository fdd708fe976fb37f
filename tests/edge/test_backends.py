"""Backends on real ONNX Runtime and real OpenCV: agreement, selection and input checks."""

from __future__ import annotations

import numpy as np
import pytest

from edge.backends import AUTO_ORDER, BACKENDS, availability, backend_class, create_backend
from edge.errors import EdgeError


@pytest.fixture(scope="module")
def face_input(face_model_path):
    from edge.model import Model
    from edge.samples import load_sample

    with Model(face_model_path, backend="onnxruntime-cpu") as model:
        tensor, _ = model.preprocess(load_sample("astronaut"))
        return tensor.copy()


def test_onnxruntime_and_opencv_agree_on_raw_outputs(face_model_path, face_input):
    with create_backend(face_model_path, "onnxruntime-cpu") as ort_backend, \
            create_backend(face_model_path, "opencv") as cv_backend:
        feeds = {"input": face_input}
        reference, other = ort_backend.infer(feeds), cv_backend.infer(feeds)
    assert set(reference) == set(other) == {"regressors", "classificators"}
    for name in reference:
        assert reference[name].shape == other[name].shape
        scale = np.abs(reference[name]).max()
        # relative to the output's range: element-wise ratios blow up near zero
        assert np.abs(reference[name] - other[name]).max() <= 1e-4 * scale, name


def test_auto_reports_one_line_per_candidate_until_chosen(face_model_path):
    lines = []
    with create_backend(face_model_path, "auto", report=lines.append) as backend:
        chosen = backend.name
    assert lines[-1].startswith(f"backend {chosen}: chosen")
    tried = [line.split(":")[0].replace("backend ", "") for line in lines]
    assert tried == list(AUTO_ORDER[: AUTO_ORDER.index(chosen) + 1])
    assert all("skipped" in line for line in lines[:-1])


def test_requested_backend_that_cannot_run_is_an_error_not_a_fallback(face_model_path):
    unavailable = [name for name, reason in availability() if reason is not None]
    if not unavailable:
        pytest.skip("every backend runs on this machine")
    with pytest.raises(EdgeError, match="cannot run here") as excinfo:
        create_backend(face_model_path, unavailable[0])
    assert "Fix:" in str(excinfo.value)


def test_unknown_backend_lists_the_known_ones():
    with pytest.raises(EdgeError) as excinfo:
        backend_class("tensorflow")
    for name in BACKENDS:
        assert name in str(excinfo.value)


@pytest.mark.parametrize("feeds, expected", [
    ({}, "got nothing"),
    ({"input": np.zeros((1, 3, 128, 128), np.float64)}, "float64"),
    ({"input": np.zeros((1, 3, 64, 64), np.float32)}, "64, 64"),
    ({"image": np.zeros((1, 3, 128, 128), np.float32)}, "image"),
])
@pytest.mark.parametrize("name", ["onnxruntime-cpu", "opencv"])
def test_inputs_are_checked_at_the_boundary(face_model_path, name, feeds, expected):
    with create_backend(face_model_path, name) as backend:
        with pytest.raises(EdgeError, match="inputs do not match") as excinfo:
            backend.infer(feeds)
    assert expected in str(excinfo.value)


def test_thread_count_reaches_onnxruntime(face_model_path, face_input):
    with create_backend(face_model_path, "onnxruntime-cpu", threads=1) as backend:
        assert backend._session_options().intra_op_num_threads == 1
        assert backend.infer({"input": face_input})["regressors"].shape == (1, 896, 16)
        assert backend.last_infer_ms > 0


def test_close_is_idempotent_and_prepare_reopens(face_model_path, face_input):
    backend = create_backend(face_model_path, "onnxruntime-cpu")
    backend.close()
    backend.close()
    assert backend.infer({"input": face_input})["classificators"].shape == (1, 896, 1)
    backend.close()


def test_corrupt_model_is_one_line_error_from_the_backend(tmp_path, face_model_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(face_model_path.read_bytes()[:1000])
    with pytest.raises(EdgeError) as excinfo:
        create_backend(broken, "onnxruntime-cpu")
    assert "\n" not in str(excinfo.value)
