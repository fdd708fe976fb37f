"""Where results go: a window, a video file, image files, JSON lines, MQTT, a live page (http://), RTSP, or nowhere.

Every sink is a context manager with one method, ``write(frame, annotated, record) -> bool``,
which returns False when the user asked to stop (window closed, 'q' or Esc). ``close()`` is
idempotent and safe on every exit path, including a ``finally`` after Ctrl-C, so that video
files are finalised. ``needs_annotated`` tells the pipeline whether to draw at all, ``needs_record``
whether to convert results to JSON; the record is a :class:`FrameRecord`, a dict that carries the result
object too, for sinks that write it in another form (``mask:`` images).
"""

import os
import sys
from pathlib import Path
from typing import List, Optional, Sequence
from urllib.parse import urlsplit

from edge.errors import EdgeError
from edge.sinks.base import FrameRecord, OutputWriteError, Sink
from edge.sinks.files import (
    DEFAULT_VIDEO_FPS,
    IMAGE_EXTS,
    VIDEO_FOURCC_BY_EXT,
    ImageSink,
    PerStreamSink,
    SegmentedVideoSink,
    VideoSink,
    stream_output,
)
from edge.sinks.jsonl import JSON_EXTS, JsonLinesSink, dumps_line, jsonable
from edge.sinks.masks import MaskImageSink, check_outputs_for_task, class_image, is_mask_spec, mask_path
from edge.sinks.mqtt import MqttSink, is_mqtt_spec
from edge.sinks.window import TiledWindowSink, WindowSink, display_available, opencv_has_gui

__all__ = ["DEFAULT_VIDEO_FPS", "IMAGE_EXTS", "JSON_EXTS", "VIDEO_FOURCC_BY_EXT", "FrameRecord",
           "ImageSink", "JsonLinesSink", "MaskImageSink", "MqttSink", "OutputWriteError",
           "SegmentedVideoSink", "Sink", "VideoSink", "WindowSink", "check_outputs_for_task", "class_image",
           "close_sinks", "display_available", "dumps_line", "jsonable", "open_sinks", "opencv_has_gui"]

ACCEPTED_OUTPUTS = (
    "'-' or 'stdout' (JSON lines), a .jsonl/.json file, a video file ("
    + " ".join(sorted(VIDEO_FOURCC_BY_EXT))
    + "), an image pattern like out_%05d.jpg or an image file or folder/, mask images of a segmentation model "
    "like mask:masks_%05d.png (class id per pixel), an MQTT topic like mqtt://[user@]host[:port]/topic?qos=1 "
    "(mqtts:// for TLS; the password in EDGE_MQTT_PASSWORD), a live page like http://127.0.0.1:8080/ (a token in "
    "EDGE_HTTP_TOKEN for other addresses), an RTSP server like rtsp://@:8554/live, 'display' or 'display://0', 'none'"
)


def is_http_spec(spec: str) -> bool:
    """Whether an --output spec is a live page (edge.sinks.http, imported only for the runs that serve one)."""
    return spec.lower().startswith("http://")


def is_rtsp_output_spec(spec: str) -> bool:
    """Whether an --output spec is an RTSP server (edge.sinks.rtsp)."""
    return spec.lower().startswith(("rtsp://", "rtsps://"))


def _is_display(spec: str) -> bool:
    lowered = spec.lower()
    return lowered == "display" or (
        lowered.startswith("display://") and lowered[len("display://") :].isdigit()
    )


def _output_key(spec: str) -> str:
    """What an output spec writes to, so that two spellings of one file compare equal (servers: their port)."""
    if is_http_spec(spec) or is_rtsp_output_spec(spec):
        try:
            port = urlsplit(spec).port
        except ValueError:
            return spec  # the sink says what is wrong with it
        return f"port {port or (8080 if is_http_spec(spec) else 8554)}"
    if is_mask_spec(spec):
        return os.path.normcase(os.path.abspath(mask_path(spec)))
    text = spec[len("file://") :] if spec.startswith("file://") else spec
    if text.lower() in ("-", "stdout"):
        return "-"
    if text.lower() == "none" or _is_display(text):
        return text.lower()
    return os.path.normcase(os.path.abspath(text))


def _refuse_duplicates(specs: Sequence[str]) -> None:
    seen = {}
    for spec in specs:
        key = _output_key(spec)
        if key in seen and key != "none" and not _is_display(key):
            same = f"'{spec}'" if seen[key] == spec else f"'{seen[key]}' and '{spec}'"
            if key.startswith("port "):
                raise EdgeError(f"outputs {same} both listen on {key}", "give each server its own port", "--output")
            raise EdgeError(f"output {same} given twice: two writers would fight over one file",
                            "give each output once", "--output")
        seen[key] = spec


