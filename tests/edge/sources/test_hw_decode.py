"""Hardware video decode (edge.sources.hwdecode): the Jetson pipelines as strings, the choice with the board,
OpenCV's build information and gst-inspect-1.0 faked, and the same pipelines run for real under Debian's
GStreamer-enabled OpenCV with its software decoders standing in for nvv4l2decoder/nvjpegdec/nvvidconv."""

import re
import types
from pathlib import Path
from typing import Any, Callable, List, Optional

import numpy as np
import pytest

import edge.cv
from edge.cv import has_gstreamer, require_cv2
from edge.errors import EdgeError
from edge.sources import hwdecode
from edge.sources.capture import VideoFileSource, _rtsp_opener, open_live
from edge.sources.hwdecode import (
    JETSON_ELEMENTS,
    STAND_IN_ELEMENTS,
    DecodeChoice,
    DecodeProbe,
    FallbackOpener,
    choose_file_decode,
    codec_from_fourcc,
    ffprobe_codec,
    file_pipeline,
    probe_codec,
)
from edge.sources.openers import GST_PACKAGES, gst_inspect_missing, pipeline_elements
from edge.sources.uri import parse_source, rtsp_pipeline

cv2 = require_cv2("the decode tests")

TAIL = ("nvvidconv ! video/x-raw, format=(string)BGRx ! videoconvert ! video/x-raw, format=(string)BGR ! "
        "appsink drop=0 max-buffers=4 sync=false")
SIZE_WH = (160, 96)
FRAMES = 12


# ------------------------------------------------------------------ the Jetson pipelines, as strings

@pytest.mark.parametrize(
    ("path", "codec", "expected"),
    [
        ("/v/clip.mp4", "h264",
         'filesrc location="/v/clip.mp4" ! qtdemux name=demux demux.video_0 ! queue ! h264parse ! nvv4l2decoder ! '),
        ("/v/clip.MOV", "h265",
         'filesrc location="/v/clip.MOV" ! qtdemux name=demux demux.video_0 ! queue ! h265parse ! nvv4l2decoder ! '),
        ("/v/clip.mkv", "h265",
         'filesrc location="/v/clip.mkv" ! matroskademux name=demux demux.video_0 ! queue ! h265parse ! '
         "nvv4l2decoder ! "),
        ("/v/cam.avi", "mjpeg",
         'filesrc location="/v/cam.avi" ! avidemux name=demux demux.video_0 ! queue ! nvjpegdec ! '),
        ("/v/raw.h264", "h264", 'filesrc location="/v/raw.h264" ! h264parse ! nvv4l2decoder ! '),
        ("/v/raw.h265", "h265", 'filesrc location="/v/raw.h265" ! h265parse ! nvv4l2decoder ! '),
        ('/v/a "b".mp4', "h264",
         'filesrc location="/v/a \\"b\\".mp4" ! qtdemux name=demux demux.video_0 ! queue ! h264parse ! '
         "nvv4l2decoder ! "),
    ],
)
def test_file_pipelines_for_the_jetson(path: str, codec: str, expected: str) -> None:
    assert file_pipeline(path, codec) == expected + TAIL


@pytest.mark.parametrize(
    ("codec", "expected"),
    [
        ("h264", 'rtspsrc location="rtsp://cam/s" latency=150 ! rtph264depay ! h264parse ! nvv4l2decoder ! '),
        ("h265", 'rtspsrc location="rtsp://cam/s" latency=150 ! rtph265depay ! h265parse ! nvv4l2decoder ! '),
    ],
)
def test_rtsp_pipelines_for_the_jetson(codec: str, expected: str) -> None:
    live_tail = TAIL.replace("appsink drop=0 max-buffers=4 sync=false", "appsink drop=1 max-buffers=1 sync=false")
    assert rtsp_pipeline("rtsp://cam/s", 150, codec, jetson=True) == expected + live_tail
    assert rtsp_pipeline("rtsp://cam/s", 150, codec, elements=JETSON_ELEMENTS) == expected + live_tail


