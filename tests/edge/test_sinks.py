"""Tests for edge.sinks: files that read back, JSON that parses, specs that resolve, errors that help."""

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest

from edge.errors import EdgeError
from edge.results import Detections, Frame
from edge.sinks import (
    DEFAULT_VIDEO_FPS,
    VIDEO_FOURCC_BY_EXT,
    ImageSink,
    JsonLinesSink,
    MaskImageSink,
    SegmentedVideoSink,
    Sink,
    VideoSink,
    WindowSink,
    display_available,
    dumps_line,
    open_sinks,
)

cv2 = pytest.importorskip("cv2")

REPO_ROOT = Path(__file__).resolve().parents[2]
SIZE_WH = (160, 120)


def make_frame(index: int, size_wh: Tuple[int, int] = SIZE_WH) -> Frame:
    """A flat frame whose grey level encodes its index (robust to lossy codecs)."""
    width, height = size_wh
    image = np.full((height, width, 3), (index * 20) % 240 + 10, np.uint8)
    return Frame(image, index, timestamp_s=index / 30.0, source="test://")


def read_video(path: Path) -> Tuple[int, List[np.ndarray]]:
    capture = cv2.VideoCapture(str(path))
    try:
        assert capture.isOpened(), f"cannot open {path}"
        frame_count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        frames = []
        while True:
            ok, image = capture.read()
            if not ok:
                break
            frames.append(image)
        return frame_count, frames
    finally:
        capture.release()


# -- Sink base -----------------------------------------------------------------------------


class CountingSink(Sink):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.closes = 0

    def _write(self, frame, annotated, record) -> bool:
        self.writes += 1
        return True

    def _close(self) -> None:
        self.closes += 1


def test_sink_is_a_context_manager_and_close_is_idempotent():
    with CountingSink() as sink:
        assert sink.write(make_frame(0), None, {}) is True
    assert sink.closed and sink.closes == 1
    sink.close()
    sink.close()
    assert sink.closes == 1
    with pytest.raises(RuntimeError, match="closed"):
        sink.write(make_frame(1), None, {})


@pytest.mark.parametrize(
    "make, needs_annotated, needs_record",
    [
        (lambda tmp: VideoSink(tmp / "a.mp4"), True, False),
        (lambda tmp: SegmentedVideoSink(tmp / "a.mkv", 1.0), True, False),
        (lambda tmp: ImageSink(str(tmp / "a_%03d.png")), True, False),
        (lambda tmp: MaskImageSink(str(tmp / "m_%03d.png")), False, False),
        (lambda tmp: JsonLinesSink(io.StringIO()), False, True),
        (lambda tmp: CountingSink(), False, True),  # a sink written before needs_record existed still gets JSON
    ],
    ids=["video", "segmented", "image", "mask", "jsonl", "custom"],
)
def test_needs_annotated_and_needs_record(tmp_path, make, needs_annotated, needs_record):
    with make(tmp_path) as sink:
        assert sink.needs_annotated is needs_annotated
        assert sink.needs_record is needs_record


def test_a_frame_record_is_a_json_dict_that_carries_the_result_object():
    from edge.sinks import FrameRecord

    result = Detections([[1, 2, 3, 4]], [0.5], [0])
    record = FrameRecord(result, frame=3, timings_ms={"infer": 1.0})
    assert record == {"frame": 3, "timings_ms": {"infer": 1.0}} and record.result is result
    assert json.loads(dumps_line(record)) == {"frame": 3, "timings_ms": {"infer": 1.0}}
    assert FrameRecord().result is None


# -- VideoSink -----------------------------------------------------------------------------


@pytest.mark.parametrize("ext", sorted(VIDEO_FOURCC_BY_EXT))
def test_video_sink_writes_frames_that_read_back(tmp_path, ext):
    path = tmp_path / f"clip{ext}"
    count = 12
    with VideoSink(path, fps=15.0) as sink:
        for i in range(count):
            assert sink.write(make_frame(i), None, {}) is True
        assert sink.frames_written == count
    frame_count, frames = read_video(path)
    assert frame_count == count
    assert len(frames) == count
    for i, image in enumerate(frames):
        assert image.shape == (SIZE_WH[1], SIZE_WH[0], 3)
        assert abs(float(image.mean()) - float(make_frame(i).image.mean())) < 12  # lossy codecs
    capture = cv2.VideoCapture(str(path))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(15.0, abs=0.01)
    capture.release()


