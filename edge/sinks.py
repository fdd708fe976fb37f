"""Where results go: a window, a video file, image files, JSON lines, or nowhere.

Every sink is a context manager with one method, ``write(frame, annotated, record) -> bool``,
which returns False when the user asked to stop (window closed, 'q' or Esc). ``close()`` is
idempotent and safe on every exit path, including a ``finally`` after Ctrl-C, so that video
files are finalised. ``needs_annotated`` tells the pipeline whether to draw at all.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import IO, Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from edge.cv import require_cv2
from edge.errors import EdgeError
from edge.results import Frame

VIDEO_FOURCC_BY_EXT: Dict[str, str] = {".mp4": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}
IMAGE_EXTS: Tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
JSON_EXTS: Tuple[str, ...] = (".jsonl", ".json")
DEFAULT_VIDEO_FPS = 30.0
ACCEPTED_OUTPUTS = (
    "'-' or 'stdout' (JSON lines), a .jsonl/.json file, a video file ("
    + " ".join(sorted(VIDEO_FOURCC_BY_EXT))
    + "), an image pattern like out_%05d.jpg or an image file or folder/, 'display' or 'display://0', 'none'"
)
_QUIT_KEYS = (ord("q"), ord("Q"), 27)  # 27 is Esc

PathLike = Union[str, "os.PathLike[str]"]


class Sink:
    """Base class: a context manager that receives every frame and its record.

    Subclasses implement ``_write`` and, when they hold resources, ``_close``.
    """

    needs_annotated: bool = False

    def __init__(self) -> None:
        self._closed = False

    def write(self, frame: Frame, annotated: Optional[np.ndarray], record: Dict[str, Any]) -> bool:
        """Take one frame; return False when the user asked to stop.

        frame: the source frame. annotated: the frame with the overlay drawn, or None when no
        sink needs pixels (sinks that show pixels fall back to ``frame.image``).
        record: the frame's JSON record (index, timestamp, result, stage timings in ms).
        """
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        return bool(self._write(frame, annotated, record))

    def _write(self, frame: Frame, annotated: Optional[np.ndarray], record: Dict[str, Any]) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the sink holds (files, writers, windows); safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        self._close()

    def _close(self) -> None:
        """Hook: release resources; called once."""

    @property
    def closed(self) -> bool:
        """Whether close() has run."""
        return self._closed

    def __enter__(self) -> Sink:  # noqa: PYI034 - typing.Self needs Python 3.11
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _pixels(frame: Frame, annotated: Optional[np.ndarray]) -> np.ndarray:
    return frame.image if annotated is None else annotated


def _check_parent(path: Path, what: str) -> None:
    """Fail before any processing when the output's folder is missing or not writable."""
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise EdgeError(
            f"the folder for the {what} does not exist", f"create it first: mkdir -p {parent}", str(path)
        )
    if not os.access(parent, os.W_OK):
        raise EdgeError(f"the folder for the {what} is not writable", "choose a writable folder", str(path))


class VideoSink(Sink):
    """Writes annotated frames to a video file with cv2.VideoWriter.

    path: .mp4, .mov, .mkv (mp4v) or .avi (MJPG). fps: frame rate written in the file; None,
    zero or NaN uses 30. The writer opens on the first frame, with that frame's size; later
    frames of another size are resized to it.
    """

    needs_annotated = True

    def __init__(self, path: PathLike, fps: Optional[float] = None) -> None:
        super().__init__()
        self.path = Path(path)
        ext = self.path.suffix.lower()
        if ext not in VIDEO_FOURCC_BY_EXT:
            raise EdgeError(
                f"unsupported video extension '{ext or '(none)'}'",
                f"use one of {' '.join(sorted(VIDEO_FOURCC_BY_EXT))}",
                str(path),
            )
        _check_parent(self.path, "video")
        self.fourcc = VIDEO_FOURCC_BY_EXT[ext]
        valid = fps is not None and math.isfinite(fps) and fps > 0
        self.fps = float(fps) if valid else DEFAULT_VIDEO_FPS  # type: ignore[arg-type]
        self.size_wh: Optional[Tuple[int, int]] = None
        self.frames_written = 0
        self._writer: Any = None
        self._cv2 = require_cv2("writing video files")

    def __repr__(self) -> str:
        return f"VideoSink({str(self.path)!r}, fps={self.fps:g})"

    def _open(self, size_wh: Tuple[int, int]) -> None:
        cv2 = self._cv2
        fix = (
            f"check that {self.path.parent or '.'} is writable and use one of "
            f"{' '.join(sorted(VIDEO_FOURCC_BY_EXT))} (this OpenCV must have FFMPEG for video output)"
        )
        try:
            writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, size_wh)
        except cv2.error as exc:
            raise EdgeError(f"cannot open a video writer ({exc})", fix, str(self.path)) from None
        if not writer.isOpened():
            writer.release()
            raise EdgeError(f"cannot open a video writer for codec {self.fourcc}", fix, str(self.path))
        self._writer, self.size_wh = writer, size_wh

    def _write(self, frame: Frame, annotated: Optional[np.ndarray], record: Dict[str, Any]) -> bool:
        image = _pixels(frame, annotated)
        size_wh = (int(image.shape[1]), int(image.shape[0]))
        if self._writer is None:
            self._open(size_wh)
        elif size_wh != self.size_wh:
            image = self._cv2.resize(image, self.size_wh, interpolation=self._cv2.INTER_AREA)
        image = np.ascontiguousarray(image, dtype=np.uint8)
        # Count before the call: CPython raises KeyboardInterrupt after a call returns, so
        # counting afterwards would miss the frame a Ctrl-C lands on.
        self.frames_written += 1
        try:
            self._writer.write(image)
        except Exception:
            self.frames_written -= 1
            raise
        return True

    def _close(self) -> None:
        # Drop the reference first: if a second Ctrl-C lands here, the writer's destructor still
        # releases it, and a later close() does not release twice.
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.release()