def _swap(pipeline: str) -> str:
    """A Jetson pipeline with its NVIDIA elements named as the stand-ins are."""
    for jetson, stand_in in (("nvjpegdec", "jpegdec"), ("nvvidconv", "videoconvert")):
        pipeline = pipeline.replace(f"{jetson} ", f"{stand_in} ")
    for codec in ("h264", "h265"):
        pipeline = pipeline.replace(f"{codec}parse ! nvv4l2decoder", f"{codec}parse ! avdec_{codec}")
    return pipeline


@pytest.mark.parametrize(("path", "codec"), [("c.mp4", "h264"), ("c.mkv", "h265"), ("c.avi", "mjpeg"),
                                             ("c.h264", "h264")])
def test_stand_ins_run_the_same_pipeline_shape_with_the_element_names_swapped(path: str, codec: str) -> None:
    jetson, stand_in = file_pipeline(path, codec), file_pipeline(path, codec, STAND_IN_ELEMENTS)
    assert stand_in == _swap(jetson) and stand_in != jetson
    assert len(pipeline_elements(stand_in)) == len(pipeline_elements(jetson))
    url = "rtsp://cam/s"
    if codec != "mjpeg":
        assert rtsp_pipeline(url, 200, codec, elements=STAND_IN_ELEMENTS) == _swap(rtsp_pipeline(url, 200, codec, True))


def test_a_file_delivers_every_frame_and_a_stream_only_the_newest() -> None:
    assert "drop=0" in file_pipeline("c.mp4", "h264") and "drop=1" not in file_pipeline("c.mp4", "h264")
    assert rtsp_pipeline("rtsp://cam/s", 200, "h264", True).endswith("appsink drop=1 max-buffers=1 sync=false")


def test_a_file_without_a_demuxer_has_no_pipeline() -> None:
    with pytest.raises(ValueError, match="no demuxer for '.webm'"):
        file_pipeline("c.webm", "h264")


# ------------------------------------------------------------------ reading the codec

@pytest.mark.parametrize(
    ("fourcc", "codec"),
    [("avc1", "h264"), ("H264", "h264"), ("hev1", "h265"), ("hvc1", "h265"), ("HEVC", "h265"), ("MJPG", "mjpeg"),
     ("mp4v", None), ("XVID", None), ("", None)],
)
def test_codec_from_fourcc(fourcc: str, codec: Optional[str]) -> None:
    assert codec_from_fourcc(fourcc) == codec


@pytest.mark.parametrize(("out", "name"), [("h264\n", "h264"), ("hevc\n", "hevc"), ("", None), (None, None)])
def test_ffprobe_codec_reads_the_first_video_stream(out: Optional[str], name: Optional[str]) -> None:
    calls: List[List[str]] = []

    def run(command: List[str]) -> Optional[str]:
        calls.append(command)
        return out

    assert ffprobe_codec("/v/c.mp4", run) == name
    assert calls[0][0] == "ffprobe" and "v:0" in calls[0] and calls[0][-1] == "/v/c.mp4"


@pytest.mark.parametrize(
    ("path", "ffprobe", "fourcc", "expected"),
    [
        ("c.mp4", "hevc", "avc1", ("h265", "ffprobe")),
        ("c.mp4", "mpeg4", None, ("mpeg4", "ffprobe")),
        ("c.mp4", None, "avc1", ("h264", "OpenCV")),
        ("c.mp4", None, "mp4v", ("mp4v", "OpenCV")),
        ("c.mkv", None, None, ("h264", "usual for .mkv")),
        ("c.avi", None, None, ("mjpeg", "usual for .avi")),
        ("c.h265", None, None, ("h265", "usual for .h265")),
        ("c.webm", None, None, (None, "neither ffprobe nor OpenCV reads its codec")),
    ],
)
def test_probe_codec_tries_ffprobe_then_opencv_then_the_container(monkeypatch, path, ffprobe, fourcc, expected):
    monkeypatch.setattr(hwdecode, "ffprobe_codec", lambda p: ffprobe)
    monkeypatch.setattr(hwdecode, "opencv_fourcc", lambda p: fourcc)
    assert probe_codec(path) == expected


