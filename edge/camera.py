"""``python -m edge.camera``: run a model on a camera (or any source) and show or save the results.

With no arguments it runs the built-in face detector on the first camera it finds, or on
``demo://`` (a moving scene made from the shipped samples) when there is none, and says which.
User mistakes print one line with the fix and exit 2; an output that cannot be written (disk
full) stops the run with one line and exit 1; a camera or stream gone for good (every reconnect
attempt failed) ends the run with the summary, one line and exit 3, so a service manager restarts
it; Ctrl-C or SIGTERM stops cleanly with a summary at any moment, from the first instruction to
the last, and exits 130 (SIGINT) or 143 (SIGTERM).
"""

import os
import signal
import time

_STARTED_S = time.perf_counter()


def _exit_now(signum, frame):  # noqa: ANN001, ANN202 - before any other import, typing's included
    """Signals before main() has installed its handler: nothing is open yet, so leave at once."""
    name = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C (SIGINT)"
    os.write(2, f"stopped by {name}\n".encode())
    os._exit(128 + int(signum))  # 143 for SIGTERM, 130 for SIGINT, as edge.console.stop_exit_code


if __name__ == "__main__":  # the app, not an import: signals work from the first instruction
    signal.signal(signal.SIGINT, _exit_now)
    signal.signal(signal.SIGTERM, _exit_now)

import argparse  # noqa: E402 - after the handlers: argparse and typing take tens of ms on a slow board
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Dict, List, Optional, Sequence, Tuple  # noqa: E402

from edge.camera_cli import build_parser, list_backends, list_cameras, list_models  # noqa: E402
from edge.console import (  # noqa: E402 - the start time is taken before the imports
    Signals,
    StatusLine,
    ignore_further_interrupts,
    stderr_is_terminal,
)
from edge.errors import EdgeError  # noqa: E402
from edge.flags import config_overrides  # noqa: E402


def _tracker(model: Any, enabled: bool) -> Any:
    """The tracker for --track (None without it); only detections can be tracked (not classes, masks, keypoints)."""
    if not enabled:
        return None
    if model.task != "detect":
        raise EdgeError(f"--track follows detected objects, but this model's task is '{model.task}'",
                        fix="drop --track, or use a detection model", where="--track")
    from edge.tracking import Tracker

    return Tracker.for_model(model)


def _model_file(name: Optional[str]) -> Optional[Path]:
    """The model file a name resolves to, for the thread choice's cache key; None when it does not resolve
    (loading it then gives the error)."""
    from edge.zoo import resolve_model

    try:
        return Path(resolve_model(name))
    except (EdgeError, OSError, ValueError):
        return None


def _check_source(source_uri: str) -> None:
    """Refuse a source that cannot work here before the model loads (a bad URI, csi:// off a Jetson)."""
    from edge.sources import parse_source

    spec = parse_source(source_uri)
    if spec.kind == "csi":
        from edge.sources.openers import _require_csi

        _require_csi(source_uri)


