"""Compare two edgebench/1 runs row by row: ``edge-bench compare A.json B.json [--fail-on-regression]``.

Rows are matched by (model, backend). For each pair the ratio B/A of the inference p50 is given with a range
derived from the two runs' p50 intervals, no resampling needed (the raw samples are optional in the results):

    ratio = p50_B / p50_A,   range = [lo_B / hi_A, hi_B / lo_A]

This is the set of ratios consistent with both intervals, not itself a 95% interval: it is wider (more
cautious) than a bootstrap of the ratio would be. Its low end exceeds 1 exactly when B's interval lies
wholly above A's, so "the range excludes 1" and "the intervals do not overlap" are the same test, which is
what marks a change significant: a REGRESSION when B is slower, an improvement when faster.

The intervals only know the noise *within* a run. Two back-to-back runs on a shared machine also
differ *between* runs (clock and cache state, placement: about 1-2 % on this project's CI VM, whose
intervals are ±0.1-0.3 %), so a change must also exceed a noise floor (``--min-change``, default
3 %) to be called a regression or an improvement; smaller non-overlaps are reported as "within the
noise floor".
"""

import argparse
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from edge.config import loads_json
from edge.flags import program_name

from .report import SCHEMA_ID, fmt_ms, validate
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


def _pair(key: Key, a_row: Dict[str, Any], b_row: Dict[str, Any], min_change: float) -> Dict[str, Any]:
    """One compared row: ratio, range, verdict."""
    out: Dict[str, Any] = {"model": key[0], "backend": key[1], "status": "compared", "ratio": None,
                           "ratio_range": None, "change": None, "significant": False, "note": "",
                           "a_p50": None, "a_ci": None, "b_p50": None, "b_ci": None}
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
    if direction is not None and abs(out["ratio"] - 1.0) < min_change:
        out["note"] = f"intervals apart, but within the {100 * min_change:g} % noise floor"
        direction = None
    out["change"] = {"slower": "regression", "faster": "improvement"}.get(direction or "")
    out["significant"] = direction is not None
    unstable = [name for row, name in ((a_row, "A"), (b_row, "B")) if row.get("stable") is False]
    if unstable:
        note = f"unstable in {' and '.join(unstable)} (clocks changed or throttled)"
        out["note"] = f"{out['note']}; {note}" if out["note"] else note
    return out


def compare_results(a: Dict[str, Any], b: Dict[str, Any],
                    min_change: float = DEFAULT_MIN_CHANGE) -> List[Dict[str, Any]]:
    """Rows of A in order, then rows only in B, each with A's and B's inference p50 [CI], ratio B/A and verdict.

    ``status`` is "compared", "not comparable" (failed, skipped or unmeasured in a run), "only in A" or
    "only in B"; ``change`` is "regression", "improvement" or None; ``significant`` is True when the two p50
    intervals do not overlap. Raises UserError when a run repeats a (model, backend).
    """
    a_rows, b_rows = _index(a, "A"), _index(b, "B")
    out = []
    for key, a_row in a_rows.items():
        if key in b_rows:
            out.append(_pair(key, a_row, b_rows[key], min_change))
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
    """A Markdown table, one line per (model, backend); significant slow-downs say REGRESSION."""
    lines = ["| model | backend | A inference p50 ms [CI] | B inference p50 ms [CI] | B/A [range] | verdict |",
             "|---|---|---:|---:|---:|---|"]
    for row in rows:
        ratio = "—"
        if row.get("ratio") is not None:
            ratio = f"{row['ratio']:.3f}"
            if row.get("ratio_range"):
                ratio += f" [{row['ratio_range'][0]:.3f}, {row['ratio_range'][1]:.3f}]"
        cells = [row["model"], row["backend"], _p50(row.get("a_p50"), row.get("a_ci")),
                 _p50(row.get("b_p50"), row.get("b_ci")), ratio, _verdict(row)]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines)


def load_results(path: Path) -> Dict[str, Any]:
    """An edgebench/1 results file, or UserError saying what is wrong and how to fix it."""
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
    if not isinstance(results, dict) or results.get("schema") != SCHEMA_ID:
        found = results.get("schema") if isinstance(results, dict) else type(results).__name__
        raise UserError(f"{path}: schema is {found!r}, expected {SCHEMA_ID!r}. Fix: re-run edge-bench "
                        "with this version of edge to get an edgebench/1 file.")
    errors = validate(results)
    if errors:
        raise UserError(f"{path}: not valid {SCHEMA_ID}: {errors[0]} ({len(errors)} problems). Fix: re-run "
                        "edge-bench; do not edit results by hand.")
    return results


def main(argv: Optional[List[str]] = None) -> int:
    """The ``compare`` command: print the table; 0, 1 on a significant regression with --fail-on-regression, 2 on
    bad inputs."""
    parser = argparse.ArgumentParser(prog=f"{program_name(__package__, 'edge-bench')} compare",
                                     description="Compare two edgebench/1 runs: B against A, by (model, backend).")
    parser.add_argument("a", type=Path, help="the reference run's results.json")
    parser.add_argument("b", type=Path, help="the new run's results.json")
    parser.add_argument("--fail-on-regression", action="store_true",
                        help="exit 1 when any row is significantly slower in B (p50 intervals apart, beyond the floor)")
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
    print(format_comparison(rows))
    regressions = sum(r["change"] == "regression" for r in rows)
    improvements = sum(r["change"] == "improvement" for r in rows)
    compared = sum(r["status"] == "compared" for r in rows)
    overlapping = sum(bool(r.get("overlap")) for r in rows if r["status"] == "compared")
    floor = compared - overlapping - regressions - improvements
    print(f"\n{compared} compared: {overlapping} agree within their intervals, {floor} "
          f"more within the {100 * args.min_change:g} % noise floor; {regressions} significant regressions, "
          f"{improvements} significant improvements; {len(rows) - compared} not compared.")
    return 1 if args.fail_on_regression and regressions else 0


if __name__ == "__main__":
    sys.exit(main())
