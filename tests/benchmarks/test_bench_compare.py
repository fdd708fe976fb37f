"""benchmarks.compare: matching rows, ratios and verdicts, the table, and the command's exit statuses.

(Named test_bench_compare.py: tests/export/test_compare.py already has the basename.)
"""

import copy
import json
from pathlib import Path
from typing import Any, Dict

import pytest
from test_schema import example_results

from benchmarks.compare import compare_results, environment_differences, format_comparison, main

TRT = 1  # the example's TensorRT row


def _scaled(results: Dict[str, Any], row: int, factor: float) -> Dict[str, Any]:
    """A copy whose row's inference statistics (and interval) are ``factor`` times the original."""
    out = copy.deepcopy(results)
    stats = out["rows"][row]["latency_ms"]["inference"]
    for key in ("min", "p5", "p50", "p90", "p95", "p99", "max", "mean", "std"):
        stats[key] *= factor
    stats["p50_ci95"] = [v * factor for v in stats["p50_ci95"]]
    return out


def _by_backend(rows):
    return {row["backend"]: row for row in rows}


# (case, factor on the TensorRT row, change, significant)
SCALINGS = [
    ("identical", 1.0, None, False),
    ("0.1% slower, inside the interval", 1.001, None, False),
    ("50% slower", 1.5, "regression", True),
    ("20% faster", 0.8, "improvement", True),
]


@pytest.mark.parametrize("case, factor, change, significant", SCALINGS, ids=[s[0] for s in SCALINGS])
def test_verdicts(case, factor, change, significant):
    a = example_results()
    row = _by_backend(compare_results(a, _scaled(a, TRT, factor)))["tensorrt"]
    assert (row["status"], row["change"], row["significant"]) == ("compared", change, significant)
    assert row["ratio"] == pytest.approx(factor)
    lo, hi = row["ratio_range"]
    assert lo <= row["ratio"] <= hi
    assert (lo > 1 or hi < 1) is significant  # the range excludes 1 exactly when the intervals do not overlap


def test_ratio_range_is_the_ratio_of_interval_ends():
    a = example_results()
    row = _by_backend(compare_results(a, _scaled(a, TRT, 2.0)))["tensorrt"]
    (a_lo, a_hi), (b_lo, b_hi) = row["a_ci"], row["b_ci"]
    assert row["ratio_range"] == pytest.approx([b_lo / a_hi, b_hi / a_lo])
    assert row["ratio_range"] == pytest.approx([2 * 4.167 / 4.192, 2 * 4.192 / 4.167])


def test_rows_in_one_run_only_and_failed_rows():
    a, b = example_results(), example_results()
    del b["rows"][0]  # the baseline only in A
    b["rows"].append(dict(b["rows"][0], backend="tensorrt-int8"))  # a new row only in B
    rows = _by_backend(compare_results(a, b))
    assert [r["status"] for r in compare_results(a, b)] == ["only in A", "compared", "not comparable", "only in B"]
    assert rows["onnxruntime-tensorrt"]["note"].startswith("failed in A: TensorrtExecutionProvider")
    assert "failed in B" in rows["onnxruntime-tensorrt"]["note"]
    text = format_comparison(compare_results(a, b))
    assert "| onnxruntime-cpu |" not in text  # rows not compared leave the table for one line per reason
    assert "- only in A (1 rows: onnxruntime-cpu · resnet50): missing from B" in text
    assert "- only in B (1 rows: tensorrt-int8 · resnet50): missing from A" in text


def test_rows_not_compared_collapse_to_one_line_per_reason():
    a, b = example_results(), example_results()
    for run in (a, b):
        for model in ("face", "digits", "squeezenet", "shufflenet"):
            run["rows"].append({"model": model, "backend": "tensorrt", "status": "skipped",
                                "reason": "tensorrt is not installed"})
    text = format_comparison(compare_results(a, b))
    skipped = [line for line in text.splitlines() if "tensorrt is not installed" in line]
    assert skipped == ["- not comparable (4 rows: tensorrt · 4 models): skipped in A: tensorrt is not installed; "
                       "skipped in B: tensorrt is not installed"]


def test_unstable_rows_are_noted():
    a = example_results()
    b = _scaled(a, TRT, 1.5)
    b["rows"][TRT]["stable"] = False
    row = _by_backend(compare_results(a, b))["tensorrt"]
    assert row["note"] == "unstable in B (layers contradict, clocks changed or throttled)"
    assert "**REGRESSION** (unstable in B" in format_comparison([row])


