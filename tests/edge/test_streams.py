"""Many sources, one model (edge.streams): batching equals one frame at a time, every stream keeps its own
frames and truth, a stream that ends or is lost leaves the others running, and the camera app's outputs."""

import json
import threading
from pathlib import Path
from typing import Any, List, Optional

import numpy as np
import pytest

from benchmarks.streams import dynamic_batch_copy
from edge.errors import EdgeError
from edge.model import Model
from edge.sinks.files import stream_output
from edge.sinks.window import TiledWindow, grid_shape, tile_size
from edge.sources import open_source
from edge.sources.capture import LiveCaptureSource
from edge.streams import (
    Captured,
    Stream,
    StreamSet,
    StreamsPipeline,
    batch_size,
    open_streams,
    parse_stream_line,
    read_sources_file,
    run_streams,
)
from edge.zoo import resolve_model

SEEDS = (0, 1, 2, 3)


def demo(seed: int, frames: int = 0) -> str:
    return f"demo://?seed={seed}&width=640&height=360" + (f"&frames={frames}" if frames else "")


@pytest.fixture(scope="module")
def dynamic_face(tmp_path_factory: Any) -> Path:
    """The shipped face detector with a dynamic batch (checked against the original by dynamic_batch_copy)."""
    folder = tmp_path_factory.mktemp("dynamic")
    return dynamic_batch_copy(resolve_model(None), folder / "face_dynamic.onnx")


@pytest.fixture(scope="module")
def model(dynamic_face: Path) -> Any:
    with Model(dynamic_face, backend="onnxruntime-cpu") as loaded:
        yield loaded


def frames_of(uri: str, count: int) -> List[Any]:
    with open_source(uri) as source:
        return [frame for frame, _ in zip(source, range(count))]


def same_detections(a: Any, b: Any, atol: float = 1e-5) -> bool:
    return (len(a) == len(b) and np.allclose(a.boxes_xyxy, b.boxes_xyxy, atol=atol)
            and np.allclose(a.scores, b.scores, atol=atol)
            and (a.keypoints_xy is None or np.allclose(a.keypoints_xy, b.keypoints_xy, atol=atol)))


# ------------------------------------------------------------------------------------------ sources files
@pytest.mark.parametrize(("line", "expected"), [
    ("", None),
    ("   ", None),
    ("# a comment", None),
    ("demo://?seed=1", ("demo://?seed=1", "demo://?seed=1")),
    ("cam1=demo://?seed=1", ("cam1", "demo://?seed=1")),
    ("  door-2 = rtsp://host/live  ", ("door-2", "rtsp://host/live")),
    ("rtsp://user:secret@host/live", ("rtsp://user:***@host/live", "rtsp://user:secret@host/live")),
    ("clip.mp4", ("clip.mp4", "clip.mp4")),
])
def test_a_sources_line_is_a_uri_or_name_equals_uri(line: str, expected: Optional[tuple]) -> None:
    got = parse_stream_line(line)
    if expected is not None and "***" in expected[0]:
        assert got is not None and got[1] == expected[1] and "secret" not in got[0]
    else:
        assert got == expected


def test_sources_file_skips_comments_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "cams.txt"
    path.write_text("# the yard\nyard=demo://?seed=1\n\n  demo://?seed=2\n# end\n", encoding="utf-8")
    assert read_sources_file(path) == [("yard", "demo://?seed=1"), ("demo://?seed=2", "demo://?seed=2")]


@pytest.mark.parametrize(("text", "error"), [(None, "cannot read the sources file"), ("# only\n\n", "names no source")])
def test_sources_file_errors_are_one_line(tmp_path: Path, text: Optional[str], error: str) -> None:
    path = tmp_path / "cams.txt"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(EdgeError, match=error):
        read_sources_file(path)


# ------------------------------------------------------------------------------------------ batching
def test_batch_limit_follows_the_model_batch(model: Model) -> None:
    with Model(None, backend="onnxruntime-cpu") as fixed:
        assert fixed.batch_limit == 1
        assert batch_size(fixed, 4) == 1  # round-robin
    assert model.batch_limit is None
    assert [batch_size(model, n) for n in (1, 2, 8)] == [1, 2, 8]
    assert batch_size(model, 8, batch=1) == 1


