"""Many sources, one model: every stream's newest frame batched into one inference call.

    import edge
    model = edge.load_model("face_dynamic_batch.onnx")
    for item in edge.run_streams(["demo://?seed=1", "demo://?seed=2"], model):
        print(item.stream, item.name, len(item.result), item.latency_ms)

Each source keeps what it has on its own: its reader (a live source's newest-frame thread and its
reconnect back-off, a file's every frame), read here by one capture thread a stream that holds at most
one frame ready. The inference side takes the ready frames round-robin: as many as the model's batch
allows (:attr:`edge.model.Model.batch_limit`: a dynamic batch, or a TensorRT profile's largest) into one
call, one at a time for a fixed batch. A stream that ends (a file) or is lost for good (a camera past its
reconnect attempts) leaves the others running; the run ends when all have ended.
"""

import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

from edge.errors import EdgeError
from edge.pipeline import _END, Pipeline, RunSummary, StreamStats, _put, _Worker, model_stages, network_ms
from edge.stats import StageTimes

_POLL_S = 0.1
_JOIN_S = 2.0
SourceEntry = Union[str, Tuple[str, str]]  # a URI, or (name, URI)


# ------------------------------------------------------------------------------------ what to open
def parse_stream_line(line: str) -> Optional[Tuple[str, str]]:
    """One line of a --sources file -> (name, URI), or None for a blank line or a # comment.

    ``cam1=rtsp://host/path`` names the stream; a line without a plain name before its first ``=``
    (``demo://?seed=1``) is a URI, named by itself.
    """
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    name, sep, uri = text.partition("=")
    if sep and name.strip() and all(c.isalnum() or c in "_-." for c in name.strip()) and uri.strip():
        return name.strip(), uri.strip()
    return _shown(text), text