def jsonable(value: Any) -> Any:
    """Plain-JSON copy of ``value``: numpy scalars and arrays as Python, NaN and inf as None."""
    if isinstance(value, float):  # also np.float64, a float subclass
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    """json.dumps hook for what the encoder does not know."""
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if hasattr(value, "to_json"):
        return jsonable(value.to_json())
    if isinstance(value, (Path, os.PathLike)):
        return os.fspath(value)
    if isinstance(value, (set, frozenset)):
        return jsonable(sorted(value, key=str))
    raise TypeError(f"cannot write a {type(value).__name__} as JSON")


def dumps_line(record: Dict[str, Any]) -> str:
    """One compact JSON line (no newline) for a record; NaN and inf become null."""
    return json.dumps(jsonable(record), separators=(",", ":"), allow_nan=False, default=_json_default)


class JsonLinesSink(Sink):
    """Writes one JSON object per frame, one per line, flushed at once.

    stream_or_path: an open text stream, "-" for stdout, or a file path (.jsonl or .json).
    Only files this sink opened are closed by it.
    """

    def __init__(self, stream_or_path: Union[PathLike, IO[str]] = "-") -> None:
        super().__init__()
        self._owned = False
        if hasattr(stream_or_path, "write"):
            self.stream: IO[str] = stream_or_path  # type: ignore[assignment]
            self.name = getattr(stream_or_path, "name", "<stream>")
        elif os.fspath(stream_or_path) in ("-", "stdout"):  # type: ignore[arg-type]
            self.stream, self.name = sys.stdout, "<stdout>"
        else:
            path = Path(stream_or_path)  # type: ignore[arg-type]
            _check_parent(path, "JSON lines output")
            try:
                self.stream = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in _close
            except OSError as exc:
                raise EdgeError(
                    f"cannot open for writing ({exc.strerror})", "choose a writable path", str(path)
                ) from None
            self.name, self._owned = str(path), True
        self.lines_written = 0

    def __repr__(self) -> str:
        return f"JsonLinesSink({self.name!r})"

    def _write(self, frame: Frame, annotated: Optional[np.ndarray], record: Dict[str, Any]) -> bool:
        line = dumps_line(record)
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except BrokenPipeError:
            # The reader went away (`| head`): that is the user stopping the run.
            return False
        self.lines_written += 1
        return True

    def _close(self) -> None:
        if self._owned:
            self.stream.close()
            return
        try:
            self.stream.flush()
        except (BrokenPipeError, ValueError):
            pass  # reader gone or stream closed by its owner: nothing left to flush


def display_available() -> bool:
    """Whether a window can be shown: True on macOS and Windows, else DISPLAY or WAYLAND_DISPLAY is set."""
    if sys.platform == "darwin" or sys.platform.startswith("win"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def opencv_has_gui() -> bool:
    """Whether the installed OpenCV can open windows (False for opencv-python-headless)."""
    for line in require_cv2("showing a window").getBuildInformation().splitlines():
        stripped = line.strip()
        if stripped.startswith("GUI:"):
            return stripped[len("GUI:") :].strip().upper() not in ("NONE", "NO")
    return True  # unknown layout: let imshow say


class WindowSink(Sink):
    """Shows annotated frames in an OpenCV window; 'q', Esc or closing the window stops the run."""

    needs_annotated = True

    def __init__(self, title: str = "edge") -> None:
        super().__init__()
        if not display_available():
            raise EdgeError("no display", "run with --headless or set DISPLAY", "window output")
        if not opencv_has_gui():
            raise EdgeError(
                "this OpenCV has no GUI support (opencv-python-headless?)",
                "run with --headless, or install opencv-python instead of the headless build",
                "window output",
            )
        self.title = title
        self._cv2 = require_cv2("showing a window")
        self._shown = False
        self._seen_visible = False

    def __repr__(self) -> str:
        return f"WindowSink({self.title!r})"

    def _write(self, frame: Frame, annotated: Optional[np.ndarray], record: Dict[str, Any]) -> bool:
        cv2 = self._cv2
        try:
            cv2.imshow(self.title, _pixels(frame, annotated))
        except cv2.error as exc:
            raise EdgeError(f"cannot show a window ({exc})", "run with --headless", "window output") from None
        self._shown = True
        key = cv2.waitKey(1) & 0xFF
        if key in _QUIT_KEYS:
            return False
        visible = cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE)
        # Some GUI backends report -1 for this property: only trust it once it has been seen >= 1.
        if visible >= 1:
            self._seen_visible = True
        return not (self._seen_visible and visible < 1)

    def _close(self) -> None:
        if not self._shown:
            return
        cv2 = self._cv2
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)  # let the GUI loop process the destroy event
        except cv2.error:
            pass  # the user already closed it


