"""How each kind of live source is opened: V4L2 cameras, GStreamer pipelines (CSI, RTSP, gst://), FFmpeg
streams; and the checks that refuse a source that cannot work here before anything waits on it.

An opener is a callable returning a cv2.VideoCapture-like object; :mod:`edge.sources.capture` reads it.
"""

import functools
import os
import sys
import threading
from pathlib import Path
from typing import Any, Callable, List, Optional

from edge.cv import has_gstreamer, require_cv2
from edge.errors import EdgeError
from edge.sources.uri import SourceSpec, is_jetson

Opener = Callable[[], Any]  # returns an object with isOpened(), read(), release(), get(), set()

LIST_CAMERAS_FIX = "list cameras with: python -m edge.camera --list-cameras"
NO_GSTREAMER_FIX = (
    "pip's opencv-python has no GStreamer; use JetPack's OpenCV: pip uninstall opencv-python "
    "opencv-contrib-python, and make the venv with python3 -m venv --system-site-packages"
)


def v4l2_opener(spec: SourceSpec) -> Opener:
    """Opener for a V4L2 camera (index or /dev path) applying width/height/fps/fourcc options."""

    def open_camera() -> Any:
        cv2 = require_cv2("reading cameras")
        api = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        cap = cv2.VideoCapture(spec.target, api)
        if cap.isOpened():
            fourcc = spec.options.get("fourcc")
            if fourcc:  # before the size: the size a camera offers depends on the format
                cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*fourcc))
            for key, prop in (
                ("width", cv2.CAP_PROP_FRAME_WIDTH),
                ("height", cv2.CAP_PROP_FRAME_HEIGHT),
                ("fps", cv2.CAP_PROP_FPS),
            ):
                if key in spec.options:
                    cap.set(prop, float(spec.options[key]))
        return cap

    return open_camera


def _v4l2_error(spec: SourceSpec) -> EdgeError:
    target = spec.target
    if isinstance(target, int):
        return EdgeError(f"no camera at index {target}", fix=LIST_CAMERAS_FIX, where=f"source {spec.uri}")
    if not Path(str(target)).exists():
        return EdgeError(f"no camera at {target}", fix=LIST_CAMERAS_FIX, where=f"source {spec.uri}")
    return EdgeError(
        f"cannot open camera {target} (busy, or not a capture node)",
        fix=f"close other apps using it (fuser {target}); {LIST_CAMERAS_FIX}",
        where=f"source {spec.uri}",
    )


#: seconds a GStreamer pipeline may take to start before it is reported as stuck (EDGE_GST_OPEN_TIMEOUT_S overrides)
GST_OPEN_TIMEOUT_S = 20.0
#: where a missing element usually comes from
GST_PACKAGES = {"v4l2src": "gstreamer1.0-plugins-good", "rtspsrc": "gstreamer1.0-plugins-good",
                "rtph264depay": "gstreamer1.0-plugins-good", "rtph265depay": "gstreamer1.0-plugins-good",
                "qtdemux": "gstreamer1.0-plugins-good", "matroskademux": "gstreamer1.0-plugins-good",
                "avidemux": "gstreamer1.0-plugins-good", "jpegdec": "gstreamer1.0-plugins-good",
                "h264parse": "gstreamer1.0-plugins-bad", "h265parse": "gstreamer1.0-plugins-bad",
                "avdec_h264": "gstreamer1.0-libav", "avdec_h265": "gstreamer1.0-libav",
                "x264enc": "gstreamer1.0-plugins-ugly", "videotestsrc": "gstreamer1.0-plugins-base",
                "videoconvert": "gstreamer1.0-plugins-base", "appsink": "gstreamer1.0-plugins-base",
                "filesrc": "libgstreamer1.0-0", "queue": "libgstreamer1.0-0",
                "nvarguscamerasrc": "JetPack's nvidia-l4t-gstreamer (Jetson only)",
                "nvvidconv": "JetPack's nvidia-l4t-gstreamer (Jetson only)",
                "nvv4l2decoder": "JetPack's nvidia-l4t-gstreamer (Jetson only)",
                "nvjpegdec": "JetPack's nvidia-l4t-gstreamer (Jetson only)"}