def test_video_sink_prefers_the_annotated_image(tmp_path):
    path = tmp_path / "annotated.avi"
    frame = make_frame(0)
    annotated = np.full_like(frame.image, 200)
    with VideoSink(path, fps=10) as sink:
        sink.write(frame, annotated, {})
    _, frames = read_video(path)
    assert abs(float(frames[0].mean()) - 200) < 5


def test_video_sink_resizes_frames_to_the_first_size(tmp_path):
    path = tmp_path / "sizes.mp4"
    sizes = [SIZE_WH, (320, 240), (80, 60), SIZE_WH]
    with VideoSink(path, fps=10) as sink:
        for i, size_wh in enumerate(sizes):
            sink.write(make_frame(i, size_wh), None, {})
        assert sink.size_wh == SIZE_WH
    frame_count, frames = read_video(path)
    assert frame_count == len(sizes)
    assert [image.shape[:2] for image in frames] == [(SIZE_WH[1], SIZE_WH[0])] * len(sizes)


@pytest.mark.parametrize(
    "fps, expected",
    [(None, DEFAULT_VIDEO_FPS), (0.0, DEFAULT_VIDEO_FPS), (float("nan"), DEFAULT_VIDEO_FPS), (12.5, 12.5)],
)
def test_video_sink_fps(tmp_path, fps, expected):
    assert VideoSink(tmp_path / "x.mp4", fps).fps == expected


def test_video_sink_closed_in_finally_after_keyboard_interrupt_is_readable(tmp_path):
    path = tmp_path / "interrupted.mp4"
    sink = VideoSink(path, fps=30)
    with pytest.raises(KeyboardInterrupt):
        try:
            for i in range(100):
                if i == 7:
                    raise KeyboardInterrupt
                sink.write(make_frame(i), None, {})
        finally:
            sink.close()
    sink.close()  # the pipeline's outer cleanup may close again
    frame_count, frames = read_video(path)
    assert frame_count == 7 and len(frames) == 7


CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    from edge.results import Frame
    from edge.sinks import VideoSink

    sink = VideoSink(sys.argv[1], fps=30)
    try:
        for i in range(100000):
            sink.write(Frame(np.full((120, 160, 3), i % 250, np.uint8), i, 0.0), None, {})
            if i == 4:
                print("ready", flush=True)
    finally:
        sink.close()
        print("written", sink.frames_written, flush=True)
    """
)


@pytest.mark.skipif(sys.platform.startswith("win"), reason="SIGINT to a child process is POSIX only")
def test_video_sink_survives_a_real_sigint(tmp_path):
    path = tmp_path / "sigint.mp4"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        universal_newlines=True,
        env=env,
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)  # a safety net, not a timing assertion
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert "KeyboardInterrupt" in err
    written = int(out.split()[-1])
    frame_count, frames = read_video(path)
    assert written >= 5
    assert frame_count == written and len(frames) == written


@pytest.mark.parametrize(
    "name, match",
    [
        ("clip.webm", "unsupported video extension"),
        ("clip", "unsupported video extension"),
        ("missing/clip.mp4", "does not exist.*mkdir -p"),
    ],
)
def test_video_sink_refuses_bad_paths_before_any_frame(tmp_path, name, match):
    with pytest.raises(EdgeError, match=match):
        VideoSink(tmp_path / name)


def test_video_sink_that_cannot_open_says_how_to_fix_it(tmp_path):
    path = tmp_path / "taken.mp4"
    with VideoSink(path, fps=10) as sink, pytest.raises(EdgeError, match="cannot open a video writer.*Fix:"):
        path.mkdir()  # a folder appears where the file should go after the checks
        sink.write(make_frame(0), None, {})


def test_video_sink_without_frames_closes_cleanly(tmp_path):
    sink = VideoSink(tmp_path / "empty.mp4")
    sink.close()
    assert sink.frames_written == 0 and not (tmp_path / "empty.mp4").exists()


# -- JSON lines ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "record, expected",
    [
        ({"a": np.float32(0.5), "b": np.int64(3), "c": np.bool_(True)}, {"a": 0.5, "b": 3, "c": True}),
        ({"xs": np.array([[1, 2], [3, 4]], np.int32)}, {"xs": [[1, 2], [3, 4]]}),
        ({"nan": float("nan"), "inf": float("inf"), "ok": 1.5}, {"nan": None, "inf": None, "ok": 1.5}),
        ({"np_nan": np.float32("nan"), "np64": np.float64("-inf")}, {"np_nan": None, "np64": None}),
        ({"arr": np.array([1.0, np.nan, np.inf])}, {"arr": [1.0, None, None]}),
        (
            {"nested": [{"t": (1, np.float16(2.0))}], 7: "int key"},
            {"nested": [{"t": [1, 2.0]}], "7": "int key"},
        ),
        ({"path": Path("a/b.mp4"), "ids": {3, 1}}, {"path": "a/b.mp4", "ids": [1, 3]}),
    ],
    ids=["scalars", "array", "nan", "np-nan", "array-nan", "nested", "path-set"],
)
def test_json_lines_serialise_numpy_and_replace_nan(record, expected):
    line = dumps_line(record)
    assert "NaN" not in line and "Infinity" not in line and ", " not in line and ": " not in line
    assert json.loads(line) == expected


def test_json_lines_serialise_results():
    detections = Detections([[1, 2, 3, 4]], [0.5], [1], labels=["a", "b"])
    assert json.loads(dumps_line({"result": detections})) == {
        "result": json.loads(json.dumps(detections.to_json()))
    }


def test_json_lines_refuse_unknown_objects():
    with pytest.raises(TypeError, match="object"):
        dumps_line({"x": object()})


def records(count: int) -> List[Dict[str, Any]]:
    detections = Detections([[10, 20, 30, 40]], [0.75], [0])
    return [
        {
            "frame": i,
            "timestamp_s": i / 30,
            "result": detections.to_json(),
            "stage_ms": {"infer": np.float64(1.5)},
        }
        for i in range(count)
    ]


def test_json_lines_file_has_one_parsable_line_per_frame_flushed_as_written(tmp_path):
    path = tmp_path / "out.jsonl"
    with JsonLinesSink(str(path)) as sink:
        for i, record in enumerate(records(3)):
            assert sink.write(make_frame(i), None, record) is True
            assert len(path.read_text().splitlines()) == i + 1  # flushed per line
    assert sink.closed and sink.frames_in_output == 3
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["frame"] for line in lines] == [0, 1, 2]
    assert lines[0]["result"]["detections"][0]["box_xyxy"] == [10.0, 20.0, 30.0, 40.0]
    assert lines[2]["stage_ms"] == {"infer": 1.5}


def test_json_lines_to_stdout(capsys):
    with JsonLinesSink("-") as sink:
        sink.write(make_frame(0), None, {"frame": 0})
    assert sys.stdout.closed is False
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == [{"frame": 0}]


def test_json_lines_leave_a_given_stream_open():
    stream = io.StringIO()
    with JsonLinesSink(stream) as sink:
        sink.write(make_frame(0), None, {"frame": 0})
    assert not stream.closed and stream.getvalue() == '{"frame":0}\n'


class BrokenPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError


def test_json_lines_reader_gone_means_stop():
    with JsonLinesSink(BrokenPipe()) as sink:
        assert sink.write(make_frame(0), None, {"frame": 0}) is False


# -- WindowSink ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "platform, env, expected",
    [
        ("linux", {}, False),
        ("linux", {"DISPLAY": ":0"}, True),
        ("linux", {"WAYLAND_DISPLAY": "wayland-0"}, True),
        ("linux", {"DISPLAY": ""}, False),
        ("darwin", {}, True),
        ("win32", {}, True),
    ],
)
def test_display_available(monkeypatch, platform, env, expected):
    monkeypatch.setattr(sys, "platform", platform)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert display_available() is expected


@pytest.fixture
def no_display(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)


@pytest.fixture
def fake_display(monkeypatch):
    """A DISPLAY value, so WindowSink can be built; tests that use it never open the window."""
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setattr("edge.sinks.opencv_has_gui", lambda: True)


def test_window_sink_without_display_says_run_headless(no_display):
    with pytest.raises(EdgeError, match="no display.*--headless or set DISPLAY"):
        WindowSink("edge")


class ScriptedGui:
    """Stands in for cv2's window calls: replays keys and window visibility, one per frame."""

    WND_PROP_VISIBLE = cv2.WND_PROP_VISIBLE
    error = cv2.error

    def __init__(self, keys: List[int], visible: List[float]) -> None:
        self.keys, self.visible, self.shown = list(keys), list(visible), 0

    def imshow(self, title: str, image: np.ndarray) -> None:
        self.shown += 1

    def waitKey(self, delay_ms: int) -> int:
        return self.keys.pop(0) if self.keys else -1

    def getWindowProperty(self, title: str, prop: int) -> float:
        return self.visible.pop(0)

    def destroyWindow(self, title: str) -> None:
        pass