class ImageSink(Sink):
    """Writes one image per frame.

    pattern: ``out_%05d.jpg`` (formatted with the frame index), a folder (``out/`` or an existing
    folder: ``frame_000042.jpg`` inside it), or a plain image file, overwritten with the newest
    frame (for one-image sources: ``--source photo.jpg --output out.jpg``).
    """

    needs_annotated = True

    def __init__(self, pattern: PathLike) -> None:
        super().__init__()
        text = os.fspath(pattern)
        self._cv2 = require_cv2("writing image files")
        if text.endswith(("/", os.sep)) or Path(text).is_dir():
            folder = Path(text)
            _check_parent(folder, "image folder")
            folder.mkdir(exist_ok=True)
            text = str(folder / "frame_%06d.jpg")
        elif "%" in text:
            try:
                text % 0
            except (TypeError, ValueError):
                raise EdgeError(
                    "the image pattern needs exactly one integer field", "write it like out_%05d.jpg", text
                ) from None
        ext = Path(text).suffix.lower()
        if ext not in IMAGE_EXTS:
            raise EdgeError(
                f"unsupported image extension '{ext or '(none)'}'", f"use one of {' '.join(IMAGE_EXTS)}", text
            )
        _check_parent(Path(text), "images")
        self.pattern = text
        self.images_written = 0

    def __repr__(self) -> str:
        return f"ImageSink({self.pattern!r})"

    def path_for(self, index: int) -> Path:
        """File written for the frame with this index."""
        return Path(self.pattern % index if "%" in self.pattern else self.pattern)

    def _write(self, frame: Frame, annotated: Optional[np.ndarray], record: Dict[str, Any]) -> bool:
        path = self.path_for(frame.index)
        if not self._cv2.imwrite(str(path), _pixels(frame, annotated)):
            raise EdgeError(
                "cannot write the image", "check the folder is writable and the extension", str(path)
            )
        self.images_written += 1
        return True


def _is_display(spec: str) -> bool:
    lowered = spec.lower()
    return lowered == "display" or (
        lowered.startswith("display://") and lowered[len("display://") :].isdigit()
    )


def _sink_for(spec: str, fps: Optional[float]) -> Optional[Sink]:
    text = spec[len("file://") :] if spec.startswith("file://") else spec
    ext = Path(text).suffix.lower()
    if text.lower() == "none":
        return None
    if text.lower() in ("-", "stdout"):
        return JsonLinesSink(sys.stdout)
    if ext in JSON_EXTS:
        return JsonLinesSink(text)
    if ext in VIDEO_FOURCC_BY_EXT:
        return VideoSink(text, fps)
    if "%" in text or ext in IMAGE_EXTS or text.endswith(("/", os.sep)) or Path(text).is_dir():
        return ImageSink(text)
    raise EdgeError(f"unknown output '{spec}'", f"use one of: {ACCEPTED_OUTPUTS}", "--output")


def open_sinks(outputs: Sequence[str], *, headless: bool, fps: Optional[float]) -> List[Sink]:
    """Turn output specs into sinks, checking every path before any processing starts.

    outputs: specs such as "-", "out.jsonl", "out.mp4", "out_%05d.jpg", "display", "none".
    headless: never open a window; without it a window is added when a display exists, no
    display spec was given, and "none" was not given. fps: frame rate for video files.
    """
    stripped = ("-" if spec.strip().lower() == "stdout" else spec.strip() for spec in outputs)
    specs = list(dict.fromkeys(stripped))  # de-duplicated, order kept
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
                    sinks.append(WindowSink("edge"))
                continue
            sink = _sink_for(spec, fps)
            if sink is not None:
                sinks.append(sink)
        if auto_window and display_available() and opencv_has_gui():
            sinks.append(WindowSink("edge"))
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
