"""``edge-bench``: the standard suite on every backend that runs here, plus the CPU baselines.

    edge-bench                          # every standard model x every backend
    edge-bench --quick                  # the two shipped models, fewer samples (tests, CI)
    edge-bench --models face,resnet50 --backends onnxruntime-cpu,opencv --count 500
    edge-bench --model my.onnx --task classify --preset imagenet --resize center_crop
    edge-bench compare A/results.json B/results.json
    edge-bench selftest --models face,shufflenet   # the same configuration twice: how often compare false-alarms
    edge-bench precision --models face,digits,resnet50   # fp32 vs fp16 vs int8: speed-ups and accuracy
    edge-bench pipeline              # the camera loop on a 720p clip vs its stages timed alone

The rows of a model (its backends and the CPU baseline) are measured together: one process per row,
taking turns in short blocks, with a calibration probe timed between rounds; speed-ups are medians
of paired per-block ratios; --repeat rounds (fresh processes each) give the spread between runs that
compare judges changes against (benchmarks/SCHEMA.md says how). Writes results.json / .csv / .md /
plots to --out (default benchmarks/results/<UTC time>/) and prints the Markdown table. Exit 0 when
every requested row ran or was skipped (a backend that cannot run here); 1 when any row failed (the
results are still written; --keep-going exits 0 then); 2 for a user error (unknown model name, bad
flag, missing --model file).
"""

import argparse
import datetime
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, TextIO, Tuple

from edge.errors import EdgeError
from edge.flags import program_name

from . import help_text

DEFAULT_OUT = Path("benchmarks") / "results"
QUICK = {"count": 50, "warmup": 5, "warmup_s": 1.0, "pipeline_frames": 30, "repeat": 1, "remeasure": 0}
DEFAULT_COUNT = 50
DEFAULT_REPEAT = 2