@pytest.mark.parametrize(
    "keys, visible, expected",
    [
        ([-1, -1, -1], [1, 1, 1], [True, True, True]),
        ([-1, ord("q")], [1, 1], [True, False]),
        ([-1, 27], [1, 1], [True, False]),  # Esc
        ([-1, -1], [1, 0], [True, False]),  # window closed with the mouse
        ([-1, -1], [-1, -1], [True, True]),  # backend without the property: never a false stop
    ],
    ids=["runs", "q", "esc", "closed", "no-property"],
)
def test_window_sink_stops_on_q_esc_or_close(fake_display, keys, visible, expected):
    sink = WindowSink("edge")
    sink._cv2 = ScriptedGui(keys, visible)
    assert [sink.write(make_frame(i), None, {}) for i in range(len(expected))] == expected
    sink.close()


@pytest.mark.skipif(not display_available(), reason="needs a display")
def test_window_sink_shows_a_real_window():
    with WindowSink("edge test") as sink:
        assert sink.write(make_frame(0), None, {}) is True


# -- ImageSink -----------------------------------------------------------------------------


def test_image_sink_pattern_writes_one_file_per_frame(tmp_path):
    with ImageSink(str(tmp_path / "out_%05d.png")) as sink:
        for i in (0, 1, 7):
            sink.write(make_frame(i), None, {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out_00000.png", "out_00001.png", "out_00007.png"]
    assert np.array_equal(cv2.imread(str(tmp_path / "out_00007.png")), make_frame(7).image)


def test_image_sink_folder_is_created_and_filled(tmp_path):
    with ImageSink(str(tmp_path / "frames") + os.sep) as sink:
        sink.write(make_frame(3), None, {})
    image = cv2.imread(str(tmp_path / "frames" / "frame_000003.jpg"))
    assert image is not None and image.shape == (SIZE_WH[1], SIZE_WH[0], 3)


def test_image_sink_plain_file_keeps_the_newest_frame(tmp_path):
    path = tmp_path / "snap.png"
    with ImageSink(str(path)) as sink:
        for i in range(3):
            sink.write(make_frame(i), None, {})
    assert [p.name for p in tmp_path.iterdir()] == ["snap.png"]
    assert np.array_equal(cv2.imread(str(path)), make_frame(2).image)


@pytest.mark.parametrize(
    "pattern, match",
    [
        ("out_%d_%d.jpg", "one integer field"),
        ("out_%05d.gif", "unsupported image extension"),
        ("missing/out_%05d.jpg", "does not exist"),
        ("missing/deeper/", "does not exist"),
    ],
)
def test_image_sink_refuses_bad_patterns(tmp_path, pattern, match):
    with pytest.raises(EdgeError, match=match):
        ImageSink(os.path.join(str(tmp_path), pattern))  # keeps a trailing slash


# -- open_sinks ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "outputs, expected_types",
    [
        ([], []),
        (["none"], []),
        (["-"], [JsonLinesSink]),
        (["stdout"], [JsonLinesSink]),
        (["out.jsonl"], [JsonLinesSink]),
        (["out.json"], [JsonLinesSink]),
        (["out.mp4"], [VideoSink]),
        (["OUT.AVI"], [VideoSink]),
        (["out.mkv"], [VideoSink]),
        (["out.mov"], [VideoSink]),
        (["file://out.mp4"], [VideoSink]),
        (["out_%05d.jpg"], [ImageSink]),
        (["snap.png"], [ImageSink]),
        (["frames/"], [ImageSink]),
        (["existing"], [ImageSink]),  # an existing folder
        (["mask:masks_%05d.png"], [MaskImageSink]),
        (["MASK:masks/"], [MaskImageSink]),
        (["mask:existing"], [MaskImageSink]),
        (["mask:m.png", "out_%05d.png"], [MaskImageSink, ImageSink]),
        (["out.jsonl", "out.mp4", "-"], [JsonLinesSink, VideoSink, JsonLinesSink]),
    ],
)
def test_open_sinks_table(tmp_path, monkeypatch, no_display, outputs, expected_types):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "existing").mkdir()
    sinks = open_sinks(outputs, headless=False, fps=25.0)
    try:
        assert [type(sink) for sink in sinks] == expected_types
        assert all(sink.fps == 25.0 for sink in sinks if isinstance(sink, VideoSink))
    finally:
        for sink in sinks:
            sink.close()


@pytest.mark.parametrize(
    "outputs, headless, match",
    [
        (["srt://host:8554/out"], True, "unknown output 'srt://host:8554/out'.*out_%05d.jpg.*display"),
        (["out.xyz"], True, "unknown output 'out.xyz'"),
        (["missing/out.mp4"], True, "does not exist.*mkdir -p missing"),
        (["missing/out.jsonl"], True, "does not exist"),
        (["missing/out_%05d.jpg"], True, "does not exist"),
        (["mask:"], True, "'mask:' needs a file pattern after it.*mask:masks_%05d.png"),
        (["mask:out_%05d.jpg"], True, r"mask images are lossless PNG \(8 or 16 bits a pixel\), not '.jpg'"),
        (["mask:out.mp4"], True, "mask images are lossless PNG"),
        (["mask:missing/m_%05d.png"], True, "folder for the mask images does not exist.*mkdir -p missing"),
        (["mask:missing/deeper/"], True, "folder for the mask image folder does not exist"),
        (["mask:m_%d_%d.png"], True, "mask image pattern needs exactly one integer field.*mask:masks_%05d.png"),
        (["out.jsonl", "missing/out.mp4"], True, "does not exist"),
        (["display"], True, "needs a window but --headless is set"),
        (["display://0"], False, "no display"),
    ],
)
def test_open_sinks_errors(tmp_path, monkeypatch, no_display, outputs, headless, match):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(EdgeError, match=match):
        open_sinks(outputs, headless=headless, fps=None)


@pytest.mark.parametrize(
    "outputs, headless, expected_windows",
    [
        ([], False, 1),  # a display exists: show a window by default
        (["out.jsonl"], False, 1),
        ([], True, 0),
        (["none"], False, 0),  # "none" means no output at all
        (["display"], False, 1),  # explicit display: exactly one window
        (["display://0", "display"], False, 1),  # one window, however asked
    ],
)
def test_open_sinks_adds_a_window_where_a_display_exists(
    tmp_path, monkeypatch, fake_display, outputs, headless, expected_windows
):
    monkeypatch.chdir(tmp_path)
    sinks = open_sinks(outputs, headless=headless, fps=None)
    assert sum(isinstance(sink, WindowSink) for sink in sinks) == expected_windows
    for sink in sinks:
        sink.close()


# -- issue 9: never empty a file, refuse duplicates, fail loudly on a full disk -------------


@pytest.mark.parametrize(
    "outputs, match",
    [
        (["out.mp4", " out.mp4 "], "'out.mp4' given twice"),
        (["-", "stdout"], "'-' and 'stdout' given twice"),
        (["out.jsonl", "./out.jsonl"], "given twice"),
        (["file://out.mp4", "out.mp4"], "given twice"),
        (["frames_%05d.jpg", "frames_%05d.jpg"], "given twice"),
        (["m.png", "mask:m.png"], "'m.png' and 'mask:m.png' given twice"),  # both would write m.png
        (["mask:m_%05d.png", " mask:./m_%05d.png"], "given twice"),
    ],
)
def test_open_sinks_refuses_an_output_given_twice(tmp_path, monkeypatch, no_display, outputs, match):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(EdgeError, match=match):
        open_sinks(outputs, headless=True, fps=None)


@pytest.mark.parametrize("name", ["old.jsonl", "old.json", "old.mp4", "old.avi"])
@pytest.mark.parametrize("overwrite", [False, True])
def test_an_existing_output_is_refused_unless_overwrite_and_never_emptied_by_the_check(
    tmp_path, monkeypatch, no_display, name, overwrite
):
    monkeypatch.chdir(tmp_path)
    Path(name).write_text("precious\n")
    if overwrite:
        sinks = open_sinks([name], headless=True, fps=None, overwrite=True)
        for sink in sinks:
            sink.close()
    else:
        with pytest.raises(EdgeError, match="already exists.*--overwrite"):
            open_sinks([name], headless=True, fps=None)
    assert Path(name).read_text() == "precious\n"  # opening and closing without frames touches nothing