def _sink_for(spec: str, fps: Optional[float], overwrite: bool, segment_s: Optional[float]) -> Optional[Sink]:
    if is_mqtt_spec(spec):
        return MqttSink(spec)  # connects on the first frame: opening and closing it here has no side effect
    if is_http_spec(spec):
        from edge.sinks.http import HttpSink  # noqa: PLC0415 - sockets and servers only for the runs that serve

        return HttpSink(spec)  # checks the port (bound and released at once); serves from the first frame
    if is_rtsp_output_spec(spec):
        from edge.sinks.rtsp import RtspSink  # noqa: PLC0415 - likewise

        return RtspSink(spec)  # the same, and the GStreamer libraries and encoder
    if is_mask_spec(spec):
        if not mask_path(spec):
            raise EdgeError("'mask:' needs a file pattern after it", "write it like mask:masks_%05d.png", "--output")
        return MaskImageSink(mask_path(spec))
    text = spec[len("file://") :] if spec.startswith("file://") else spec
    ext = Path(text).suffix.lower()
    if text.lower() == "none":
        return None
    if text.lower() in ("-", "stdout"):
        return JsonLinesSink(sys.stdout)
    if ext in JSON_EXTS:
        return JsonLinesSink(text, overwrite=overwrite)
    if ext in VIDEO_FOURCC_BY_EXT:
        if segment_s is not None:
            return SegmentedVideoSink(text, segment_s, fps, overwrite=overwrite)
        return VideoSink(text, fps, overwrite=overwrite)
    if "%" in text or ext in IMAGE_EXTS or text.endswith(("/", os.sep)) or Path(text).is_dir():
        return ImageSink(text)
    raise EdgeError(f"unknown output '{spec}'", f"use one of: {ACCEPTED_OUTPUTS}", "--output")


def open_sinks(outputs: Sequence[str], *, headless: bool, fps: Optional[float],
               overwrite: bool = False, segment_s: Optional[float] = None, streams: Sequence[str] = (),
               stream_fps: Sequence[Optional[float]] = ()) -> List[Sink]:
    """Turn output specs into sinks, checking every path before any processing starts.

    outputs: specs such as "-", "out.jsonl", "out.mp4", "out_%05d.jpg", "mask:masks_%05d.png", "display", "none"; a
    file given twice is an error. headless: never open a window; without it a window is added
    when a display exists, no display spec was given, and "none" was not given. fps: frame rate
    for video files. overwrite: replace existing non-empty .jsonl and video files (refused
    without it). segment_s: cut video files into segments of this many seconds (out.mp4 ->
    out_00000.mp4, ...), so that a kill or power cut loses at most the last one; an error when no
    video output is given. Nothing is created here: files are created on the first frame, so calling this
    and closing the sinks at once is a side-effect-free check of the outputs (servers, http:// and rtsp://, bind
    their port for an instant to check it is free, and listen from the first frame). streams: the names of a
    multi-stream run's streams (two or more): the window shows them all in a grid, and every video or image
    output becomes one per stream (``out.mp4`` -> ``out_stream0.mp4``, ..., or ``{stream}`` in the name), each
    at its stream's frame rate from ``stream_fps``; JSON lines stay one file.
    """
    specs = [spec.strip() for spec in outputs]
    _refuse_duplicates(specs)
    display_specs = [spec for spec in specs if _is_display(spec)]
    if display_specs and headless:
        raise EdgeError(
            f"output '{display_specs[0]}' needs a window but --headless is set", "drop one", "--output"
        )
    auto_window = not (headless or display_specs or "none" in (spec.lower() for spec in specs))
    sinks: List[Sink] = []
    try:
        for spec in specs:
            if _is_display(spec):
                if not any(isinstance(sink, WindowSink) for sink in sinks):  # one window at most
                    sinks.append(_window(streams))
                continue
            if len(streams) > 1 and (is_http_spec(spec) or is_rtsp_output_spec(spec)):
                raise EdgeError(f"output '{spec}' shows one video, and this run has {len(streams)} streams",
                                "run one --source with it, or record each stream to a video file "
                                "(--output out.mp4 writes out_stream0.mp4, ...)", "--output")
            sink = _sink_for(spec, fps, overwrite, segment_s)
            if sink is not None and len(streams) > 1:
                sink = _per_stream(sink, spec, streams, stream_fps, overwrite, segment_s)
            if sink is not None:
                sinks.append(sink)
        if segment_s is not None and not any(isinstance(part, SegmentedVideoSink)
                                             for sink in sinks for part in getattr(sink, "parts", [sink])):
            raise EdgeError("--segment-seconds cuts video recordings into files, but no video output is given",
                            "add --output out.mp4 (or .mkv/.avi), or drop --segment-seconds", "--segment-seconds")
        if auto_window and display_available() and opencv_has_gui():
            sinks.append(_window(streams))
    except BaseException:
        close_sinks(sinks)
        raise
    return sinks


def close_sinks(sinks: Sequence[Sink]) -> None:
    """Close every sink, even when one of them fails; re-raise the first failure afterwards."""
    first_error: Optional[BaseException] = None
    for sink in sinks:
        try:
            sink.close()
        except BaseException as exc:  # noqa: BLE001 - the others must still be closed
            first_error = first_error or exc
    if first_error is not None:
        raise first_error


def _window(streams: Sequence[str]) -> WindowSink:
    """The window: one stream's frames, or every stream of a multi-stream run in a grid."""
    return TiledWindowSink(streams, "edge") if len(streams) > 1 else WindowSink("edge")


def _per_stream(sink: Sink, spec: str, streams: Sequence[str], stream_fps: Sequence[Optional[float]],
                overwrite: bool, segment_s: Optional[float]) -> Sink:
    """A multi-stream run's output: one file (or image series) per stream for outputs of pixels, as it is
    for the others (JSON lines, with a "stream" field in each line)."""
    if not (sink.needs_annotated or isinstance(sink, ImageSink)):
        return sink
    sink.close()
    parts: List[Sink] = []
    try:
        for index in range(len(streams)):
            fps = stream_fps[index] if index < len(stream_fps) else None
            part = _sink_for(stream_output(spec, index), fps, overwrite, segment_s)
            if part is not None:
                parts.append(part)
        _refuse_duplicates([str(getattr(part, "name", part)) for part in parts])
    except BaseException:
        close_sinks(parts)
        raise
    return PerStreamSink(parts)