def _write(path: Path, fourcc: str, frames: int = FRAMES) -> List[np.ndarray]:
    """A clip with a disc moving across and the frame index as bars; the frames written."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 25.0, SIZE_WH)
    if not writer.isOpened():
        pytest.skip(f"this OpenCV cannot write {fourcc} into {path.suffix} (FFmpeg without that encoder)")
    written = []
    for index in range(frames):
        image = np.full((SIZE_WH[1], SIZE_WH[0], 3), 40, np.uint8)
        cv2.circle(image, (12 + 11 * index, 48), 18, (0, 180, 255), -1)
        for bit in range(4):
            if index >> bit & 1:
                image[80:, bit * 40:(bit + 1) * 40] = 230
        writer.write(image)
        written.append(image)
    writer.release()
    return written


def test_opencv_reads_the_fourcc_of_a_real_file(tmp_path: Path) -> None:
    _write(tmp_path / "c.avi", "MJPG", 3)
    _write(tmp_path / "m.mp4", "mp4v", 3)
    assert hwdecode.opencv_fourcc(str(tmp_path / "c.avi")) == "MJPG"
    assert hwdecode.opencv_fourcc(str(tmp_path / "m.mp4")) in ("mp4v", "FMP4")  # MPEG-4 part 2, by build
    assert hwdecode.opencv_fourcc(str(tmp_path / "missing.mp4")) is None


# ------------------------------------------------------------------ the choice, with the machine faked

GST_YES = "  Video I/O:\n    FFMPEG:                      YES\n    GStreamer:                   YES (1.16.3)\n"
GST_NO = "  Video I/O:\n    FFMPEG:                      YES\n    GStreamer:                   NO\n"


def fake_probe(monkeypatch, build_info: str, jetson: bool = True, missing: Optional[List[str]] = None,
               codec: Any = ("h264", "ffprobe"), calls: Optional[List[str]] = None) -> DecodeProbe:
    """A DecodeProbe over a faked board and gst-inspect-1.0, and OpenCV's build information faked underneath
    edge.cv.has_gstreamer (missing: the elements gst-inspect-1.0 does not find, None for no tool)."""
    log = calls if calls is not None else []
    fake_cv2 = types.SimpleNamespace(getBuildInformation=lambda: build_info)
    monkeypatch.setattr(edge.cv, "import_cv2", lambda: fake_cv2)

    def record(name: str, value: Any) -> Callable[..., Any]:
        def answer(*args: Any) -> Any:
            words = args[0] if args and isinstance(args[0], list) else args
            log.append(" ".join([name] + [str(word) for word in words]))
            return value(*args) if callable(value) else value
        return answer

    def missing_of(names: List[str]) -> Optional[List[str]]:
        return None if missing is None else [n for n in names if n in missing]

    return DecodeProbe(jetson=record("jetson", jetson), gstreamer=record("gstreamer", has_gstreamer),
                       missing=record("missing", missing_of), codec=record("codec", codec))


HW = "decode: nvv4l2decoder (hardware) via GStreamer, h264"


@pytest.mark.parametrize(
    ("mode", "jetson", "build", "missing", "codec", "line", "warning"),
    [
        ("auto", True, GST_YES, [], ("h264", "ffprobe"), HW, None),
        ("auto", True, GST_YES, [], ("h265", "OpenCV"), "decode: nvv4l2decoder (hardware) via GStreamer, h265", None),
        ("auto", True, GST_YES, [], ("mjpeg", "usual for .avi"), "decode: nvjpegdec (hardware) via GStreamer, mjpeg",
         None),
        ("auto", False, GST_YES, [], ("h264", "ffprobe"), "decode: software (FFmpeg): no nvv4l2decoder (not a Jetson)",
         None),
        ("auto", True, GST_NO, [], ("h264", "ffprobe"),
         "decode: software (FFmpeg): this OpenCV has no GStreamer (pip's opencv-python)", None),
        ("auto", True, GST_YES, ["nvv4l2decoder"], ("h264", "ffprobe"),
         "decode: software (FFmpeg): nvv4l2decoder is not installed (JetPack's nvidia-l4t-gstreamer (Jetson only))",
         None),
        ("auto", True, GST_YES, ["h264parse"], ("h264", "ffprobe"),
         "decode: software (FFmpeg): h264parse is not installed (gstreamer1.0-plugins-bad)", None),
        ("auto", True, GST_YES, None, ("h264", "ffprobe"),
         "decode: software (FFmpeg): cannot check for nvv4l2decoder: no gst-inspect-1.0 "
         "(apt install gstreamer1.0-tools)", None),
        ("auto", True, GST_YES, [], ("mpeg4", "ffprobe"), "decode: software (FFmpeg)",
         r"^codec mpeg4 \(from ffprobe\) has no hardware pipeline \(h264, h265, mjpeg\): "
         r"decoding in software \(FFmpeg\)$"),
        ("sw", True, GST_YES, [], ("h264", "ffprobe"), "decode: software (FFmpeg): decode=sw", None),
        ("hw", False, GST_YES, [], ("h264", "ffprobe"), HW, None),
        ("hw", True, GST_YES, None, ("h264", "ffprobe"), HW, None),
        ("hw", False, GST_NO, [], ("h264", "ffprobe"), "decode: software (FFmpeg)",
         r"^decode=hw, but this OpenCV has no GStreamer .*: decoding in software \(FFmpeg\)$"),
        ("hw", False, GST_YES, ["nvv4l2decoder", "nvvidconv"], ("h264", "ffprobe"), "decode: software (FFmpeg)",
         r"^decode=hw, but nvv4l2decoder is not installed \(JetPack's"),
        ("HW", True, GST_YES, [], (None, "neither ffprobe nor OpenCV reads its codec"), "decode: software (FFmpeg)",
         r"^decode=hw, but neither ffprobe nor OpenCV reads its codec: decoding in software"),
    ],
)
def test_decode_choice(monkeypatch, mode, jetson, build, missing, codec, line, warning) -> None:
    probe = fake_probe(monkeypatch, build, jetson, missing, codec)
    choice = choose_file_decode("/v/clip.mp4", mode, JETSON_ELEMENTS, probe)
    assert choice.lines()[0] == line
    assert choice.hardware == line.startswith("decode: nv")
    assert (choice.pipeline is not None) == choice.hardware
    if warning is None:
        assert choice.warning is None and len(choice.lines()) == 1
    else:
        assert re.search(warning, choice.warning or "") and choice.lines()[1] == f"warning: {choice.warning}"


def test_off_a_jetson_auto_runs_no_check_at_all(monkeypatch) -> None:
    calls: List[str] = []
    probe = fake_probe(monkeypatch, GST_YES, jetson=False, missing=[], calls=calls)
    choice = choose_file_decode("/v/clip.mp4", "auto", JETSON_ELEMENTS, probe)
    assert not choice.hardware and calls == ["jetson"]  # no build info, no gst-inspect-1.0, no codec probe


def test_the_element_check_asks_for_each_element_of_the_pipeline_once(monkeypatch) -> None:
    calls: List[str] = []
    probe = fake_probe(monkeypatch, GST_YES, missing=[], calls=calls)
    choice = choose_file_decode("/v/clip.mkv", "auto", JETSON_ELEMENTS, probe)
    asked = [call for call in calls if call.startswith("missing")]
    assert calls[:3] == ["jetson", "gstreamer", "codec /v/clip.mkv"] and len(asked) == 1
    assert asked[0].split()[1:] == ["filesrc", "matroskademux", "queue", "h264parse", "nvv4l2decoder", "nvvidconv",
                                    "videoconvert", "appsink"]
    assert choice.pipeline == file_pipeline("/v/clip.mkv", "h264")


@pytest.mark.parametrize(("mode", "warned"), [("auto", False), ("hw", True)])
def test_a_container_without_a_demuxer_decodes_in_software(monkeypatch, mode: str, warned: bool) -> None:
    probe = fake_probe(monkeypatch, GST_YES, missing=[])
    choice = choose_file_decode("/v/clip.webm", mode, JETSON_ELEMENTS, probe)
    assert not choice.hardware and choice.lines()[0] == "decode: software (FFmpeg)"
    assert choice.warning is not None and ".webm files have no hardware pipeline" in choice.warning
    assert choice.warning.startswith("decode=hw, but ") is warned  # a Jetson that cannot use its decoder says so


def test_rtsp_choice_uses_the_codec_option_and_keeps_the_software_path(monkeypatch) -> None:
    probe = fake_probe(monkeypatch, GST_YES, missing=[])
    spec = parse_source("rtsp://user:pw@cam/s?codec=h265&latency=50&decode=auto")
    opener = _rtsp_opener(spec, JETSON_ELEMENTS, probe)  # nothing is opened yet
    assert opener.choice.hardware and opener.choice.pipeline == rtsp_pipeline(str(spec.target), 50, "h265", True)
    assert opener.choice.lines() == ["decode: nvv4l2decoder (hardware) via GStreamer, h265"]
    off = _rtsp_opener(spec, JETSON_ELEMENTS, fake_probe(monkeypatch, GST_YES, jetson=False, missing=[]))
    assert off.choice.lines() == ["decode: software (avdec_h265 via GStreamer): no nvv4l2decoder (not a Jetson)"]
    plain = _rtsp_opener(spec, JETSON_ELEMENTS, fake_probe(monkeypatch, GST_NO, missing=[]))
    assert plain.choice.software == "FFmpeg" and not plain.choice.hardware


@pytest.mark.parametrize(
    ("uri", "kind", "decode"),
    [("rtsp://cam/s?decode=hw", "rtsp", "hw"), ("rtsp://cam/s?channel=2&decode=sw", "rtsp", "sw")],
)
def test_the_decode_option_parses(uri: str, kind: str, decode: str) -> None:
    spec = parse_source(uri)
    assert spec.kind == kind and spec.options["decode"] == decode and "decode" not in str(spec.target)


def test_the_decode_option_on_a_file_and_a_bad_value(tmp_path: Path) -> None:
    clip = tmp_path / "c.avi"
    _write(clip, "MJPG", 2)
    assert parse_source(f"{clip}?decode=sw").options == {"decode": "sw"}
    with pytest.raises(EdgeError, match=r"option decode='gpu' is not auto, hw or sw"):
        parse_source(f"{clip}?decode=gpu")
    with pytest.raises(EdgeError, match="unknown option 'decode' for a v4l2 source"):
        parse_source("0?decode=hw")


class FakeCap:
    def __init__(self, opened: bool) -> None:
        self.opened, self.released = opened, False

    def isOpened(self) -> bool:  # noqa: N802 - cv2.VideoCapture's name
        return self.opened

    def release(self) -> None:
        self.released = True


class FakeCapReading(FakeCap):
    def __init__(self) -> None:
        super().__init__(True)

    def read(self) -> Any:
        return False, None

    def get(self, prop: int) -> float:
        return 0.0


def _hw_choice() -> DecodeChoice:
    return DecodeChoice(True, "avdec_h264 via GStreamer", "h264", "rtspsrc ! … ! appsink")


def test_fallback_opener_falls_back_once_with_one_warning_when_hardware_never_opens() -> None:
    opened: List[str] = []

    def hardware() -> Any:
        opened.append("hw")
        raise EdgeError("the GStreamer pipeline did not start within 20 s", fix="…")

    def software() -> Any:
        opened.append("sw")
        return FakeCap(True)

    opener = FallbackOpener(_hw_choice(), hardware, software)
    assert opener().isOpened() and opener().isOpened()
    assert opened == ["hw", "sw", "sw"]  # hardware is not tried again
    assert opener.choice.lines() == [
        "decode: software (avdec_h264 via GStreamer)",
        "warning: the nvv4l2decoder pipeline failed (the GStreamer pipeline did not start within 20 s): "
        "decoding in software (avdec_h264 via GStreamer)",
    ]


def test_fallback_opener_keeps_hardware_once_it_has_worked() -> None:
    caps = [FakeCap(True), FakeCap(False)]
    opener = FallbackOpener(_hw_choice(), lambda: caps.pop(0), lambda: pytest.fail("software opened"))
    assert opener().isOpened()
    assert opener() is None  # a reopen that fails is the stream's problem: the reader backs off and retries
    assert opener.choice.hardware and opener.choice.warning is None


def test_fallback_opener_releases_a_hardware_capture_that_did_not_open() -> None:
    dud = FakeCap(False)
    opener = FallbackOpener(_hw_choice(), lambda: dud, lambda: FakeCap(True))
    assert opener().isOpened() and dud.released
    assert "the pipeline did not open" in (opener.choice.warning or "")


def test_an_injected_opener_has_no_decode_choice() -> None:
    with open_live(parse_source("rtsp://cam/s?reconnect=0"), opener=lambda: FakeCapReading()) as source:
        assert source.decode is None



# ------------------------------------------------------------------ for real: Debian's decoders standing in

def _needs_gstreamer(elements: List[str]) -> None:
    """Skip, with the concrete reason, where this cv2 has no GStreamer or an element is not installed."""
    if not has_gstreamer():
        pytest.skip("this OpenCV has no GStreamer (pip's opencv-python); the CI runs this file under Debian's "
                    "python3-opencv: PYTHONPATH=$PWD /usr/bin/python3 -m pytest tests/edge/sources")
    missing = gst_inspect_missing(elements)
    if missing is None:  # cannot tell (the emulated armhf root has GStreamer's base plugins only)
        pytest.skip(f"gst-inspect-1.0 is not installed (gstreamer1.0-tools) to check for {', '.join(elements)}")
    if missing:
        pytest.skip("GStreamer elements not installed: " + ", ".join(
            f"{name} ({GST_PACKAGES.get(name, 'unknown package')})" for name in missing))


def _frames(source: VideoFileSource) -> List[np.ndarray]:
    with source:
        return [frame.image for frame in source]


def _assert_same_frames(got: List[np.ndarray], want: List[np.ndarray]) -> None:
    """Frame for frame, within what two decoders' colour conversions differ by (measured: mean 0.06, max 5)."""
    assert len(got) == len(want) == FRAMES
    for index, (a, b) in enumerate(zip(got, want)):
        assert a.shape == b.shape == (SIZE_WH[1], SIZE_WH[0], 3), index
        diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
        assert diff.mean() < 1.5 and diff.max() <= 32, (index, diff.mean(), diff.max())


