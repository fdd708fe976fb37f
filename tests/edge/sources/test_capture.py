"""Capture sources: real video files written by cv2.VideoWriter, real OpenCV failures, and one
fake — a VideoCapture-like camera that delivers K frames, fails, and is reopened."""

import threading
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
import pytest
from old_runtimes import opencv_fails_corrupt_frames

from edge.cv import has_gstreamer, require_cv2
from edge.errors import EdgeError
from edge.sources import open_source
from edge.sources.capture import LiveCaptureSource, VideoFileSource
from edge.sources.uri import finite_pipeline, is_jetson

cv2 = require_cv2("the capture tests")

BITS = 6  # frame index written as 6 black/white bars: survives lossy mp4v coding
SIZE_WH = (192, 96)


def write_video(path: Path, frame_count: int, fourcc: str = "mp4v") -> None:
    """A clip (mp4v, or MJPG for .avi) whose frame i shows i in binary as vertical bars."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 25.0, SIZE_WH)
    assert writer.isOpened()
    bar_w = SIZE_WH[0] // BITS
    for index in range(frame_count):
        image = np.zeros((SIZE_WH[1], SIZE_WH[0], 3), np.uint8)
        for bit in range(BITS):
            if index >> bit & 1:
                image[:, bit * bar_w : (bit + 1) * bar_w] = 255
        writer.write(image)
    writer.release()


def read_index(image: np.ndarray) -> int:
    bar_w = SIZE_WH[0] // BITS
    means = [image[:, bit * bar_w + 4 : (bit + 1) * bar_w - 4].mean() for bit in range(BITS)]
    return sum(1 << bit for bit, mean in enumerate(means) if mean > 128)


@pytest.mark.parametrize(
    ("frame_count", "loop", "expected"),
    [
        (1, 0, [0]),
        (20, 0, list(range(20))),
        (7, 2, list(range(7)) * 3),
    ],
)
def test_video_file_delivers_every_frame_in_order(
    tmp_path: Path, frame_count: int, loop: int, expected
) -> None:
    path = tmp_path / "clip.mp4"
    write_video(path, frame_count)
    with open_source(str(path), loop=loop) as source:
        assert (source.live, source.size_wh, source.fps) == (False, SIZE_WH, 25.0)
        frames = list(source)
        assert source.ended_reason == "end of file"
    assert [read_index(frame.image) for frame in frames] == expected
    assert [frame.index for frame in frames] == list(range(len(expected)))
    assert all(
        frame.image.shape == (SIZE_WH[1], SIZE_WH[0], 3) and frame.image.dtype == np.uint8 for frame in frames
    )
    assert all(a.timestamp_s <= b.timestamp_s for a, b in zip(frames, frames[1:]))
    assert source.read() is None


@pytest.mark.parametrize("content", [np.random.default_rng(0).bytes(4096), b""])
def test_unreadable_video_fails_at_open(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.mp4"
    path.write_bytes(content)
    with pytest.raises(EdgeError, match="cannot decode video .*broken.mp4.*ffprobe"):
        open_source(str(path))


def write_corrupt_avi(path: Path, frame_count: int, corrupt: Sequence[int]) -> None:
    """An MJPG .avi like write_video's whose frames in ``corrupt`` have their JPEG bytes zeroed.

    OpenCV fails to decode each of those once and then goes on with the next frame.
    """
    write_video(path, frame_count, "MJPG")
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 3) if data[i : i + 3] == b"\xff\xd8\xff"]  # JPEG SOI
    assert len(starts) == frame_count
    for index in corrupt:
        end = starts[index + 1] - 8 if index + 1 < frame_count else len(data) - 64
        data[starts[index] : end] = bytes(end - starts[index])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("frame_count", "corrupt", "loop", "declared_count", "expected", "skipped"),
    [
        (12, [], 0, True, list(range(12)), 0),
        pytest.param(60, [20], 0, True, [i for i in range(60) if i != 20], 1,  # issue 9 item 5: ended after 20
                     marks=opencv_fails_corrupt_frames),
        pytest.param(12, [0], 0, True, list(range(1, 12)), 1,  # the first frame, read while opening
                     marks=opencv_fails_corrupt_frames),
        pytest.param(12, [3, 4, 5, 9], 0, True, [0, 1, 2, 6, 7, 8, 10, 11], 4, marks=opencv_fails_corrupt_frames),
        (12, [11], 0, True, list(range(11)), 0),  # the last: cannot be told from the end
        pytest.param(8, [2], 1, True, [0, 1, 3, 4, 5, 6, 7] * 2, 2, marks=opencv_fails_corrupt_frames),
        pytest.param(12, [5, 6], 0, False, [0, 1, 2, 3, 4, 7, 8, 9, 10, 11], 2,  # no frame count declared
                     marks=opencv_fails_corrupt_frames),
    ],
)
def test_video_file_skips_undecodable_frames_and_counts_them(
    tmp_path: Path, monkeypatch, frame_count: int, corrupt, loop: int, declared_count: bool, expected, skipped: int
) -> None:
    path = tmp_path / "clip.avi"
    write_corrupt_avi(path, frame_count, corrupt)
    if not declared_count:
        real_open = VideoFileSource._open

        def open_without_count(self):
            return CountlessCapture(real_open(self))

        monkeypatch.setattr(VideoFileSource, "_open", open_without_count)
    with open_source(str(path), loop=loop) as source:
        assert source.skipped_frames == (1 if corrupt[:1] == [0] else 0)
        frames = list(source)
        assert (source.ended_reason, source.skipped_frames) == ("end of file", skipped)
    assert [read_index(frame.image) for frame in frames] == expected
    assert [frame.index for frame in frames] == list(range(len(expected)))


class CountlessCapture:
    """A real VideoCapture that reports no frame count, as some containers and streams do."""

    def __init__(self, cap) -> None:
        self._cap = cap

    def get(self, prop: int) -> float:
        return 0.0 if prop == cv2.CAP_PROP_FRAME_COUNT else self._cap.get(prop)

    def __getattr__(self, name: str):
        return getattr(self._cap, name)


def test_a_source_that_never_skips_reports_zero() -> None:
    with open_source("demo://?frames=2&width=64&height=48") as source:
        assert [frame.index for frame in source] == [0, 1]
        assert source.skipped_frames == 0


class FakeCamera:
    """VideoCapture-like: delivers ``frame_count`` frames (values from a shared counter), then fails.

    Each read waits for a ticket from the test, so the test decides when a frame is captured.
    ``frame_count`` None means the open fails.
    """

    def __init__(self, frame_count: Optional[int], opener: "FakeOpener") -> None:
        self.frames_left = frame_count
        self.opener = opener
        self.released = False

    def isOpened(self) -> bool:  # noqa: N802 - the cv2.VideoCapture name
        return self.frames_left is not None and not self.released

    def read(self):
        if not self.frames_left:
            return False, None
        while not self.opener.tickets.acquire(timeout=0.01):
            if self.released:
                return False, None
            if self.opener.free_running.is_set():
                break
        self.frames_left -= 1
        self.opener.counter[0] += 1
        return True, np.full((4, 6, 3), self.opener.counter[0] - 1, np.uint8)

    def get(self, prop: int) -> float:
        return 0.0

    def release(self) -> None:
        self.released = True


class FakeOpener:
    """Hands out FakeCameras following a script of frame counts (None: the open fails)."""

    def __init__(self, script: Sequence[Optional[int]]) -> None:
        self.script = list(script)
        self.tickets = threading.Semaphore(0)
        self.counter = [0]
        self.free_running = threading.Event()  # like a real camera: frames come without tickets
        self.opened: List[FakeCamera] = []

    def __call__(self) -> FakeCamera:
        frames = self.script.pop(0) if self.script else None
        camera = FakeCamera(frames, self)
        self.opened.append(camera)
        return camera


def drain(source, opener: FakeOpener) -> List[int]:
    """Let the fake capture one frame at a time and collect what the source delivers."""
    values = []
    while True:
        opener.tickets.release()
        frame = source.read(timeout_s=10)
        if frame is None:
            return values
        assert frame.index == len(values)
        values.append(int(frame.image[0, 0, 0]))


@pytest.mark.parametrize(
    ("script", "reconnect", "values", "reason", "opens"),
    [
        ([3], 0, [0, 1, 2], "camera lost (reconnect=0)", 1),
        ([3, None, 2], 3, [0, 1, 2, 3, 4], "camera lost after 3 reconnect attempts", 6),
        ([2, None, None, 5], 2, [0, 1], "camera lost after 2 reconnect attempts", 3),
        ([1, 1, 1], 1, [0, 1, 2], "camera lost after 1 reconnect attempts", 4),
    ],
)
def test_live_source_reconnects_then_ends(script, reconnect: int, values, reason: str, opens: int) -> None:
    opener = FakeOpener(script)
    with LiveCaptureSource("fake://cam", opener, reconnect=reconnect, backoff_s=(0.001, 0.004)) as source:
        assert source.live
        assert drain(source, opener) == values
        assert source.ended_reason == reason
        assert source.lost  # gone for good: the camera app exits 3 on this
        assert source.dropped == 0
    assert len(opener.opened) == opens
    assert all(camera.released for camera in opener.opened)


def test_live_source_keeps_only_the_newest_frame() -> None:
    opener = FakeOpener([100])
    with open_source(0, opener=opener) as source:
        opener.tickets.release()
        assert int(source.read(timeout_s=10).image[0, 0, 0]) == 0
        for _ in range(3):
            opener.tickets.release()
        while opener.counter[0] < 4 or source.dropped < 2:  # wait for the reader thread, not for a time
            threading.Event().wait(0.001)
        frame = source.read(timeout_s=10)
        assert (int(frame.image[0, 0, 0]), frame.index, source.dropped) == (3, 1, 2)
        assert source.read(timeout_s=0.01) is None
        assert not source.ended
        opener.free_running.set()
    assert source.ended_reason == "closed"
    assert opener.opened[0].released


def test_close_is_idempotent_and_reading_after_close_returns_none() -> None:
    opener = FakeOpener([100])
    source = open_source("/dev/video0?reconnect=0", opener=opener)
    opener.free_running.set()
    source.close()
    source.close()
    assert source.read(timeout_s=0.01) is None
    assert source.ended_reason == "closed"
    assert opener.opened[0].released


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (99, "no camera at index 99"),
        ("/dev/video99", "no camera at /dev/video99"),
    ],
)
def test_missing_camera_fails_at_open(uri, message: str) -> None:
    with pytest.raises(EdgeError, match="list-cameras") as caught:
        open_source(uri)
    assert message in str(caught.value)


def test_failed_first_open_raises_and_releases() -> None:
    opener = FakeOpener([None])
    with pytest.raises(EdgeError, match="no camera at index 7"):
        open_source(7, opener=opener)
    assert opener.opened[0].released


@pytest.mark.skipif(
    has_gstreamer(), reason="this OpenCV has GStreamer: the missing-GStreamer errors do not apply"
)
@pytest.mark.parametrize("uri", ["csi://0", "gst://videotestsrc ! videoconvert ! appsink"])
def test_gstreamer_sources_need_gstreamer(uri: str) -> None:
    with pytest.raises(EdgeError, match="GStreamer.*pip uninstall opencv-python.*--system-site-packages"):
        open_source(uri)


@pytest.mark.skipif(not has_gstreamer() or is_jetson(), reason="needs GStreamer in cv2, and no Jetson")
def test_csi_off_a_jetson_fails_before_opencv_hangs() -> None:
    with pytest.raises(EdgeError, match="needs a Jetson"):
        open_source("csi://0")


@pytest.mark.skipif(has_gstreamer(), reason="with GStreamer, RTSP goes through rtspsrc instead of FFmpeg")
def test_rtsp_without_gstreamer_uses_ffmpeg_and_hides_the_password() -> None:
    with pytest.raises(
        EdgeError, match="cannot open stream rtsp://admin:\\*\\*\\*@127.0.0.1:9/live"
    ) as caught:
        open_source("rtsp://admin:secret@127.0.0.1:9/live?reconnect=0")
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("pipeline", "finite"),
    [
        ("videotestsrc num-buffers=30 ! videoconvert ! appsink", "videotestsrc num-buffers=30"),
        ("videotestsrc is-live=true num-buffers=1 ! videoconvert ! appsink", "videotestsrc num-buffers=1"),
        ("nvarguscamerasrc sensor-id=0 num-buffers=300 ! nvvidconv ! appsink", "nvarguscamerasrc num-buffers=300"),
        ("filesrc location=clip.mp4 ! qtdemux ! h264parse ! avdec_h264 ! videoconvert ! appsink", "filesrc"),
        ("multifilesrc location=img_%05d.jpg ! jpegdec ! videoconvert ! appsink", "multifilesrc"),
        ("uridecodebin uri=file:///tmp/clip.mp4 ! videoconvert ! appsink", "uridecodebin uri=file:"),
        ("videotestsrc ! videoconvert ! appsink", None),
        ("videotestsrc num-buffers=-1 ! videoconvert ! appsink", None),
        ("videotestsrc num-buffers=0 ! videoconvert ! appsink", None),
        ("multifilesrc location=img_%05d.jpg loop=true ! jpegdec ! videoconvert ! appsink", None),
        ("v4l2src device=/dev/video0 ! videoconvert ! appsink", None),
        ('rtspsrc location="rtsp://cam/live" ! rtph264depay ! h264parse ! avdec_h264 ! videoconvert ! appsink', None),
        ("uridecodebin uri=rtsp://cam/live ! videoconvert ! appsink", None),
    ],
)
def test_finite_pipelines_are_told_from_live_ones(pipeline: str, finite: Optional[str]) -> None:
    assert finite_pipeline(pipeline) == finite


GST_FINITE = "gst://videotestsrc num-buffers=3 ! videoconvert ! appsink"
GST_LIVE = "gst://videotestsrc ! videoconvert ! appsink"


@pytest.mark.parametrize(
    ("uri", "script", "values", "reason", "lost", "opens"),
    [
        # a finite pipeline ends at its end of stream: never reopened (it would replay forever)
        (GST_FINITE, [3, 3, 3], [0, 1, 2], "end of stream", False, 1),
        (GST_FINITE + "?reconnect=5", [3, 3], [0, 1, 2], "end of stream", False, 1),
        (GST_LIVE + "?finite=1", [2, 2], [0, 1], "end of stream", False, 1),
        # a live one is reopened; when reopening fails, it is lost for good
        (GST_LIVE + "?reconnect=1", [2, 2, None], [0, 1, 2, 3], "stream lost after 1 reconnect attempts", True, 3),
        (GST_FINITE + "?finite=0&reconnect=1", [3, None], [0, 1, 2], "stream lost after 1 reconnect attempts",
         True, 2),
    ],
)
def test_gst_pipeline_ends_at_end_of_stream_or_reconnects(uri, script, values, reason, lost, opens) -> None:
    opener = FakeOpener(script)
    with open_source(uri, opener=opener) as source:
        source._backoff_s = (0.001, 0.004)
        assert drain(source, opener) == values
        assert (source.ended_reason, source.lost) == (reason, lost)
    assert len(opener.opened) == opens
    assert all(camera.released for camera in opener.opened)


@pytest.mark.skipif(not has_gstreamer(), reason="this OpenCV has no GStreamer (pip's opencv-python)")
def test_gst_pipeline_runs_for_real_and_ends_at_end_of_stream() -> None:
    uri = "gst://videotestsrc num-buffers=30 ! videoconvert ! video/x-raw,format=BGR ! appsink"
    frames = []
    with open_source(uri) as source:
        for frame in source:
            frames.append(frame)
            if len(frames) > 90:  # reopened: the bug this guards against replays the 30 buffers forever
                break
        assert (source.ended_reason, source.lost) == ("end of stream", False)
    assert 1 <= len(frames) <= 30 and len(frames) + source.dropped == 30
    assert frames[0].image.shape == (240, 320, 3)
    assert [frame.index for frame in frames] == list(range(len(frames)))


@pytest.mark.skipif(not has_gstreamer(), reason="this OpenCV has no GStreamer (pip's opencv-python)")
def test_live_gst_pipeline_that_fails_to_reopen_is_lost_for_real() -> None:
    """A pipeline whose device is gone: no frames, every reopen fails, the source is lost (not ended)."""
    opens = []

    def opener():
        opens.append(1)
        if len(opens) == 1:  # the first open: a real pipeline that delivers 5 frames, then fails
            return cv2.VideoCapture("videotestsrc num-buffers=5 ! videoconvert ! appsink", cv2.CAP_GSTREAMER)
        return cv2.VideoCapture("v4l2src device=/dev/edge-no-such-camera ! videoconvert ! appsink",
                                cv2.CAP_GSTREAMER)

    with LiveCaptureSource("gst://test", opener, reconnect=2, backoff_s=(0.001, 0.004), lost_what="stream") as source:
        frames = list(source)
        assert (source.ended_reason, source.lost) == ("stream lost after 2 reconnect attempts", True)
    assert 1 <= len(frames) <= 5 and len(opens) == 3


@opencv_fails_corrupt_frames
def test_the_camera_app_reports_skipped_frames(tmp_path):
    """The issue's case end to end: 60 frames, one corrupt in the middle -> 59 results, the skip in the summary."""
    pytest.importorskip("onnx", reason="the camera app reads the model with onnx (a base dependency)")
    import json
    import os
    import subprocess
    import sys

    path = tmp_path / "clip.avi"
    write_corrupt_avi(path, 60, [20])
    summary_json = tmp_path / "summary.json"
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run([sys.executable, "-m", "edge.camera", "--source", str(path), "--headless", "--output",
                           "none", "--summary-json", str(summary_json)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=120,
                          cwd=root,
                          env=dict(os.environ, PYTHONPATH=str(root)))
    assert done.returncode == 0, done.stderr
    summary = json.loads(summary_json.read_text())
    assert summary["frames"] == 59 and summary["skipped_frames"] == 1
    assert "1 undecodable frame skipped" in done.stderr


def test_gst_pipeline_elements_are_read_from_the_pipeline_text():
    from edge.sources.openers import pipeline_elements

    text = ("v4l2src device=/dev/video0 ! video/x-raw,width=640 ! videoconvert ! "
            "video/x-raw,format=BGR ! appsink drop=true")
    assert pipeline_elements(text) == ["v4l2src", "videoconvert", "appsink"]


def test_a_gst_pipeline_that_never_starts_is_a_one_line_error_not_a_hang(monkeypatch):
    """OpenCV 4.x never returns from opening a pipeline with an element that is not installed (seen on Debian's
    OpenCV 4.6): the open has a time limit."""
    import threading

    from edge.sources import openers as capture

    release = threading.Event()

    class StuckCapture:
        def __init__(self, *args):
            release.wait(30)  # what cv2.VideoCapture does there: never returns

    fake_cv2 = type("cv2", (), {"VideoCapture": StuckCapture, "CAP_GSTREAMER": 1800})
    monkeypatch.setattr(capture, "require_cv2", lambda what: fake_cv2)
    monkeypatch.setattr(capture, "missing_gst_elements", lambda pipeline: [])
    try:
        with pytest.raises(EdgeError, match=r"did not start within 0.2 s .*gst-inspect-1.0 NAME"):
            capture.gstreamer_opener("edgenosuchsrc ! videoconvert ! appsink", timeout_s=0.2)()
    finally:
        release.set()


def test_a_missing_gst_element_is_named_with_its_package(monkeypatch):
    from edge.sources import openers as capture

    monkeypatch.setattr(capture, "require_cv2", lambda what: object())
    monkeypatch.setattr(capture, "missing_gst_elements", lambda pipeline: ["v4l2src"])
    with pytest.raises(EdgeError, match="GStreamer element 'v4l2src' is not installed.*gstreamer1.0-plugins-good"):
        capture.gstreamer_opener("v4l2src ! videoconvert ! appsink")()


@pytest.mark.skipif(not has_gstreamer(), reason="needs OpenCV built with GStreamer (Debian's python3-opencv)")
def test_a_gst_source_with_an_element_that_does_not_exist_ends_in_one_line_for_real(monkeypatch):
    monkeypatch.setenv("EDGE_GST_OPEN_TIMEOUT_S", "5")
    with pytest.raises(EdgeError, match="edgenosuchsrc|did not start within 5 s|cannot open"):
        with open_source("gst://edgenosuchsrc ! videoconvert ! appsink") as source:
            next(iter(source))
