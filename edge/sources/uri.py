"""Source URIs: what the user writes after ``--source``, parsed into a :class:`SourceSpec`.

Conventions follow jetson-utils' ``videoSource`` where they can (``csi://0``, ``/dev/video0``,
``rtsp://…``, ``file://x.mp4``, a folder of images), with options in a query string
(``csi://0?width=1920&height=1080&fps=30&flip=rotate-180``). One difference: a bare number
such as ``0`` is a V4L2 (USB) camera here, as in OpenCV, where jetson-utils reads it as CSI.
This module also builds the GStreamer pipelines for CSI cameras and RTSP streams (video files' hardware
decode pipelines: :mod:`edge.sources.hwdecode`).
"""

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Mapping, Optional, Tuple, Union
from urllib.parse import unquote

from edge.errors import EdgeError
from edge.sources.base import MAX_FRAME_SIDE_PX, check_frame_size

if TYPE_CHECKING:
    from edge.sources.hwdecode import DecodeElements

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
SCHEMES = ("v4l2", "csi", "rtsp", "rtsps", "http", "https", "file", "gst", "demo")
KINDS = ("v4l2", "csi", "rtsp", "http", "file", "image", "folder", "gst", "demo")

FLIP_METHODS: Dict[str, int] = {
    "none": 0,
    "counterclockwise": 1,
    "rotate-180": 2,
    "clockwise": 3,
    "horizontal": 4,
    "upper-right-diagonal": 5,
    "vertical": 6,
    "upper-left-diagonal": 7,
}

# Option keys each kind understands, with the check their value must pass.
_OPTION_TYPES: Dict[str, Dict[str, str]] = {
    "v4l2": {"width": "size", "height": "size", "fps": "fps", "fourcc": "fourcc", "reconnect": "count"},
    "csi": {
        "width": "size",
        "height": "size",
        "fps": "fps",
        "flip": "flip",
        "output_width": "size",
        "output_height": "size",
        "reconnect": "count",
    },
    "rtsp": {"latency": "count", "codec": "codec", "reconnect": "count", "decode": "decode"},
    "http": {"reconnect": "count"},
    "file": {"loop": "loop", "decode": "decode"},
    "image": {"loop": "loop"},
    "folder": {"loop": "loop"},
    "gst": {"reconnect": "count", "finite": "bool"},
    "demo": {
        "width": "size",
        "height": "size",
        "fps": "fps",
        "seed": "count",
        "frames": "count",
        "realtime": "bool",
        "scene": "scene",
    },
}
_QUERY_TAIL = re.compile(r"^[A-Za-z_]\w*=[^&\s]*(&[A-Za-z_]\w*=[^&\s]*)*$")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", re.DOTALL)
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class SourceSpec:
    """A parsed source URI.

    kind: one of KINDS. target: camera index (int) or device path for v4l2, sensor id (int)
    for csi, the URL for rtsp/http, a path for file/image/folder, the pipeline for gst,
    "" for demo. options: validated ``key=value`` pairs from the query string.
    """

    kind: str
    target: Union[int, str]
    options: Dict[str, str] = field(default_factory=dict)
    uri: str = ""

    def option_int(self, key: str, default: int) -> int:
        """Option ``key`` as an int, or ``default`` when absent."""
        return int(self.options[key]) if key in self.options else default

    def option_float(self, key: str, default: float) -> float:
        """Option ``key`` as a float, or ``default`` when absent."""
        return float(self.options[key]) if key in self.options else default

    def option_bool(self, key: str, default: bool) -> bool:
        """Option ``key`` as a bool (1/0, true/false, yes/no, on/off), or ``default``."""
        return self.options[key].lower() in _TRUE if key in self.options else default