def test_a_batch_size_the_model_cannot_take_is_refused() -> None:
    with Model(None, backend="onnxruntime-cpu") as fixed:
        with pytest.raises(EdgeError, match="more than this model takes"):
            batch_size(fixed, 4, batch=4)


def test_batched_results_equal_frame_by_frame_results(model: Model) -> None:
    images = [frames_of(demo(seed), 12)[-1].image for seed in SEEDS]
    tensor, transforms = model.preprocess_batch(images)
    assert tensor.shape[0] == len(images)
    outputs = model.infer(tensor)
    for index, image in enumerate(images):  # the raw outputs, item by item
        one = model.infer(model.preprocess(image)[0])
        for name, array in one.items():
            assert np.allclose(outputs[name][index:index + 1], array, atol=1e-5, rtol=0)
    batched = model.decode_batch(outputs, transforms)
    singles = [model(image) for image in images]
    assert sum(len(r) for r in singles) > 0  # the scene holds faces: the comparison is not between empties
    for got, want in zip(batched, singles):
        assert same_detections(got, want)


# ------------------------------------------------------------------------------------------ run_streams
def test_every_stream_gets_its_own_frames_and_matches_its_truth(model: Model) -> None:
    count = 8
    stats: List[Any] = []
    by_stream = {i: [] for i in range(len(SEEDS))}
    for item in run_streams([demo(seed, count) for seed in SEEDS], model, stats=stats):
        by_stream[item.stream].append(item)
        assert item.name == demo(SEEDS[item.stream], count)
        assert item.latency_ms > 0
    for index, seed in enumerate(SEEDS):
        items = by_stream[index]
        assert [item.frame.index for item in items] == list(range(count))  # a file-like source: every frame, in order
        alone = frames_of(demo(seed), count)
        for item, frame in zip(items, alone):
            assert item.frame.truth == frame.truth  # its own scene, not another stream's
            assert same_detections(item.result, model(frame.image), atol=1e-4)
    assert [(s.index, s.frames, s.ended) for s in stats] == [(i, count, f"end of demo (frames={count})")
                                                             for i in range(len(SEEDS))]
    assert all(s.latency_ms() is not None and s.fps > 0 for s in stats)


def test_a_fixed_batch_model_runs_round_robin() -> None:
    order = []
    with Model(None, backend="onnxruntime-cpu") as fixed:
        for item in run_streams([demo(0, 5), demo(1, 5), demo(2, 5)], fixed):
            order.append(item.stream)
    assert sorted(order) == sorted([0, 1, 2] * 5)


def test_a_stream_that_ends_leaves_the_others_running(model: Model) -> None:
    stats: List[Any] = []
    counts = {0: 0, 1: 0, 2: 0}
    for item in run_streams([("short", demo(0, 3)), ("long", demo(1, 12)), demo(2, 12)], model, stats=stats):
        counts[item.stream] += 1
    assert counts == {0: 3, 1: 12, 2: 12}
    assert [s.name for s in stats][:2] == ["short", "long"]


class VanishingCamera:
    """A VideoCapture-like camera that gives ``frames`` frames, then fails (unplugged) and never reopens."""

    def __init__(self, frames: int) -> None:
        self.left = frames
        self.released = False

    def isOpened(self) -> bool:  # noqa: N802 - the cv2.VideoCapture interface
        return self.left > 0

    def read(self) -> tuple:
        if self.left <= 0:
            return False, None
        self.left -= 1
        return True, np.full((360, 640, 3), 40, np.uint8)

    def get(self, prop: int) -> float:
        return 0.0

    def release(self) -> None:
        self.released = True


def opener_with_lost_camera(frames: int) -> Any:
    cameras = iter([VanishingCamera(frames)])

    def opener(uri: str) -> Any:
        if uri == "fake://cam":
            return LiveCaptureSource(uri, lambda: next(cameras, VanishingCamera(0)), reconnect=2,
                                     backoff_s=(0.001, 0.002), lost_what="camera")
        return open_source(uri)

    return opener


def test_a_lost_live_stream_is_reported_and_the_others_finish(model: Model) -> None:
    stats: List[Any] = []
    counts = {0: 0, 1: 0}
    for item in run_streams(["fake://cam", demo(1, 15)], model, stats=stats, opener=opener_with_lost_camera(3)):
        counts[item.stream] += 1
    assert counts[1] == 15
    assert 1 <= counts[0] <= 3  # a live source keeps only the newest frame: some may be replaced
    assert stats[0].lost and stats[0].ended == "camera lost after 2 reconnect attempts"
    assert not stats[1].lost


