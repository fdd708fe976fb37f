"""Sources over cv2.VideoCapture: video files (every frame) and live sources (newest frame).

Live sources — V4L2 cameras, CSI cameras through GStreamer, RTSP/HTTP streams, gst://
pipelines — are read on a daemon thread that keeps only the newest frame, so the app never
works on a backlog. When a live source stops delivering it is reopened with exponential
back-off; after ``reconnect`` failed attempts in a row iteration ends with ``ended_reason``
and ``lost`` set. A finite gst:// pipeline (``num-buffers=N``, a file source) is not reopened:
its first failed read is its end of stream, as the end of a video file is. (OpenCV reports
GStreamer's end-of-stream and a pipeline error alike, as a failed read, so the pipeline text
decides; ``?finite=0|1`` overrides.) The opener is injectable: any callable returning a
VideoCapture-like object.
"""

import sys
import threading
from typing import Any, Optional, Tuple

from edge.cpu_budget import decode_threads, set_decode_threads  # noqa: F401 - set_decode_threads: importable here too
from edge.cv import has_gstreamer, require_cv2
from edge.errors import EdgeError
from edge.sources.base import Grabbed, Source, check_frame_size, now_s
from edge.sources.hwdecode import (
    JETSON_ELEMENTS,
    DecodeChoice,
    DecodeElements,
    DecodeProbe,
    FallbackOpener,
    choose_decode,
    choose_file_decode,
)
from edge.sources.openers import (
    LIST_CAMERAS_FIX,
    Opener,
    _require_csi,
    _require_gstreamer,
    _v4l2_error,
    ffmpeg_opener,
    gstreamer_opener,
    v4l2_opener,
)
from edge.sources.uri import SourceSpec, csi_pipeline, finite_pipeline, redact_url, rtsp_pipeline

DEFAULT_RECONNECT = 5
BACKOFF_S = (0.25, 4.0)  # first wait, longest wait; doubles in between
_JOIN_TIMEOUT_S = 3.0
# Failed reads in a row after which a video file that declares no frame count counts as ended
# (a corrupt frame fails once; then the decoder goes on with the next one).
MAX_SKIPPED_IN_A_ROW = 25


def _open_ffmpeg(cv2: Any, path: str, threads: int) -> Any:
    """cv2.VideoCapture of a file, with FFmpeg's decode threads capped where OpenCV takes open parameters
    (4.5.2+ with CAP_PROP_N_THREADS); the plain open elsewhere."""
    if threads > 0 and hasattr(cv2, "CAP_PROP_N_THREADS") and hasattr(cv2, "CAP_FFMPEG"):
        try:
            cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, threads])
        except (TypeError, cv2.error):  # an OpenCV without open parameters
            cap = None
        if cap is not None and cap.isOpened():
            return cap
    return cv2.VideoCapture(path)