def parse_source(uri: Union[str, int], options: Optional[Mapping[str, object]] = None) -> SourceSpec:
    """Parse a source URI (or camera index) into a SourceSpec; raise EdgeError on a bad one.

    ``options`` (e.g. from keyword arguments) override the URI's query string. A bare
    number (``0`` or ``"0"``) is a V4L2 camera index, unlike jetson-utils where it means CSI.
    """
    if isinstance(uri, bool) or not isinstance(uri, (int, str)):
        raise EdgeError(
            f"a source must be a URI string or a camera index, not {uri!r}",
            fix="pass e.g. 0, '/dev/video0', 'csi://0', 'video.mp4' or 'demo://'",
        )
    text = str(uri).strip()
    if not text:
        raise EdgeError("empty source", fix="pass e.g. 0, '/dev/video0', 'csi://0', 'video.mp4' or 'demo://'")
    match = _SCHEME.match(text)
    if match:
        kind, target, query = _parse_scheme(match.group(1).lower(), match.group(2), text)
    else:
        kind, target, query = _parse_plain(text)
    merged = _parse_query(query, text)
    merged.update({key: _option_text(value) for key, value in (options or {}).items()})
    if kind in ("rtsp", "http"):
        target, merged = _keep_url_query(str(target), merged)
    _check_options(kind, merged, text)
    for width_key, height_key in (("width", "height"), ("output_width", "output_height")):
        if width_key in merged and height_key in merged:
            check_frame_size((int(merged[width_key]), int(merged[height_key])), where=text)
    return SourceSpec(kind, target, merged, text)


def _parse_scheme(scheme: str, rest: str, text: str) -> Tuple[str, Union[int, str], str]:
    if scheme not in SCHEMES:
        raise EdgeError(
            f"unknown source scheme '{scheme}://'",
            fix=f"use one of: {', '.join(s + '://' for s in SCHEMES)}, a path, or a camera index",
            where=text,
        )
    if scheme in ("rtsp", "rtsps", "http", "https"):
        url, _, query = text.partition("?")
        return ("rtsp" if scheme.startswith("rtsp") else "http"), url, query
    if scheme == "gst":
        pipeline, query = _split_tail_query(rest)
        return "gst", _check_pipeline(pipeline.strip(), text), query
    body, _, query = rest.partition("?")
    if scheme == "file":
        kind, target, _ = _parse_path(body, text)
        return kind, target, query
    if scheme == "demo":
        if body.strip("/"):
            raise EdgeError(
                "demo:// takes no path", fix="put options after '?', e.g. demo://?seed=3", where=text
            )
        return "demo", "", query
    if scheme == "csi":
        if not re.fullmatch(r"\d*", body):
            raise EdgeError(
                f"CSI sensor id must be a number, got '{body}'", fix="use e.g. csi://0", where=text
            )
        return "csi", int(body or 0), query
    if body.isdigit():
        return "v4l2", int(body), query
    if body.startswith("/dev/"):
        return "v4l2", body, query
    raise EdgeError(f"bad V4L2 device '{body}'", fix="use v4l2:///dev/video0 or v4l2://0", where=text)


def _parse_plain(text: str) -> Tuple[str, Union[int, str], str]:
    if text.isdigit():
        return "v4l2", int(text), ""
    path_text, query = (text, "") if os.path.exists(text) else _split_tail_query(text)
    if path_text.isdigit():
        return "v4l2", int(path_text), query
    if path_text.startswith("/dev/"):
        return "v4l2", path_text, query
    return _parse_path(path_text, text)[0], path_text, query


def _parse_path(path_text: str, text: str) -> Tuple[str, str, str]:
    path = Path(path_text).expanduser()
    if path.is_dir():
        return "folder", str(path), ""
    if not path.exists():
        raise EdgeError(
            f"no such file or folder: {path_text}",
            fix="check the path; for a camera pass 0 or /dev/video0, for the built-in scene demo://",
            where="source",
        )
    kind = "image" if path.suffix.lower() in IMAGE_EXTENSIONS else "file"
    return kind, str(path), ""


def _split_tail_query(text: str) -> Tuple[str, str]:
    """Split ``text?k=v&…`` at the last '?' only when what follows reads as options."""
    head, sep, tail = text.rpartition("?")
    if sep and _QUERY_TAIL.match(tail):
        return head, tail
    return text, ""