@pytest.mark.gstreamer
@pytest.mark.parametrize(
    ("name", "fourcc", "codec", "elements"),
    [
        ("clip.avi", "MJPG", "mjpeg", ["filesrc", "avidemux", "queue", "jpegdec", "videoconvert", "videoconvert",
                                       "appsink"]),
        ("clip.mp4", "avc1", "h264",
         ["filesrc", "qtdemux", "queue", "h264parse", "avdec_h264", "videoconvert", "videoconvert", "appsink"]),
        ("clip.mkv", "avc1", "h264",
         ["filesrc", "matroskademux", "queue", "h264parse", "avdec_h264", "videoconvert", "videoconvert", "appsink"]),
    ],
)
def test_the_pipeline_decodes_a_real_file_as_ffmpeg_does(tmp_path: Path, name, fourcc, codec, elements) -> None:
    _needs_gstreamer(elements)
    clip = tmp_path / name
    written = _write(clip, fourcc)
    piped = VideoFileSource(str(clip), decode="hw", elements=STAND_IN_ELEMENTS)
    assert piped.decode is not None and piped.decode.hardware, piped.decode
    assert piped.decode.lines() == [f"decode: {STAND_IN_ELEMENTS.decoder(codec)} (software stand-in) via GStreamer, "
                                    f"{codec}"]
    assert pipeline_elements(str(piped.decode.pipeline)) == elements
    software = VideoFileSource(str(clip), decode="sw")
    assert software.decode is not None and software.decode.lines() == ["decode: software (FFmpeg): decode=sw"]
    got, want = _frames(piped), _frames(software)
    assert piped.ended_reason == "end of file" and piped.skipped_frames == 0
    _assert_same_frames(got, want)
    assert np.abs(got[-1].astype(np.int16) - written[-1]).mean() < 12  # and they are the frames written