class VideoFileSource(Source):
    """Every frame of a video file, in order; ``loop`` replays it (0 once, N extra times, -1 forever).

    A frame that cannot be decoded is skipped and counted in ``skipped_frames``; iteration ends
    only at the real end of the file. decode: auto, hw or sw (:mod:`edge.sources.hwdecode`; on a
    Jetson, hardware through GStreamer where it can run), kept as :attr:`decode` (a DecodeChoice).
    elements, probe: the hardware pipeline's elements and the machine checks (tests replace them).
    """

    decode: Optional[DecodeChoice] = None

    def __init__(self, path: str, loop: int = 0, uri: Optional[str] = None, decode: Optional[str] = None,
                 elements: DecodeElements = JETSON_ELEMENTS, probe: DecodeProbe = DecodeProbe()) -> None:
        super().__init__(uri or path)
        self._path = path
        self._loops_left = loop
        self._cap: Any = None  # set before opening: close() may run on a half-built source
        self.decode = choose_file_decode(path, decode or "auto", elements, probe)
        self._cap = self._open()
        image = self._first_frame()
        if image is None:
            self._cap.release()
            raise _undecodable(path)
        self._pending: Optional[Any] = image
        self.size_wh = (int(image.shape[1]), int(image.shape[0]))
        check_frame_size(self.size_wh, where=f"source {self.uri}")
        fps = float(self._cap.get(require_cv2().CAP_PROP_FPS) or 0.0)
        self.fps = fps if fps > 0 else None

    def _first_frame(self) -> Optional[Any]:
        """The first frame (its frame count read first); a hardware pipeline that gives none falls back."""
        cv2 = require_cv2()
        count = self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0
        self._frame_count = int(count) if 0 < count < 1e9 else 0  # frames in one pass, 0 when unknown
        self._pass_frames = 0  # frames delivered or skipped in this pass
        image = self._read_skipping()
        if image is None and self.decode is not None and self.decode.hardware:
            self._cap.release()
            self.decode = self.decode.fell_back("it delivered no frame")
            self._cap = self._open()
            return self._first_frame()
        return image

    def _open(self) -> Any:
        if self.decode is not None and self.decode.hardware:
            cap = self._open_pipeline(str(self.decode.pipeline))
            if cap is not None:
                return cap
        cv2 = require_cv2("reading video files")
        cap = _open_ffmpeg(cv2, self._path, decode_threads())
        if not cap.isOpened():
            cap.release()
            raise _undecodable(self._path)
        return cap

    def _open_pipeline(self, pipeline: str) -> Optional[Any]:
        """The hardware pipeline opened (within the GStreamer open timeout), or None after falling back."""
        try:
            cap = gstreamer_opener(pipeline)()
        except EdgeError as exc:
            cap, why = None, exc.what
        else:
            why = "the pipeline did not open"
            if cap.isOpened():
                return cap
            cap.release()
        self.decode = self.decode.fell_back(why) if self.decode is not None else None
        return None

    def _grab(self, timeout_s: Optional[float]) -> Optional[Grabbed]:
        image, self._pending = self._pending, None
        if image is None:
            image = self._read_skipping()
            if image is None and self._loops_left != 0:
                if self._loops_left > 0:  # -1 loops forever
                    self._loops_left -= 1
                self._cap.release()
                self._cap = self._open()
                self._pass_frames = 0
                image = self._read_skipping()
            if image is None:
                self._end("end of file")
                return None
        return image, now_s(), {}

    def _read_skipping(self) -> Optional[Any]:
        """The next decodable frame of this pass, counting undecodable ones in ``skipped_frames``.

        A failed read is the end of the file only when no later read succeeds: a corrupt frame in
        the middle fails once and the decoder goes on with the next one. Reads go on up to the frame
        count the container declares or, when it declares none, MAX_SKIPPED_IN_A_ROW failures in a
        row. Undecodable frames at the very end cannot be told from the end and are not counted.
        """
        failed = 0
        while True:
            ok, image = self._cap.read()
            if ok and image is not None:
                self._pass_frames += failed + 1
                self.skipped_frames += failed
                return image
            failed += 1
            if self._frame_count:
                if self._pass_frames + failed >= self._frame_count:
                    return None
            elif failed > MAX_SKIPPED_IN_A_ROW:
                return None

    def _release(self) -> None:
        if self._cap is not None:
            self._cap.release()


def _undecodable(path: str) -> EdgeError:
    return EdgeError(
        f"cannot decode video {path}",
        fix=f"check the file plays (ffprobe {path}) or re-encode to H.264 MP4",
        where="source",
    )