def _check_pipeline(pipeline: str, text: str) -> str:
    last = pipeline.rsplit("!", 1)[-1].strip()
    if not pipeline or not last.startswith("appsink"):
        raise EdgeError(
            "a gst:// pipeline must end in appsink",
            fix="end it with '! videoconvert ! video/x-raw,format=BGR ! appsink drop=1 max-buffers=1'",
            where=text,
        )
    return pipeline


# Elements whose stream ends (end-of-stream) on its own: files. multifilesrc only without loop=true.
_FILE_SOURCES = ("filesrc", "multifilesrc", "splitmuxsrc")
_URI_SOURCES = ("uridecodebin", "uridecodebin3", "urisourcebin", "playbin", "playbin3")


def finite_pipeline(pipeline: str) -> Optional[str]:
    """Why a GStreamer pipeline ends on its own (``num-buffers=30``, ``filesrc``), or None for a live one.

    OpenCV reports GStreamer's end-of-stream and a failed element alike (a failed read), so the
    pipeline's text is what tells a finite pipeline, to be ended, from a live one, to be reopened.
    """
    for element in pipeline.split("!"):
        words = element.split()
        if not words:
            continue
        props = dict(word.partition("=")[::2] for word in words[1:] if "=" in word)
        buffers = props.get("num-buffers", "").strip("\"'")
        if re.fullmatch(r"\d+", buffers) and int(buffers) > 0:
            return f"{words[0]} num-buffers={buffers}"
        if words[0] in _FILE_SOURCES and props.get("loop", "false").lower() not in _TRUE:
            return words[0]
        if words[0] in _URI_SOURCES and props.get("uri", "").strip("\"'").lower().startswith("file:"):
            return f"{words[0]} uri=file:"
    return None


def _parse_query(query: str, text: str) -> Dict[str, str]:
    options: Dict[str, str] = {}
    for part in filter(None, query.split("&")):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise EdgeError(
                f"option '{part}' is not key=value", fix="write options as ?key=value&key=value", where=text
            )
        options[unquote(key).strip()] = unquote(value).strip()
    return options