def read_sources_file(path: Union[str, Path]) -> List[Tuple[str, str]]:
    """The streams of a --sources file: one URI (or name=URI) a line; # comments and blank lines ignored."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise EdgeError(f"cannot read the sources file ({exc.strerror})",
                        fix="give a text file with one source URI a line", where=f"--sources {path}") from None
    entries = [entry for entry in (parse_stream_line(line) for line in lines) if entry is not None]
    if not entries:
        raise EdgeError("the sources file names no source", fix="write one URI a line (# starts a comment)",
                        where=f"--sources {path}")
    return entries


def stream_entries(sources: Sequence[SourceEntry]) -> List[Tuple[str, str]]:
    """(name, URI) for each source given as a URI (named by itself, passwords hidden) or a (name, URI) pair."""
    entries = []
    for source in sources:
        if isinstance(source, (tuple, list)):
            entries.append((str(source[0]), str(source[1])))
        else:
            entries.append((_shown(str(source)), str(source)))
    return entries


def _shown(uri: str) -> str:
    from edge.sources.uri import redact_url

    return redact_url(uri)


# ------------------------------------------------------------------------------------ the streams
class Captured(NamedTuple):
    """A frame waiting for inference: its stream, the frame, and how long reading it took (ms)."""

    stream: "Stream"
    frame: Any
    capture_ms: float


class Stream:
    """One source of a multi-stream run, read on its own thread into a one-frame slot."""

    def __init__(self, index: int, name: str, uri: str, source: Any) -> None:
        self.index = index
        self.name = name
        self.uri = uri
        self.source = source
        self.stats = StreamStats(index, name)
        self.pending: Optional[Captured] = None
        self.done = False
        self.error: Optional[BaseException] = None
        self.thread: Optional[threading.Thread] = None

    def __repr__(self) -> str:
        return f"Stream({self.index}, {self.name!r}, {self.stats.ended or 'running'})"

    def capture(self, cond: threading.Condition, stop: threading.Event) -> None:
        """Thread body: hand each frame to the slot once it is free; mark the stream done at the end.

        A live source is read only once the slot is free, so that the frame handed over is its newest (its own
        reader keeps replacing it meanwhile); a file's next frame is read ahead while the slot is full.
        """
        live = bool(getattr(self.source, "live", False))
        try:
            iterator = iter(self.source)
            while not stop.is_set():
                if live:
                    self._wait_for_slot(cond, stop)
                start = time.perf_counter()
                frame = next(iterator, None)
                if frame is None:
                    break
                item = Captured(self, frame, (time.perf_counter() - start) * 1e3)
                with cond:
                    self._wait_for_slot(cond, stop)
                    self.pending = item
                    cond.notify_all()
        except EdgeError as exc:  # this stream failed (a reopen that cannot work): the others go on
            self.source.lost, self.stats.ended = True, f"failed: {exc}"
        except BaseException as exc:  # noqa: BLE001 - a bug: re-raised on the inference side
            self.error = exc
        finally:
            with cond:
                self.done = True
                self.stats.ended = self.stats.ended or getattr(self.source, "ended_reason", None) or "stopped"
                self.stats.lost = bool(getattr(self.source, "lost", False))
                cond.notify_all()


    def _wait_for_slot(self, cond: threading.Condition, stop: threading.Event) -> None:
        with cond:
            while self.pending is not None and not stop.is_set():
                cond.wait(_POLL_S)


class StreamSet:
    """Several sources read side by side; a context manager that closes them all.

    Looks like one source to :class:`edge.pipeline.Pipeline`: ``dropped`` and ``skipped_frames`` add up the
    streams', ``ended_reason`` says how they ended, ``lost`` is True when any live stream is gone for good.
    """

    live = False
    fps: Optional[float] = None

    def __init__(self, streams: Sequence[Stream]) -> None:
        self.streams = list(streams)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._next = 0
        self._started = False

    def __len__(self) -> int:
        return len(self.streams)

    def __iter__(self) -> Iterator[Stream]:
        return iter(self.streams)

    @property
    def dropped(self) -> int:
        """Live frames replaced before use, all streams together."""
        for stream in self.streams:
            stream.stats.dropped = int(getattr(stream.source, "dropped", 0) or 0)
        return sum(stream.stats.dropped for stream in self.streams)

    @property
    def skipped_frames(self) -> int:
        """Undecodable frames skipped, all streams together."""
        return sum(int(getattr(stream.source, "skipped_frames", 0) or 0) for stream in self.streams)

    @property
    def lost(self) -> bool:
        """Whether some live stream is gone for good."""
        return any(stream.stats.lost for stream in self.streams)

    @property
    def ended_reason(self) -> Optional[str]:
        """Why the streams ended, once all have (None while one still runs)."""
        if not all(stream.done for stream in self.streams):
            return None
        reasons = sorted({stream.stats.ended for stream in self.streams})
        lost = sum(stream.stats.lost for stream in self.streams)
        why = reasons[0] if len(reasons) == 1 else "each as listed below"
        return f"all {len(self.streams)} streams ended ({why})" + (f"; {lost} lost for good" if lost else "")

    def start(self) -> None:
        """Start one capture thread a stream (once)."""
        if self._started:
            return
        self._started = True
        for stream in self.streams:
            stream.thread = threading.Thread(target=stream.capture, args=(self._cond, self._stop),
                                             name=f"edge-capture {stream.index}", daemon=True)
            stream.thread.start()

    def next_batch(self, limit: Optional[int], stop: threading.Event) -> Optional[List[Captured]]:
        """The ready frames, round-robin from the stream after the last one served, at most ``limit`` (None: all).

        Waits for at least one; None once every stream has ended and nothing is left, or on ``stop``.
        """
        self.start()
        with self._cond:
            while True:
                for stream in self.streams:
                    if stream.error is not None:
                        raise stream.error
                if any(stream.pending is not None for stream in self.streams):
                    break
                if stop.is_set() or all(stream.done for stream in self.streams):
                    return None
                self._cond.wait(_POLL_S)
            count = len(self.streams)
            taken: List[Captured] = []
            for offset in range(count):
                stream = self.streams[(self._next + offset) % count]
                if stream.pending is not None:
                    taken.append(stream.pending)
                    stream.pending = None
                    if limit is not None and len(taken) >= limit:
                        break
            self._next = (taken[-1].stream.index + 1) % count
            self._cond.notify_all()
        return taken

    def close(self) -> None:
        """Stop the capture threads and close every source (each even when another fails)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        for stream in self.streams:
            if stream.thread is not None and stream.thread.is_alive():
                stream.thread.join(_JOIN_S)
        first_error: Optional[BaseException] = None
        for stream in self.streams:
            try:
                stream.source.close()
            except BaseException as exc:  # noqa: BLE001 - the others must still be closed
                first_error = first_error or exc
        if first_error is not None:
            raise first_error

    def __enter__(self) -> "StreamSet":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_streams(sources: Sequence[SourceEntry], opener: Optional[Callable[[str], Any]] = None) -> StreamSet:
    """Open every source (URIs, or (name, URI) pairs) as a :class:`StreamSet`; all or none.

    opener: opens one URI (default :func:`edge.sources.open_source`).
    """
    if opener is None:
        from edge.sources import open_source as opener  # noqa: PLC0415 - keeps `import edge.streams` light
    entries = stream_entries(sources)
    if not entries:
        raise EdgeError("no source given", fix="give at least one --source", where="--source")
    streams: List[Stream] = []
    try:
        for index, (name, uri) in enumerate(entries):
            try:
                source = opener(uri)
            except EdgeError as exc:  # say which stream, keeping the error's type (and so its exit code)
                exc.where = f"stream {index} ({name}): {exc.where or uri}"
                exc.args = (exc.message(),)
                raise
            streams.append(Stream(index, name, uri, source))
    except BaseException:
        for stream in streams:
            stream.source.close()
        raise
    return StreamSet(streams)