@pytest.mark.parametrize("name", ["empty.jsonl", "empty.mp4"])
def test_an_existing_empty_output_is_not_refused(tmp_path, name):
    (tmp_path / name).touch()
    for sink in open_sinks([str(tmp_path / name)], headless=True, fps=None):
        sink.close()


@pytest.mark.parametrize("name, match", [("dir.jsonl", "is a folder"), ("dir.mp4", "is a folder")])
def test_a_folder_named_like_a_file_output_is_refused_up_front(tmp_path, name, match):
    (tmp_path / name).mkdir()
    with pytest.raises(EdgeError, match=match):
        open_sinks([str(tmp_path / name)], headless=True, fps=None)


def test_opening_and_closing_sinks_creates_nothing(tmp_path, monkeypatch, no_display):
    monkeypatch.chdir(tmp_path)
    for sink in open_sinks(["a.jsonl", "b.mp4", "frames/", "c_%03d.png", "mask:m_%03d.png", "mask:masks/"],
                           headless=True, fps=None):
        sink.close()
    assert sorted(os.listdir(tmp_path)) == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_json_lines_on_a_full_device_raise_an_output_write_error():
    from edge.sinks import OutputWriteError

    sink = JsonLinesSink("/dev/full", overwrite=True)
    with pytest.raises(OutputWriteError, match="No space left.*holds 0 whole lines.*Fix:"):
        sink.write(make_frame(0), None, {"frame": 0})
    sink.close()
    assert sink.frames_in_output == 0


def test_json_lines_cut_by_a_failed_write_keep_whole_lines_only(tmp_path, monkeypatch):
    import errno

    from edge.sinks import OutputWriteError

    path = tmp_path / "cut.jsonl"
    sink = JsonLinesSink(path)
    sink.write(make_frame(0), None, {"frame": 0})
    real_write = os.write

    def half_then_full(fd, data):  # the disk fills in the middle of the second line
        if len(data) > 4:
            return real_write(fd, bytes(data[:4]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(OutputWriteError, match="line 2.*holds 1 whole lines"):
        sink.write(make_frame(1), None, {"frame": 1, "pad": "x" * 100})
    monkeypatch.undo()
    sink.close()
    assert path.read_text() == '{"frame":0}\n'


class FullStream(io.StringIO):
    def flush(self) -> None:
        raise OSError(28, "No space left on device")


def test_json_lines_to_a_full_stream_raise_an_output_write_error():
    from edge.sinks import OutputWriteError

    with JsonLinesSink(FullStream()) as sink, pytest.raises(OutputWriteError, match="No space left"):
        sink.write(make_frame(0), None, {"frame": 0})


@pytest.fixture()
def tiny_disk(mount_tmpfs):
    """A 1 MiB tmpfs (needs root and mount); skipped with the reason when it cannot be mounted."""
    return mount_tmpfs("size=1m", "tiny")


def test_video_on_a_nearly_full_disk_stops_with_an_error_and_stays_playable(tiny_disk):
    from edge.sinks import OutputWriteError

    path = tiny_disk / "out.mp4"
    (tiny_disk / "ballast").write_bytes(os.urandom(300 * 1024))  # leaves room for a few frames only
    sink = VideoSink(path, fps=10)
    with pytest.raises(OutputWriteError, match="nearly full.*stopped at"):
        for i in range(2000):
            sink.preflight()
            sink.write(make_frame(i, (320, 240)), None, {})
    sink.close()
    assert sink.frames_written > 0
    count, frames = read_video(path)
    assert len(frames) == sink.frames_written == sink.frames_in_output


@pytest.mark.parametrize("make", [lambda path: ImageSink(str(path / "f_%05d.png")),
                                  lambda path: MaskImageSink(str(path / "m_%05d.png"))], ids=["image", "mask"])
def test_images_on_a_nearly_full_disk_stop_before_a_frame_that_would_not_fit(tiny_disk, make):
    from edge.results import Segmentation
    from edge.sinks import FrameRecord, OutputWriteError

    rng = np.random.default_rng(0)
    sink = make(tiny_disk)
    with pytest.raises(OutputWriteError, match=r"nearly full \(\d+ KiB left\) after \d+ (image|mask image)s"):
        for i in range(2000):
            sink.preflight()
            noise = rng.integers(0, 256, (120, 160), np.uint8)  # incompressible: ~19 KiB a PNG
            frame = Frame(np.dstack([noise] * 3), i, 0.0)
            sink.write(frame, None, FrameRecord(Segmentation(noise.astype(np.int32))))
    sink.close()
    written = sorted(tiny_disk.glob("*_*.png"))
    assert 0 < len(written) == sink.images_written == sink.frames_in_output < 60
    assert all(cv2.imread(str(path), cv2.IMREAD_UNCHANGED) is not None for path in written)  # none cut short


# --- segmented recording (--segment-seconds) ---------------------------------------------------


@pytest.mark.parametrize("name, expected", [("rec.mp4", "rec_%05d.mp4"), ("cam-%03d.mkv", "cam-%03d.mkv")])
def test_segmented_video_splits_every_n_seconds_into_playable_files(tmp_path, name, expected):
    sink = SegmentedVideoSink(tmp_path / name, 0.5, fps=10)  # 5 frames a segment
    with sink:
        for index in range(12):
            assert sink.write(make_frame(index), None, {}) is True
            assert sink.frames_in_output == index + 1
    pattern = str(tmp_path / expected)
    assert sink.pattern == pattern and sink.frames_per_segment == 5
    assert sink.segments == [Path(pattern % k) for k in range(3)]
    assert sorted(os.listdir(tmp_path)) == sorted(Path(pattern % k).name for k in range(3))
    counts, levels = [], []
    for segment in sink.segments:
        _, frames = read_video(segment)
        counts.append(len(frames))
        levels += [float(image.mean()) for image in frames]
    assert counts == [5, 5, 2] and sink.frames_in_output == 12
    expected = [float(make_frame(i).image.mean()) for i in range(12)]
    assert np.abs(np.array(levels) - expected).max() < 12  # in order, none lost (lossy codec)


def test_segmented_video_refuses_existing_segments_unless_overwrite(tmp_path):
    (tmp_path / "rec_00003.mp4").write_bytes(b"old")
    (tmp_path / "rec_final.mp4").write_bytes(b"not a segment")
    with pytest.raises(EdgeError, match=r"1 segment\(s\) of this recording already exist.*--overwrite"):
        SegmentedVideoSink(tmp_path / "rec.mp4", 1.0, fps=10)
    SegmentedVideoSink(tmp_path / "rec.mp4", 1.0, fps=10, overwrite=True).close()
    assert (tmp_path / "rec_00003.mp4").read_bytes() == b"old"  # the check alone changes nothing


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), float("inf")])
def test_segmented_video_refuses_a_bad_length(tmp_path, seconds):
    with pytest.raises(EdgeError, match="--segment-seconds must be a positive number"):
        SegmentedVideoSink(tmp_path / "rec.mp4", seconds, fps=10)