def _option_text(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _keep_url_query(url: str, options: Dict[str, str]) -> Tuple[str, Dict[str, str]]:
    """Cameras use query strings of their own (``?channel=1``): keys we do not know stay in the URL."""
    kind = "rtsp" if url.lower().startswith("rtsp") else "http"
    known = {k: v for k, v in options.items() if k in _OPTION_TYPES[kind]}
    foreign = [f"{k}={v}" for k, v in options.items() if k not in _OPTION_TYPES[kind]]
    return (url + "?" + "&".join(foreign) if foreign else url), known


def _check_options(kind: str, options: Dict[str, str], text: str) -> None:
    known = _OPTION_TYPES[kind]
    for key, value in options.items():
        if key not in known:
            names = ", ".join(sorted(known)) or "none"
            raise EdgeError(
                f"unknown option '{key}' for a {kind} source", fix=f"known options: {names}", where=text
            )
        problem = _value_problem(known[key], value)
        if problem:
            raise EdgeError(
                f"option {key}={value!r} is not {problem}", fix=f"give {key} as {problem}", where=text
            )


def _value_problem(check: str, value: str) -> Optional[str]:
    """What ``value`` should have been for ``check``, or None when it is fine."""
    if check == "size":
        ok = re.fullmatch(r"\d{1,6}", value) is not None and 1 <= int(value) <= MAX_FRAME_SIDE_PX
        return None if ok else f"an integer 1..{MAX_FRAME_SIDE_PX} (pixels)"
    if check in ("count", "loop"):
        lowest = {"count": 0, "loop": -1}[check]
        ok = re.fullmatch(r"-?\d{1,18}", value) is not None and int(value) >= lowest
        return None if ok else f"an integer >= {lowest}"
    if check == "fps":
        ok = re.fullmatch(r"\d+(\.\d*)?", value) is not None and float(value) > 0
        return None if ok else "a number > 0"
    if check == "flip":
        return (
            None
            if flip_number(value, strict=False) >= 0
            else "one of: " + ", ".join(FLIP_METHODS) + " or 0-7"
        )
    if check == "fourcc":
        return None if len(value) == 4 else "four characters such as MJPG or YUYV"
    if check == "scene":
        return None if value in ("face", "digits") else "face or digits"
    if check == "codec":
        return None if value.lower() in ("h264", "h265") else "h264 or h265"
    if check == "decode":  # hardware (Jetson), software, or hardware where it can run: edge.sources.hwdecode
        return None if value.lower() in ("auto", "hw", "sw") else "auto, hw or sw"
    return None if value.lower() in _TRUE + _FALSE else "1 or 0"


def flip_number(flip: Union[str, int], strict: bool = True) -> int:
    """nvvidconv flip-method number (0-7) for a name such as ``rotate-180`` or a digit."""
    text = str(flip).strip().lower()
    number = int(text) if text.isdigit() else FLIP_METHODS.get(text, -1)
    if 0 <= number <= 7:
        return number
    if strict:
        raise EdgeError(
            f"unknown flip method '{flip}'", fix="use one of: " + ", ".join(FLIP_METHODS) + " or 0-7"
        )
    return -1


def csi_pipeline(
    sensor_id: int = 0,
    capture_wh: Tuple[int, int] = (1920, 1080),
    output_wh: Tuple[int, int] = (1280, 720),
    fps: float = 30,
    flip_method: Union[str, int] = 0,
) -> str:
    """GStreamer pipeline for a CSI camera through Argus (nvarguscamerasrc), ending in a BGR appsink.

    capture_wh must be a sensor mode the driver reports; output_wh is what the app receives.
    """
    return (
        f"nvarguscamerasrc sensor-id={int(sensor_id)} ! "
        f"video/x-raw(memory:NVMM), width=(int){capture_wh[0]}, height=(int){capture_wh[1]}, "
        f"framerate=(fraction){_fraction(fps)} ! "
        f"nvvidconv flip-method={flip_number(flip_method)} ! "
        f"video/x-raw, width=(int){output_wh[0]}, height=(int){output_wh[1]}, format=(string)BGRx ! "
        f"videoconvert ! video/x-raw, format=(string)BGR ! "
        f"appsink drop=1 max-buffers=1"
    )


def _fraction(fps: float) -> str:
    return f"{int(fps)}/1" if float(fps).is_integer() else f"{round(fps * 1000)}/1000"


def is_jetson() -> bool:
    """Whether this machine is a Jetson (edge.board's probe: /etc/nv_tegra_release or the device-tree model)."""
    from edge.board import on_jetson  # noqa: PLC0415 - keeps `import edge.sources` light

    return on_jetson()


def rtsp_pipeline(url: str, latency_ms: int = 200, codec: str = "h264", jetson: Optional[bool] = None,
                  elements: Optional["DecodeElements"] = None) -> str:
    """GStreamer pipeline for an RTSP stream: hardware decoder on a Jetson, avdec elsewhere.

    elements: the decode elements to use (JETSON_ELEMENTS, STAND_IN_ELEMENTS); default by ``jetson``.
    """
    from edge.sources.hwdecode import JETSON_ELEMENTS, LIVE_APPSINK, decode_chain  # noqa: PLC0415

    codec = codec.lower()
    jetson_here = is_jetson() if jetson is None and elements is None else jetson
    if elements is None and jetson_here:
        elements = JETSON_ELEMENTS
    if elements is not None:
        decode = decode_chain(codec, elements)
    else:
        decode = f"{codec}parse ! avdec_{codec} ! videoconvert ! video/x-raw, format=(string)BGR"
    return f'rtspsrc location="{url}" latency={int(latency_ms)} ! rtp{codec}depay ! {decode} ! {LIVE_APPSINK}'


def redact_url(url: str) -> str:
    """The URL with any password replaced by ***, for messages and logs."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:/@]+):[^@/]*@", r"\1:***@", url)
