"""The threaded pipeline with the real face model, real sources and a recording sink."""

import io
import json
from typing import Any, Dict, List, Optional

import numpy as np
import pytest

from edge.errors import EdgeError
from edge.pipeline import Pipeline
from edge.sinks import JsonLinesSink
from edge.sinks.base import Sink
from edge.sources import open_source
from edge.stats import StageTimes, peak_rss_mb


class Recorder(Sink):
    """Keeps what it is given; returns False (the user asked to stop) after ``stop_after`` frames."""

    needs_annotated = True

    def __init__(self, stop_after: Optional[int] = None) -> None:
        super().__init__()
        self.records: List[Dict[str, Any]] = []
        self.annotated: List[np.ndarray] = []
        self.shapes: List[tuple] = []
        self.stop_after = stop_after

    def _write(self, frame, annotated, record) -> bool:
        self.records.append(record)
        self.annotated.append(annotated)
        self.shapes.append(frame.image.shape)
        return self.stop_after is None or len(self.records) < self.stop_after


@pytest.fixture()
def folder(tmp_path):
    import cv2

    from edge.samples import load_sample

    for i, name in enumerate(["astronaut", "coffee", "astronaut", "chelsea", "astronaut"]):
        cv2.imwrite(str(tmp_path / f"img{i}.png"), load_sample(name))
    return tmp_path


def test_every_frame_of_a_folder_in_order_with_stage_times(face_model, folder):
    from edge.overlay import Annotator

    sink = Recorder()
    with open_source(str(folder)) as source:
        summary = Pipeline(face_model, source, [sink], annotator=Annotator()).run()
    assert [r["frame"] for r in sink.records] == [0, 1, 2, 3, 4]
    assert [len(r["result"]["detections"]) >= 1 for r in sink.records][::2] == [True, True, True]
    assert len(sink.records[1]["result"]["detections"]) == 0  # coffee has no face
    assert summary.frames == 5 and summary.ended.startswith("end")
    assert set(summary.to_dict()["stages"]) >= {"capture", "preprocess", "infer", "decode", "draw", "sink", "latency"}
    assert sink.closed
    assert [image.shape for image in sink.annotated] == sink.shapes
    assert sink.shapes[0] == (512, 512, 3) and sink.shapes[1] == (400, 600, 3)


def test_frame_limit_and_a_sink_that_asks_to_stop(face_model):
    sink = Recorder()
    with open_source("demo://") as source:
        summary = Pipeline(face_model, source, [sink], max_frames=7).run()
    assert summary.frames == 7 and summary.ended == "frame limit" and sink.closed

    window = Recorder(stop_after=3)
    with open_source("demo://") as source:
        summary = Pipeline(face_model, source, [window], max_frames=50).run()
    assert summary.frames == 3 and summary.ended.startswith("an output asked to stop")


def test_no_drawing_when_no_sink_shows_pixels(face_model):
    from edge.overlay import Annotator

    sink = Recorder()
    sink.needs_annotated = False
    with open_source("demo://?frames=3") as source:
        Pipeline(face_model, source, [sink], annotator=Annotator()).run()
    assert sink.annotated == [None, None, None]


def test_an_error_in_the_inference_thread_reaches_the_caller_and_sinks_are_closed(face_model):
    class Broken:
        def __init__(self, model):
            self.model = model

        def preprocess(self, image):
            raise EdgeError("model exploded", fix="none")

        def __getattr__(self, name):
            return getattr(self.model, name)

    sink = Recorder()
    with open_source("demo://") as source, pytest.raises(EdgeError, match="model exploded"):
        Pipeline(Broken(face_model), source, [sink]).run()
    assert sink.closed


def test_stage_times_percentiles_and_slowest():
    times = StageTimes(("a", "b"))
    for value in range(1, 101):
        times.add({"a": float(value), "b": 1.0, "latency": 5.0})
    assert times.percentiles("a") == pytest.approx([50.5, 95.05])
    assert times.slowest_stage() == "a"
    assert times.percentiles("missing") is None
    assert "latency" in times.table() and "(capture to result)" in times.table()


def test_peak_memory_is_measured():
    peak = peak_rss_mb()
    assert peak is None or 10 < peak < 100_000


def test_a_tracker_runs_after_decode_as_a_timed_stage(face_model):
    from edge.tracking import Tracker

    sink = Recorder()
    with open_source("demo://?frames=20") as source:
        summary = Pipeline(face_model, source, [sink], tracker=Tracker()).run()
    stages = list(summary.to_dict()["stages"])
    assert stages.index("decode") < stages.index("track") < stages.index("draw")
    detections = [d for r in sink.records for d in r["result"]["detections"]]
    assert detections and {d["track_id"] for d in detections} == {1}  # one face, followed all along
    assert all(r["timings_ms"]["track"] >= 0 for r in sink.records)


def test_no_track_stage_without_a_tracker(face_model):
    sink = Recorder()
    with open_source("demo://?frames=2") as source:
        summary = Pipeline(face_model, source, [sink]).run()
    assert "track" not in summary.to_dict()["stages"]
    assert all("track_id" not in d for r in sink.records for d in r["result"]["detections"])


# -- stopping between frames, failed outputs, progress (issue 9 items 2, 4, 18) --------------