def test_segment_flags_that_cannot_work_are_refused(tmp_path, no_display):
    with pytest.raises(EdgeError, match="no video output is given"):
        open_sinks([str(tmp_path / "r.jsonl")], headless=True, fps=None, segment_s=10)
    with pytest.raises(EdgeError, match="pattern for segments.*--segment-seconds"):
        open_sinks([str(tmp_path / "r_%03d.mp4")], headless=True, fps=None)
    with pytest.raises(EdgeError, match="one integer field"):
        open_sinks([str(tmp_path / "r_%s.mp4")], headless=True, fps=None, segment_s=10)
    sinks = open_sinks([str(tmp_path / "r.mkv"), str(tmp_path / "r.jsonl")], headless=True, fps=25, segment_s=2)
    assert [type(sink).__name__ for sink in sinks] == ["SegmentedVideoSink", "JsonLinesSink"]
    assert sinks[0].frames_per_segment == 50
    for sink in sinks:
        sink.close()
    assert os.listdir(tmp_path) == []


def test_a_frame_record_is_serialised_once_for_all_its_json_outputs(monkeypatch):
    import json as json_module

    from edge.sinks import FrameRecord, dumps_line

    calls = []
    real = json_module.dumps
    monkeypatch.setattr(json_module, "dumps", lambda *a, **k: calls.append(1) or real(*a, **k))
    record = FrameRecord(None, frame=3, timings_ms={"infer": 1.5})
    first, second = dumps_line(record), dumps_line(record)
    assert first == second == '{"frame":3,"timings_ms":{"infer":1.5}}' and len(calls) == 1
    assert dumps_line({"frame": 3}) == '{"frame":3}' and len(calls) == 2  # a plain dict is not cached
