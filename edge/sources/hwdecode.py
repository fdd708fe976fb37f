"""Hardware video decode on a Jetson: which decoder a video file or RTSP stream goes through, and its pipeline.

A Jetson's CPU decoding 1080p H.264 costs more than the TensorRT engine, so where OpenCV has GStreamer and
JetPack's decoder element is installed (``nvv4l2decoder`` for H.264/H.265, JetPack 4.6 to 6; ``nvjpegdec`` for
MJPEG) a file or stream is opened through a GStreamer pipeline that decodes on the NVDEC/NVJPG engines::

    filesrc ! qtdemux ! h264parse ! nvv4l2decoder ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! BGR appsink

Everything else decodes in software as before (OpenCV's FFmpeg for files; for RTSP, avdec through GStreamer where
OpenCV has GStreamer, else FFmpeg). The choice is made once, when the source opens, and kept on the source as a
:class:`DecodeChoice` whose :meth:`~DecodeChoice.lines` the camera app prints. ``?decode=hw|sw|auto`` overrides
it. A codec without a hardware pipeline, or a hardware pipeline that does not open (within the GStreamer open
timeout), falls back to software with one warning line: never an error, never a hang.

:data:`STAND_IN_ELEMENTS` builds the same pipelines with Debian's software decoders in place of JetPack's
elements, which is how the pipelines are run for real off a Jetson (tests).
"""

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple

from edge.errors import EdgeError

MODES = ("auto", "hw", "sw")
#: codecs with a hardware pipeline here
CODECS = ("h264", "h265", "mjpeg")


@dataclass(frozen=True)
class DecodeElements:
    """The GStreamer elements that make a decode pipeline: a decoder per codec, and the converter that brings
    decoded frames to system memory (``nvvidconv`` copies out of NVMM). ``kind`` labels the decode in messages."""

    h264: str = "nvv4l2decoder"
    h265: str = "nvv4l2decoder"
    mjpeg: str = "nvjpegdec"
    convert: str = "nvvidconv"
    kind: str = "hardware"

    def decoder(self, codec: str) -> str:
        """The decoder element for ``codec`` (one of CODECS)."""
        return str(getattr(self, codec))


#: JetPack's elements (nvidia-l4t-gstreamer): NVDEC through V4L2 for H.264/H.265, NVJPG for MJPEG
JETSON_ELEMENTS = DecodeElements()
#: Debian's software decoders in the same pipeline shape (gstreamer1.0-libav, gstreamer1.0-plugins-good)
STAND_IN_ELEMENTS = DecodeElements("avdec_h264", "avdec_h265", "jpegdec", "videoconvert", "software stand-in")

# Demuxer by file extension ("" for an elementary stream, which the parser reads as it is).
_DEMUXERS = {".mp4": "qtdemux", ".mov": "qtdemux", ".m4v": "qtdemux", ".mkv": "matroskademux",
             ".avi": "avidemux", ".h264": "", ".264": "", ".h265": "", ".265": "", ".hevc": ""}
#: video file extensions a hardware pipeline can read
VIDEO_EXTENSIONS = tuple(_DEMUXERS)
# The codec a container usually holds, when neither ffprobe nor OpenCV can say.
_USUAL_CODEC = {".mp4": "h264", ".mov": "h264", ".m4v": "h264", ".mkv": "h264", ".avi": "mjpeg",
                ".h264": "h264", ".264": "h264", ".h265": "h265", ".265": "h265", ".hevc": "h265"}
# jpegparse (plugins-bad) is left out: nvjpegdec takes the JPEG frames the demuxer hands out.
_PARSERS = {"h264": "h264parse", "h265": "h265parse", "mjpeg": ""}
_FOURCC_CODECS = {"avc1": "h264", "avc3": "h264", "h264": "h264", "x264": "h264", "hev1": "h265", "hvc1": "h265",
                  "hevc": "h265", "h265": "h265", "x265": "h265", "mjpg": "mjpeg", "jpeg": "mjpeg",
                  "mjpa": "mjpeg", "mjpb": "mjpeg", "avrn": "mjpeg", "dmb1": "mjpeg"}
_FFPROBE_CODECS = {"h264": "h264", "hevc": "h265", "mjpeg": "mjpeg"}
LIVE_APPSINK = "appsink drop=1 max-buffers=1 sync=false"
# A file delivers every frame (no drop), as fast as it decodes (no clock), a few frames ahead of the reader.
FILE_APPSINK = "appsink drop=0 max-buffers=4 sync=false"


def decode_chain(codec: str, elements: DecodeElements = JETSON_ELEMENTS) -> str:
    """``parse ! decoder ! converter ! BGRx ! videoconvert ! BGR`` for a compressed ``codec`` stream.

    OpenCV's appsink does not take BGRx, and nvvidconv does not write BGR: videoconvert drops the fourth byte.
    """
    parse = _PARSERS[codec]
    return ((f"{parse} ! " if parse else "") + f"{elements.decoder(codec)} ! {elements.convert} ! "
            "video/x-raw, format=(string)BGRx ! videoconvert ! video/x-raw, format=(string)BGR")


