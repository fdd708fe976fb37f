"""The threaded pipeline with the real face model, real sources and a recording sink."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np
import pytest

from edge.errors import EdgeError
from edge.pipeline import Pipeline
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