# ------------------------------------------------------------------------------------ inference
def batch_size(model: Any, streams: int, batch: Optional[int] = None) -> int:
    """Frames per inference call: ``batch`` when given (1: round-robin), else as many as there are streams,
    bounded by the model's batch (1 for a fixed batch, or a model that runs in two stages)."""
    limit = getattr(model, "batch_limit", 1)
    if batch is not None:
        if batch < 1:
            raise EdgeError(f"batch {batch} is below 1", fix="give 1 (round-robin) or more", where="--batch")
        if batch > 1 and limit is not None and batch > limit:
            raise EdgeError(f"batch {batch} is more than this model takes in one call ({limit})",
                            fix="re-export the model with a dynamic batch, or leave the batch out",
                            where="--batch")
        return batch
    return max(1, streams if limit is None else min(limit, streams))


def infer_batch(model: Any, captured: Sequence[Captured],
                trackers: Optional[Dict[int, Any]] = None) -> List[Tuple[Any, Any, Dict[str, float], StreamStats]]:
    """Preprocess, infer and decode frames of several streams in one call -> (frame, result, timings, stats).

    Timings are each frame's share of the batch (preprocess, infer and decode divided by the batch size), so
    the stages add up to the work per frame; capture-to-result latency is measured on delivery. trackers:
    one tracker per stream index, each updated with its own stream's results in order.
    """
    count = len(captured)
    t0 = time.perf_counter()
    if count == 1 or not hasattr(model, "preprocess_batch"):
        tensors = [model.preprocess(item.frame.image) for item in captured]
        t1 = time.perf_counter()
        outputs, network = [], []
        for tensor, _ in tensors:
            outputs.append(model.infer(tensor))
            network.append(network_ms(model))
        t2 = time.perf_counter()
        results = [model.decode(out, transform) for out, (_, transform) in zip(outputs, tensors)]
    else:
        tensor, transforms = model.preprocess_batch([item.frame.image for item in captured])
        t1 = time.perf_counter()
        batch_outputs = model.infer(tensor)
        network = [network_ms(model)]
        t2 = time.perf_counter()
        results = model.decode_batch(batch_outputs, transforms)
    t3 = time.perf_counter()
    share = {"preprocess": (t1 - t0) * 1e3 / count, "infer": (t2 - t1) * 1e3 / count,
             "decode": (t3 - t2) * 1e3 / count}
    if network and all(ms is not None for ms in network):  # a remote backend's round trips, shared out too
        share["network"] = sum(network) / count
    delivered = []
    for item, result in zip(captured, results):
        timings = dict(share, capture=item.capture_ms)
        tracker = (trackers or {}).get(item.stream.index)
        if tracker is not None:
            start = time.perf_counter()
            result = tracker.update(result)
            timings["track"] = (time.perf_counter() - start) * 1e3
        delivered.append((item.frame, result, timings, item.stream.stats))
    return delivered


# ------------------------------------------------------------------------------------ the Python API
@dataclass
class StreamResult:
    """One frame's result in a multi-stream run.

    stream: the stream's index (its position in the sources); name: its name or URI; frame: the
    :class:`~edge.results.Frame`; result: what the model's decoder gives (Detections, ...);
    timings_ms: the frame's stage times; latency_ms: capture to result.
    """

    stream: int
    name: str
    frame: Any
    result: Any
    timings_ms: Dict[str, float] = field(default_factory=dict)
    latency_ms: float = 0.0


def run_streams(sources: Sequence[SourceEntry], model: Any, *, batch: Optional[int] = None,
                max_frames: Optional[int] = None, trackers: Optional[Dict[int, Any]] = None,
                stats: Optional[List[StreamStats]] = None,
                opener: Optional[Callable[[str], Any]] = None) -> Iterator[StreamResult]:
    """Results of ``model`` on every stream, in the order they are ready; sources close when the loop ends.

    sources: URIs, or (name, URI) pairs. model: an :class:`edge.Model` (or anything with preprocess, infer
    and decode), or a model file or zoo name to load (and close at the end). batch: frames per inference
    call (None: all ready streams the model's batch allows; 1: round-robin). max_frames: stop after this
    many results, all streams together. trackers: a tracker per stream index. stats: a list that receives
    each stream's :class:`~edge.pipeline.StreamStats` (FPS, latency percentiles, how it ended). opener:
    opens one URI (default :func:`edge.sources.open_source`).
    """
    if isinstance(model, (str, Path)):
        from edge.model import Model  # noqa: PLC0415 - loads backends: only when a name is given

        with Model(model) as loaded:
            yield from run_streams(sources, loaded, batch=batch, max_frames=max_frames, trackers=trackers,
                                   stats=stats, opener=opener)
        return
    stop = threading.Event()
    with open_streams(sources, opener) as streams:
        if stats is not None:
            stats.extend(stream.stats for stream in streams)
        size = batch_size(model, len(streams), batch)
        start = time.perf_counter()
        delivered = 0
        while max_frames is None or delivered < max_frames:
            captured = streams.next_batch(size, stop)
            if captured is None:
                return
            for frame, result, timings, stream in infer_batch(model, captured, trackers):
                now = time.perf_counter()
                latency_ms = (now - frame.timestamp_s) * 1e3
                stream.add(len(result) if hasattr(result, "__len__") else 0, latency_ms, now - start)
                delivered += 1
                yield StreamResult(stream.index, stream.name, frame, result, timings, latency_ms)


# ------------------------------------------------------------------------------------ the camera app's run
class StreamsPipeline(Pipeline):
    """The camera pipeline over a :class:`StreamSet`: one capture thread a stream, one inference thread
    batching them, the calling thread drawing and writing the sinks (records carry a "stream" field).

    batch: frames per inference call (None: as many as the model and the streams allow; 1: round-robin).
    trackers: one tracker per stream index, or None. Other arguments as :class:`edge.pipeline.Pipeline`
    (a ``budget`` from ``cpu_budget(streams=len(streams))`` counts one capture thread a stream).
    """

    #: preprocessing stays on the inference thread: several capture threads cannot share one preprocessor
    overlap = False

    def __init__(self, model: Any, streams: StreamSet, sinks: Sequence[Any], *, batch: Optional[int] = None,
                 trackers: Optional[Dict[int, Any]] = None, **options: Any) -> None:
        super().__init__(model, streams, sinks, **options)
        self.streams = streams
        self.trackers = trackers or {}
        self.batch = batch_size(model, len(streams), batch)
        self.summary = RunSummary(times=StageTimes(model_stages(model, bool(self.trackers))),
                                  streams=[stream.stats for stream in streams], threads=self.summary.threads)
        self._results = queue.Queue(maxsize=max(2, self.batch))  # a whole batch fits while one is drawn

    def _workers(self) -> List[_Worker]:
        return [_Worker("edge-infer", self._batch_loop)]  # the StreamSet starts the capture threads

    def _batch_loop(self) -> None:
        while True:
            captured = self.streams.next_batch(self.batch, self._stop)
            if captured is None:
                break
            for item in infer_batch(self.model, captured, self.trackers):
                if not _put(self._results, item, self._stop):
                    return
        _put(self._results, _END, self._stop)

    def run(self) -> RunSummary:
        """As :meth:`edge.pipeline.Pipeline.run`; then each stream's drops are in its summary line."""
        try:
            return super().run()
        finally:
            self.summary.dropped = self.streams.dropped