@pytest.mark.gstreamer
def test_a_real_file_loops_through_the_pipeline(tmp_path: Path) -> None:
    _needs_gstreamer(["filesrc", "avidemux", "queue", "jpegdec", "videoconvert", "appsink"])
    clip = tmp_path / "clip.avi"
    _write(clip, "MJPG")
    source = VideoFileSource(str(clip), loop=1, decode="hw", elements=STAND_IN_ELEMENTS)
    got = _frames(source)
    assert source.decode is not None and source.decode.hardware and len(got) == 2 * FRAMES
    _assert_same_frames(got[FRAMES:], got[:FRAMES])


@pytest.mark.gstreamer
def test_a_hardware_pipeline_that_fails_falls_back_to_ffmpeg_with_one_warning(tmp_path: Path, monkeypatch) -> None:
    """An H.264 file read as H.265 (a wrong codec guess): h265parse never gets a frame; the source falls back."""
    _needs_gstreamer(["filesrc", "qtdemux", "queue", "h265parse", "avdec_h265", "videoconvert", "appsink"])
    monkeypatch.setenv("EDGE_GST_OPEN_TIMEOUT_S", "10")
    clip = tmp_path / "clip.mp4"
    _write(clip, "avc1")
    probe = DecodeProbe(codec=lambda path: ("h265", "a wrong guess"))
    source = VideoFileSource(str(clip), decode="hw", elements=STAND_IN_ELEMENTS, probe=probe)
    assert source.decode is not None and not source.decode.hardware
    assert source.decode.lines()[0] == "decode: software (FFmpeg)"
    assert re.fullmatch(r"warning: the avdec_h265 pipeline failed \(.+\): decoding in software \(FFmpeg\)",
                        source.decode.lines()[1])
    _assert_same_frames(_frames(source), _frames(VideoFileSource(str(clip), decode="sw")))