def test_next_batch_takes_ready_frames_round_robin_from_after_the_last_served() -> None:
    streams = StreamSet([Stream(i, f"s{i}", f"s{i}", source=None) for i in range(3)])
    streams._started = True  # frames are placed by hand below: no capture threads
    stop = threading.Event()

    def ready(*indexes: int) -> None:
        for index in indexes:
            streams.streams[index].pending = Captured(streams.streams[index], index, 0.0)

    ready(0, 1, 2)
    assert [item[1] for item in streams.next_batch(2, stop)] == [0, 1]
    ready(0)
    assert [item[1] for item in streams.next_batch(2, stop)] == [2, 0]
    ready(0, 1, 2)
    assert [item[1] for item in streams.next_batch(1, stop)] == [1]
    assert [item[1] for item in streams.next_batch(None, stop)] == [2, 0]
    for stream in streams.streams:
        stream.done = True
    assert streams.next_batch(None, stop) is None


# ------------------------------------------------------------------------------------------ the pipeline
def test_pipeline_records_carry_the_stream_and_the_summary_has_each(model: Model) -> None:
    class Collect:
        needs_annotated, needs_record, records = True, True, []

        def preflight(self) -> None: ...

        def write(self, frame: Any, annotated: Any, record: Any) -> bool:
            assert annotated is not None
            self.records.append(dict(record))
            return True

        def close(self) -> None: ...

    from edge.overlay import Annotator

    sink = Collect()
    with open_streams([("a", demo(0, 4)), ("b", demo(1, 6))]) as streams:
        pipeline = StreamsPipeline(model, streams, [sink], annotator=Annotator())
        summary = pipeline.run()
    assert pipeline.batch == 2
    assert sorted((r["stream"]["index"], r["stream"]["name"], r["frame"]) for r in sink.records) == \
        [(0, "a", i) for i in range(4)] + [(1, "b", i) for i in range(6)]
    assert list(sink.records[0])[:4] == ["frame", "timestamp_s", "stream", "result"]
    assert summary.frames == 10 and summary.ended == "all 2 streams ended (each as listed below)"
    data = summary.to_dict()
    assert [(s["name"], s["frames"], s["lost"]) for s in data["streams"]] == [("a", 4, False), ("b", 6, False)]
    text = summary.text()
    assert "2 streams" in text and "stream 0 a: 4 frames" in text and "stream 1 b: 6 frames" in text


# ------------------------------------------------------------------------------------------ outputs
@pytest.mark.parametrize(("spec", "index", "expected"), [
    ("out.mp4", 0, "out_stream0.mp4"),
    ("rec/out.mkv", 3, "rec/out_stream3.mkv"),
    ("cam{stream}.avi", 2, "cam2.avi"),
    ("frames_%05d.jpg", 1, "frames_%05d_stream1.jpg"),
    ("mask:m_%05d.png", 1, "mask:m_%05d_stream1.png"),
    ("out/cam{stream}_%05d.jpg", 4, "out/cam4_%05d.jpg"),
])
def test_stream_output_names(spec: str, index: int, expected: str) -> None:
    assert stream_output(spec, index) == expected


def test_an_image_folder_cannot_hold_several_streams(tmp_path: Path) -> None:
    with pytest.raises(EdgeError, match="cannot tell the streams"):
        stream_output(str(tmp_path) + "/", 0)


@pytest.mark.parametrize(("count", "columns_rows"), [(1, (1, 1)), (2, (2, 1)), (3, (2, 2)), (4, (2, 2)),
                                                     (5, (3, 2)), (8, (3, 3)), (9, (3, 3))])
def test_grid_shape(count: int, columns_rows: tuple) -> None:
    assert grid_shape(count) == columns_rows


def test_tiled_window_puts_each_stream_in_its_tile() -> None:
    assert tile_size((1280, 720), 4, (1920, 1080)) == (960, 540)
    assert tile_size((320, 180), 4, (1920, 1080)) == (320, 180)  # never enlarged
    tiles = TiledWindow(["a", "b", "c"], max_wh=(1920, 1080))
    tiles.put(0, np.full((180, 320, 3), 50, np.uint8))
    grid = tiles.put(2, np.full((180, 320, 3), 200, np.uint8))
    assert grid.shape == (360, 640, 3)
    assert grid[10, 10, 0] == 50 and grid[190, 10, 0] == 200  # stream 2: second row, first column
    assert grid[10, 330].tolist() == [0, 0, 0]  # stream 1 has not delivered yet


