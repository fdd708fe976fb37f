"""The camera pipeline: capture -> preprocess -> infer -> decode [-> track] -> draw -> sink, overlapped.

Three threads connected by short queues: a capture thread pulls frames from the source and
preprocesses each into one of a small ring of preallocated input buffers (so frame N+1 is
preprocessed while frame N is inferred), an inference thread infers, decodes and (with a
tracker) tracks, and the calling thread draws and writes the sinks. Numpy, OpenCV and the
backends release the GIL, so the stages run concurrently and throughput approaches
1 / (slowest stage). Every stage is timed on every frame. A model whose preprocessing keeps
state for its decode (a two-stage cascade) is preprocessed on the inference thread instead.

Where preprocessing runs follows the stage times measured during the run
(:class:`~edge.cpu_budget.PreprocessPlacement`): on the capture thread while inference is the slower stage,
on the inference thread when reading frames is (a light model on a decoded video file).

Given a :class:`~edge.cpu_budget.CpuBudget`, a run sizes OpenCV's pool from it (and restores it
after) and records it in the summary; the model's own threads were set when it was loaded.

Stopping (end of input, frame limit, Ctrl-C, lost camera, a closed window, a failed output)
always goes through the same path: threads stopped, sinks closed (files finalised), summary
returned. ``interrupt()`` (what the camera app's SIGINT/SIGTERM handler calls) stops between
two frames, never in the middle of one, so every output of a run holds the same frames; an
output that cannot be written (disk full) stops the run with ``OutputWriteError`` and the
summary's ``outputs`` says how many frames each file really holds. A result becomes JSON only when
some sink reads it (``needs_record``: JSON lines); every sink gets the result object as ``record.result``.
"""

import queue
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

from edge.cpu_budget import CpuBudget, PreprocessPlacement, set_opencv_threads
from edge.errors import EdgeError
from edge.preprocess import BufferRing, Preprocessor
from edge.run_summary import RunSummary, StreamStats, model_stages, network_ms, pipeline_stages
from edge.sinks import FrameRecord, OutputWriteError, close_sinks
from edge.stats import StageTimes, peak_rss_mb

__all__ = ["Pipeline", "RunSummary", "StreamStats", "model_stages", "network_ms", "pipeline_stages",
           "ring_preprocessor"]

_END = object()
_POLL_S = 0.1


class _Worker(threading.Thread):
    """A daemon thread whose exception is handed to the main thread instead of printed."""

    def __init__(self, name: str, target: Any) -> None:
        super().__init__(name=name, daemon=True)
        self._target_fn = target
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        try:
            self._target_fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            self.error = exc


def ring_preprocessor(model: Any) -> Optional[Preprocessor]:
    """The model's Preprocessor when its preprocess() is only that (an edge Model), else None.

    Then a pipeline may preprocess on another thread than the one that infers, into its own buffers;
    a model that keeps state from preprocess to decode (a Cascade keeps the frame for its crops) may not.
    """
    from edge.model import Model  # noqa: PLC0415 - loaded already when a model exists

    preprocessor = getattr(model, "preprocessor", None)
    if isinstance(preprocessor, Preprocessor) and getattr(type(model), "preprocess", None) is Model.preprocess:
        return preprocessor
    return None


