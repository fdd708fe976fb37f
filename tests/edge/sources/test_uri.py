"""URI parsing: input -> kind/target/options, bad input -> the error users see; pipeline builders."""

from pathlib import Path

import pytest

from edge.errors import EdgeError
from edge.sources import parse_source
from edge.sources.uri import csi_pipeline, flip_number, redact_url, rtsp_pipeline


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A clip, an image and a folder for the path cases ({tmp} in the tables)."""
    (tmp_path / "clip.mp4").write_bytes(b"not decoded by the parser")
    (tmp_path / "photo.JPG").write_bytes(b"x")
    (tmp_path / "images").mkdir()
    return tmp_path


GOOD = [
    (0, "v4l2", 0, {}),
    ("0", "v4l2", 0, {}),
    ("3", "v4l2", 3, {}),
    ("/dev/video0", "v4l2", "/dev/video0", {}),
    ("v4l2:///dev/video0", "v4l2", "/dev/video0", {}),
    ("v4l2://0", "v4l2", 0, {}),
    (
        "/dev/video2?width=640&height=480&fourcc=MJPG",
        "v4l2",
        "/dev/video2",
        {"width": "640", "height": "480", "fourcc": "MJPG"},
    ),
    ("0?fps=30&reconnect=2", "v4l2", 0, {"fps": "30", "reconnect": "2"}),
    (
        "csi://0?width=1920&height=1080&fps=30&flip=rotate-180",
        "csi",
        0,
        {"width": "1920", "height": "1080", "fps": "30", "flip": "rotate-180"},
    ),
    ("csi://1", "csi", 1, {}),
    ("rtsp://user:pw@host:554/path?latency=200", "rtsp", "rtsp://user:pw@host:554/path", {"latency": "200"}),
    ("rtsp://cam/stream?channel=1&latency=100", "rtsp", "rtsp://cam/stream?channel=1", {"latency": "100"}),
    ("rtsps://cam/s", "rtsp", "rtsps://cam/s", {}),
    ("http://cam.local/video.mjpg", "http", "http://cam.local/video.mjpg", {}),
    ("https://x/y?token=abc&reconnect=0", "http", "https://x/y?token=abc", {"reconnect": "0"}),
    ("file://{tmp}/clip.mp4", "file", "{tmp}/clip.mp4", {}),
    ("{tmp}/clip.mp4", "file", "{tmp}/clip.mp4", {}),
    ("{tmp}/clip.mp4?loop=2", "file", "{tmp}/clip.mp4", {"loop": "2"}),
    ("{tmp}/photo.JPG", "image", "{tmp}/photo.JPG", {}),
    ("{tmp}/images", "folder", "{tmp}/images", {}),
    ("file://{tmp}/images?loop=-1", "folder", "{tmp}/images", {"loop": "-1"}),
    ("gst://videotestsrc ! videoconvert ! appsink", "gst", "videotestsrc ! videoconvert ! appsink", {}),
    (
        "gst://videotestsrc ! appsink drop=1 max-buffers=1?reconnect=0",
        "gst",
        "videotestsrc ! appsink drop=1 max-buffers=1",
        {"reconnect": "0"},
    ),
    ("demo://", "demo", "", {}),
    ("DEMO://", "demo", "", {}),
    (
        "demo://?seed=3&width=1280&height=720&fps=30&frames=300",
        "demo",
        "",
        {"seed": "3", "width": "1280", "height": "720", "fps": "30", "frames": "300"},
    ),
]


@pytest.mark.parametrize(("uri", "kind", "target", "options"), GOOD)
def test_parse_source(files: Path, uri, kind: str, target, options: dict) -> None:
    if isinstance(uri, str):
        uri = uri.format(tmp=files)
    if isinstance(target, str):
        target = target.format(tmp=files)
    spec = parse_source(uri)
    assert (spec.kind, spec.target, spec.options) == (kind, target, options)
    assert spec.uri == str(uri)


BAD = [
    ("ftp://x", "unknown source scheme 'ftp://'"),
    ("ftp://x", "demo://"),
    ("{tmp}/missing.mp4", "no such file"),
    ("file://{tmp}/missing.jpg", "no such file"),
    ("csi://abc", "sensor id must be a number"),
    ("v4l2://video0", "bad V4L2 device"),
    ("gst://videotestsrc ! fakesink", "appsink drop=1 max-buffers=1"),
    ("gst://", "must end in appsink"),
    ("demo://?colour=red", "known options: fps, frames, height, realtime, scene, seed, width"),
    ("demo://?scene=cats", "face or digits"),
    ("demo://scene", "demo:// takes no path"),
    ("demo://?seed", "not key=value"),
    ("demo://?width=-5", "an integer 1..16384"),
    # issue 9 item 10: sizes that ended in a traceback or the out-of-memory killer
    ("demo://?width=100000&height=100000", "option width='100000' is not an integer 1..16384 (pixels)"),
    ("demo://?width=99999999999999999999999", "an integer 1..16384"),
    ("demo://?width=0&height=0", "an integer 1..16384"),
    ("demo://?width=16000&height=16000", "frame size 16000x16000 is outside what edge handles"),
    ("demo://?width=8000&height=8000", "at most 33.2 MP"),
    ("0?width=20000&height=20000", "an integer 1..16384"),
    ("/dev/video0?width=9000&height=9000", "frame size 9000x9000"),
    ("csi://0?output_width=9000&output_height=9000", "frame size 9000x9000"),
    ("demo://?frames=1000000000000000000000", "an integer >= 0"),
    ("demo://?fps=fast", "a number > 0"),
    ("demo://?realtime=maybe", "1 or 0"),
    ("csi://0?flip=sideways", "rotate-180"),
    ("0?bogus=1", "unknown option 'bogus' for a v4l2 source"),
    ("0?fourcc=MJPEG", "four characters"),
    ("rtsp://cam/s?codec=vp9", "h264 or h265"),
    ("{tmp}/clip.mp4?loop=-2", "an integer >= -1"),
    ("{tmp}/images?reconnect=1", "known options: loop"),
    ("", "empty source"),
    (True, "camera index"),
    (1.5, "camera index"),
]


@pytest.mark.parametrize(("uri", "message"), BAD)
def test_parse_source_rejects(files: Path, uri, message: str) -> None:
    if isinstance(uri, str):
        uri = uri.format(tmp=files)
    with pytest.raises(EdgeError, match="Fix: ") as caught:
        parse_source(uri)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_keyword_options_override_the_query() -> None:
    spec = parse_source("demo://?seed=1&frames=5", {"seed": 2, "realtime": True})
    assert spec.options == {"seed": "2", "frames": "5", "realtime": "1"}
    assert (
        spec.option_int("seed", 0),
        spec.option_bool("realtime", False),
        spec.option_float("fps", 30.0),
    ) == (2, True, 30.0)


def test_csi_pipeline_matches_the_brief() -> None:
    assert csi_pipeline(1, (1920, 1080), (1280, 720), 30, "rotate-180") == (
        "nvarguscamerasrc sensor-id=1 ! "
        "video/x-raw(memory:NVMM), width=(int)1920, height=(int)1080, framerate=(fraction)30/1 ! "
        "nvvidconv flip-method=2 ! "
        "video/x-raw, width=(int)1280, height=(int)720, format=(string)BGRx ! "
        "videoconvert ! video/x-raw, format=(string)BGR ! "
        "appsink drop=1 max-buffers=1"
    )


@pytest.mark.parametrize(
    ("flip", "number"),
    [
        ("none", 0),
        ("counterclockwise", 1),
        ("rotate-180", 2),
        ("clockwise", 3),
        ("horizontal", 4),
        ("upper-right-diagonal", 5),
        ("vertical", 6),
        ("upper-left-diagonal", 7),
        ("5", 5),
        (3, 3),
        ("Vertical", 6),
    ],
)
def test_flip_number(flip, number: int) -> None:
    assert flip_number(flip) == number


@pytest.mark.parametrize("flip", ["8", "upside-down", -1])
def test_flip_number_rejects(flip) -> None:
    with pytest.raises(EdgeError, match="unknown flip method"):
        flip_number(flip)


@pytest.mark.parametrize(
    ("jetson", "codec", "expected"),
    [
        (True, "h264", "rtph264depay ! h264parse ! nvv4l2decoder ! nvvidconv"),
        (False, "h264", "rtph264depay ! h264parse ! avdec_h264 ! videoconvert"),
        (False, "h265", "rtph265depay ! h265parse ! avdec_h265"),
    ],
)
def test_rtsp_pipeline(jetson: bool, codec: str, expected: str) -> None:
    pipeline = rtsp_pipeline("rtsp://cam/s", 150, codec, jetson=jetson)
    assert pipeline.startswith('rtspsrc location="rtsp://cam/s" latency=150 ! ')
    assert expected in pipeline
    assert pipeline.endswith("video/x-raw, format=(string)BGR ! appsink drop=1 max-buffers=1 sync=false")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rtsp://admin:secret@10.0.0.2:554/live", "rtsp://admin:***@10.0.0.2:554/live"),
        ("rtsp://10.0.0.2/live", "rtsp://10.0.0.2/live"),
        ("http://user@cam/x", "http://user@cam/x"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown
