"""``edge-bench selftest``: the A/A test. The same configuration runs twice (``A/`` and ``B/`` under --out), then
``compare`` judges B against A: every row it calls changed is a false alarm, since nothing changed.

    edge-bench selftest                       # the default suite, twice (about twice its time)
    edge-bench selftest --models face,digits --count 30

The result (rows called changed / rows compared) is written to ``selftest.json`` in --out and kept as this
machine's record in edge's cache folder (``~/.cache/edge/benchmarks/selftest.json``, or under EDGE_CACHE_DIR); every
later report and comparison prints it,
so a reader knows how much a difference on this machine is worth. Takes the suite's flags.
"""

import datetime
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from edge.errors import EdgeError


def default_record() -> Path:
    """This machine's self-test record: in edge's cache folder, wherever the suite is run from."""
    from edge.settings import cache_dir

    return cache_dir() / "benchmarks" / "selftest.json"


def summarize_comparison(rows: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Counts of a comparison: compared rows, rows called changed, and which."""
    compared = [row for row in rows if row.get("status") == "compared"]
    changed = [f"{row['model']}·{row['backend']} {row['change']} ({row['ratio']:.3f}x)" for row in compared
               if row.get("change")]
    return {"compared": len(compared), "changed": len(changed), "changed_rows": changed}


def record_line(record: Optional[Dict[str, Any]]) -> str:
    """One line for every report: the A/A false-alarm rate on record, or how to get one."""
    if not record:
        return ("A/A self-test: none on record for this machine, so the false-alarm rate of compare here is not "
                "known; run `python -m benchmarks selftest`")
    compared, changed = record.get("compared", 0), record.get("changed", 0)
    rate = f"{100 * changed / compared:.0f} %" if compared else "n/a"
    return (f"A/A self-test ({record.get('created_utc', '?')}, `{record.get('command', '?')}`): compare called "
            f"{changed} of {compared} unchanged rows changed (false-alarm rate {rate})")


def load_record(environment: Dict[str, Any], path: Optional[Path] = None) -> Optional[Dict[str, Any]]:
    """The self-test on record for this machine (same CPU model and core count), or None."""
    path = default_record() if path is None else path
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("cpu") != environment.get("cpu") or \
            record.get("cores") != environment.get("cores"):
        return None
    keys = ("created_utc", "cpu", "cores", "changed", "compared", "command")
    return {key: record.get(key) for key in keys}


def run(args: Any, argv: List[str], out: Path) -> Dict[str, Any]:
    """Both runs and their comparison: the self-test's record (also written to ``out/selftest.json``)."""
    from .__main__ import run_and_write, suite_setup
    from .compare import compare_results, format_comparison

    models, options = suite_setup(args)
    started = time.perf_counter()
    command = "edge-bench selftest" + "".join(" " + shlex.quote(a) for a in argv)
    runs = []
    for name in ("A", "B"):
        print(f"selftest: run {name} of 2", file=sys.stderr)
        runs.append(run_and_write(models, args.backends, options, out / name, command))
    rows = compare_results(runs[0], runs[1])
    print(format_comparison(rows))
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    env = runs[0]["environment"]
    record = dict(summarize_comparison(rows), created_utc=created, cpu=env.get("cpu"), cores=env.get("cores"),
                  command=command, wall_s=round(time.perf_counter() - started, 1))
    (out / "selftest.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


def main(argv: Optional[Sequence[str]] = None, record_path: Optional[Path] = None) -> int:
    """Run the self-test; 0 when it ran (whatever it found), 2 for a user error."""
    from . import help_text
    from .__main__ import DEFAULT_OUT, build_parser, user_error

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    parser.prog, parser.description, parser.epilog = "edge-bench selftest", help_text(__doc__), None
    args = parser.parse_args(argv)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = Path(args.out or DEFAULT_OUT / f"selftest-{stamp}")
    try:
        record = run(args, argv, out)
    except (ValueError, EdgeError) as exc:
        return user_error(str(exc))
    except OSError as exc:
        return user_error(f"cannot write the self-test to {out} ({exc.strerror or exc}); pick another --out")
    record_path = default_record() if record_path is None else record_path
    try:
        record_path.parent.mkdir(parents=True, exist_ok=True)
        record_path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        print(f"edge-bench selftest: could not keep the record in {record_path} ({exc})", file=sys.stderr)
    print(record_line(record))
    if record["changed_rows"]:
        print("false alarms: " + "; ".join(record["changed_rows"]))
    return 0
