"""File sinks: a video file, or one image file per frame."""

import math
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from edge.cv import require_cv2
from edge.errors import EdgeError
from edge.results import Frame
from edge.sinks.base import OutputWriteError, PathLike, Sink, _check_parent, _pixels, check_overwrite, free_bytes

VIDEO_FOURCC_BY_EXT: Dict[str, str] = {".mp4": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}
IMAGE_EXTS: Tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
DEFAULT_VIDEO_FPS = 30.0
_VIDEO_RESERVE_BYTES = 1 << 20  # room kept free for the last frames and the container's index
_INDEX_BYTES_PER_FRAME = 64  # an mp4 index entry is ~20 bytes a frame (sizes, offsets, sync samples)
_IMAGE_RESERVE_BYTES = 64 * 1024  # room kept free beyond two images: file system metadata


class VideoSink(Sink):
    """Writes annotated frames to a video file with cv2.VideoWriter.

    path: .mp4, .mov, .mkv (mp4v) or .avi (MJPG). fps: frame rate written in the file; None,
    zero or NaN uses 30. The writer opens on the first frame, with that frame's size; later
    frames of another size are resized to it. overwrite: replace an existing non-empty file
    (without it such a file is refused; the file is only created on the first frame).
    Recording stops with OutputWriteError while the disk still has room for the video's index,
    so that the file stays playable (OpenCV's writer does not report write failures).

    Crash safety (measured by killing the writer with SIGKILL mid-recording): .mkv and .avi files
    stay readable up to the last frames written; an .mp4 or .mov does not open at all, because its
    index is written only when the file is closed. :attr:`crash_note` says so for those.
    """

    #: suffixes whose files are unreadable when the process dies before closing them
    CRASH_UNSAFE_SUFFIXES = (".mp4", ".mov")

    needs_annotated = True
    needs_record = False

    def __init__(self, path: PathLike, fps: Optional[float] = None, *, overwrite: bool = False) -> None:
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
        if "%" in self.path.name:
            raise EdgeError("a video name with a % field is a pattern for segments",
                            "add --segment-seconds S to record in segments, or drop the % field", str(path))
        check_overwrite(self.path, overwrite, "video")
        self.name = str(self.path)
        self.fourcc = VIDEO_FOURCC_BY_EXT[ext]
        valid = fps is not None and math.isfinite(fps) and fps > 0
        self.fps = float(fps) if valid else DEFAULT_VIDEO_FPS  # type: ignore[arg-type]
        self.size_wh: Optional[Tuple[int, int]] = None
        self.frames_written = 0
        self._writer: Any = None
        self._cv2 = require_cv2("writing video files")

    @property
    def crash_note(self) -> Optional[str]:
        """A note for the user when this file would be lost to a kill or a power cut, else None."""
        if self.path.suffix.lower() not in self.CRASH_UNSAFE_SUFFIXES:
            return None
        return (f"note: {self.path.name} cannot be opened if the run is killed or the power is cut before it stops "
                f"(its index is written at the end); record to {self.path.with_suffix('.mkv').name} to keep "
                "every frame written so far")

    def __repr__(self) -> str:
        return f"VideoSink({str(self.path)!r}, fps={self.fps:g})"

    @property
    def frames_in_output(self) -> Optional[int]:
        """Frames handed to the writer (0 when the finished file could not be read back)."""
        return self.frames_written

    def preflight(self) -> None:
        """Stop while the disk still has room for a frame and the index written at close."""
        if self.size_wh is None:
            return
        free = free_bytes(self.path.parent)
        raw_frame_bytes = self.size_wh[0] * self.size_wh[1] * 3
        reserve = _VIDEO_RESERVE_BYTES + raw_frame_bytes // 4 + _INDEX_BYTES_PER_FRAME * self.frames_written
        if free is not None and free < reserve:
            raise OutputWriteError(f"the disk is nearly full ({free // 1024} KiB left): recording stopped at "
                                   f"{self.frames_written} frames so that the video stays playable",
                                   "free space or write to another disk", self.name)

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
        if writer is None:
            return
        writer.release()
        if not _readable(self._cv2, self.path):
            written, self.frames_written = self.frames_written, 0
            raise OutputWriteError(f"the video of {written} frames cannot be read back (disk full or I/O error)",
                                   "free space or write to another disk", self.name)


def segment_pattern(path: PathLike) -> str:
    """The file-name pattern of a segmented recording: ``out.mp4`` -> ``out_%05d.mp4``; a name with one
    integer field (``cam1-%03d.mkv``) is kept as it is."""
    text = os.fspath(path)
    if "%" in text:
        if len(re.findall(r"%0?\d*d", text)) != 1 or text.count("%") != 1:
            raise EdgeError("the video pattern needs exactly one integer field", "write it like out_%05d.mp4",
                            text)
        return text
    stem = Path(text)
    return str(stem.with_name(f"{stem.stem}_%05d{stem.suffix}"))


