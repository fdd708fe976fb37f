"""``edge-bench precision`` in quick form: its rows, paired speed-ups and accuracy deltas (never its timings)."""

import json
import math
import types

import numpy as np
import pytest

from benchmarks import task_rows
from benchmarks.__main__ import main as bench_main
from benchmarks.precision import VARIANTS, main, paired_speedup, report, run, time_variants
from benchmarks.precision_data import match_boxes
from benchmarks.stats import ratio_ci

LABELS = [label for label, _, _ in VARIANTS]
COUNT = 20


def needs_quantization_tools():
    """Skip where edge.quantize cannot make every row: ONNX Runtime's quantization tools do not import (the
    Python 3.6 venv lacks 'six' for them) or are older than 1.13 (their int8 files are wrong; edge refuses)."""
    import onnxruntime

    try:
        from onnxruntime.quantization import quantize_static  # noqa: F401
        from onnxruntime.transformers.float16 import convert_float_to_float16  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"ONNX Runtime's quantization tools do not import here ({exc})")
    if tuple(int(part) for part in onnxruntime.__version__.split(".")[:2]) < (1, 13):
        pytest.skip(f"ONNX Runtime {onnxruntime.__version__} < 1.13: edge.quantize refuses int8 with it")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    needs_quantization_tools()
    out = tmp_path_factory.mktemp("precision")
    code = main(["--models", "digits,face", "--count", str(COUNT), "--block", "5", "--warmup", "2",
                 "--frames", "12", "--out", str(out)])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def rows(run_dir):
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    assert results["benchmark"] == "precision" and results["count"] == COUNT
    return {(row["model"], row["precision"]): row for row in results["rows"]}


@pytest.mark.parametrize("model", ["digits", "face"])
def test_every_precision_has_a_row_with_its_own_file(rows, model):
    mine = {label: rows[(model, label)] for label in LABELS}
    assert len({row["file"] for row in mine.values()}) == len(LABELS)
    assert mine["fp32"]["quantizer"] is None and mine["fp32"]["calibration"] is None
    assert mine["fp16"]["quantizer"] == "onnxruntime float16 converter"
    for label in ("int8 cpu", "int8 tensorrt-placement"):
        assert mine[label]["quantizer"] in ("onnxruntime", "modelopt")
        calibration = mine[label]["calibration"]
        assert calibration["images"] == {"face": 40 + 3, "digits": 200}[model]  # demo frames + samples; digits
        assert len(calibration["sha256"]) == 64
    assert mine["int8 cpu"]["size_mb"] < mine["fp32"]["size_mb"]


@pytest.mark.parametrize("model", ["digits", "face"])
@pytest.mark.parametrize("label", LABELS)
def test_latency_and_speedup_intervals_hold_their_point(rows, model, label):
    row = rows[(model, label)]
    latency, speedup = row["latency"], row["speedup"]
    assert latency["n"] == COUNT
    assert 0 < latency["p50_ci95_ms"][0] <= latency["p50_ms"] <= latency["p50_ci95_ms"][1]
    assert latency["p50_ms"] <= latency["p95_ms"]
    assert speedup["blocks"] == COUNT // 5
    assert 0 < speedup["ci95"][0] <= speedup["point"] <= speedup["ci95"][1]
    if label == "fp32":
        assert speedup["point"] == speedup["ci95"][0] == speedup["ci95"][1] == 1.0


@pytest.mark.parametrize("model", ["digits", "face"])
@pytest.mark.parametrize("label", LABELS)
def test_accuracy_fields_are_numbers_in_range(rows, model, label):
    acc = rows[(model, label)]["accuracy"]
    reference = rows[(model, "fp32")]["accuracy"]
    assert acc["fp32"] == reference["value"]
    assert acc["delta"] == pytest.approx(acc["value"] - acc["fp32"])
    percents = [acc["fp32"], acc["value"]] + [acc[k] for k in ("precision_pct", "precision_fp32_pct") if k in acc]
    for value in percents:
        assert math.isfinite(value) and 0.0 <= value <= 100.0
    if model == "digits":
        if "scikit-learn digits" in acc["set"]:
            assert acc["images"] == 450 and acc["fp32"] > 90.0  # the shipped digits CNN on its held-out split
    else:
        assert acc["truth_boxes"] >= 1 and acc["boxes"] >= 1
        for key in ("mean_iou_vs_fp32", "astronaut_iou_vs_fp32"):
            assert 0.0 <= acc[key] <= 1.0
        assert acc["fp32"] == 100.0  # fp32 finds every truth face of the quick set
    if label == "fp32":
        assert acc["delta"] == 0.0
        if model == "face":
            assert acc["mean_iou_vs_fp32"] == acc["astronaut_iou_vs_fp32"] == 1.0


@pytest.mark.parametrize("label", ["int8 cpu", "int8 tensorrt-placement"])
def test_digits_int8_keeps_accuracy_within_one_point(rows, label):
    """Issue 12's verification: int8 costs the digits model at most one point of held-out accuracy."""
    assert abs(rows[("digits", label)]["accuracy"]["delta"]) <= 1.0


@pytest.mark.parametrize("label, least_iou", [("fp16", 0.98), ("int8 cpu", 0.9), ("int8 tensorrt-placement", 0.9)])
def test_face_finds_the_astronaut_where_fp32_does(rows, label, least_iou):
    acc = rows[("face", label)]["accuracy"]
    assert acc["astronaut_iou_vs_fp32"] >= least_iou
    assert acc["delta"] >= -100.0 / acc["truth_boxes"]  # recall against truth: at most one face lost