def pipeline_elements(pipeline: str) -> List[str]:
    """The element names of a gst-launch pipeline, in order (caps filters and properties left out)."""
    names = []
    for part in pipeline.split("!"):
        words = part.split()
        if words and "/" not in words[0] and "=" not in words[0] and not words[0].startswith("("):
            names.append(words[0])
    return names


@functools.lru_cache(maxsize=None)
def _element_exists(tool: str, name: str) -> Optional[bool]:
    """gst-inspect-1.0 --exists NAME, once per process (plugins do not come and go while edge runs)."""
    import subprocess  # noqa: PLC0415 - only where a GStreamer pipeline is opened

    try:
        done = subprocess.run([tool, "--exists", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.returncode == 0


def gst_inspect_missing(names: List[str]) -> Optional[List[str]]:
    """Which of the element ``names`` gst-inspect-1.0 does not find; None where the tool is absent or fails."""
    import shutil  # noqa: PLC0415

    tool = shutil.which("gst-inspect-1.0")
    if tool is None:
        return None
    missing = []
    for name in names:
        exists = _element_exists(tool, name)
        if exists is None:
            return None
        if not exists:
            missing.append(name)
    return missing


def missing_gst_elements(pipeline: str) -> List[str]:
    """Elements of ``pipeline`` that gst-inspect-1.0 says are not installed ([] where the tool is absent)."""
    return gst_inspect_missing(pipeline_elements(pipeline)) or []


def gstreamer_opener(pipeline: str, timeout_s: Optional[float] = None) -> Opener:
    """Opener for a GStreamer pipeline that ends in appsink.

    OpenCV 4.x never returns from opening a pipeline whose element is not installed, so: elements are checked
    with gst-inspect-1.0 where it exists, and the open itself runs on a helper thread that may take at most
    ``timeout_s`` (GST_OPEN_TIMEOUT_S) before the source is reported as stuck, in one line.
    """
    limit = float(os.environ.get("EDGE_GST_OPEN_TIMEOUT_S", GST_OPEN_TIMEOUT_S)) if timeout_s is None else timeout_s

    def open_pipeline() -> Any:
        cv2 = require_cv2("GStreamer capture")
        missing = missing_gst_elements(pipeline)
        if missing:
            raise EdgeError(f"GStreamer element '{missing[0]}' is not installed",
                            fix=f"install {GST_PACKAGES.get(missing[0], 'the GStreamer plugin package that has it')}"
                                f" (gst-inspect-1.0 {missing[0]} checks)", where=f"gst://{pipeline}")
        opened: List[Any] = []
        worker = threading.Thread(target=lambda: opened.append(cv2.VideoCapture(pipeline, cv2.CAP_GSTREAMER)),
                                  name="edge-gst-open", daemon=True)
        worker.start()
        worker.join(limit)
        if worker.is_alive() or not opened:
            raise EdgeError(f"the GStreamer pipeline did not start within {limit:g} s (an element that is not "
                            "installed, or a device that does not answer)",
                            fix="check each element with gst-inspect-1.0 NAME and the pipeline with gst-launch-1.0; "
                                "EDGE_GST_OPEN_TIMEOUT_S allows longer", where=f"gst://{pipeline}")
        return opened[0]

    return open_pipeline


def ffmpeg_opener(url: str) -> Opener:
    """Opener for a network stream through OpenCV's FFmpeg backend."""

    def open_stream() -> Any:
        cv2 = require_cv2("network streams")
        return cv2.VideoCapture(url, cv2.CAP_FFMPEG)

    return open_stream


def _require_gstreamer(what: str, uri: str) -> None:
    require_cv2(what)
    if not has_gstreamer():
        raise EdgeError(
            f"{what} needs OpenCV built with GStreamer, and this cv2 has none",
            fix=NO_GSTREAMER_FIX,
            where=f"source {uri}",
        )


def _require_csi(uri: str) -> None:
    _require_gstreamer("a CSI camera (csi://)", uri)
    if not is_jetson():  # OpenCV can hang for good on a pipeline whose elements do not exist
        raise EdgeError(
            "a CSI camera (csi://) needs a Jetson: nvarguscamerasrc comes with JetPack",
            fix="on this machine use a USB camera (0 or /dev/video0), a video file, or demo://",
            where=f"source {uri}",
        )