def file_pipeline(path: str, codec: str, elements: DecodeElements = JETSON_ELEMENTS) -> str:
    """GStreamer pipeline decoding the video file at ``path`` (``codec``: one of CODECS) into a BGR appsink."""
    suffix = Path(path).suffix.lower()
    if suffix not in _DEMUXERS:
        raise ValueError(f"no demuxer for '{suffix}' files (known: {', '.join(VIDEO_EXTENSIONS)})")
    quoted = path.replace("\\", "\\\\").replace('"', '\\"')
    head = f'filesrc location="{quoted}"'
    if _DEMUXERS[suffix]:  # the first video track only: an audio track stays unlinked
        head += f" ! {_DEMUXERS[suffix]} name=demux demux.video_0 ! queue"
    return f"{head} ! {decode_chain(codec, elements)} ! {FILE_APPSINK}"


def codec_from_fourcc(fourcc: str) -> Optional[str]:
    """One of CODECS for a FourCC such as ``avc1``, ``hev1`` or ``MJPG``, or None for any other."""
    return _FOURCC_CODECS.get(fourcc.strip("\x00 ").lower())


def _run(command: List[str]) -> Optional[str]:
    from edge.board import run_command  # noqa: PLC0415 - subprocess only when a file is probed

    return run_command(command)


def ffprobe_codec(path: str, run: Callable[[List[str]], Optional[str]] = _run) -> Optional[str]:
    """The first video stream's codec name as ffprobe says it (``h264``, ``hevc``, ``mpeg4``), or None."""
    out = run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=codec_name",
               "-of", "default=noprint_wrappers=1:nokey=1", path])
    name = (out or "").strip().splitlines()
    return name[0].strip() if name and name[0].strip() else None


def opencv_fourcc(path: str) -> Optional[str]:
    """The video's FourCC from a quick open with OpenCV's FFmpeg backend, or None."""
    from edge.cv import import_cv2  # noqa: PLC0415 - cv2 only when a file is probed

    try:
        cv2 = import_cv2()
    except ImportError:
        return None
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    try:
        number = int(cap.get(cv2.CAP_PROP_FOURCC) or 0) if cap.isOpened() else 0
    finally:
        cap.release()
    text = "".join(chr((number >> shift) & 0xFF) for shift in (0, 8, 16, 24)).strip("\x00 ")
    return text if number > 0 and text.isprintable() else None


def probe_codec(path: str) -> Tuple[Optional[str], str]:
    """(codec, how it was found): one of CODECS or another codec's name (``mpeg4``), and ``ffprobe``, ``OpenCV``
    or ``usual for .mp4``; (None, why) when nothing can say."""
    name = ffprobe_codec(path)
    if name:
        return _FFPROBE_CODECS.get(name, name), "ffprobe"
    fourcc = opencv_fourcc(path)
    if fourcc:
        return codec_from_fourcc(fourcc) or fourcc, "OpenCV"
    suffix = Path(path).suffix.lower()
    if suffix in _USUAL_CODEC:
        return _USUAL_CODEC[suffix], f"usual for {suffix}"
    return None, "neither ffprobe nor OpenCV reads its codec"


def _missing_elements(names: List[str]) -> Optional[List[str]]:
    from edge.sources.openers import gst_inspect_missing  # noqa: PLC0415 - openers imports this module

    return gst_inspect_missing(names)


def _on_jetson() -> bool:
    from edge.board import on_jetson  # noqa: PLC0415

    return on_jetson()


def _has_gstreamer() -> bool:
    from edge.cv import has_gstreamer  # noqa: PLC0415

    return has_gstreamer()


@dataclass(frozen=True)
class DecodeProbe:
    """What the choice reads from the machine; each a callable, so tests fake the board, OpenCV and GStreamer.

    jetson: whether this is a Jetson. gstreamer: whether OpenCV has GStreamer (from its build information).
    missing: the given element names that gst-inspect-1.0 does not find, None where the tool is absent.
    codec: (codec, how) of a video file.
    """

    jetson: Callable[[], bool] = _on_jetson
    gstreamer: Callable[[], bool] = _has_gstreamer
    missing: Callable[[List[str]], Optional[List[str]]] = _missing_elements
    codec: Callable[[str], Tuple[Optional[str], str]] = probe_codec


