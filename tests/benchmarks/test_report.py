"""benchmarks.report and benchmarks.plots on the SCHEMA.md example: the table, the CSV, the files written."""

import copy
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_schema import example_results

from benchmarks.plots import MISSING, write_plots
from benchmarks.report import csv as results_csv
from benchmarks.report import csv_columns, fmt_ms, markdown, write_all
from benchmarks.stats import summarize

ROOT = Path(__file__).resolve().parents[2]


def _table_line(text: str, backend: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("| resnet50 | " + backend))


# (case, backend, text the row's line contains)
MARKDOWN_ROWS = [
    ("baseline flagged", "onnxruntime-cpu (baseline)", "1× (baseline)"),
    ("baseline p50 with CI", "onnxruntime-cpu (baseline)", "97.5 [97.3, 97.8]"),
    ("baseline cold start", "onnxruntime-cpu (baseline)", "410 / 131"),
    ("baseline memory: host only, device is not measured", "onnxruntime-cpu (baseline)", "| 512 |"),
    ("trt p50 with CI", "tensorrt |", "4.18 [4.17, 4.19]"),
    ("trt p95", "tensorrt |", "| 4.33 |"),
    ("trt spread", "tensorrt |", "200 · 1.6% · 9"),
    ("trt e2e", "tensorrt |", "| 5.41 |"),
    ("trt speed-up", "tensorrt |", "23.31× [23.23, 23.42]"),
    ("trt device and precision", "tensorrt |", "cuda:0 / fp16"),
    ("trt fps", "tensorrt |", "| 61.2 |"),
    ("failed row and reason", "onnxruntime-tensorrt", "**failed**: TensorrtExecutionProvider is not available"),
]


@pytest.mark.parametrize("case, backend, expected", MARKDOWN_ROWS, ids=[m[0] for m in MARKDOWN_ROWS])
def test_markdown_rows(case, backend, expected):
    assert expected in _table_line(markdown(example_results()), backend)


# (case, text the header contains)
MARKDOWN_HEADER = [
    ("machine", "ARMv8 Processor rev 1 (v8l), 8 cores"),
    ("software", "onnxruntime 1.16.3, opencv 4.8.0, tensorrt 8.5.2, cuda 11.4"),
    ("jetson", "board Jetson AGX Orin, jetpack 5.1.2, l4t 35.4.1, nvpmodel MAXN, jetson_clocks True"),
    ("harness overhead", "harness overhead: 0.31 µs per sample"),
    ("layer said by the row", "**inference**: onnxruntime run (onnxruntime-cpu); the backend call: "
                              "host-to-device copy + compute + device-to-host copy (tensorrt)"),
    ("layer from the defaults", "**compute**: GPU compute only, between CUDA events"),
    ("e2e layer", "**e2e**: preprocess + inference + decode"),
    ("command", "`python -m benchmarks --model resnet50 --output out/`"),
]


@pytest.mark.parametrize("case, expected", MARKDOWN_HEADER, ids=[m[0] for m in MARKDOWN_HEADER])
def test_markdown_header(case, expected):
    assert expected in markdown(example_results())


def test_markdown_table_is_rectangular_and_flags_unstable_rows():
    results = example_results()
    results["rows"][1]["stable"] = False
    results["rows"][2]["reason"] = "a | b"
    text = markdown(results)
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 3
    assert {line.replace("\\|", "").count("|") for line in table} == {13}
    assert "ok, UNSTABLE" in _table_line(text, "tensorrt |")
    assert "UNSTABLE rows:" in text


@pytest.mark.parametrize("value, text", [(0.12345, "0.123"), (4.567, "4.57"), (45.67, "45.7"), (456.7, "457"),
                                         (None, "—")])
def test_fmt_ms(value, text):
    assert fmt_ms(value) == text


def test_csv_one_line_per_row_with_stable_columns():
    rows = list(csv.DictReader(io.StringIO(results_csv(example_results()))))
    assert len(rows) == 3
    assert list(rows[0]) == csv_columns()
    assert [r["backend"] for r in rows] == ["onnxruntime-cpu", "tensorrt", "onnxruntime-tensorrt"]
    trt = rows[1]
    assert [trt[f"inference_{k}"] for k in ("p50", "p50_ci_lo", "p50_ci_hi")] == ["4.183", "4.167", "4.192"]
    assert [trt[k] for k in ("compute_n", "e2e_p99", "speedup", "input_shape")] == ["200", "5.634", "23.31",
                                                                                     "1x3x224x224"]
    assert rows[0]["baseline"] == "True" and rows[0]["compute_p50"] == ""
    assert rows[2]["status"] == "failed" and rows[2]["reason"].startswith("TensorrtExecutionProvider")
    assert [trt[k] for k in ("speedup_method", "round_spread_pct", "drift_flagged")] == ["paired", "", ""]
    assert [rows[0][k] for k in ("round_spread_pct", "drift_moved_pct", "drift_flagged")] == ["1.2", "2.2", "False"]