class Progress:
    """One self-rewriting line on a terminal (one line per step otherwise): ``[####----] 3/12 digits · opencv``."""

    def __init__(self, stream: TextIO = sys.stderr, width: int = 24) -> None:
        self.stream = stream
        self.width = width
        self.tty = stream.isatty()
        self.started = time.perf_counter()

    def __call__(self, done: int, total: int, label: str) -> None:
        filled = self.width * done // max(total, 1)
        bar = "#" * filled + "-" * (self.width - filled)
        text = f"[{bar}] {done}/{total} {label} ({time.perf_counter() - self.started:.0f} s)"
        if self.tty:
            self.stream.write("\r" + text[:119].ljust(119) + ("\n" if done >= total else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {value}")
    return value


def names(text: str) -> List[str]:
    """argparse type: 'a,b, c' -> ['a', 'b', 'c']."""
    return [part.strip() for part in text.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    """The suite's flags (compare has its own parser in benchmarks.compare)."""
    from edge.flags import add_model_fact_arguments

    prog = program_name(__package__, "edge-bench")
    parser = argparse.ArgumentParser(prog=prog, description=help_text(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=f"{prog} compare A.json B.json: compare two runs; "
                                            f"{prog} selftest: the A/A false-alarm rate; "
                                            f"{prog} precision --help: fp32 vs fp16 vs int8")
    what = parser.add_argument_group("what to run")
    what.add_argument("--quick", action="store_true",
                      help=f"the two shipped models, {QUICK['count']} samples per layer (tests and CI)")
    what.add_argument("--models", type=names, metavar="A,B",
                      help="standard models: face, digits, resnet50, squeezenet, shufflenet, inception_v1, "
                           "densenet121 (default: all)")
    what.add_argument("--model", action="append", default=[], metavar="PATH",
                      help="also (or only) benchmark this ONNX file or TensorRT plan; repeatable")
    what.add_argument("--backends", type=names, metavar="A,B",
                      help="backends to run (default: every registered one + torch-cpu; those that cannot run "
                           "here become skipped rows)")
    how = parser.add_argument_group("how to measure")
    how.add_argument("--count", type=positive_int,
                     help=f"samples per latency layer and round (default {DEFAULT_COUNT}; --quick 50)")
    how.add_argument("--seconds", type=positive_float, help="time budget per layer and round instead of a count")
    how.add_argument("--repeat", type=positive_int, metavar="N",
                     help=f"rounds over the whole suite, fresh processes each; compare judges changes against "
                          f"the spread between them (default {DEFAULT_REPEAT}; --quick 1)")
    how.add_argument("--remeasure", type=int, choices=range(0, 15), metavar="{0..14}",
                     help="measure this many (model, round)s again, the most drifted first, when the machine's "
                          "speed moved while they were measured (default 2; --quick 0)")
    how.add_argument("--drift-threshold", type=positive_float, default=10.0, metavar="PCT",
                     help="flag rows during which the calibration probe moved more than this (interquartile "
                          "range over the row's window; default 10 %%)")
    how.add_argument("--warmup", type=positive_int, help="warm-up calls per layer and round (default 20, cut at 1 s)")
    how.add_argument("--threads", type=positive_int, help="CPU threads for inference (default: each runtime's)")
    how.add_argument("--frames", type=positive_int, help="camera-loop frames for the face model's pipeline FPS "
                                                         "(default 150; --quick 30)")
    how.add_argument("--seed", type=int, default=0, help="seed of the bootstrap intervals and the demo frame")
    how.add_argument("--row-timeout", type=positive_float, default=1800.0, metavar="S",
                     help="a worker running longer fails its row (default 1800 s)")
    how.add_argument("--keep-going", action="store_true",
                     help="exit 0 even when rows failed (they stay failed rows in the results); default: exit 1")
    out = parser.add_argument_group("output")
    out.add_argument("--out", type=Path, metavar="DIR", help="results folder (default benchmarks/results/<UTC time>/)")
    add_model_fact_arguments(parser, "model facts for --model files without an edge config", layout=True)
    return parser


def user_error(message: str) -> int:
    """Print one line and return the user-error exit code."""
    print(f"edge-bench: {message}", file=sys.stderr)
    return 2


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the suite (or ``compare``, ``precision``); the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["compare"]:
        from . import compare

        return compare.main(argv[1:])
    if argv[:1] == ["precision"]:
        from . import precision

        return precision.main(argv[1:])
    if argv[:1] == ["pipeline"]:
        from . import pipeline_metric

        return pipeline_metric.main(argv[1:])
    if argv[:1] == ["streams"]:
        from . import streams

        return streams.main(argv[1:])
    if argv[:1] == ["startup"]:
        from . import startup

        return startup.main(argv[1:])
    if argv[:1] == ["selftest"]:
        from . import selftest

        return selftest.main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        models, options = suite_setup(args)
    except (ValueError, EdgeError) as exc:
        return user_error(str(exc))
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out_dir = args.out or DEFAULT_OUT / stamp
    command = "edge-bench" + "".join(" " + shlex.quote(a) for a in argv)
    try:
        results = run_and_write(models, args.backends, options, out_dir, command)
    except OSError as exc:
        return user_error(f"cannot write results to {out_dir} ({exc.strerror or exc}); pick another --out")
    return failed_rows_exit(results["rows"], keep_going=args.keep_going)


def suite_setup(args: argparse.Namespace) -> Tuple[List[Any], Any]:
    """The models and SuiteOptions the parsed flags ask for; ValueError or EdgeError for a user error."""
    from edge.flags import config_overrides

    from . import suite

    models = [] if args.model and not args.models else suite.select_models(args.models, quick=args.quick)
    facts = {k: v for k, v in config_overrides(args).items() if v is not None}
    if args.config:
        from edge.config import load_config_file, merge

        facts = merge(load_config_file(Path(args.config)), facts)
    taken = {m.name for m in models}
    for path in args.model:
        spec = suite.user_model(path, facts)
        name = spec.name
        while name in taken:  # rows of a model are matched by name: keep names unique
            name += "'"
        taken.add(name)
        models.append(suite.ModelSpec(name, spec.path, spec.config, spec.note, standard=False))
    quick = QUICK if args.quick else {}
    options = suite.SuiteOptions(
        count=args.count or quick.get("count", DEFAULT_COUNT), seconds=args.seconds,
        warmup=args.warmup or quick.get("warmup", 20), warmup_s=quick.get("warmup_s", 1.0), threads=args.threads,
        seed=args.seed, pipeline_frames=args.frames or quick.get("pipeline_frames", 150),
        row_timeout_s=args.row_timeout, repeat=args.repeat or quick.get("repeat", DEFAULT_REPEAT),
        remeasure=quick.get("remeasure", 2) if args.remeasure is None else args.remeasure,
        drift_threshold=args.drift_threshold / 100)
    return models, options


def run_and_write(models: Sequence[Any], backends: Optional[Sequence[str]], options: Any, out_dir: Path,
                  command: str) -> Dict[str, Any]:
    """Run the suite, write its files to ``out_dir`` (OSError when it cannot) and print the Markdown table."""
    from . import report, suite
    from .selftest import load_record

    log_lines: List[str] = []
    results = suite.run_suite(models, backends, options, command=command, progress=Progress(),
                              log=log_lines.append)
    results["selftest"] = load_record(results["environment"])
    written = report.write_all(results, out_dir)
    (Path(out_dir) / "workers.log").write_text("\n".join(log_lines) + "\n", encoding="utf-8")
    print(report.markdown(results))
    print(f"wrote {', '.join(str(p) for p in written)} (+ workers.log)", file=sys.stderr)
    return results


def failed_rows_exit(rows: Sequence[Dict[str, Any]], keep_going: bool = False) -> int:
    """0 when no row failed (skipped rows are not failures) or ``keep_going``; else 1, with one line naming them."""
    failed = [f"{row.get('model')}·{row.get('backend')}" for row in rows if row.get("status") == "failed"]
    if not failed:
        return 0
    shown = ", ".join(failed[:5]) + (f" and {len(failed) - 5} more" if len(failed) > 5 else "")
    tail = ("exit 0 as --keep-going asks" if keep_going
            else "exit 1. Fix: each row's reason in the table says what to change; --keep-going exits 0 anyway")
    print(f"edge-bench: {len(failed)} of {len(rows)} rows failed ({shown}); {tail}", file=sys.stderr)
    return 0 if keep_going else 1


if __name__ == "__main__":
    sys.exit(main())
