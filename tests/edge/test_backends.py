"""Backends on real ONNX Runtime and real OpenCV: agreement, selection and input checks."""

import numpy as np
import pytest
from old_runtimes import opencv_loads_face_model

from edge.backends import AUTO_ORDER, BACKENDS, availability, backend_class, create_backend
from edge.errors import EdgeError


@pytest.fixture(scope="module")
def face_input(face_model_path):
    from edge.model import Model
    from edge.samples import load_sample

    with Model(face_model_path, backend="onnxruntime-cpu") as model:
        tensor, _ = model.preprocess(load_sample("astronaut"))
        return tensor.copy()


@opencv_loads_face_model
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
@pytest.mark.parametrize("name", ["onnxruntime-cpu", pytest.param("opencv", marks=opencv_loads_face_model)])
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


@pytest.mark.parametrize("op_type", ["NonZero", "NonMaxSuppression"])
def test_opencv_refuses_data_dependent_graphs_before_loading(tmp_path, op_type):
    """OpenCV DNN crashed the process (SIGFPE) on torchvision's SSDLite: such graphs are refused up front."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])
    out = helper.make_tensor_value_info("out", TensorProto.INT64, [None, 3])
    if op_type == "NonZero":
        nodes = [helper.make_node("Flatten", ["image"], ["flat"], axis=0),
                 helper.make_node("NonZero", ["flat"], ["nz"]),
                 helper.make_node("Transpose", ["nz"], ["out"])]
        out = helper.make_tensor_value_info("out", TensorProto.INT64, [None, 2])
    else:
        nodes = [helper.make_node("Reshape", ["image", "box_shape"], ["boxes"]),
                 helper.make_node("ReduceMean", ["boxes"], ["scores"], axes=[2], keepdims=1),
                 helper.make_node("Transpose", ["scores"], ["scores_t"], perm=[0, 2, 1]),
                 helper.make_node("NonMaxSuppression", ["boxes", "scores_t"], ["out"])]
    initializers = [helper.make_tensor("box_shape", TensorProto.INT64, [3], [1, 48, 4])]
    graph = helper.make_graph(nodes, "dynamic", [image], [out], initializers)
    path = tmp_path / f"{op_type}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    with pytest.raises(EdgeError) as error:
        create_backend(path, "opencv")
    assert "depend on the data" in error.value.what and op_type in error.value.what
    assert "--backend onnxruntime" in str(error.value) and "\n" not in str(error.value)
    with create_backend(path, "onnxruntime-cpu") as backend:  # the same file runs on ONNX Runtime
        assert "out" in backend.infer({"image": np.ones((1, 3, 8, 8), np.float32)})


def test_onnxruntime_run_failure_is_one_line(tmp_path):
    """A dynamic model run at a size its graph cannot take (a YOLO export at 330x330) is a user error."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Concat", ["image", "plane"], ["out"], axis=1)], "fixed_plane",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "height", "width"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, "height", "width"])],
        [numpy_helper.from_array(np.zeros((1, 1, 32, 32), np.float32), "plane")])
    path = tmp_path / "dynamic.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    with create_backend(path, "onnxruntime-cpu") as backend:
        assert backend.infer({"image": np.ones((1, 3, 32, 32), np.float32)})["out"].shape == (1, 4, 32, 32)
        with pytest.raises(EdgeError) as error:
            backend.infer({"image": np.ones((1, 3, 40, 40), np.float32)})
    message = str(error.value)
    assert "ONNX Runtime failed to run the model on image [1, 3, 40, 40]" in message
    assert "stride" in message and "\n" not in message


# issue 9 item 8: --threads 10000 started 10,002 threads; 0 and -3 were accepted silently
@pytest.mark.parametrize("threads, message", [
    (10000, "threads 10000 is outside 1..{max}: more than 4 threads per CPU core only add switching"),
    ("max+1", "threads {over} is outside 1..{max}"),
    (0, "threads 0 is outside 1..{max}: at least one thread runs the model"),
    (-3, "threads -3 is outside 1..{max}: at least one thread runs the model"),
    ("a", "threads must be a whole number, not 'a'"),
    ("4", "threads must be a whole number, not '4'"),
    (2.5, "threads must be a whole number, not 2.5"),
    (True, "threads must be a whole number, not True"),
])
def test_bad_thread_counts_are_one_line_errors(face_model_path, threads, message):
    from edge.backends.base import check_threads, max_threads

    highest = max_threads()
    threads = highest + 1 if threads == "max+1" else threads
    expected = message.format(max=highest, over=highest + 1)
    for attempt in (lambda: check_threads(threads),
                    lambda: create_backend(face_model_path, "onnxruntime-cpu", threads=threads),
                    lambda: create_backend(face_model_path, "auto", threads=threads)):
        with pytest.raises(EdgeError) as excinfo:
            attempt()
        text = str(excinfo.value)
        assert text.startswith("--threads | ") and expected in text and "\n" not in text
        assert f"Fix: pass --threads 1..{highest} (4 per CPU core" in text


@pytest.mark.parametrize("threads, expected", [(None, None), (1, 1), (np.int64(2), 2), ("max", "max")])
def test_good_thread_counts_pass(threads, expected):
    from edge.backends.base import check_threads, max_threads

    if threads == "max":
        threads = expected = max_threads()
    assert check_threads(threads) == expected
    assert max_threads() == 4 * (__import__("os").cpu_count() or 1)
