"""The suite: the worker protocol, failed and skipped rows, the CLI end to end, the torch baseline.

No wall-clock assertions: counts, fields, statuses and values only.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from old_runtimes import opencv_loads_face_model

from benchmarks import suite
from benchmarks.__main__ import main
from benchmarks.environment import on_jetson
from benchmarks.report import validate

ROOT = Path(__file__).resolve().parents[2]
STATS_KEYS = {"n", "min", "p50", "p90", "p95", "p99", "max", "mean", "std", "cv_pct", "p50_ci95", "outliers",
              "includes"}
pytest.importorskip("onnxruntime")
pytest.importorskip("cv2")


def digits_spec(**changes):
    spec = {"model": "digits", "path": str(ROOT / "models/digits/digits.onnx"), "config": None,
            "model_note": "test", "backend": "onnxruntime-cpu", "baseline": True, "threads": 1, "count": 30,
            "seconds": None, "warmup": 3, "warmup_s": 1.0, "seed": 0, "tegrastats_ms": 100}
    spec.update(changes)
    return spec


def run_worker_process(spec):
    done = subprocess.run([sys.executable, "-m", "benchmarks.worker"], input=json.dumps(spec), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE,
                          universal_newlines=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout  # stdout carries the result only
    return json.loads(lines[0])


def test_worker_protocol_on_digits_with_onnxruntime_cpu():
    row = run_worker_process(digits_spec())
    assert row["status"] == "ok" and row["reason"] is None
    assert (row["model"], row["backend"], row["baseline"]) == ("digits", "onnxruntime-cpu", True)
    assert row["device"] == "cpu" and row["precision"] == "fp32" and row["input_shape"] == [1, 1, 8, 8]
    assert row["cold_start_ms"]["load"] > 0 and row["cold_start_ms"]["first_inference"] > 0
    assert set(row["latency_ms"]) == {"inference", "e2e"}  # no compute layer on a CPU backend
    for layer, stats in row["latency_ms"].items():
        assert STATS_KEYS <= set(stats), layer
        assert stats["n"] == 30 and len(row["samples_ms"][layer]) == 30
        assert stats["min"] <= stats["p50"] <= stats["max"]
    assert row["memory_mb"]["host_peak"] > 0
    if not on_jetson():  # no tegrastats and no Jetson clocks off a board
        assert row["power"] is None and row["stable"] is None
    assert row["result_example"].startswith("Classification(")
    assert validate({"schema": "edgebench/1", "created_utc": "x", "command": "x",
                     "environment": {"python": "3", "cpu": "x", "cores": 1}, "rows": [row]}) == []


def test_failing_model_and_unknown_backend_are_failed_rows_and_the_suite_goes_on(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"this is not an ONNX file")
    models = [suite.user_model(str(broken)), suite.select_models(["digits"])[0]]
    options = suite.SuiteOptions(count=10, warmup=2, warmup_s=1.0, threads=1)
    results = suite.run_suite(models, ["no-such-backend", "onnxruntime-cpu", "opencv"], options)
    rows = {(r["model"], r["backend"]): r for r in results["rows"]}
    assert len(rows) == 6
    for model in ("broken", "digits"):
        unknown = rows[(model, "no-such-backend")]
        assert unknown["status"] == "failed" and "unknown backend 'no-such-backend'" in unknown["reason"]
    for backend in ("onnxruntime-cpu", "opencv"):
        failed = rows[("broken", backend)]
        assert failed["status"] == "failed" and "broken.onnx" in failed["reason"]
        assert "\n" not in failed["reason"]
    assert rows[("digits", "onnxruntime-cpu")]["status"] == "ok"
    assert rows[("digits", "opencv")]["status"] == "ok"
    assert rows[("digits", "opencv")]["speedup"]["baseline"] == "onnxruntime-cpu"
    assert validate(results) == []


def test_a_worker_past_its_timeout_is_a_failed_row():
    from benchmarks.group import WorkerProcess

    worker = WorkerProcess(digits_spec(), timeout_s=0.001, env=suite._env())
    assert worker.start() is False
    assert worker.row["status"] == "failed" and "row timeout of 0 s" in worker.row["reason"]
    assert worker.process.poll() is not None  # the process was ended, not left behind


def test_serve_protocol_measures_blocks_on_request_and_closes_with_the_row():
    from benchmarks.group import WorkerProcess

    worker = WorkerProcess(digits_spec(), timeout_s=120, env=suite._env())
    assert worker.start() is True
    assert worker.row["device"] == "cpu" and worker.row["cold_start_ms"]["load"] > 0
    first = worker.run_block(4, ["inference", "e2e"])
    second = worker.run_block(2, ["e2e", "inference"])
    assert {k: len(v) for k, v in first.items()} == {"inference": 4, "e2e": 4}
    assert {k: len(v) for k, v in second.items()} == {"inference": 2, "e2e": 2}
    closing = worker.finish()
    assert closing["memory_mb"]["host_peak"] > 0
    assert worker.process.wait(timeout=10) == 0


def test_a_model_s_rows_are_measured_together_in_paired_blocks():
    from benchmarks.group import measure_group

    specs = [digits_spec(count=12), digits_spec(backend="opencv", baseline=False, count=12)]
    options = suite.SuiteOptions(count=12, warmup=2, warmup_s=0.5, threads=1)
    logged = []
    probes = []
    rows = measure_group(specs, options, suite._env(), lambda: probes.append(1) or 2.0, logged.append, 0.1)
    assert set(rows) == {"onnxruntime-cpu", "opencv"} and len(probes) == 13  # 12 rounds of one call, + the end
    for row in rows.values():
        assert row["status"] == "ok" and row["block"] == 1
        assert row["latency_ms"]["inference"]["n"] == 12 and len(row["blocks_ms"]["e2e"]) == 12
        assert row["drift"]["flagged"] is False and row["drift"]["probe_p50_ms"] == 2.0
    assert len(logged) == 2


def test_the_plan_reports_every_backend_and_skips_what_cannot_run():
    from edge.backends import BACKENDS

    models = suite.select_models(None, quick=True)
    specs = suite.plan_rows(models, None, suite.SuiteOptions())
    assert {s["model"] for s in specs} == {"face_detection_short_range", "digits"}
    backends = {s["backend"] for s in specs}
    assert backends >= (set(BACKENDS) - {"onnxruntime"}) | {"tensorrt", "torch-cpu"}
    for spec in specs:
        verdict = spec["verdict"]
        if verdict is not None:
            assert verdict[0] in ("skipped", "failed") and verdict[1]
        runs_here = (spec["backend"] in BACKENDS and BACKENDS[spec["backend"]].unavailable_reason() is None
                     and not getattr(BACKENDS[spec["backend"]], "remote", False))
        if runs_here:
            assert verdict is None
    face_torch = next(s for s in specs if s["model"] == "face_detection_short_range" and s["backend"] == "torch-cpu")
    assert face_torch["verdict"][0] == "skipped"
    assert [s["baseline"] for s in specs].count(True) == 2  # onnxruntime-cpu, once per model


def test_a_tensorrt_plan_runs_on_the_tensorrt_backend_only(tmp_path):
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"\0")
    specs = suite.plan_rows([suite.user_model(str(plan))], ["onnxruntime-cpu", "opencv"], suite.SuiteOptions())
    assert [s["backend"] for s in specs] == ["tensorrt"]


@pytest.mark.parametrize("names, quick, expected", [
    (None, True, ["face_detection_short_range", "digits"]),
    (["face", "resnet50"], False, ["face_detection_short_range", "light_resnet50"]),
    (["light_densenet121", "face_detection_short_range"], False, ["light_densenet121", "face_detection_short_range"]),
])
def test_select_models(names, quick, expected):
    chosen = suite.select_models(names, quick=quick)
    assert [m.name for m in chosen] == expected
    for model in chosen:
        if model.name.startswith("light_"):
            assert "generated weights" in model.note and model.config["preprocess"]["resize"] == "center_crop"


@pytest.mark.parametrize("argv, message", [
    (["--models", "no-such-model"], "unknown standard model 'no-such-model'"),
    (["--model", "/no/such/file.onnx"], "no such file"),
])
def test_user_errors_exit_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_bad_flag_values_exit_2():
    with pytest.raises(SystemExit) as stop:
        main(["--count", "0"])
    assert stop.value.code == 2


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """``python -m benchmarks --quick`` in a subprocess (small counts): (completed process, out folder)."""
    out = tmp_path_factory.mktemp("quick") / "run"
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--count", "20", "--frames", "15",
                           "--threads", "1", "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    return done, out


@opencv_loads_face_model
def test_quick_suite_end_to_end_has_baselines_speedups_and_files(quick_run):
    done, out = quick_run
    assert "| model | backend |" in done.stdout
    results = json.loads((out / "results.json").read_text())
    assert validate(results) == []
    assert results["harness_overhead_us"] > 0 and results["environment"]["threads"] == 1
    rows = {(r["model"], r["backend"]): r for r in results["rows"]}
    for model in ("face_detection_short_range", "digits"):
        base = rows[(model, "onnxruntime-cpu")]
        assert base["status"] == "ok" and base["baseline"] is True and base["speedup"] is None
        assert base["latency_ms"]["inference"]["n"] == 20 and len(base["samples_ms"]["e2e"]) == 20
        opencv = rows[(model, "opencv")]
        assert opencv["status"] == "ok" and opencv["baseline"] is False
        ratio, (lo, hi) = opencv["speedup"]["ratio"], opencv["speedup"]["ci95"]
        assert opencv["speedup"]["baseline"] == "onnxruntime-cpu" and lo <= ratio <= hi and ratio > 0
    assert rows[("face_detection_short_range", "onnxruntime-cpu")]["pipeline_fps"] > 0
    assert rows[("digits", "onnxruntime-cpu")]["pipeline_fps"] is None
    for row in results["rows"]:
        assert row["status"] in ("ok", "skipped"), row
        if row["status"] == "skipped":
            assert row["reason"]
    for name in ("results.md", "results.csv", "workers.log"):
        assert (out / name).is_file()


@opencv_loads_face_model
def test_quick_suite_results_validate_against_the_json_schema(quick_run):
    jsonschema = pytest.importorskip("jsonschema")
    results = json.loads((quick_run[1] / "results.json").read_text())
    jsonschema.validate(results, json.loads((ROOT / "benchmarks/schema.json").read_text()))


def test_torch_baseline_computes_what_onnxruntime_computes():
    pytest.importorskip("torch")
    from benchmarks.torch_baseline import TorchEagerBackend
    from edge.backends.onnxruntime import OnnxRuntimeCPUBackend

    path = ROOT / "models/digits/digits.onnx"
    rng = np.random.default_rng(0)
    with TorchEagerBackend(path, options={"model_name": "digits"}) as torch_backend, \
            OnnxRuntimeCPUBackend(path) as ort_backend:
        for _ in range(5):
            feeds = {"image": rng.random((1, 1, 8, 8), dtype=np.float32)}
            got, want = torch_backend.infer(feeds)["logits"], ort_backend.infer(feeds)["logits"]
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
            assert got.argmax() == want.argmax()


def test_torch_baseline_is_skipped_for_models_without_a_torch_source():
    from benchmarks import torch_baseline

    reason = torch_baseline.unavailable_reason("light_resnet50")
    assert "out of scope" in reason or "not installed" in reason


def test_seconds_mode_blocks_are_time_slices_and_rounds_merge_sample_for_sample():
    from benchmarks.group import SECONDS_BLOCKS, measure_group
    from benchmarks.rounds import merge

    options = suite.SuiteOptions(seconds=0.2, warmup=2, warmup_s=0.5, threads=1)
    rounds = [measure_group([digits_spec(seconds=0.2)], options, suite._env(), None, lambda text: None,
                            0.1)["onnxruntime-cpu"] for _ in range(2)]
    for row in rounds:
        assert row["status"] == "ok" and row["block"] is None
        assert len(row["blocks_n"]["inference"]) == SECONDS_BLOCKS and min(row["blocks_n"]["inference"]) >= 10
        assert sum(row["blocks_n"]["e2e"]) == len(row["samples_ms"]["e2e"])
    merged = merge(rounds)
    for layer in ("inference", "e2e"):
        assert merged["samples_ms"][layer] == rounds[0]["samples_ms"][layer] + rounds[1]["samples_ms"][layer]
        assert merged["blocks_ms"][layer] == rounds[0]["blocks_ms"][layer] + rounds[1]["blocks_ms"][layer]
    assert merged["rounds"]["n"] == 2 and merged["round_spread_pct"] >= 0
