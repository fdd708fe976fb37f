"""RTSP out (rtsp://): the URL's checks and the encoder choice everywhere; the one-line error where Python has no
GObject bindings (the venv's Python); and, under Debian's python3 with python3-gi and gst-rtsp-server, a real
demo:// app whose stream OpenCV (FFmpeg) reads back."""

import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from edge.errors import EdgeError
from edge.sinks.rtsp import APT_PACKAGES, RtspTarget, choose_encoder

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_screenshot import ROOT, LiveApp, free_port, listening  # noqa: E402


def _has_rtsp_server() -> bool:
    try:
        import gi

        gi.require_version("Gst", "1.0")
        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import Gst, GstRtspServer  # noqa: F401

        Gst.init(None)
        return Gst.ElementFactory.find("x264enc") is not None or Gst.ElementFactory.find("openh264enc") is not None
    except (ImportError, ValueError):
        return False


HAS_RTSP_SERVER = _has_rtsp_server()


@pytest.mark.parametrize("url, expected, error", [
    ("rtsp://@:8554/live", ("0.0.0.0", 8554, "/live", "auto", 4000, 30.0), None),
    ("rtsp://:9000/cam/door", ("127.0.0.1", 9000, "/cam/door", "auto", 4000, 30.0), None),
    ("rtsp://127.0.0.1/live?encoder=x264enc&bitrate=800&fps=10", ("127.0.0.1", 8554, "/live", "x264enc", 800, 10.0),
     None),
    ("rtsp://@:8554/", None, "no mount path"),
    ("rtsp://@:8554/live?encoder=vp8enc", None, "unknown encoder 'vp8enc'"),
    ("rtsp://@:8554/live?bitrate=fast", None, "bitrate=fast is not a whole number"),
    ("rtsp://@:8554/live?fps=0", None, "fps=0 is not a whole number from 1 to 120"),
    ("rtsp://@:8554/live?gop=2", None, "unknown option 'gop'"),
    ("rtsps://@:8554/live", None, "plain rtsp:// only"),
    ("rtsp://@:70000/live", None, "port is not a number"),
])
def test_target_reads_and_checks_the_url(url, expected, error):
    if error:
        with pytest.raises(EdgeError, match=error):
            RtspTarget(url)
        return
    target = RtspTarget(url)
    assert (target.host, target.port, target.path, target.encoder, target.bitrate_kbps, target.fps) == expected


@pytest.mark.parametrize("asked, present, chosen, lines", [
    ("auto", {"nvv4l2h264enc", "x264enc"}, "nvv4l2h264enc", ["nvv4l2h264enc: chosen"]),
    ("auto", {"x264enc", "openh264enc"}, "x264enc", ["nvv4l2h264enc: skipped", "x264enc: chosen"]),
    ("auto", {"openh264enc"}, "openh264enc", ["nvv4l2h264enc: skipped", "x264enc: skipped", "openh264enc: chosen"]),
    ("openh264enc", {"x264enc", "openh264enc"}, "openh264enc", ["openh264enc: chosen"]),
    ("x264enc", {"openh264enc"}, None, ["x264enc: skipped"]),
    ("auto", set(), None, ["nvv4l2h264enc: skipped", "x264enc: skipped", "openh264enc: skipped"]),
])
def test_encoder_choice_is_said_per_candidate(asked, present, chosen, lines):
    if chosen is None:
        with pytest.raises(EdgeError, match="gstreamer1.0-plugins-ugly") as raised:
            choose_encoder(asked, present.__contains__)
        assert all(line in str(raised.value) for line in lines)
        return
    name, launch, said = choose_encoder(asked, present.__contains__)
    assert name == chosen and f"{chosen} " in launch
    assert [re.split(r" \(|,", line)[0] for line in said] == [f"rtsp encoder {line}" for line in lines]


def test_without_gobject_the_output_is_a_one_line_error_naming_the_packages():
    script = textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "gi":
                    raise ImportError("No module named 'gi' (blocked by the test)")
        sys.meta_path.insert(0, Block())
        from edge.errors import EdgeError
        from edge.sinks import open_sinks
        try:
            open_sinks(["rtsp://@:8554/live"], headless=True, fps=None)
        except EdgeError as exc:
            print(exc)
    """)
    done = subprocess.run([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, cwd=str(ROOT), timeout=60)
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout + done.stderr
    assert "PyGObject ('gi')" in lines[0] and APT_PACKAGES in lines[0] and "pip install PyGObject" in lines[0]


@pytest.mark.skipif(HAS_RTSP_SERVER, reason="this Python has the RTSP server: its error path is tested above by "
                    "blocking the import")
def test_camera_app_without_the_library_exits_2_before_the_model_loads():
    done = subprocess.run(LiveApp("--output", "rtsp://@:8554/live").command, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=120, env=LiveApp().environment)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "gir1.2-gst-rtsp-server-1.0" in lines[0], done.stderr
    assert "model:" not in done.stderr


@pytest.mark.skipif(not HAS_RTSP_SERVER, reason="needs PyGObject with GStreamer's RTSP server and an H.264 encoder: "
                    f"Debian's python3 after apt-get install {APT_PACKAGES}")
def test_opencv_reads_the_stream_of_a_demo_run():
    cv2 = pytest.importorskip("cv2")
    port = free_port()
    url = f"rtsp://127.0.0.1:{port}/live"
    with LiveApp("--output", f"rtsp://:{port}/live?fps=15") as app:
        deadline = time.monotonic() + 30
        while not listening(port) and time.monotonic() < deadline:
            time.sleep(0.05)
        capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG)
        frames = []
        while capture.isOpened() and len(frames) < 10:
            ok, image = capture.read()
            if not ok:
                break
            frames.append(image)
        capture.release()
        code = app.stop()
    assert code == 130, app.stderr
    assert len(frames) == 10, app.stderr
    assert all(image.shape == (720, 1280, 3) and float(image.std()) > 20 for image in frames)
    assert "rtsp encoder x264enc: chosen" in app.stderr or "rtsp encoder openh264enc: chosen" in app.stderr
    assert f"at rtsp://127.0.0.1:{port}/live (at most 15 FPS" in app.stderr