def test_table_has_one_line_per_row(run_dir, rows):
    table = (run_dir / "precision.md").read_text(encoding="utf-8")
    lines = [line for line in table.splitlines() if line.startswith("| digits |") or line.startswith("| face |")]
    assert len(lines) == len(rows) == 2 * len(LABELS)
    assert "| face | int8 tensorrt-placement |" in table
    assert "(reference)" in table
    assert "scikit-learn digits" in table or "demo://?scene=digits" in table


# ---------------------------------------------------------------------------------------------- the pairing
def test_paired_speedup_of_exact_ratios():
    base = np.linspace(100.0, 300.0, 40)
    result = paired_speedup(base, base / 3.0, block=8)
    assert result["blocks"] == 5
    assert result["point"] == pytest.approx(3.0) and result["ci95"] == pytest.approx([3.0, 3.0])
    assert paired_speedup(base, base / 2.0, block=7)["blocks"] == 6  # a last partial block counts
    with pytest.raises(ValueError, match="paired samples"):
        paired_speedup(base, base[:-1], block=8)


def test_synthetic_timer_pairs_blocks_through_drift(monkeypatch):
    """A fake clock: call A costs 2 units, B 1 unit, both scaled by a drift that triples over the run. The paired
    speed-up is 2 with a tight interval; unpaired medians of the same samples give a far wider one."""
    state = {"now": 0.0, "calls": 0}
    total = 2 * (200 + 3)

    def call(cost):
        def fn():
            state["calls"] += 1
            state["now"] += cost * (1.0 + 2.0 * state["calls"] / total)
        return fn

    monkeypatch.setattr(task_rows, "time", types.SimpleNamespace(perf_counter=lambda: state["now"]))
    timed = time_variants([call(2e-3), call(1e-3)], count=200, block=5, warmup=3)
    speedup = timed[1]["speedup"]
    assert speedup["point"] == pytest.approx(2.0, rel=0.01)
    assert speedup["ci95"][0] <= 2.0 * 1.01 and speedup["ci95"][1] >= 2.0 / 1.01
    assert timed[0]["latency"]["p50_ms"] == pytest.approx(2.0 * timed[1]["latency"]["p50_ms"], rel=0.02)
    paired_width = speedup["ci95"][1] - speedup["ci95"][0]
    samples = task_rows.blocked_us  # the same samples again (same fake clock) for the unpaired interval
    state.update(now=0.0, calls=0)
    a_us, b_us = samples([call(2e-3), call(1e-3)], 200, 5, 3)
    _, (lo, hi) = ratio_ci(a_us, b_us)
    assert paired_width * 5 < hi - lo


# (found boxes, scores, truth boxes, expected hits)
MATCHES = [
    ("exact hit", [[0, 0, 10, 10]], [0.9], [[0, 0, 10, 10]], 1),
    ("IoU below 0.5", [[0, 0, 10, 10]], [0.9], [[5, 0, 15, 10]], 0),
    ("two boxes on one truth", [[0, 0, 10, 10], [0, 0, 10, 9]], [0.8, 0.9], [[0, 0, 10, 10]], 1),
    ("two truths", [[0, 0, 10, 10], [20, 20, 30, 30]], [0.5, 0.6], [[20, 20, 30, 31], [0, 0, 10, 10]], 2),
    ("nothing found", [], [], [[0, 0, 10, 10]], 0),
    ("no truth", [[0, 0, 10, 10]], [0.9], [], 0),
]


@pytest.mark.parametrize("case, found, scores, truth, hits", MATCHES, ids=[m[0] for m in MATCHES])
def test_match_boxes(case, found, scores, truth, hits):
    found_xyxy = np.asarray(found, np.float64).reshape(-1, 4)
    truth_xyxy = np.asarray(truth, np.float64).reshape(-1, 4)
    assert match_boxes(found_xyxy, np.asarray(scores), truth_xyxy) == hits


def test_a_precision_that_cannot_be_made_is_a_skipped_row_in_its_place(monkeypatch):
    import edge.quantize

    needs_quantization_tools()
    real = edge.quantize.quantize_file

    def without_fp16(source, output, options, report=None):
        if options.precision == "fp16":
            raise ImportError("No module named 'six'")
        return real(source, output, options, report)

    monkeypatch.setattr(edge.quantize, "quantize_file", without_fp16)
    results = run(["digits"], count=5, block=5, warmup=1)
    rows = results["rows"]
    assert [row["precision"] for row in rows] == LABELS
    assert [row["status"] for row in rows] == ["ok", "skipped", "ok", "ok"]
    assert "No module named 'six'" in rows[1]["reason"]
    assert "| digits | fp16 | | | | skipped: " in report(results)


# ---------------------------------------------------------------------------------------------- the command
@pytest.mark.parametrize("argv, message", [
    (["--models", "nope"], "unknown standard model 'nope'"),
    (["--calib-images", "/no/such/folder"], "no such folder"),
    (["--models", ","], "no models given"),
])
def test_user_errors_are_one_line_and_exit_2(capsys, argv, message):
    assert bench_main(["precision"] + argv) == 2  # through edge-bench: the sub-command is registered
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
