"""The benchmark commands as a user meets them: exit codes with failed rows, --help text, the one summariser,
and the memory fields the rows claim (issue 9, item 17; the --help part of item 16).

Hermetic: the suite's run is replaced by canned rows, so no worker process starts.
"""

import importlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from benchmarks import __main__ as cli
from benchmarks import report, stats, suite

ROOT = Path(__file__).resolve().parents[2]


def canned_rows(statuses):
    return [{"model": f"m{i}", "backend": "onnxruntime-cpu", "status": status,
             "reason": None if status == "ok" else f"why {i}"} for i, status in enumerate(statuses)]


# (case, row statuses, extra flags, exit code)
EXITS = [
    ("all ok", ["ok", "ok"], [], 0),
    ("skipped rows are not failures", ["ok", "skipped"], [], 0),
    ("nothing ran, all skipped", ["skipped"], [], 0),
    ("one failed row", ["ok", "failed"], [], 1),
    ("every row failed", ["failed", "failed"], [], 1),
    ("failed and skipped", ["skipped", "failed"], [], 1),
    ("--keep-going with a failed row", ["ok", "failed"], ["--keep-going"], 0),
    ("--keep-going, all ok", ["ok"], ["--keep-going"], 0),
]


@pytest.mark.parametrize("case, statuses, flags, code", EXITS, ids=[e[0] for e in EXITS])
def test_exit_code_says_whether_a_requested_row_failed(case, statuses, flags, code, tmp_path, monkeypatch, capsys):
    rows = canned_rows(statuses)
    monkeypatch.setattr(suite, "run_suite", lambda *args, **kwargs: {"rows": rows, "environment": {"cpu": "x"}})
    monkeypatch.setattr(report, "write_all", lambda results, out_dir: [Path(out_dir) / "results.json"])
    monkeypatch.setattr(report, "markdown", lambda results: "| table |")
    tmp_path.joinpath("out").mkdir()
    assert cli.main(["--models", "digits", "--out", str(tmp_path / "out"), *flags]) == code
    err = [line for line in capsys.readouterr().err.splitlines() if "rows failed" in line]
    failed = statuses.count("failed")
    if failed:  # said in one line, naming the rows, in both cases
        assert len(err) == 1 and f"{failed} of {len(rows)} rows failed" in err[0]
        assert ("--keep-going" in err[0]) and (("Fix:" in err[0]) == (code == 1))
    else:
        assert err == []


def test_more_than_five_failed_rows_are_counted_not_listed(capsys):
    assert cli.failed_rows_exit(canned_rows(["failed"] * 8)) == 1
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and "m4·onnxruntime-cpu and 3 more" in line and "m5·" not in line


HELP_COMMANDS = ["benchmarks.__main__", "benchmarks.compare", "benchmarks.core", "benchmarks.decode",
                 "benchmarks.detect", "benchmarks.tracking", "benchmarks.gpu_check"]


@pytest.mark.parametrize("module", HELP_COMMANDS)
def test_help_shows_no_rst_markup(module, capsys):
    main = importlib.import_module(module).main
    try:
        code = main(["--help"])
    except SystemExit as stop:
        code = stop.code
    assert code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage:") and "``" not in text and ":class:" not in text and ":func:" not in text


def test_keep_going_is_in_the_help(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "--keep-going" in capsys.readouterr().out


# (case, samples, fields, digits, expected)
BRIEF = [
    ("1..100 default fields", list(range(1, 101)), ("min", "p50", "p95", "mean"), None,
     {"min_us": 1.0, "p50_us": 50.5, "p95_us": 95.05, "mean_us": 50.5, "n": 100}),
    ("gpu_check's p50/p95 rounded", [1.04, 2.06, 3.0], ("p50", "p95"), 1, {"p50_us": 2.1, "p95_us": 2.9, "n": 3}),
    ("one sample", [7.0], ("min", "max", "p99"), None, {"min_us": 7.0, "max_us": 7.0, "p99_us": 7.0, "n": 1}),
    ("fractional percentile", [0.0, 10.0], ("p99.9",), None, {"p99.9_us": pytest.approx(9.99), "n": 2}),
]


@pytest.mark.parametrize("case, samples, fields, digits, expected", BRIEF, ids=[b[0] for b in BRIEF])
def test_brief(case, samples, fields, digits, expected):
    assert stats.brief(samples, fields=fields, digits=digits) == expected


@pytest.mark.parametrize("samples, fields, error", [
    ([], ("p50",), "empty"), ([1.0, float("nan")], ("p50",), "NaN"), ([1.0], ("median",), "unknown summary field"),
])
def test_brief_rejects(samples, fields, error):
    with pytest.raises(ValueError, match=error):
        stats.brief(samples, fields=fields)


def test_every_summary_agrees_with_the_results_stats():
    samples = np.random.default_rng(3).gamma(4.0, 2.0, 501)
    full = stats.summarize(samples)
    small = stats.brief(samples, unit="ms", fields=("min", "p50", "p95", "mean"))
    assert [small[f"{k}_ms"] for k in ("min", "p50", "p95", "mean")] == [full[k] for k in ("min", "p50", "p95", "mean")]
    from benchmarks.gpu_check import percentiles

    assert percentiles(list(samples)) == {"p50_us": round(full["p50"], 1), "p95_us": round(full["p95"], 1), "n": 501}


def test_percentiles_are_computed_in_one_place():
    """benchmarks.stats.percentiles is the only percentile code in benchmarks/ (timing.describe, gpu_check's
    own and the inline ones are gone)."""
    offenders = [path.name for path in sorted((ROOT / "benchmarks").glob("*.py"))
                 if path.name != "stats.py" and re.search(r"np\.(percentile|quantile)\(", path.read_text())]
    assert offenders == []
    assert not hasattr(importlib.import_module("benchmarks.timing"), "describe")


def test_rows_claim_no_device_memory_they_did_not_measure():
    """device_peak was documented and never set: the schema, SCHEMA.md, the CSV and the worker drop it."""
    schema = json.loads((ROOT / "benchmarks/schema.json").read_text(encoding="utf-8"))
    memory = _find(schema, "memory_mb")
    assert set(memory["properties"]) == {"host_peak"} and "not measured" in memory["description"]
    doc_line = next(line for line in (ROOT / "benchmarks/SCHEMA.md").read_text(encoding="utf-8").splitlines()
                    if line.startswith("| `memory_mb`"))
    assert "not measured" in doc_line
    assert "device_peak_mb" not in report.csv_columns() and "host_peak_mb" in report.csv_columns()


def test_the_worker_row_holds_host_memory_only():
    pytest.importorskip("onnxruntime")
    from benchmarks.worker import run_row

    row = run_row({"model": "digits", "path": str(ROOT / "models/digits/digits.onnx"), "config": None,
                   "model_note": "test", "backend": "onnxruntime-cpu", "baseline": True, "threads": 1, "count": 5,
                   "seconds": None, "warmup": 1, "warmup_s": 0.5, "seed": 0, "tegrastats_ms": 100})
    assert row["status"] == "ok", row["reason"]
    assert set(row["memory_mb"]) == {"host_peak"} and row["memory_mb"]["host_peak"] > 0


def _find(node, key):
    if isinstance(node, dict):
        if key in node:
            return node[key]
        for value in node.values():
            found = _find(value, key)
            if found is not None:
                return found
    return None