# ------------------------------------------------------------------------------------------ the camera app
def run_app(*argv: str) -> int:
    from edge.camera import main

    return main(list(argv))


def test_camera_app_with_several_sources(tmp_path: Path, dynamic_face: Path, capsys: Any) -> None:
    sources = tmp_path / "cams.txt"
    sources.write_text(f"# two\nyard={demo(1, 5)}\n", encoding="utf-8")
    code = run_app("--model", str(dynamic_face), "--backend", "onnxruntime-cpu", "--source", demo(0, 4),
                   "--sources", str(sources), "--headless", "--output", str(tmp_path / "out.avi"),
                   "--output", str(tmp_path / "r.jsonl"), "--summary-json", str(tmp_path / "s.json"))
    assert code == 0
    err = capsys.readouterr().err
    assert "2 frame(s) per inference call" in err and "stream 1 yard: 5 frames" in err
    lines = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert sorted((line["stream"]["name"], line["frame"]) for line in lines) == \
        [(demo(0, 4), i) for i in range(4)] + [("yard", i) for i in range(5)]
    summary = json.loads((tmp_path / "s.json").read_text())
    assert [s["frames"] for s in summary["streams"]] == [4, 5]
    assert summary["outputs"][str(tmp_path / "out_stream0.avi")] == 4
    assert summary["outputs"][str(tmp_path / "out_stream1.avi")] == 5
    import cv2

    for index, count in ((0, 4), (1, 5)):
        capture = cv2.VideoCapture(str(tmp_path / f"out_stream{index}.avi"))
        assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == count
        capture.release()


def test_one_source_keeps_its_json_lines_without_a_stream_field(tmp_path: Path) -> None:
    code = run_app("--source", demo(0, 3), "--headless", "--output", str(tmp_path / "r.jsonl"), "--quiet")
    assert code == 0
    lines = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert len(lines) == 3 and all("stream" not in line for line in lines)
    assert list(lines[0])[:3] == ["frame", "timestamp_s", "result"]


def test_a_bad_source_among_several_fails_before_the_model_loads(tmp_path: Path, capsys: Any) -> None:
    code = run_app("--source", demo(0, 3), "--source", str(tmp_path / "missing.mp4"), "--headless")
    assert code == 2
    assert "missing.mp4" in capsys.readouterr().err


def test_camera_app_exits_3_after_the_others_when_a_stream_is_lost(monkeypatch: Any, dynamic_face: Path,
                                                                   capsys: Any) -> None:
    import edge.streams

    real = edge.streams.open_streams
    lost_uri = "/dev/video99"
    opener = opener_with_lost_camera(3)
    monkeypatch.setattr(edge.streams, "open_streams",
                        lambda entries: real(entries, lambda uri: opener("fake://cam" if uri == lost_uri else uri)))
    code = run_app("--model", str(dynamic_face), "--backend", "onnxruntime-cpu", "--source", lost_uri,
                   "--source", demo(1, 8), "--headless")
    err = capsys.readouterr().err
    assert code == 3
    assert "stream 1 demo://?seed=1&width=640&height=360&frames=8: 8 frames" in err
    assert "LOST for good" in err
    assert "1 of 2 streams lost for good (stream 0 /dev/video99: camera lost after 2 reconnect attempts)" in err


def test_a_tensorrt_profile_bounds_the_batch() -> None:
    from types import SimpleNamespace

    from edge.model import _engine_batch_limit

    tensor = SimpleNamespace(name="input", profile=((1, 3, 128, 128), (4, 3, 128, 128), (6, 3, 128, 128)))
    assert _engine_batch_limit(SimpleNamespace(_runner=SimpleNamespace(inputs=[tensor])), "input") == 6
    assert _engine_batch_limit(SimpleNamespace(), "input") is None  # not an engine: any batch


def test_run_streams_loads_a_model_given_by_path(dynamic_face: Path) -> None:
    items = list(run_streams([demo(0, 2), demo(1, 2)], str(dynamic_face)))
    assert sorted((item.stream, item.frame.index) for item in items) == [(0, 0), (0, 1), (1, 0), (1, 1)]