class Interrupter(Recorder):
    """Calls ``pipeline.interrupt()`` (what the SIGINT handler does) while writing frame ``at``."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at
        self.pipeline: Any = None

    def _write(self, frame, annotated, record) -> bool:
        if len(self.records) + 1 == self.at:
            self.pipeline.interrupt()
        return super()._write(frame, annotated, record)

    @property
    def frames_in_output(self) -> Optional[int]:
        return len(self.records)


class FullDisk(Recorder):
    """An output whose disk fills after ``room`` frames."""

    def __init__(self, room: int) -> None:
        super().__init__()
        self.room = room
        self.name = "full.jsonl"

    def preflight(self) -> None:
        from edge.sinks import OutputWriteError

        if len(self.records) >= self.room:
            raise OutputWriteError("the disk is full", "free space", self.name)

    @property
    def frames_in_output(self) -> Optional[int]:
        return len(self.records)


@pytest.mark.parametrize("at", [1, 4, 9])
def test_interrupt_stops_between_frames_so_every_output_holds_the_same_frames(face_model, at):
    first, after = Interrupter(at), Recorder()  # the interrupt lands while the first output writes
    with open_source("demo://?width=160&height=120") as source:
        pipeline = Pipeline(face_model, source, [first, after])
        first.pipeline = pipeline
        summary = pipeline.run()
    assert summary.interrupted and summary.ended.startswith("interrupted")
    assert len(first.records) == len(after.records) == summary.frames == at
    assert summary.to_dict()["outputs"] == {repr(first): at}


@pytest.mark.parametrize("room", [0, 3])
def test_a_full_output_stops_the_run_before_any_output_gets_the_next_frame(face_model, room):
    from edge.sinks import OutputWriteError

    recorder, full = Recorder(), FullDisk(room)
    with open_source("demo://?width=160&height=120&frames=20") as source:
        pipeline = Pipeline(face_model, source, [recorder, full])
        with pytest.raises(OutputWriteError, match="disk is full"):
            pipeline.run()
    assert len(recorder.records) == len(full.records) == pipeline.summary.frames == room
    assert pipeline.summary.outputs == {"full.jsonl": room}
    assert "an output failed" in pipeline.summary.ended and "full.jsonl: " in pipeline.summary.text()


def test_progress_sees_every_frame_and_the_detections_so_far(face_model):
    seen = []
    with open_source("demo://?frames=6") as source:
        summary = Pipeline(face_model, source, [], progress=lambda s: seen.append((s.frames, s.detections))).run()
    assert [frames for frames, _ in seen] == [1, 2, 3, 4, 5, 6]
    assert seen[-1][1] == summary.detections >= 5  # the demo face is in view in these frames


# -- results become JSON only for sinks that read it; the record carries the result object -------------------


class CountingModel:
    """The face model, whose results count the calls of their ``to_json``."""

    def __init__(self, model) -> None:
        self.model = model
        self.to_json_calls = 0

    def decode(self, outputs, transform):
        from edge.results import Detections

        counter = self

        class CountingDetections(Detections):
            def to_json(self):
                counter.to_json_calls += 1
                return super().to_json()

        found = self.model.decode(outputs, transform)
        return CountingDetections(found.boxes_xyxy, found.scores, found.class_ids, found.keypoints_xy, found.labels)

    def __getattr__(self, name):
        return getattr(self.model, name)


def pixels_only() -> Recorder:
    sink = Recorder()
    sink.needs_record = False
    return sink


@pytest.mark.parametrize("make_sinks, calls_per_frame", [
    (lambda: [], 0),
    (lambda: [pixels_only()], 0),                       # a video, images, a window, mask images
    (lambda: [pixels_only(), pixels_only()], 0),
    (lambda: [Recorder()], 1),                          # a sink that reads record["result"]
    (lambda: [pixels_only(), JsonLinesSink(io.StringIO()), JsonLinesSink(io.StringIO())], 1),  # once, shared
], ids=["no sink", "pixels", "two pixel sinks", "reads json", "json lines and pixels"])
def test_results_become_json_only_when_a_sink_reads_it(face_model, make_sinks, calls_per_frame):
    from edge.overlay import Annotator
    from edge.sinks import FrameRecord

    model, sinks = CountingModel(face_model), make_sinks()
    with open_source("demo://?frames=6") as source:
        summary = Pipeline(model, source, sinks, annotator=Annotator()).run()
    assert summary.frames == 6 and model.to_json_calls == 6 * calls_per_frame
    assert summary.detections == 6  # counted from the result itself: the demo face is in every frame
    for sink in sinks:
        records = sink.records if isinstance(sink, Recorder) else [
            json.loads(line) for line in sink.stream.getvalue().splitlines()]
        assert [r["frame"] for r in records] == list(range(6))
        assert all(set(r) >= {"frame", "timestamp_s", "timings_ms"} for r in records)
        assert all(("result" in r) is bool(calls_per_frame) for r in records)  # one record, shared by all sinks
        assert all(len(r["result"]["detections"]) == 1 for r in records if "result" in r)
        if isinstance(sink, Recorder):
            assert all(isinstance(r, FrameRecord) and len(r.result) == 1 for r in records)


class Refuser(Recorder):
    """An output that cannot hold this model's results (as mask images refuse boxes)."""

    def check_result(self, result) -> None:
        raise EdgeError(f"cannot hold {type(result).__name__}", "use another output", "refuser")


def test_an_output_that_refuses_the_results_stops_the_run_before_any_output_gets_a_frame(face_model):
    first, refuser = Recorder(), Refuser()
    with open_source("demo://?frames=5") as source:
        pipeline = Pipeline(face_model, source, [first, refuser])
        with pytest.raises(EdgeError, match="refuser | cannot hold Detections"):
            pipeline.run()
    assert first.records == refuser.records == [] and pipeline.summary.frames == 0
    assert first.closed and refuser.closed
    assert pipeline.summary.ended == "stopped by an error (cannot hold Detections)"