def _put(q: "queue.Queue[Any]", item: Any, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False


def _get(q: "queue.Queue[Any]", stop: threading.Event, workers: Sequence[_Worker]) -> Any:
    while True:
        try:
            return q.get(timeout=_POLL_S)
        except queue.Empty:
            for worker in workers:
                if worker.error is not None:
                    raise worker.error from None
            if stop.is_set():
                return _END


class Pipeline:
    """Runs a model over a source into sinks. ``run()`` returns a RunSummary.

    annotator: draws results for the sinks that show pixels (``edge.overlay.Annotator``), or None.
    tracker: an ``edge.Tracker`` that gives detections track ids (a timed "track" stage), or None.
    progress: called with the RunSummary after every delivered frame (e.g. a live status line), or None.
    budget: the :class:`~edge.cpu_budget.CpuBudget` the model was loaded with (sizes OpenCV's pool for the
    run; in the summary), or None to leave thread pools as they are.
    """

    #: frames waiting between capture and inference; the ring holds one more (the one being inferred). One:
    #: a second waiting frame added a frame period to capture-to-result latency, and no throughput, when
    #: inference is the slower stage (measured on 2 cores, face model on a 720p file)
    QUEUE_FRAMES = 1
    #: whether the capture thread preprocesses (a subclass with several capture threads shares no preprocessor)
    overlap = True

    def __init__(self, model: Any, source: Any, sinks: Sequence[Any], *, annotator: Any = None,
                 tracker: Any = None, max_frames: Optional[int] = None,
                 started_s: Optional[float] = None,
                 progress: Optional[Callable[[RunSummary], None]] = None,
                 budget: Optional[CpuBudget] = None) -> None:
        self.model = model
        self.budget = budget
        self.source = source
        self.sinks = list(sinks)
        self.annotator = annotator
        self.tracker = tracker
        self.max_frames = max_frames
        self.progress = progress
        self._interrupted = False
        self.started_s = started_s if started_s is not None else time.perf_counter()
        self._stop = threading.Event()
        self._captured: "queue.Queue[Any]" = queue.Queue(maxsize=self.QUEUE_FRAMES)
        self._results: "queue.Queue[Any]" = queue.Queue(maxsize=2)
        self.summary = RunSummary(times=StageTimes(model_stages(model, tracker is not None)),
                                  threads=budget.to_dict() if budget is not None else None)
        self._preprocessor = ring_preprocessor(model) if self.overlap else None
        #: input tensors preprocessed ahead: one being inferred, the rest queued
        self.ring = (BufferRing(self._preprocessor.new_buffer, self.QUEUE_FRAMES + 1)
                     if self._preprocessor is not None else None)
        #: which thread preprocesses, by the stage times measured (only where the capture thread may)
        self.placement = PreprocessPlacement() if self.ring is not None else None
        #: the preprocessor's scratch buffers are its own: around a move, both threads may want it at once
        self._preprocessing = threading.Lock()
        self._recent: Dict[str, float] = {}
        self._run_start = self.started_s

    def stop(self) -> None:
        """Ask the run to finish after the frame in hand (thread-safe)."""
        self._stop.set()

    def interrupt(self) -> None:
        """Like stop(), and the summary says the run was interrupted (safe in a signal handler)."""
        self._interrupted = True
        self._stop.set()

    # ------------------------------------------------------------- threads
    def _capture_loop(self) -> None:
        """Read each frame and, with a ring, preprocess it into a free buffer; queue (frame, ms, prepared)."""
        iterator = iter(self.source)
        preprocessor, ring = self._preprocessor, self.ring
        while not self._stop.is_set():
            start = time.perf_counter()
            frame = next(iterator, None)
            if frame is None:
                break
            capture_ms = (time.perf_counter() - start) * 1e3
            prepared = None
            if ring is not None and self.placement.on_capture:
                buffer = ring.acquire(self._stop)  # waits while every buffer is queued or being inferred
                if buffer is None:
                    return
                with self._preprocessing:
                    start = time.perf_counter()
                    tensor, transform = preprocessor(frame.image, buffer)
                    prepared = (tensor, transform, (time.perf_counter() - start) * 1e3)
            if not _put(self._captured, (frame, capture_ms, prepared), self._stop):
                return
        _put(self._captured, _END, self._stop)

    def _infer_loop(self) -> None:
        """Infer, decode (and track) each captured frame in order; queue (frame, result, timings)."""
        model = self.model
        while True:
            item = _get(self._captured, self._stop, ())
            if item is _END:
                break
            frame, capture_ms, prepared = item
            if prepared is None:
                with self._preprocessing:
                    t0 = time.perf_counter()
                    tensor, transform = model.preprocess(frame.image)
                    preprocess_ms = (time.perf_counter() - t0) * 1e3
            else:
                tensor, transform, preprocess_ms = prepared
            t1 = time.perf_counter()
            outputs = model.infer(tensor)
            t2 = time.perf_counter()
            if prepared is not None:
                self.ring.release(tensor)  # the backend has read it; outputs are arrays of their own
            result = model.decode(outputs, transform)
            t3 = time.perf_counter()
            timings = {"capture": capture_ms, "preprocess": preprocess_ms, "infer": (t2 - t1) * 1e3,
                       "decode": (t3 - t2) * 1e3}
            network = network_ms(model)
            if network is not None:
                timings["network"] = network
            if self.tracker is not None:  # here, in frame order: a tracker must see every frame in sequence
                result = self.tracker.update(result)
                timings["track"] = (time.perf_counter() - t3) * 1e3
            if self.placement is not None:
                self.placement.add(capture_ms, preprocess_ms, (time.perf_counter() - t1) * 1e3, prepared is not None)
            if not _put(self._results, (frame, result, timings), self._stop):
                return
        _put(self._results, _END, self._stop)

    def _workers(self) -> List[_Worker]:
        """The threads that feed the results queue (capture and inference)."""
        return [_Worker("edge-capture", self._capture_loop), _Worker("edge-infer", self._infer_loop)]

    # ---------------------------------------------------------------- main
    def run(self) -> RunSummary:
        """Process frames until the input ends, the frame limit, a stop request or Ctrl-C."""
        workers = self._workers()
        summary = self.summary
        opencv_before = set_opencv_threads(self.budget.opencv) if self.budget is not None else None
        start = self._run_start = time.perf_counter()
        cpu_start = time.process_time()
        summary.ended = "end of input"
        try:
            for worker in workers:
                worker.start()
            while not self._interrupted:
                item = _get(self._results, self._stop, workers)
                if item is _END:
                    break
                for sink in self.sinks:  # all or none: every output gets this frame, or the run stops here
                    sink.preflight()
                    if hasattr(sink, "check_result"):
                        sink.check_result(item[1])
                if not self._deliver(*item):
                    summary.ended = "an output asked to stop (window closed or output pipe closed)"
                    break
                if self.progress is not None:
                    self.progress(summary)
                if self.max_frames is not None and summary.frames >= self.max_frames:
                    summary.ended = "frame limit"
                    break
            if self._interrupted:
                summary.ended, summary.interrupted = "interrupted (Ctrl-C or SIGTERM)", True
            elif summary.ended == "end of input":
                summary.ended = getattr(self.source, "ended_reason", None) or summary.ended
        except KeyboardInterrupt:
            summary.ended, summary.interrupted = "interrupted (Ctrl-C)", True
            raise
        except OutputWriteError as exc:
            summary.ended = f"an output failed ({exc.what})"
            raise
        except EdgeError as exc:  # e.g. an output that cannot hold this model's results
            summary.ended = f"stopped by an error ({exc.what})"
            raise
        finally:
            summary.elapsed_s = time.perf_counter() - start
            summary.cpu_s = time.process_time() - cpu_start
            self._shutdown(workers)
            summary.skipped_frames = int(getattr(self.source, "skipped_frames", 0) or 0)
            if opencv_before is not None:
                set_opencv_threads(opencv_before)
        return summary

    def _deliver(self, frame: Any, result: Any, timings: Dict[str, float],
                 stream: Optional[StreamStats] = None) -> bool:
        summary = self.summary
        annotated = None
        t0 = time.perf_counter()
        if self.annotator is not None and any(getattr(s, "needs_annotated", False) for s in self.sinks):
            annotated = self.annotator.annotate(frame.image.copy(), result)
            elapsed_s = t0 - self._run_start
            frames = summary.frames if stream is None else stream.frames  # a stream's tile shows its own rate
            fps = frames / elapsed_s if frames and elapsed_s > 0 else None
            self.annotator.annotate_status(annotated, fps, self._recent)
        t1 = time.perf_counter()
        timings["draw"] = (t1 - t0) * 1e3
        record = FrameRecord(result, frame=frame.index, timestamp_s=round(frame.timestamp_s, 6))
        if stream is not None:  # multi-stream runs only: one source's lines stay as they were
            record["stream"] = {"index": stream.index, "name": stream.name}
        if any(getattr(sink, "needs_record", True) for sink in self.sinks):
            record["result"] = result.to_json()  # milliseconds for masks (COCO RLE): only when some sink reads it
        record["timings_ms"] = timings
        if frame.truth:
            record["truth"] = frame.truth
        keep_going = True
        for sink in self.sinks:
            keep_going = sink.write(frame, annotated, record) is not False and keep_going
        now = time.perf_counter()
        timings["sink"] = (now - t1) * 1e3
        timings["latency"] = (now - frame.timestamp_s) * 1e3
        if summary.first_result_s is None:
            summary.first_result_s = now - self.started_s
            summary.first_result_at_s = now
        summary.times.add(timings)
        summary.frames += 1
        summary.dropped = int(getattr(self.source, "dropped", 0) or 0)  # live, for a status line
        count = len(result) if hasattr(result, "__len__") else 0
        summary.detections += count
        if stream is not None:
            stream.add(count, timings["latency"], now - self._run_start)
        self._recent = {k: v for k, v in timings.items() if k != "latency"}
        return keep_going

    def _shutdown(self, workers: List[_Worker]) -> None:
        self._stop.set()
        # Sinks first: only this thread writes them, and a second Ctrl-C during the joins below must
        # not leave a video without its index.
        try:
            close_sinks(self.sinks)
        finally:
            for part in (part for sink in self.sinks for part in getattr(sink, "parts", [sink])):  # one per stream
                count = part.frames_in_output if hasattr(part, "frames_in_output") else None
                if count is not None:
                    self.summary.outputs[str(getattr(part, "name", part))] = int(count)
                counts = part.summary() if callable(getattr(part, "summary", None)) else None
                if counts:  # e.g. the MQTT output: published, dropped, unconfirmed
                    self.summary.output_counts[str(getattr(part, "name", part))] = dict(counts)
            for worker in workers:
                if worker.is_alive():
                    worker.join(timeout=2.0)
            self.summary.dropped = int(getattr(self.source, "dropped", 0) or 0)
            self.summary.peak_rss_mb = peak_rss_mb()
            if self.placement is not None:
                self.summary.preprocess_on = self.placement.to_dict()