def test_a_change_within_the_spread_between_rounds_is_not_called():
    a = example_results()
    b = _scaled(a, TRT, 1.08)  # 8 % slower, intervals apart
    assert _by_backend(compare_results(a, b))["tensorrt"]["change"] == "regression"
    b["rows"][TRT]["round_spread_pct"] = 12.0  # but B's rounds differed by 12 % among themselves
    row = _by_backend(compare_results(a, b))["tensorrt"]
    assert row["change"] is None and "within the 12.0 % spread between rounds" in row["note"]
    assert row["noise"] == pytest.approx(0.12)


def test_a_slower_machine_is_not_a_regression_but_slower_code_is():
    a = example_results()
    b = _scaled(a, TRT, 1.10)
    for run, probe in ((a, 2.0), (b, 2.2)):  # the calibration probe: the machine 10 % slower in B
        run["rows"][TRT]["drift"] = {"probe_p50_ms": probe, "moved_pct": 1.0, "flagged": False}
    row = _by_backend(compare_results(a, b))["tensorrt"]
    assert row["change"] is None and row["machine_shift"] == pytest.approx(1.1)
    assert "the machine was +10.0 % slower in B" in row["note"] and "1.000x at the same speed" in row["note"]
    b["rows"][TRT]["drift"]["probe_p50_ms"] = 2.0  # same machine speed: the 10 % is the code's
    assert _by_backend(compare_results(a, b))["tensorrt"]["change"] == "regression"


def test_a_row_the_drift_flag_caught_is_unsure_not_called():
    a = example_results()
    b = _scaled(a, TRT, 1.5)
    b["rows"][TRT]["drift"] = {"probe_p50_ms": 2.0, "moved_pct": 40.0, "flagged": True}
    row = _by_backend(compare_results(a, b))["tensorrt"]
    assert row["change"] is None and row["unsure"] and "machine's speed moved while it was measured in B" in row["note"]


def test_format_marks_regressions_only():
    a = example_results()
    lines = format_comparison(compare_results(a, _scaled(a, TRT, 1.5))).splitlines()
    marked = [line for line in lines if "REGRESSION" in line]
    assert len(marked) == 1 and marked[0].startswith("| resnet50 | tensorrt |")
    assert "4.18 [4.17, 4.19]" in marked[0] and "6.27 [6.25, 6.29]" in marked[0] and "1.500 [" in marked[0]
    assert "no significant change" in next(line for line in lines if "| onnxruntime-cpu |" in line)


def test_duplicate_rows_are_a_user_error(tmp_path, capsys):
    b = example_results()
    b["rows"].append(copy.deepcopy(b["rows"][TRT]))
    code = main([str(_write(tmp_path / "a.json", example_results())), str(_write(tmp_path / "b.json", b))])
    assert code == 2
    assert "B has two rows for model 'resnet50' on backend 'tensorrt'. Fix:" in capsys.readouterr().err


def test_environment_differences():
    a, b = example_results(), example_results()
    b["environment"]["jetson"]["nvpmodel"] = "15W"
    b["environment"]["tensorrt"] = "10.3.0"
    assert environment_differences(a, b) == ["tensorrt: '8.5.2' in A, '10.3.0' in B",
                                             "jetson.nvpmodel: 'MAXN' in A, '15W' in B"]
    assert environment_differences(a, a) == []


def _write(path: Path, content: Any) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


# (case, factor on the TensorRT row, extra arguments, exit status, stdout contains)
RUNS = [
    ("identical", 1.0, [], 0, "0 significant regressions"),
    ("identical, failing on regressions", 1.0, ["--fail-on-regression"], 0, "0 significant regressions"),
    ("slower, report only", 1.5, [], 0, "REGRESSION"),
    ("slower, failing on regressions", 1.5, ["--fail-on-regression"], 1, "1 significant regressions"),
    ("faster, failing on regressions", 0.8, ["--fail-on-regression"], 0, "1 significant improvements"),
]


@pytest.mark.parametrize("case, factor, extra, code, expected", RUNS, ids=[r[0] for r in RUNS])
def test_main_exit_status(tmp_path, capsys, case, factor, extra, code, expected):
    a = example_results()
    paths = [str(_write(tmp_path / "a.json", a)), str(_write(tmp_path / "b.json", _scaled(a, TRT, factor)))]
    assert main(paths + extra) == code
    assert expected in capsys.readouterr().out