def run(args: argparse.Namespace, say: Any, signals: Optional[Signals] = None) -> int:
    """Check every input and output, open model, source and sinks, run the pipeline, print the summary."""
    from edge.cascade import open_pipeline
    from edge.cpu_budget import cpu_budget, set_decode_threads
    from edge.model import Model
    from edge.overlay import Annotator
    from edge.pipeline import Pipeline
    from edge.sinks import OutputWriteError, check_outputs_for_task, close_sinks, open_sinks
    from edge.sources import default_camera, open_source, parse_source
    from edge.streams import StreamsPipeline, open_streams

    if args.max_frames is not None and args.max_frames < 1:
        raise EdgeError(f"--max-frames must be at least 1, got {args.max_frames}", fix="omit it to run until stopped",
                        where="--max-frames")
    if args.summary_json:
        folder = os.path.dirname(os.path.abspath(args.summary_json))
        if not os.path.isdir(folder):
            raise EdgeError("folder for the summary does not exist", fix=f"mkdir -p {folder}", where="--summary-json")
    entries = _source_entries(args)  # two or more: a multi-stream run
    many = len(entries) > 1
    source_uri = f"{len(entries)} streams" if many else (entries[0][1] if entries else None)
    if source_uri is None:
        source_uri = default_camera()
        say(f"source: camera {source_uri}" if source_uri else "source: no camera found, running on demo://")
        source_uri = source_uri or "demo://"
    for uri in [uri for _, uri in entries] if many else [source_uri]:
        _check_source(uri)  # a bad URI fails before the model loads
    names = [name for name, _ in entries] if many else []
    # So do bad, duplicated or existing --output paths; sinks create their files on the first frame only.
    close_sinks(open_sinks(args.output, headless=args.headless, fps=None, overwrite=args.overwrite,
                           segment_s=args.segment_seconds, streams=names))
    report = None if args.quiet else say
    backend_options = {"report": say if not args.quiet else (lambda line: None)}
    if (args.triton_url or args.triton_model) and args.backend != "triton":
        raise EdgeError("--triton-url and --triton-model choose the server and model of --backend triton",
                        fix="add --backend triton, or leave them out", where="--triton-url")
    if args.triton_url:
        backend_options["triton_url"] = args.triton_url
    if args.triton_model:
        backend_options["triton_model"] = args.triton_model
    if args.precision:
        backend_options["precision"] = args.precision
    if args.calib_images:
        if not os.path.isdir(args.calib_images):
            raise EdgeError("calibration image folder not found", fix="give a folder of a few hundred frames from "
                            "the camera", where="--calib-images")
        backend_options["calib_images"] = args.calib_images
    if many:  # a TensorRT engine of a dynamic-batch model gets a profile that takes every stream at once
        backend_options["batch"] = (1, len(entries), len(entries))
    budget = cpu_budget(streams=len(entries) if many else 1, threads=args.threads)  # before the model loads
    backend_options.update(budget.backend_options())
    set_decode_threads(budget.stage_cores)  # FFmpeg's own pool would take a thread per core from inference

    one_image = not many and parse_source(source_uri).kind == "image"

    def open_model(name: Optional[str], first: bool, threads: int, backend: Optional[str] = None) -> Model:
        again = backend is not None  # a second copy (thread tuning): the backend the first chose, nothing printed
        options = dict(backend_options, report=lambda line: None) if again else backend_options
        return Model(name, backend=backend or args.backend, threads=threads,
                     config=config_overrides(args) if first else None, config_file=args.config if first else None,
                     score_threshold=args.threshold if first else None, backend_options=options,
                     report=None if again else report)

    def load(name: Optional[str], first: bool) -> Model:
        nonlocal budget
        if not first or args.then is not None or args.pipeline is not None or one_image:
            return open_model(name, first, budget.inference)  # a cascade's models share the cores; one image: no loop
        from edge.thread_tuning import default_cache, tuned_model  # noqa: PLC0415 - only for the runs that tune

        chosen: List[str] = []  # the backend the first copy chose

        def copy_with(threads: int) -> Model:
            model = open_model(name, True, threads, chosen[0] if chosen else None)
            chosen.append(str(getattr(getattr(model, "backend", None), "name", "")) or args.backend)
            return model

        model, budget = tuned_model(copy_with, budget, _model_file(name), args.backend, backend_options,
                                    default_cache())
        return model

    crop = {key: value for key, value in (("scale", args.crop_scale), ("max_objects", args.max_objects))
            if value is not None}
    with open_pipeline(args.model, load, then=args.then, pipeline=args.pipeline, gallery=args.gallery,
                       match_threshold=args.match_threshold, crop=crop) as model:
        if signals is not None:
            signals.check()
        budget = budget.for_backend(str(getattr(getattr(model, "backend", None), "name", "")))
        if not args.quiet:
            say(f"model: {model.describe()}")
            say(budget.text())
        check_outputs_for_task(args.output, model.task)  # mask images need a segmentation model
        tracker = _tracker(model, args.track)
        if tracker is not None and not args.quiet:
            say(f"tracking: {tracker!r}")
        with open_streams(entries) if many else open_source(source_uri) as source:
            sinks = open_sinks(args.output, headless=args.headless, fps=getattr(source, "fps", None),
                               overwrite=args.overwrite, segment_s=args.segment_seconds, streams=names,
                               stream_fps=[getattr(s.source, "fps", None) for s in source] if many else ())
            if not args.quiet:
                outputs = ", ".join(type(s).__name__ for s in sinks) or "none (add --output)"
                say(f"source: {source_uri}; outputs: {outputs}")
                decode = getattr(source, "decode", None)  # a video file's or RTSP stream's decode choice
                for line in decode.lines() if decode is not None else ():
                    say(line)
                for note in filter(None, (getattr(sink, "crash_note", None) for sink in sinks)):
                    say(note)
            status = StatusLine() if not args.quiet and stderr_is_terminal() else None
            progress = status.update if status is not None else None
            if many:
                trackers = {i: _tracker(model, True) for i in range(len(entries))} if args.track else None
                pipeline = StreamsPipeline(model, source, sinks, trackers=trackers, annotator=Annotator(),
                                           max_frames=args.max_frames, started_s=_STARTED_S, progress=progress,
                                           budget=budget)
                if not args.quiet:
                    say(f"streams: {', '.join(names)}; {pipeline.batch} frame(s) per inference call")
            else:
                pipeline = Pipeline(model, source, sinks, annotator=Annotator(), tracker=tracker,
                                    max_frames=args.max_frames, started_s=_STARTED_S, progress=progress,
                                    budget=budget)
            failure: Optional[EdgeError] = None
            try:
                if signals is not None:
                    signals.attach(pipeline)
                pipeline.run()
            except KeyboardInterrupt:
                pipeline.summary.interrupted = True
                if signals is not None:
                    signals.acknowledge()
            except OutputWriteError as exc:
                failure = exc
            finally:
                if signals is not None:
                    signals.attach(None)
                if pipeline.summary.interrupted or failure is not None:
                    ignore_further_interrupts()  # a second Ctrl-C must not cut the summary and the clean-up short
                if status is not None:
                    status.clear()
            if pipeline.summary.interrupted and signals is not None and signals.signum is not None:
                pipeline.summary.ended = f"stopped by {signals.name}"
            say(pipeline.summary.text(source_uri))
            hint = _nothing_found_hint(model, pipeline.summary, args.model)
            if hint:
                say(hint)
            if args.summary_json:
                write_summary(args.summary_json, pipeline.summary.to_dict(), source_uri, model.describe())
            if failure is not None:
                raise failure
            lost = getattr(source, "lost", False) and not pipeline.summary.interrupted
    if pipeline.summary.interrupted:
        return signals.exit_code if signals is not None else 130
    if lost:
        raise _source_lost(source_uri, _lost_streams(pipeline.summary) if many else pipeline.summary.ended)
    return 0