class SegmentedVideoSink(Sink):
    """A recording cut into files of ``segment_s`` seconds of video each, so that a kill or a power cut loses
    at most the segment being written (every closed segment is a finished, playable file).

    path: ``out.mp4`` (segments ``out_00000.mp4``, ``out_00001.mp4``, ...) or a pattern with one integer
    field (``out_%03d.mp4``). segment_s: seconds of video per file; a segment holds round(segment_s x fps)
    frames (at least one). fps and overwrite as for :class:`VideoSink`; without overwrite, existing
    segments of the same pattern are refused.
    """

    needs_annotated = True
    needs_record = False

    def __init__(self, path: PathLike, segment_s: float, fps: Optional[float] = None, *,
                 overwrite: bool = False) -> None:
        super().__init__()
        if not (isinstance(segment_s, (int, float)) and math.isfinite(segment_s) and segment_s > 0):
            raise EdgeError(f"--segment-seconds must be a positive number of seconds, got {segment_s}",
                            "give e.g. --segment-seconds 60", "--segment-seconds")
        self.pattern = self.name = segment_pattern(path)
        self.overwrite = overwrite
        first = VideoSink(self.pattern % 0, fps, overwrite=overwrite)  # checks extension, folder, first file
        self.fps = first.fps
        self.segment_s = float(segment_s)
        self.frames_per_segment = max(1, int(round(self.segment_s * self.fps)))
        if not overwrite:
            existing = self._existing_segments()
            if existing:
                raise EdgeError(f"{len(existing)} segment(s) of this recording already exist ({existing[0].name} ...)",
                                "add --overwrite to replace them, or choose another name", self.pattern)
        self._current: Optional[VideoSink] = first
        self.segments: List[Path] = []  # finished, playable segment files
        self._finished_frames = 0

    def __repr__(self) -> str:
        return f"SegmentedVideoSink({self.pattern!r}, segment_s={self.segment_s:g}, fps={self.fps:g})"

    def _existing_segments(self) -> List[Path]:
        pattern = Path(self.pattern)
        head, _, tail = pattern.name.partition("%")
        field = re.match(r"0?\d*d", tail)
        rest = tail[field.end():] if field else tail
        regex = re.compile(re.escape(head) + r"\d+" + re.escape(rest) + r"$")
        folder = pattern.parent
        try:
            names = sorted(os.listdir(str(folder)))
        except OSError:
            return []
        return [folder / name for name in names if regex.match(name) and (folder / name).stat().st_size > 0]

    @property
    def crash_note(self) -> Optional[str]:
        """What a kill or power cut can cost: at most the segment being written."""
        return (f"note: recording in {self.segment_s:g} s segments ({self.pattern}): a kill or power cut loses "
                "at most the segment being written")

    @property
    def frames_in_output(self) -> Optional[int]:
        """Frames in the finished segments plus the one being written."""
        current = self._current.frames_written if self._current is not None else 0
        return self._finished_frames + current

    def preflight(self) -> None:
        """As VideoSink: stop while the disk has room for the open segment's index."""
        if self._current is not None:
            self._current.preflight()

    def _finish_segment(self) -> None:
        segment, self._current = self._current, None
        if segment is None:
            return
        try:
            segment.close()
        finally:
            self._finished_frames += segment.frames_written
            if segment.frames_written:
                self.segments.append(segment.path)

    def _write(self, frame: Frame, annotated: Optional[np.ndarray], record: Dict[str, Any]) -> bool:
        if self._current is not None and self._current.frames_written >= self.frames_per_segment:
            self._finish_segment()
        if self._current is None:
            self._current = VideoSink(self.pattern % len(self.segments), self.fps, overwrite=self.overwrite)
        return self._current.write(frame, annotated, record)

    def _close(self) -> None:
        self._finish_segment()


def _readable(cv2: Any, path: Path) -> bool:
    """Whether OpenCV opens the finished video and decodes its first frame."""
    capture = cv2.VideoCapture(str(path))
    try:
        return bool(capture.isOpened() and capture.read()[0])
    finally:
        capture.release()