# (case, content of B (None: no file), stderr contains)
BAD_INPUTS = [
    ("missing file", None, "b.json: no such file. Fix: pass the results.json"),
    ("not JSON", "{rows: [", "b.json: not JSON (Expecting property name"),
    ("a list", "[1, 2]", "b.json: schema is 'list', expected one of edgebench/2, edgebench/1. Fix: re-run"),
    ("another schema", json.dumps({"schema": "other/2"}), "schema is 'other/2', expected one of edgebench/2"),
    ("core.py's format", json.dumps({"environment": {}, "overhead": []}), "schema is None, expected one of"),
    ("invalid edgebench/1", json.dumps({"schema": "edgebench/1"}), "not valid edgebench/2: results: missing required"),
]


@pytest.mark.parametrize("case, content, message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_main_bad_inputs_exit_2_with_one_line(tmp_path, capsys, case, content, message):
    a = _write(tmp_path / "a.json", example_results())
    b = tmp_path / "b.json" if content is None else _write(tmp_path / "b.json", content)
    assert main([str(a), str(b), "--fail-on-regression"]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and err.startswith("benchmarks compare: ")


def test_main_usage_error_is_2(capsys):
    assert main(["only-one.json"]) == 2
    assert "usage: python -m benchmarks compare" in capsys.readouterr().err


def test_main_notes_environment_differences(tmp_path, capsys):
    a, b = example_results(), example_results()
    b["environment"]["cpu"] = "x86_64"
    main([str(_write(tmp_path / "a.json", a)), str(_write(tmp_path / "b.json", b))])
    expected = "note: environments differ, cpu: 'ARMv8 Processor rev 1 (v8l)' in A, 'x86_64' in B"
    assert expected in capsys.readouterr().out


def test_noise_floor_between_runs():
    """Intervals that do not overlap by less than the floor are run-to-run noise, not a regression."""
    from benchmarks.compare import compare_results

    def run(p50, lo, hi):
        stats = {"n": 200, "min": p50 * 0.9, "p5": p50 * 0.95, "p50": p50, "p90": p50 * 1.1, "p95": p50 * 1.1,
                 "p99": p50 * 1.2, "max": p50 * 1.5, "mean": p50, "std": p50 * 0.02, "cv_pct": 2.0,
                 "p50_ci95": [lo, hi], "outliers": 0}
        return {"rows": [{"model": "m", "backend": "b", "status": "ok", "latency_ms": {"inference": stats}}]}

    a = run(10.0, 9.99, 10.01)
    slightly = compare_results(a, run(10.2, 10.19, 10.21))[0]  # +2 %, intervals apart
    assert slightly["change"] is None and not slightly["significant"] and "within the 3 % floor" in slightly["note"]
    clearly = compare_results(a, run(10.5, 10.49, 10.51))[0]  # +5 %
    assert clearly["change"] == "regression" and clearly["significant"]
    assert compare_results(a, run(10.2, 10.19, 10.21), min_change=0.0)[0]["change"] == "regression"


def test_deeply_nested_results_file_is_one_line(tmp_path):
    """100,000 nested lists gave a RecursionError traceback."""
    from benchmarks.compare import load_results

    path = tmp_path / "deep.json"
    path.write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(Exception) as error:
        load_results(path)
    assert not isinstance(error.value, RecursionError)
    assert "not JSON" in str(error.value) and "Fix:" in str(error.value)


def test_an_edgebench_1_file_is_still_compared_against_the_floor(tmp_path, capsys):
    old = example_results()
    old["schema"] = "edgebench/1"
    for key in ("machine_speed", "selftest"):
        del old[key]
    for row in old["rows"]:
        for key in ("drift", "round_spread_pct"):
            row.pop(key, None)
        if row.get("speedup"):
            row["speedup"] = {k: v for k, v in row["speedup"].items() if k in ("baseline", "ratio", "ci95")}
    new = _scaled(example_results(), TRT, 1.5)
    assert main([str(_write(tmp_path / "a.json", old)), str(_write(tmp_path / "b.json", new))]) == 0
    out = capsys.readouterr().out
    assert "note: A is edgebench/1: rows measured one after another" in out
    assert "1 significant regressions" in out


def test_every_comparison_prints_the_self_test_on_record(tmp_path, capsys):
    a, b = example_results(), example_results()
    main([str(_write(tmp_path / "a.json", a)), str(_write(tmp_path / "b.json", b))])
    assert "A/A self-test: none on record for this machine" in capsys.readouterr().out
    b["selftest"] = {"created_utc": "2026-11-30T14:00:00Z", "changed": 1, "compared": 14,
                     "command": "edge-bench selftest"}
    main([str(_write(tmp_path / "a.json", a)), str(_write(tmp_path / "b.json", b))])
    assert "compare called 1 of 14 unchanged rows changed (false-alarm rate 7 %)" in capsys.readouterr().out
