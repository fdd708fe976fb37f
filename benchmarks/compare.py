"""Compare two edgebench runs row by row: ``edge-bench compare A.json B.json [--fail-on-regression]``.

Rows are matched by (model, backend). For each pair the ratio B/A of the inference p50 is given with a range
derived from the two runs' p50 intervals, no resampling needed (the raw samples are optional in the results):

    ratio = p50_B / p50_A,   range = [lo_B / hi_A, hi_B / lo_A]

This is the set of ratios consistent with both intervals, not itself a 95% interval: it is wider (more
cautious) than a bootstrap of the ratio would be. Its low end exceeds 1 exactly when B's interval lies
wholly above A's, so "the range excludes 1" and "the intervals do not overlap" are the same test.

The intervals only know the noise *within* a run. Two runs of the same commit also differ *between*
runs: the machine's speed, the processes' placement and memory layout. So a change is called (a
REGRESSION when B is slower, an improvement when faster) only when the intervals are apart AND the
change exceeds the noise between runs, the larger of the fixed floor ``--min-change`` (default 3 %)
and the spread between the rounds each run measured (``--repeat``: a row's per-round p50s, max - min
over their median; the larger of A's and B's) AND it still does at the same machine speed: divided by
how much slower the machine was for B's row than for A's (the calibration probe's median over the
rows' windows). A slower machine makes both the probe and the row slower; slower code only the row.

A row whose window the drift flag caught in either run is not judged ("unsure"): the machine moved
while it was measured. Rows not compared in both runs (skipped, failed, missing) collapse to one line
per reason under the table. Every comparison ends with the A/A self-test on record (``edge-bench
selftest``): how many unchanged rows compare called changed on this machine.
"""

import argparse
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from edge.config import loads_json
from edge.flags import program_name

from .report import READABLE, SCHEMA_ID, fmt_ms, validate
from .stats import significant_change

Key = Tuple[str, str]
ENV_KEYS = ("cpu", "cores", "threads", "onnxruntime", "tensorrt", "cuda", "torch", "numpy")
JETSON_KEYS = ("board", "jetpack", "l4t", "nvpmodel", "jetson_clocks")


class UserError(Exception):
    """A problem with the command's inputs: reported in one line, exit status 2."""


def _index(results: Dict[str, Any], name: str) -> Dict[Key, Dict[str, Any]]:
    rows: Dict[Key, Dict[str, Any]] = {}
    for row in results.get("rows", []):
        key = (row["model"], row["backend"])
        if key in rows:
            raise UserError(f"{name} has two rows for model {key[0]!r} on backend {key[1]!r}. Fix: give each "
                            "configuration its own backend name (e.g. tensorrt-fp16, tensorrt-int8).")
        rows[key] = row
    return rows


