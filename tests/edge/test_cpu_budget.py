"""The pipeline's CPU budget (threads chosen, spinning, OpenCV's pool) and its overlap (preprocessing on the
capture thread into a ring of buffers, no copies that are not needed). Behaviour only, never times."""

import json
import os
import threading
import time
import tracemalloc
from typing import Any, List

import numpy as np
import pytest

import edge.cpu_budget as cpu_budget_module
from edge.backends.onnxruntime import SPINNING_KEY, OnnxRuntimeCPUBackend, set_spinning
from edge.config import InputSpec, PreprocessSpec
from edge.cpu_budget import CpuBudget, PreprocessPlacement, cpu_budget, set_opencv_threads, usable_cores
from edge.errors import EdgeError
from edge.model import Model
from edge.pipeline import Pipeline, ring_preprocessor
from edge.preprocess import BufferRing, Preprocessor
from edge.results import Frame
from edge.sinks.base import Sink

cv2 = pytest.importorskip("cv2")


# ------------------------------------------------------------------------------------ the budget
@pytest.mark.parametrize("cores, streams, threads, inference, stage_cores, opencv, line", [
    (2, 1, None, 1, 1, 1, "threads: inference 1 of 2 cores (capture, main: 1 shared); spinning off; OpenCV 1"),
    (1, 1, None, 1, 1, 1, "threads: inference 1 of 1 cores (capture, main: 1 shared); spinning off; OpenCV 1"),
    (4, 1, None, 2, 2, 2, "threads: inference 2 of 4 cores (capture, main: 2); spinning off; OpenCV 2"),
    (8, 1, None, 6, 2, 2, "threads: inference 6 of 8 cores (capture, main: 2); spinning off; OpenCV 2"),
    (4, 3, None, 1, 3, 3, "threads: inference 1 of 4 cores (3 capture, main: 3 shared); spinning off; OpenCV 3"),
    (8, 3, None, 4, 4, 4, "threads: inference 4 of 8 cores (3 capture, main: 4); spinning off; OpenCV 4"),
    (2, 1, 4, 4, 1, 1, "threads: inference 4 (--threads) of 2 cores (capture, main: 1 shared); spinning off; "
                       "OpenCV 1"),
    (4, 1, 1, 1, 3, 3, "threads: inference 1 (--threads) of 4 cores (capture, main: 3); spinning off; OpenCV 3"),
])
def test_inference_gets_the_cores_the_pipeline_threads_leave(cores, streams, threads, inference, stage_cores,
                                                              opencv, line):
    budget = cpu_budget(streams=streams, threads=threads, cores=cores)
    assert (budget.inference, budget.stage_cores, budget.opencv) == (inference, stage_cores, opencv)
    assert budget.text() == line
    assert budget.stages.count("capture") == streams and budget.stages[-1] == "main"
    assert budget.backend_options() == {"spinning": False}
    assert budget.to_dict()["chosen_by"] == ("--threads" if threads else "budget")


@pytest.mark.parametrize("threads, message", [(0, "outside 1.."), (-2, "outside 1.."), (10 ** 6, "outside 1.."),
                                              (2.5, "whole number"), (True, "whole number")])
def test_a_bad_thread_count_is_refused_like_everywhere_else(threads, message):
    with pytest.raises(EdgeError, match=message) as caught:
        cpu_budget(threads=threads, cores=2)
    assert caught.value.where == "--threads"