def _source_entries(args: argparse.Namespace) -> List[Tuple[str, str]]:
    """(name, URI) of every --source, then of every line of --sources (one source or none: a plain run)."""
    from edge.streams import read_sources_file, stream_entries

    entries = stream_entries(args.source or [])
    return entries + (read_sources_file(args.sources) if args.sources else [])


def _lost_streams(summary: Any) -> str:
    """What the exit-3 line of a multi-stream run says: which streams are gone for good."""
    lost = [stream for stream in summary.streams if stream.lost]
    return (f"{len(lost)} of {len(summary.streams)} streams lost for good ("
            + "; ".join(f"stream {s.index} {s.name}: {s.ended}" for s in lost) + ")")


def _source_lost(source_uri: str, reason: str) -> EdgeError:
    """The one-line error (exit 3) for a live source gone for good, after the summary."""
    from edge.sources.base import EXIT_SOURCE_LOST, SourceLost
    from edge.sources.uri import redact_url

    return SourceLost(f"{reason}; giving up (exit code {EXIT_SOURCE_LOST}, so a service manager restarts the app)",
                      fix="check the camera's cable and power or that the stream plays (ffprobe URL); "
                      "?reconnect=N sets the attempts", where=f"source {redact_url(source_uri)}")


def _nothing_found_hint(model: Any, summary: Any, model_arg: Optional[str]) -> Optional[str]:
    """Why a detector may have found nothing in any frame (None when it found something)."""
    if getattr(model, "task", None) != "detect" or summary.frames == 0 or summary.detections:
        return None
    from edge.zoo import DEFAULT_MODEL

    why = "no detections in any frame"
    if model_arg in (None, DEFAULT_MODEL):
        return (f"{why}: the default model ({DEFAULT_MODEL}) finds faces within about 2 m of the camera, "
                "filling roughly a tenth of the frame or more; for other objects or farther faces give --model "
                "a detector trained for them, or try a lower --threshold")
    return f"{why}: check that the scene holds what this model was trained on, or try a lower --threshold"


def write_summary(path: str, summary: Dict[str, Any], source: str, model: str) -> None:
    """Write the run summary as one JSON document."""
    import json

    summary = dict(summary, source=source, model=model)
    try:
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(summary, handle, indent=2)
            handle.write("\n")
    except OSError as exc:
        raise EdgeError(f"cannot write the summary ({exc.strerror})", fix="check the folder exists and is writable",
                        where=path) from None


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point. Returns the exit code: 0 done, 1 an output failed, 2 user error, 3 source lost for good,
    130 stopped by Ctrl-C (SIGINT), 143 stopped by SIGTERM."""
    args = build_parser().parse_args(argv)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    signals = Signals()
    signals.install()
    try:
        if args.list_cameras:
            return list_cameras(say)
        if args.list_backends:
            return list_backends(say)
        if args.list_models:
            return list_models(say)
        return run(args, say, signals)
    except EdgeError as exc:
        say(f"error: {exc}")
        return int(getattr(exc, "exit_code", 2))  # 1: an output failed during the run; 3: the source was lost
    except KeyboardInterrupt:
        signals.acknowledge()
        say(f"stopped by {signals.name}")
        return _stopped_before_the_run(signals.exit_code, argv is None)
    except ImportError:
        # A signal that lands inside a C extension's import (numpy's, seen on a slow emulated board) surfaces
        # as that import failing: it was the stop that was asked for, not a broken install.
        if not signals.requested:
            raise
        signals.acknowledge()
        say(f"stopped by {signals.name}")
        return _stopped_before_the_run(signals.exit_code, argv is None)
    finally:
        _discard_unwritable_stdout()


def _stopped_before_the_run(code: int, whole_process: bool) -> int:
    """A stop signal that interrupted start-up may have cut a native module's import in half (numpy, ONNX
    Runtime), and tearing the interpreter down over such a module can crash (seen: SIGSEGV on Python 3.6 with
    NumPy 1.19). No output exists before the pipeline runs, so the process ends here, streams flushed; called
    in-process (main(argv)), it returns the code."""
    if not whole_process:
        return code
    for stream in (sys.stderr, sys.stdout):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _discard_unwritable_stdout() -> None:
    """Stdout that cannot take what is buffered (a full disk, a closed pipe) must not print a traceback at exit."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass


if __name__ == "__main__":
    sys.exit(main())