@dataclass(frozen=True)
class DecodeChoice:
    """How a source decodes: in hardware through ``pipeline``, or in software through ``software``.

    reason: why software (empty when asked for with decode=sw). warning: one line when the user should know
    (decode=hw not honoured, a codec without a hardware path, a hardware pipeline that failed to open).
    """

    hardware: bool
    software: str
    codec: Optional[str] = None
    pipeline: Optional[str] = None
    elements: DecodeElements = JETSON_ELEMENTS
    reason: str = ""
    warning: Optional[str] = None

    @property
    def decoder(self) -> str:
        """The element that decodes (hardware), or the software decoder's name."""
        return self.elements.decoder(self.codec) if self.hardware and self.codec else self.software

    def lines(self) -> List[str]:
        """What the app prints: ``decode: …``, then ``warning: …`` when there is one (the reason is said once)."""
        if self.hardware:
            line = f"decode: {self.decoder} ({self.elements.kind}) via GStreamer, {self.codec}"
        else:
            told = self.reason and not self.warning
            line = f"decode: software ({self.software})" + (f": {self.reason}" if told else "")
        return [line] + ([f"warning: {self.warning}"] if self.warning else [])

    def fell_back(self, why: str) -> "DecodeChoice":
        """This choice after its hardware pipeline failed to open: software, with one warning line."""
        decoder = self.decoder
        return replace(self, hardware=False, pipeline=None, reason=f"the {decoder} pipeline failed",
                       warning=f"the {decoder} pipeline failed ({why}): decoding in software ({self.software})")


def _software(software: str, codec: Optional[str], reason: str, warning: Optional[str] = None) -> DecodeChoice:
    """Software decode because of ``reason``; ``warning``: None for none, else the start of the warning line."""
    text = None if warning is None else f"{warning}{reason}: decoding in software ({software})"
    return DecodeChoice(False, software, codec, reason=reason, warning=text)


def choose_decode(mode: str, target: str, software: str, codec_of: Callable[[], Tuple[Optional[str], str]],
                  build: Callable[[str], str], elements: DecodeElements = JETSON_ELEMENTS,
                  probe: DecodeProbe = DecodeProbe()) -> DecodeChoice:
    """Hardware or software decode for one source, checked cheapest first (no subprocess off a Jetson).

    mode: auto, hw or sw. target: what is decoded, for messages. software: the software decoder's name.
    codec_of: (codec, how found), called only when hardware is still possible. build: codec -> pipeline.
    """
    mode = (mode or "auto").lower()
    if mode not in MODES:
        raise EdgeError(f"unknown decode mode '{mode}'", fix="use decode=auto, hw or sw", where=target)
    forced = "decode=hw, but " if mode == "hw" else None  # the start of the warning when hw is not honoured
    if mode == "sw":
        return DecodeChoice(False, software, reason="decode=sw")
    if not forced and not probe.jetson():
        return _software(software, None, f"no {elements.h264} (not a Jetson)")
    if not probe.gstreamer():
        return _software(software, None, "this OpenCV has no GStreamer (pip's opencv-python)", forced)
    codec, how = codec_of()
    if codec not in CODECS:
        found = f"codec {codec} (from {how}) has no hardware pipeline ({', '.join(CODECS)})" if codec else how
        return _software(software, codec, found, forced or "")
    pipeline = build(str(codec))
    from edge.sources.openers import GST_PACKAGES, pipeline_elements  # noqa: PLC0415 - openers imports this module

    decoder = elements.decoder(codec)
    missing = probe.missing(list(dict.fromkeys(pipeline_elements(pipeline))))
    if missing is None and not forced:
        return _software(software, codec, f"cannot check for {decoder}: no gst-inspect-1.0 "
                                          "(apt install gstreamer1.0-tools)")
    if missing:
        name = decoder if decoder in missing else missing[0]
        where = GST_PACKAGES.get(name, "its GStreamer plugin package")
        return _software(software, codec, f"{name} is not installed ({where})", forced)
    return DecodeChoice(True, software, codec, pipeline, elements)


def choose_file_decode(path: str, mode: str = "auto", elements: DecodeElements = JETSON_ELEMENTS,
                       probe: DecodeProbe = DecodeProbe()) -> DecodeChoice:
    """Decode choice for a video file: its GStreamer pipeline when hardware decode can run, else FFmpeg."""
    suffix = Path(path).suffix.lower()

    def codec_of() -> Tuple[Optional[str], str]:
        if suffix not in VIDEO_EXTENSIONS:
            return None, f"{suffix or 'extension-less'} files have no hardware pipeline ({', '.join(VIDEO_EXTENSIONS)})"
        return probe.codec(path)

    return choose_decode(mode, path, "FFmpeg", codec_of,
                         lambda codec: file_pipeline(os.path.abspath(path), codec, elements), elements, probe)


class FallbackOpener:
    """Opener that tries the hardware pipeline first and, when it never opens, software from then on.

    Once the hardware pipeline has opened, a failed reopen is the stream's problem (the network, the camera),
    not the decoder's: it is reported as such (None) and the reader's back-off retries the same pipeline.
    ``choice`` is the DecodeChoice in force (with its warning after a fallback).
    """

    def __init__(self, choice: DecodeChoice, hardware: Callable[[], Any], software: Callable[[], Any]) -> None:
        self.choice = choice
        self._hardware, self._software = hardware, software
        self._worked = False

    def __call__(self) -> Any:
        if not self.choice.hardware:
            return self._software()
        try:
            cap = self._hardware()
        except EdgeError as exc:
            cap, why = None, exc.what
        else:
            why = "the pipeline did not open"
            if cap is not None and cap.isOpened():
                self._worked = True
                return cap
            if cap is not None:
                cap.release()
        if self._worked:
            return None
        self.choice = self.choice.fell_back(why)
        return self._software()