class LiveCaptureSource(Source):
    """Newest frame from a live capture, read on its own thread, reopened with back-off.

    opener: returns a VideoCapture-like object (called again to reconnect).
    open_error: the EdgeError to raise when the first open fails.
    reconnect: reopen attempts in a row before giving up (0: end at the first failure).
    backoff_s: (first, longest) wait between attempts, seconds; doubles in between.
    lost_what: "camera" or "stream", for ended_reason.
    end_of_stream: the first failed read is the end (a finite stream): iteration ends with
    "end of stream", nothing is reopened and ``lost`` stays False.
    """

    live = True
    decode: Optional[DecodeChoice] = None  # set by open_live for RTSP: hardware or software decode

    def __init__(
        self,
        uri: str,
        opener: Opener,
        open_error: Optional[EdgeError] = None,
        reconnect: int = DEFAULT_RECONNECT,
        backoff_s: Tuple[float, float] = BACKOFF_S,
        lost_what: str = "camera",
        end_of_stream: bool = False,
    ) -> None:
        super().__init__(uri)
        self._opener = opener
        self._end_of_stream = end_of_stream
        self._lost_for_good = False
        self._reconnect = reconnect
        self._backoff_s = backoff_s
        self._lost_what = lost_what
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._cap_lock = threading.Lock()
        self._latest: Optional[Grabbed] = None
        self._seq = 0  # frames captured
        self._seq_read = 0  # newest frame handed to the consumer
        self._done_reason: Optional[str] = None
        self._error: Optional[BaseException] = None
        self._thread: Optional[threading.Thread] = None
        self._cap: Any = None
        self._cap = self._open_once()
        if self._cap is None:
            self._closed = True
            raise open_error or EdgeError(f"cannot open {uri}", fix=LIST_CAMERAS_FIX, where=f"source {uri}")
        self._read_properties(self._cap)
        self._thread = threading.Thread(target=self._run, name=f"edge-source {uri}", daemon=True)
        self._thread.start()

    def _open_once(self) -> Any:
        cap = self._opener()
        if cap is not None and cap.isOpened():
            return cap
        if cap is not None:
            cap.release()
        return None

    def _read_properties(self, cap: Any) -> None:
        cv2 = sys.modules.get("cv2")
        if cv2 is None:
            return
        width, height = cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0, cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0
        if width > 0 and height > 0:
            self.size_wh = (int(width), int(height))
        fps = cap.get(cv2.CAP_PROP_FPS) or 0
        self.fps = float(fps) if 0 < fps < 1000 else None

    # -- reader thread ------------------------------------------------------------------
    def _run(self) -> None:
        try:
            reason = self._capture_loop()
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, who re-raises it
            self._error, reason = exc, f"capture failed: {exc}"
        finally:
            self._release_capture()
        with self._cond:
            self._done_reason = reason
            self._cond.notify_all()

    def _capture_loop(self) -> str:
        failures = 0
        while not self._stop.is_set():
            cap = self._cap
            ok, image = cap.read() if cap is not None else (False, None)
            if self._stop.is_set():
                break
            if ok and image is not None:
                failures = 0
                self._publish(image)
                continue
            self._release_capture()
            if self._end_of_stream:
                return "end of stream"
            if failures >= self._reconnect:
                self._lost_for_good = True
                if self._reconnect == 0:
                    return f"{self._lost_what} lost (reconnect=0)"
                return f"{self._lost_what} lost after {self._reconnect} reconnect attempts"
            failures += 1
            first_s, longest_s = self._backoff_s
            if self._stop.wait(min(first_s * 2 ** (failures - 1), longest_s)):
                break
            with self._cap_lock:
                self._cap = self._open_once()
        return "closed"

    def _publish(self, image: Any) -> None:
        with self._cond:
            if self._seq > self._seq_read:
                self.dropped += 1
            self._latest = (image, now_s(), {})
            self._seq += 1
            self._cond.notify_all()

    def _release_capture(self) -> None:
        with self._cap_lock:
            cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()  # always: an unreleased Argus session blocks the camera until nvargus restarts

    # -- consumer side ------------------------------------------------------------------
    def _grab(self, timeout_s: Optional[float]) -> Optional[Grabbed]:
        with self._cond:
            self._cond.wait_for(
                lambda: self._seq > self._seq_read or self._done_reason is not None, timeout_s
            )
            if self._seq > self._seq_read:
                self._seq_read = self._seq
                return self._latest
            if self._done_reason is None:
                return None
        self._end(self._done_reason, lost=self._lost_for_good)
        if self._error is not None:
            raise self._error
        return None

    def _release(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(_JOIN_TIMEOUT_S)
            if thread.is_alive():
                # read() is stuck in the device; releasing under it could crash OpenCV, and the
                # reader releases the capture itself as soon as read() returns.
                return
        self._release_capture()


def open_live(spec: SourceSpec, opener: Optional[Opener] = None) -> LiveCaptureSource:
    """Open a live source (v4l2, csi, rtsp, http, gst) from its spec; ``opener`` replaces the real one."""
    reconnect = spec.option_int("reconnect", DEFAULT_RECONNECT)
    shown = redact_url(spec.uri)
    if spec.kind == "v4l2":
        error = _v4l2_error(spec)
        opener = opener or v4l2_opener(spec)
        return LiveCaptureSource(spec.uri, opener, error, reconnect)
    if spec.kind == "csi":
        if opener is None:
            _require_csi(shown)
            opener = gstreamer_opener(_csi_pipeline_for(spec))
        error = EdgeError(
            f"cannot start CSI camera sensor {spec.target} (nvarguscamerasrc)",
            fix="check the cable and sensor id; test with: gst-launch-1.0 nvarguscamerasrc "
            f"sensor-id={spec.target} num-buffers=1 ! fakesink; on 'Failed to create CaptureSession' "
            "run: sudo systemctl restart nvargus-daemon",
            where=f"source {shown}",
        )
        return LiveCaptureSource(spec.uri, opener, error, reconnect)
    if spec.kind in ("rtsp", "http"):
        url = str(spec.target)
        fallback = _rtsp_opener(spec) if opener is None and spec.kind == "rtsp" else None
        opener = opener or fallback or ffmpeg_opener(url)
        error = EdgeError(
            f"cannot open stream {redact_url(url)}",
            fix="check that it plays with: ffprobe URL (or VLC), the user, password and network",
            where="source",
        )
        source = LiveCaptureSource(spec.uri, opener, error, reconnect, lost_what="stream")
        source.decode = fallback.choice if fallback is not None else None
        return source
    if spec.kind == "gst":
        if opener is None:
            _require_gstreamer("a gst:// pipeline", shown)
            opener = gstreamer_opener(str(spec.target))
        error = EdgeError(
            "cannot start the GStreamer pipeline",
            fix="test it with: gst-launch-1.0 <pipeline with fakesink in place of appsink>",
            where=f"source {shown}",
        )
        finite = spec.option_bool("finite", finite_pipeline(str(spec.target)) is not None)
        return LiveCaptureSource(spec.uri, opener, error, reconnect, lost_what="stream", end_of_stream=finite)
    raise ValueError(f"not a live source kind: {spec.kind}")


def _rtsp_opener(spec: SourceSpec, elements: DecodeElements = JETSON_ELEMENTS,
                 probe: DecodeProbe = DecodeProbe()) -> FallbackOpener:
    """RTSP through the hardware decoder where it can run, else as before: avdec through GStreamer where OpenCV
    has it, FFmpeg where not."""
    url, codec = str(spec.target), spec.options.get("codec", "h264").lower()
    latency_ms = spec.option_int("latency", 200)
    gstreamer = has_gstreamer()
    software = f"avdec_{codec} via GStreamer" if gstreamer else "FFmpeg"
    choice = choose_decode(spec.options.get("decode", "auto"), redact_url(url), software, lambda: (codec, "codec="),
                           lambda name: rtsp_pipeline(url, latency_ms, name, elements=elements), elements, probe)
    soft = gstreamer_opener(rtsp_pipeline(url, latency_ms, codec, jetson=False)) if gstreamer else ffmpeg_opener(url)
    hard = gstreamer_opener(choice.pipeline) if choice.pipeline else soft
    return FallbackOpener(choice, hard, soft)


def _csi_pipeline_for(spec: SourceSpec) -> str:
    capture_wh = (spec.option_int("width", 1920), spec.option_int("height", 1080))
    sized = "width" in spec.options or "height" in spec.options
    default_out = capture_wh if sized else (1280, 720)
    output_wh = (
        spec.option_int("output_width", default_out[0]),
        spec.option_int("output_height", default_out[1]),
    )
    return csi_pipeline(
        int(spec.target), capture_wh, output_wh, spec.option_float("fps", 30), spec.options.get("flip", "0")
    )