def test_write_all_files_parse_back(tmp_path):
    results = example_results()
    paths = write_all(results, tmp_path / "out")
    names = {p.name for p in paths}
    assert {"results.json", "results.csv", "results.md"} <= names
    assert all(p.is_file() for p in paths)
    assert json.loads((tmp_path / "out" / "results.json").read_text()) == results
    assert len(list(csv.DictReader((tmp_path / "out" / "results.csv").open()))) == 3
    assert (tmp_path / "out" / "results.md").read_text().startswith(markdown(results))


def test_write_all_refuses_invalid_results(tmp_path):
    results = example_results()
    del results["rows"][0]["status"]
    with pytest.raises(ValueError, match=r"rows\[0\]: missing required field 'status'"):
        write_all(results, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_write_all_says_when_plots_were_skipped(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    assert write_plots(example_results(), tmp_path) == ([], MISSING)
    paths = write_all(example_results(), tmp_path)
    assert not [p for p in paths if p.suffix == ".png"]
    assert f"Plots skipped: {MISSING}" in (tmp_path / "results.md").read_text()


def _with_samples():
    """The example with raw inference samples on the TensorRT row (box plot) and none on the baseline (bars)."""
    results = copy.deepcopy(example_results())
    samples = list(np.random.default_rng(0).gamma(2.0, 0.05, 300) + 4.1)
    results["rows"][1]["samples_ms"] = {"inference": samples}
    results["rows"][1]["latency_ms"]["inference"] = summarize(samples)
    return results


def test_plots_are_written(tmp_path):
    pytest.importorskip("matplotlib", reason="plots need matplotlib (optional)")
    paths, skipped = write_plots(_with_samples(), tmp_path)
    assert skipped is None
    assert [p.name for p in paths] == ["latency_inference.png", "latency_e2e.png", "speedup.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_write_all_links_the_plots(tmp_path):
    pytest.importorskip("matplotlib", reason="plots need matplotlib (optional)")
    paths = write_all(_with_samples(), tmp_path)
    assert "speedup.png" in {p.name for p in paths}
    assert "![speedup](speedup.png)" in (tmp_path / "results.md").read_text()


def test_nothing_to_plot_is_said(tmp_path):
    pytest.importorskip("matplotlib", reason="plots need matplotlib (optional)")
    results = example_results()
    results["rows"] = results["rows"][2:]  # only the failed row
    assert write_plots(results, tmp_path) == ([], "no successful row has latency statistics to plot")


def test_modules_import_without_matplotlib():
    code = ("import sys; sys.modules['matplotlib'] = None; import benchmarks.report, benchmarks.plots, "
            "benchmarks.compare, benchmarks.stats; assert 'jsonschema' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_skipped_rows_collapse_to_one_line_per_reason():
    results = example_results()
    for model in ("face", "digits", "squeezenet", "shufflenet"):
        for backend in ("tensorrt", "onnxruntime-cuda"):
            results["rows"].append({"model": model, "backend": backend, "status": "skipped",
                                    "reason": f"{backend} is not installed"})
    text = markdown(results)
    assert not [line for line in text.splitlines() if line.startswith("| face |")]
    assert "- tensorrt (4 rows, 4 models): tensorrt is not installed" in text
    assert "- onnxruntime-cuda (4 rows, 4 models): onnxruntime-cuda is not installed" in text


def test_rows_with_contradicting_layers_or_drift_say_why():
    results = example_results()
    results["rows"][1]["unstable"] = ["e2e measured faster than the inference it contains: e2e/inference = 0.60"]
    results["rows"][0]["drift"] = {"moved_pct": 40.0, "flagged": True, "remeasured": 1,
                                   "reason": "the machine's speed moved 40 % (calibration probe, interquartile range)"}
    text = markdown(results)
    assert "ok, UNSTABLE: e2e measured faster than the inference it contains" in _table_line(text, "tensorrt |")
    baseline = _table_line(text, "onnxruntime-cpu (baseline)")
    assert "DRIFT: the machine's speed moved 40 %" in baseline and "(re-measured)" in baseline
    assert "rounds ±0.6 %" in baseline  # half the example's 1.2 % spread between rounds
    assert "DRIFT rows:" in text and "UNSTABLE rows:" in text


def test_the_report_shows_the_machine_speed_and_the_self_test_on_record():
    results = example_results()
    text = markdown(results)
    assert ("machine speed (calibration probe, 3 points, p50 2.31 ms, p10..p90 spread 2.2 %): % of typical speed "
            "by tenth of the run: 100 — — — — 100 — — — 98") in text
    assert "A/A self-test: none on record for this machine" in text
    results["selftest"] = {"created_utc": "2026-11-30T14:00:00Z", "changed": 0, "compared": 14,
                           "command": "edge-bench selftest"}
    assert "compare called 0 of 14 unchanged rows changed (false-alarm rate 0 %)" in markdown(results)