def _inference(row: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    return (row.get("latency_ms") or {}).get("inference") if row.get("status") == "ok" else None


def _why_not(row: Dict[str, Any], name: str) -> str:
    if row.get("status") != "ok":
        return f"{row.get('status')} in {name}: {row.get('reason') or 'no reason given'}"
    return f"no inference latency in {name}"


DEFAULT_MIN_CHANGE = 0.03


def noise_between_runs(a_row: Dict[str, Any], b_row: Dict[str, Any], min_change: float) -> Tuple[float, str]:
    """The relative change two runs of one commit can show for this row, and what sets it: the fixed floor or
    the spread between the rounds each run measured, whichever is larger."""
    spreads = [row.get("round_spread_pct") for row in (a_row, b_row) if row.get("round_spread_pct") is not None]
    if spreads and max(spreads) / 100 > min_change:
        return max(spreads) / 100, f"the {max(spreads):.1f} % spread between rounds"
    return min_change, f"the {100 * min_change:g} % floor"


def machine_shift(a_row: Dict[str, Any], b_row: Dict[str, Any], a: Dict[str, Any],
                  b: Dict[str, Any]) -> Optional[float]:
    """How much slower the machine was for B's row than for A's: the calibration probe's median over the rows'
    windows (the runs' medians where a row has none), B / A; None without a probe in both runs."""
    probes = [((row.get("drift") or {}).get("probe_p50_ms") or (run.get("machine_speed") or {}).get("probe_p50_ms"))
              for row, run in ((a_row, a), (b_row, b))]
    return probes[1] / probes[0] if all(probes) else None


def _pair(key: Key, a_row: Dict[str, Any], b_row: Dict[str, Any], min_change: float,
          runs: Tuple[Dict[str, Any], Dict[str, Any]] = ({}, {})) -> Dict[str, Any]:
    """One compared row: ratio, range, verdict."""
    out: Dict[str, Any] = {"model": key[0], "backend": key[1], "status": "compared", "ratio": None,
                           "ratio_range": None, "change": None, "significant": False, "note": "",
                           "a_p50": None, "a_ci": None, "b_p50": None, "b_ci": None, "unsure": False}
    a_stats, b_stats = _inference(a_row), _inference(b_row)
    if a_stats:
        out.update(a_p50=a_stats["p50"], a_ci=list(a_stats["p50_ci95"]))
    if b_stats:
        out.update(b_p50=b_stats["p50"], b_ci=list(b_stats["p50_ci95"]))
    if not (a_stats and b_stats):
        why = [_why_not(row, name) for row, name, stats in ((a_row, "A", a_stats), (b_row, "B", b_stats))
               if not stats]
        out.update(status="not comparable", note="; ".join(why))
        return out
    (a_lo, a_hi), (b_lo, b_hi) = out["a_ci"], out["b_ci"]
    out["ratio"] = b_stats["p50"] / a_stats["p50"]
    out["ratio_range"] = [b_lo / a_hi, b_hi / a_lo] if a_lo > 0 and a_hi > 0 else None
    direction = significant_change(a_stats, b_stats)
    out["overlap"] = direction is None
    noise, why = noise_between_runs(a_row, b_row, min_change)
    shift = machine_shift(a_row, b_row, runs[0], runs[1])
    out.update(noise=noise, machine_shift=shift)
    notes = []
    if direction is not None and abs(out["ratio"] - 1.0) < noise:
        notes.append(f"intervals apart, but within {why}")
        direction = None
    corrected = out["ratio"] / shift if shift else out["ratio"]
    if direction is not None and (abs(corrected - 1.0) < noise or (corrected - 1.0) * (out["ratio"] - 1.0) < 0):
        notes.append(f"intervals apart, but the machine was {100 * (shift - 1):+.1f} % slower in B (calibration "
                     f"probe): {corrected:.3f}x at the same speed, within {why}")
        direction = None
    drifted = [name for row, name in ((a_row, "A"), (b_row, "B")) if (row.get("drift") or {}).get("flagged")]
    if drifted and direction is not None:
        notes.append(f"unsure: the machine's speed moved while it was measured in {' and '.join(drifted)}")
        out["unsure"] = True
        direction = None
    out["change"] = {"slower": "regression", "faster": "improvement"}.get(direction or "")
    out["significant"] = direction is not None
    unstable = [name for row, name in ((a_row, "A"), (b_row, "B")) if row.get("stable") is False or row.get("unstable")]
    if unstable:
        notes.append(f"unstable in {' and '.join(unstable)} (layers contradict, clocks changed or throttled)")
    out["note"] = "; ".join(notes)
    return out


def compare_results(a: Dict[str, Any], b: Dict[str, Any],
                    min_change: float = DEFAULT_MIN_CHANGE) -> List[Dict[str, Any]]:
    """Rows of A in order, then rows only in B, each with A's and B's inference p50 [CI], ratio B/A and verdict.

    ``status`` is "compared", "not comparable" (failed, skipped or unmeasured in a run), "only in A" or
    "only in B"; ``change`` is "regression", "improvement" or None; ``significant`` is True when the two p50
    intervals do not overlap and the change exceeds the noise between runs (``noise``); ``unsure`` when it
    would be called but the drift flag caught the row. Raises UserError when a run repeats a (model, backend).
    """
    a_rows, b_rows = _index(a, "A"), _index(b, "B")
    out = []
    for key, a_row in a_rows.items():
        if key in b_rows:
            out.append(_pair(key, a_row, b_rows[key], min_change, (a, b)))
        else:
            out.append({"model": key[0], "backend": key[1], "status": "only in A", "change": None,
                        "significant": False, "note": "missing from B"})
    for key in b_rows:
        if key not in a_rows:
            out.append({"model": key[0], "backend": key[1], "status": "only in B", "change": None,
                        "significant": False, "note": "missing from A"})
    return out


def environment_differences(a: Dict[str, Any], b: Dict[str, Any]) -> List[str]:
    """The environment fields that differ between the runs, one line each (numbers may not be comparable)."""
    a_env, b_env = a.get("environment", {}), b.get("environment", {})
    pairs = [(key, a_env.get(key), b_env.get(key)) for key in ENV_KEYS]
    a_jet, b_jet = a_env.get("jetson") or {}, b_env.get("jetson") or {}
    pairs += [(f"jetson.{key}", a_jet.get(key), b_jet.get(key)) for key in JETSON_KEYS]
    return [f"{key}: {x!r} in A, {y!r} in B" for key, x, y in pairs if x != y]


def _p50(value: Optional[float], ci: Optional[List[float]]) -> str:
    return "—" if value is None or ci is None else f"{fmt_ms(value)} [{fmt_ms(ci[0])}, {fmt_ms(ci[1])}]"


def _verdict(row: Dict[str, Any]) -> str:
    if row["status"] != "compared":
        return row["status"] + (f": {row['note']}" if row.get("note") else "")
    verdict = {"regression": "**REGRESSION**", "improvement": "improvement"}.get(row["change"] or "",
                                                                                "no significant change")
    return verdict + (f" ({row['note']})" if row.get("note") else "")


def format_comparison(rows: List[Dict[str, Any]]) -> str:
    """A Markdown table, one line per compared (model, backend), significant slow-downs say REGRESSION; then the
    rows not compared, one line per status and reason."""
    lines = ["| model | backend | A inference p50 ms [CI] | B inference p50 ms [CI] | B/A [range] | verdict |",
             "|---|---|---:|---:|---:|---|"]
    for row in rows:
        if row["status"] != "compared":
            continue
        ratio = "—"
        if row.get("ratio") is not None:
            ratio = f"{row['ratio']:.3f}"
            if row.get("ratio_range"):
                ratio += f" [{row['ratio_range'][0]:.3f}, {row['ratio_range'][1]:.3f}]"
        cells = [row["model"], row["backend"], _p50(row.get("a_p50"), row.get("a_ci")),
                 _p50(row.get("b_p50"), row.get("b_ci")), ratio, _verdict(row)]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    lines += collapsed_lines(rows)
    return "\n".join(lines)


def collapsed_lines(rows: List[Dict[str, Any]]) -> List[str]:
    """The rows not compared, one line per (status, reason): which backends and how many rows."""
    groups: Dict[Tuple[str, str], List[Dict[str, Any]]] = {}
    for row in rows:
        if row["status"] != "compared":
            groups.setdefault((row["status"], row.get("note") or ""), []).append(row)
    if not groups:
        return []
    lines = ["", "Not compared, one line per reason:"]
    for (status, note), group in groups.items():
        backends = ", ".join(dict.fromkeys(r["backend"] for r in group))
        models = list(dict.fromkeys(r["model"] for r in group))
        which = ", ".join(models) if len(models) <= 3 else f"{len(models)} models"
        lines.append(f"- {status} ({len(group)} rows: {backends} · {which})" + (f": {note}" if note else ""))
    return lines


def load_results(path: Path) -> Dict[str, Any]:
    """An edgebench/2 (or /1) results file, or UserError saying what is wrong and how to fix it."""
    fix = "Fix: pass the results.json that edge-bench wrote."
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file. {fix}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read it ({error}). {fix}") from None
    try:
        results = loads_json(text)  # deep nesting is a ValueError here, not a RecursionError
    except ValueError as error:
        raise UserError(f"{path}: not JSON ({error}). {fix}") from None
    if not isinstance(results, dict) or results.get("schema") not in READABLE:
        found = results.get("schema") if isinstance(results, dict) else type(results).__name__
        raise UserError(f"{path}: schema is {found!r}, expected one of {', '.join(READABLE)}. Fix: re-run "
                        f"edge-bench with this version of edge to get an {SCHEMA_ID} file.")
    errors = validate(results)
    if errors:
        raise UserError(f"{path}: not valid {SCHEMA_ID}: {errors[0]} ({len(errors)} problems). Fix: re-run "
                        "edge-bench; do not edit results by hand.")
    return results


def summary_line(rows: List[Dict[str, Any]], min_change: float) -> str:
    """The closing count: compared, agreeing, within the noise, unsure, called changed, not compared."""
    compared = [r for r in rows if r["status"] == "compared"]
    regressions = sum(r["change"] == "regression" for r in compared)
    improvements = sum(r["change"] == "improvement" for r in compared)
    overlapping = sum(bool(r.get("overlap")) for r in compared)
    unsure = sum(bool(r.get("unsure")) for r in compared)
    noise = len(compared) - overlapping - regressions - improvements - unsure
    return (f"{len(compared)} compared: {overlapping} agree within their intervals, {noise} more within the noise "
            f"between runs (at least the {100 * min_change:g} % floor), {unsure} unsure (machine speed moved); "
            f"{regressions} significant regressions, {improvements} significant improvements; "
            f"{len(rows) - len(compared)} not compared.")


def main(argv: Optional[List[str]] = None) -> int:
    """The ``compare`` command: print the table; 0, 1 on a significant regression with --fail-on-regression, 2 on
    bad inputs."""
    parser = argparse.ArgumentParser(prog=f"{program_name(__package__, 'edge-bench')} compare",
                                     description="Compare two edgebench runs: B against A, by (model, backend).")
    parser.add_argument("a", type=Path, help="the reference run's results.json")
    parser.add_argument("b", type=Path, help="the new run's results.json")
    parser.add_argument("--fail-on-regression", action="store_true",
                        help="exit 1 when any row is significantly slower in B (p50 intervals apart, beyond the "
                             "noise between runs)")
    parser.add_argument("--min-change", type=float, default=DEFAULT_MIN_CHANGE, metavar="FRACTION",
                        help=f"noise floor between runs (default {DEFAULT_MIN_CHANGE}: 3 %%)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # argparse has printed its usage line
        return int(stop.code or 0)
    try:
        a, b = load_results(args.a), load_results(args.b)
        rows = compare_results(a, b, args.min_change)
    except UserError as error:
        print(f"benchmarks compare: {error}", file=sys.stderr)
        return 2
    for line in environment_differences(a, b):
        print(f"note: environments differ, {line}")
    for name, run in (("A", a), ("B", b)):
        if run.get("schema") != SCHEMA_ID:
            print(f"note: {name} is {run.get('schema')}: rows measured one after another, no rounds or calibration "
                  "probe; its changes are judged against the fixed floor")
    print(format_comparison(rows))
    print("\n" + summary_line(rows, args.min_change))
    from .selftest import record_line

    print(record_line(b.get("selftest") or a.get("selftest")))
    regressions = sum(r["change"] == "regression" for r in rows)
    return 1 if args.fail_on_regression and regressions else 0


if __name__ == "__main__":
    sys.exit(main())