def test_usable_cores_follow_the_affinity_mask_else_the_core_count(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert usable_cores() == 1
    assert cpu_budget().cores == 1
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert usable_cores() == 6 and cpu_budget().inference == 4


def test_opencv_backend_infers_on_opencv_pool():
    budget = cpu_budget(cores=8)
    assert budget.for_backend("opencv").opencv == budget.inference == 6
    assert budget.for_backend("onnxruntime-cpu") is budget


# ------------------------------------------------------------------------------------ ONNX Runtime
def test_spinning_off_and_the_budget_threads_reach_the_session(face_model_path):
    budget = cpu_budget(cores=4)
    with Model(face_model_path, backend="onnxruntime-cpu", threads=budget.inference,
               backend_options=budget.backend_options()) as model:
        options = model.backend._session.get_session_options()
        assert options.intra_op_num_threads == 2
        assert options.get_session_config_entry(SPINNING_KEY) == "0"


def test_spinning_stays_as_ort_has_it_outside_pipelines(face_model_path):
    backend = OnnxRuntimeCPUBackend(face_model_path)
    options = backend._session_options()
    with pytest.raises(Exception):  # noqa: B017 - ONNX Runtime raises its own type for a key never set
        options.get_session_config_entry(SPINNING_KEY)
    assert options.intra_op_num_threads == 0


def test_an_ort_without_session_config_entries_is_left_alone():
    class OldOptions:  # an ONNX Runtime from before add_session_config_entry
        intra_op_num_threads = 0

    assert set_spinning(OldOptions(), False) is False
    seen = {}

    class NewOptions:
        def add_session_config_entry(self, key, value):
            seen[key] = value

    assert set_spinning(NewOptions(), False) is True and seen == {SPINNING_KEY: "0"}


# ------------------------------------------------------------------------------------ the camera app
@pytest.mark.parametrize("extra, inference, chosen_by", [
    ([], max(1, usable_cores() - 2), "measured"),
    (["--threads", "3"], 3, "--threads"),
])
def test_the_app_prints_the_choice_once_and_records_it(tmp_path, capsys, monkeypatch, extra, inference, chosen_by):
    from edge.camera import main

    monkeypatch.setenv("EDGE_CACHE_DIR", str(tmp_path / "cache"))  # measured now, not by an earlier test

    summary = tmp_path / "s.json"
    code = main(["--source", "demo://", "--headless", "--output", "none", "--max-frames", "3",
                 "--summary-json", str(summary)] + extra)
    assert code == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("threads:")]
    assert len(lines) == 1 and lines[0].startswith(f"threads: inference {inference}")
    threads = json.loads(summary.read_text())["threads"]
    assert threads["inference"] == inference and threads["chosen_by"] == chosen_by
    assert threads["spinning"] is False and threads["stages"] == ["capture", "main"]


# ------------------------------------------------------------------------------------ overlap
class Keep(Sink):
    """Keeps each frame object it is given, and OpenCV's pool size while it writes."""

    def __init__(self, needs_annotated: bool = False) -> None:
        super().__init__()
        self.needs_annotated = needs_annotated
        self.needs_record = False
        self.frames: List[Any] = []
        self.opencv_threads: List[int] = []

    def _write(self, frame, annotated, record) -> bool:
        self.frames.append(frame)
        self.opencv_threads.append(cv2.getNumThreads())
        return True


class CountingImage(np.ndarray):
    """A frame's pixels that count how often they are copied."""

    copies = 0

    def copy(self, *args: Any, **kwargs: Any) -> np.ndarray:
        type(self).copies += 1
        return super().copy(*args, **kwargs)