class ImageSink(Sink):
    """Writes one image per frame.

    pattern: ``out_%05d.jpg`` (formatted with the frame index), a folder (``out/`` or an existing
    folder: ``frame_000042.jpg`` inside it), or a plain image file, overwritten with the newest
    frame (for one-image sources: ``--source photo.jpg --output out.jpg``). Like the other file
    outputs, it stops with OutputWriteError before a frame when the disk has no room left for
    another image as large as the largest so far.
    """

    needs_annotated = True
    needs_record = False
    #: what the images are and an example spec, for messages; the extensions accepted; the file name in a folder
    what = "image"
    example = "out_%05d.jpg"
    exts: Tuple[str, ...] = IMAGE_EXTS
    folder_name = "frame_%06d.jpg"

    def __init__(self, pattern: PathLike) -> None:
        super().__init__()
        text = os.fspath(pattern)
        self._cv2 = require_cv2(f"writing {self.what} files")
        self._folder = None
        if text.endswith(("/", os.sep)) or Path(text).is_dir():
            folder = Path(text)
            _check_parent(folder, f"{self.what} folder")
            self._folder: Optional[Path] = folder  # created on the first frame: a failed run leaves nothing
            text = str(folder / self.folder_name)
        elif "%" in text:
            try:
                text % 0
            except (TypeError, ValueError):
                raise EdgeError(
                    f"the {self.what} pattern needs exactly one integer field", f"write it like {self.example}", text
                ) from None
        ext = Path(text).suffix.lower()
        if ext not in self.exts:
            raise EdgeError(*self._extension_error(ext), text)
        if self._folder is None:
            _check_parent(Path(text), f"{self.what}s")
        self.pattern = self.name = text
        self.images_written = 0
        self._largest_bytes = 0

    def _extension_error(self, ext: str) -> Tuple[str, str]:
        return f"unsupported image extension '{ext or '(none)'}'", f"use one of {' '.join(self.exts)}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.pattern!r})"

    def path_for(self, index: int) -> Path:
        """File written for the frame with this index."""
        return Path(self.pattern % index if "%" in self.pattern else self.pattern)

    def preflight(self) -> None:
        """Stop before an image that would not fit on the disk (room for twice the largest so far)."""
        if not self.images_written:
            return
        folder = self.path_for(0).parent
        free = free_bytes(folder if str(folder) else Path("."))
        if free is not None and free < 2 * self._largest_bytes + _IMAGE_RESERVE_BYTES:
            raise OutputWriteError(f"the disk is nearly full ({free // 1024} KiB left) after "
                                   f"{self.images_written} {self.what}s", "free space or write to another disk",
                                   self.name)

    def _image(self, frame: Frame, annotated: Optional[np.ndarray], record: Dict[str, Any]) -> np.ndarray:
        """Hook: the pixels to write for this frame."""
        return _pixels(frame, annotated)

    def _write(self, frame: Frame, annotated: Optional[np.ndarray], record: Dict[str, Any]) -> bool:
        image = self._image(frame, annotated, record)
        if self._folder is not None:
            self._folder.mkdir(exist_ok=True)
            self._folder = None
        path = self.path_for(frame.index)
        if not self._cv2.imwrite(str(path), image):
            raise OutputWriteError(f"cannot write {self.what} {self.images_written + 1} (disk full or not writable)",
                                   "free space, or check the folder is writable", str(path))
        self.images_written += 1
        try:
            self._largest_bytes = max(self._largest_bytes, path.stat().st_size)
        except OSError:
            pass  # removed by someone else at once: the next preflight keeps the previous estimate
        return True

    @property
    def frames_in_output(self) -> Optional[int]:
        """Images written."""
        return self.images_written


def stream_output(spec: str, index: int) -> str:
    """The output spec of one stream of a multi-stream run: ``{stream}`` in the name becomes the index, else
    ``_stream<index>`` goes before the extension (``out.mp4`` -> ``out_stream0.mp4``,
    ``mask:m_%05d.png`` -> ``mask:m_%05d_stream0.png``)."""
    if "{stream}" in spec:
        return spec.replace("{stream}", str(index))
    prefix = next((p for p in ("mask:", "file://") if spec.startswith(p)), "")
    text = spec[len(prefix):]
    if text.endswith(("/", os.sep)) or Path(text).is_dir():
        raise EdgeError("an image folder output cannot tell the streams of a multi-stream run apart",
                        "name the files with the stream, e.g. out/cam{stream}_%05d.jpg", spec)
    path = Path(text)
    return prefix + str(path.with_name(f"{path.stem}_stream{index}{path.suffix}"))


class PerStreamSink(Sink):
    """One output per stream of a multi-stream run (a video or image files each): a frame goes to its
    stream's part, chosen by the record's ``stream`` index. ``parts``: the sinks, by stream index."""

    def __init__(self, parts: List[Sink]) -> None:
        super().__init__()
        self.parts = list(parts)
        self.needs_annotated = any(part.needs_annotated for part in self.parts)
        self.needs_record = any(part.needs_record for part in self.parts)
        self.name = ", ".join(str(getattr(part, "name", part)) for part in self.parts)

    def __repr__(self) -> str:
        return f"PerStreamSink({self.parts!r})"

    @property
    def crash_note(self) -> Optional[str]:
        """The parts' note (they are all of one kind)."""
        return getattr(self.parts[0], "crash_note", None) if self.parts else None

    @property
    def frames_in_output(self) -> Optional[int]:
        """Frames in all the parts together."""
        counts = [part.frames_in_output for part in self.parts if part.frames_in_output is not None]
        return sum(counts) if counts else None

    def preflight(self) -> None:
        """Every part must take the next frame."""
        for part in self.parts:
            part.preflight()

    def check_result(self, result: Any) -> None:
        """Every part must hold this kind of result."""
        for part in self.parts:
            part.check_result(result)

    def _write(self, frame: Frame, annotated: Optional[np.ndarray], record: Dict[str, Any]) -> bool:
        return self.parts[int(record["stream"]["index"])].write(frame, annotated, record)

    def _close(self) -> None:
        first_error: Optional[BaseException] = None
        for part in self.parts:
            try:
                part.close()
            except BaseException as exc:  # noqa: BLE001 - the other files must still be finalised
                first_error = first_error or exc
        if first_error is not None:
            raise first_error