@pytest.mark.gstreamer
def test_a_missing_decoder_is_software_without_trying_it(tmp_path: Path) -> None:
    _needs_gstreamer(["avidemux", "jpegdec"])
    if gst_inspect_missing(["avidemux"]) is None:
        pytest.skip("gst-inspect-1.0 is not installed (gstreamer1.0-tools): no element can be found missing")
    clip = tmp_path / "clip.avi"
    _write(clip, "MJPG")
    nowhere = STAND_IN_ELEMENTS.__class__("edgenosuchdec", "edgenosuchdec", "edgenosuchdec", "videoconvert")
    source = VideoFileSource(str(clip), decode="hw", elements=nowhere)
    assert source.decode is not None and source.decode.lines() == [
        "decode: software (FFmpeg)",
        "warning: decode=hw, but edgenosuchdec is not installed (its GStreamer plugin package): "
        "decoding in software (FFmpeg)",
    ]
    assert len(_frames(source)) == FRAMES


def test_open_source_passes_the_decode_option(tmp_path):
    from edge.sources import open_source

    clip = tmp_path / "c.avi"
    _write(clip, "MJPG", 2)
    with open_source(f"{clip}?decode=sw") as source:
        assert source.decode.lines() == ["decode: software (FFmpeg): decode=sw"]