class Recording(Preprocessor):
    """The model's preprocessor, noting the thread and the buffer of every call."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.calls: List[tuple] = []

    def __call__(self, image_bgr, out=None):
        self.calls.append((threading.current_thread().name, out, image_bgr))
        return super().__call__(image_bgr, out)


def _frames(count: int, size_wh=(320, 240)) -> List[Frame]:
    """Frames of distinct flat colours, so a tensor tells which frame it came from."""
    frames = []
    for index in range(count):
        image = np.full((size_wh[1], size_wh[0], 3), (index * 37) % 256, np.uint8).view(CountingImage)
        frames.append(Frame(image, index, time.perf_counter(), "memory://"))
    return frames


@pytest.fixture()
def recorded_model(face_model_path):
    with Model(face_model_path, backend="onnxruntime-cpu", threads=1, backend_options={"spinning": False}) as model:
        model.preprocessor = Recording(model.config.input, model.config.preprocess)
        yield model


def test_frames_are_preprocessed_on_the_capture_thread_into_a_ring(recorded_model, monkeypatch):
    model = recorded_model
    reference = Preprocessor(model.config.input, model.config.preprocess)
    frames = _frames(24)
    expected = {id(f.image): reference(f.image)[0].copy() for f in frames}
    seen = []
    infer = model.infer

    def slow_infer(tensor):  # reads the tensor before and after a pause: a reused buffer would change under it
        before = tensor.copy()
        time.sleep(0.002)
        seen.append((tensor, before, np.array_equal(before, tensor)))
        return infer(tensor)

    monkeypatch.setattr(model, "infer", slow_infer)
    pipeline = Pipeline(model, frames, [Keep()])
    summary = pipeline.run()
    assert summary.frames == 24
    calls = model.preprocessor.calls
    assert [name for name, _, _ in calls] == ["edge-capture"] * 24
    ring = pipeline.ring.buffers
    assert len(ring) == Pipeline.QUEUE_FRAMES + 1
    assert all(any(out is buffer for buffer in ring) for _, out, _ in calls)  # the ring, reused, none allocated
    assert all(any(tensor is buffer for buffer in ring) for tensor, _, _ in seen)
    assert all(unchanged for _, _, unchanged in seen)
    for (_, _, image), (_, before, _) in zip(calls, seen):  # frame N's tensor holds frame N's pixels
        assert np.array_equal(before, expected[id(image)])
    assert pipeline.ring.free == len(ring)


@pytest.mark.parametrize("needs_annotated, copies", [(False, 0), (True, 1)])
def test_a_frame_is_copied_only_to_draw_on(recorded_model, needs_annotated, copies):
    from edge.overlay import Annotator

    frames = _frames(12)
    CountingImage.copies = 0
    sink = Keep(needs_annotated)
    Pipeline(recorded_model, frames, [sink], annotator=Annotator()).run()
    assert CountingImage.copies == copies * 12
    assert [frame.image for frame in sink.frames] == [frame.image for frame in frames]  # the same arrays
    assert all(image is frame.image for (_, _, image), frame in zip(recorded_model.preprocessor.calls, frames))


def test_a_cascade_is_preprocessed_on_the_inference_thread(face_model):
    class Stateful:  # keeps the frame from preprocess for decode, as a Cascade does
        preprocessor = face_model.preprocessor

        def preprocess(self, image):
            return face_model.preprocess(image)

    assert ring_preprocessor(Stateful()) is None
    assert ring_preprocessor(face_model) is face_model.preprocessor
    assert Pipeline(Stateful(), [], []).ring is None


def test_the_budget_sizes_opencv_for_the_run_and_restores_it(recorded_model):
    before = set_opencv_threads(3)
    try:
        sink = Keep()
        budget = CpuBudget(cores=2, inference=1, stages=("capture", "main"), opencv=1)
        summary = Pipeline(recorded_model, _frames(4), [sink], budget=budget).run()
        assert sink.opencv_threads == [1] * 4
        assert cv2.getNumThreads() == 3
        assert summary.to_dict()["threads"] == budget.to_dict()
        cpu = summary.to_dict()
        assert cpu["cpu_s"] > 0 and cpu["cpu_ms_per_frame"] == pytest.approx(1e3 * summary.cpu_s / 4, abs=1e-3)
        assert cpu["cpu_busy"] == pytest.approx(summary.cpu_s / (summary.elapsed_s * 2), abs=1e-3)
    finally:
        set_opencv_threads(before)
    assert "threads" not in Pipeline(recorded_model, _frames(1), [Keep()]).run().to_dict()


def test_a_stop_while_the_ring_is_empty_ends_the_run(recorded_model, monkeypatch):
    infer = recorded_model.infer
    monkeypatch.setattr(recorded_model, "infer", lambda tensor: (time.sleep(0.01), infer(tensor))[1])
    summary = Pipeline(recorded_model, _frames(40), [Keep()], max_frames=2).run()
    assert summary.frames == 2 and summary.ended == "frame limit"


# ------------------------------------------------------------------------------------ buffers
@pytest.mark.parametrize("layout, color, channels", [("NCHW", "RGB", 3), ("NHWC", "RGB", 3), ("NHWC", "BGR", 3),
                                                     ("NCHW", "RGB", 1)])
def test_preprocessing_into_a_buffer_allocates_nothing_per_frame(layout, color, channels):
    shape = [1, channels, 192, 256] if layout == "NCHW" else [1, 192, 256, channels]
    spec = InputSpec(name="x", shape=shape, layout=layout, dtype="float32")
    preprocessor = Preprocessor(spec, PreprocessSpec(color=color, mean=(0.5,) * 3, std=(0.25,) * 3, scale=1 / 255,
                                                     resize="letterbox"))
    buffer = preprocessor.new_buffer()
    frames = [np.full((720, 1280, 3), value, np.uint8) for value in (10, 200)]
    preprocessor(frames[0], buffer)  # the first call plans the resize for this frame size
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for index in range(20):
            tensor, _ = preprocessor(frames[index % 2], buffer)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert tensor is buffer
    # not one tensor-sized (let alone frame-sized) temporary in 20 frames; numpy's broadcasting buffer (8192
    # elements, 32 KiB whatever the sizes) is all there is
    assert peak < buffer.nbytes // 8
    assert np.array_equal(buffer, preprocessor(frames[1])[0])


def test_a_buffer_of_another_shape_is_refused():
    preprocessor = Preprocessor(InputSpec(name="x", shape=[1, 3, 8, 8], layout="NCHW", dtype="float32"),
                                PreprocessSpec())
    with pytest.raises(ValueError, match="new_buffer"):
        preprocessor(np.zeros((8, 8, 3), np.uint8), np.zeros((1, 3, 8, 9), np.float32))


def test_a_ring_hands_each_buffer_to_one_holder_at_a_time():
    ring = BufferRing(lambda: np.zeros(4), 2)
    first, second = ring.acquire(), ring.acquire()
    assert first is not second and ring.free == 0
    stop = threading.Event()
    stop.set()
    assert ring.acquire(stop, poll_s=0.01) is None  # none free, and asked to stop
    ring.release(first)
    assert ring.acquire() is first
    with pytest.raises(ValueError, match="did not hand out"):
        ring.release(np.zeros(4))


def test_video_files_decode_with_the_threads_the_budget_leaves(tmp_path, monkeypatch):
    """FFmpeg's decoder starts a thread per core unless told otherwise; the camera app caps it."""
    import cv2

    from edge.sources import capture, open_source

    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for value in range(3):
        writer.write(np.full((48, 64, 3), value * 40, np.uint8))
    writer.release()
    opened = []
    real = cv2.VideoCapture

    def recording(*args):
        opened.append(args)
        return real(*args)

    monkeypatch.setattr(cv2, "VideoCapture", recording)
    monkeypatch.setattr(cpu_budget_module, "_DECODE_THREADS", [0])
    with open_source(str(clip)) as source:
        assert len(list(source)) == 3
    assert opened[-1] == (str(clip),)  # FFmpeg's default where nothing was set
    capture.set_decode_threads(1)
    with open_source(str(clip)) as source:
        assert len(list(source)) == 3
    if hasattr(cv2, "CAP_PROP_N_THREADS"):
        assert opened[-1] == (str(clip), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])


# ------------------------------------------------------------------------------------ where preprocessing runs
@pytest.mark.parametrize("capture, preprocess, inference, moves", [
    (1.54, 0.12, 1.35, True),    # a light model on a 720p file: decoding is the slower stage
    (1.7, 0.15, 75.0, False),    # ResNet-50: inference is
    (1.0, 0.1, 1.05, False),     # 1.1 vs 1.15: the inference thread would become the slower
    (1.3, 0.2, 1.25, False),     # 1.5 vs 1.45: gains less than half the preprocessing
    (33.0, 0.2, 1.3, True),      # a 30 FPS camera: the capture thread waits; the inference thread idles
])
def test_preprocessing_moves_to_the_thread_that_is_not_the_bottleneck(capture, preprocess, inference, moves):
    placement = PreprocessPlacement()
    assert placement.decide(capture, preprocess, inference) is moves
    assert placement.on_capture is not moves
    if moves:  # and back only when the other side becomes the slower one
        assert placement.decide(capture, preprocess, inference) is False
        assert placement.decide(capture / 100, preprocess, inference) is True and placement.on_capture


def test_the_decision_follows_the_mean_of_a_window_of_frames():
    placement = PreprocessPlacement()
    for _ in range(PreprocessPlacement.WINDOW - 1):
        placement.add(5.0, 0.2, 1.0, True)
    assert placement.on_capture
    placement.add(5.0, 0.2, 1.0, True)
    assert not placement.on_capture and placement.to_dict() == {"capture": 30, "inference": 0, "moves": 1}


class SlowFrames:
    """Frames that take a while to read, like a decoded video whose decoding is the slowest stage."""

    def __init__(self, frames: List[Frame], delay_s: float) -> None:
        self.frames, self.delay_s = frames, delay_s

    def __iter__(self):
        for frame in self.frames:
            time.sleep(self.delay_s)
            yield frame


def test_a_slow_source_moves_preprocessing_to_the_inference_thread_without_changing_a_result(recorded_model):
    model = recorded_model
    frames = _frames(90)
    reference = Preprocessor(model.config.input, model.config.preprocess)
    expected = [model.decode(model.infer(reference(f.image)[0]), reference(f.image)[1]).to_json() for f in frames]
    sink = Keep()
    sink.needs_record = True
    results: List[Any] = []
    sink._write = lambda frame, annotated, record: results.append(record["result"]) or True
    summary = Pipeline(model, SlowFrames(frames, 0.006), [sink]).run()
    assert summary.frames == 90 and results == expected
    placed = summary.to_dict()["preprocess_on"]
    assert placed["inference"] >= 30 and placed["capture"] >= PreprocessPlacement.WINDOW and placed["moves"] >= 1
    threads = {name for name, _, _ in model.preprocessor.calls}
    assert threads == {"edge-capture", "edge-infer"}


def test_a_slow_model_keeps_preprocessing_on_the_capture_thread(recorded_model, monkeypatch):
    infer = recorded_model.infer
    monkeypatch.setattr(recorded_model, "infer", lambda tensor: (time.sleep(0.006), infer(tensor))[1])
    summary = Pipeline(recorded_model, _frames(70), [Keep()]).run()
    assert summary.to_dict()["preprocess_on"] == {"capture": 70, "inference": 0, "moves": 0}
    assert {name for name, _, _ in recorded_model.preprocessor.calls} == {"edge-capture"}
