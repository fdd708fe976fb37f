"""edge-bench selftest: the A/A record, its line in every report, and the command end to end on a tiny suite."""

import json
from pathlib import Path

import pytest

from benchmarks import selftest

ROOT = Path(__file__).resolve().parents[2]


def test_the_record_is_this_machine_s_only(tmp_path):
    path = tmp_path / "selftest.json"
    assert selftest.load_record({"cpu": "x", "cores": 2}, path) is None  # none yet
    path.write_text(json.dumps({"cpu": "x", "cores": 2, "changed": 1, "compared": 14, "created_utc": "t",
                                "command": "c", "changed_rows": ["m·b regression (1.100x)"]}))
    assert selftest.load_record({"cpu": "x", "cores": 2}, path) == {
        "created_utc": "t", "cpu": "x", "cores": 2, "changed": 1, "compared": 14, "command": "c"}
    assert selftest.load_record({"cpu": "y", "cores": 2}, path) is None  # another machine's rate says nothing here
    assert selftest.load_record({"cpu": "x", "cores": 4}, path) is None
    path.write_text("{broken")
    assert selftest.load_record({"cpu": "x", "cores": 2}, path) is None


def test_summarize_counts_the_rows_called_changed():
    rows = [{"model": "m", "backend": "a", "status": "compared", "change": None, "ratio": 1.01},
            {"model": "m", "backend": "b", "status": "compared", "change": "regression", "ratio": 1.2},
            {"model": "m", "backend": "c", "status": "not comparable", "change": None}]
    assert selftest.summarize_comparison(rows) == {"compared": 2, "changed": 1,
                                                   "changed_rows": ["m·b regression (1.200x)"]}


def test_selftest_runs_the_configuration_twice_and_keeps_the_record(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("cv2")
    record_path = tmp_path / "record.json"
    code = selftest.main(["--models", "digits", "--backends", "onnxruntime-cpu,opencv", "--count", "10",
                          "--repeat", "1", "--warmup", "2", "--threads", "1", "--out", str(tmp_path / "out")],
                         record_path=record_path)
    assert code == 0
    for run in ("A", "B"):
        results = json.loads((tmp_path / "out" / run / "results.json").read_text())
        assert results["schema"] == "edgebench/2" and len(results["rows"]) == 2
    record = json.loads(record_path.read_text())
    assert record == json.loads((tmp_path / "out" / "selftest.json").read_text())
    assert record["compared"] == 2 and 0 <= record["changed"] <= 2 and len(record["changed_rows"]) == record["changed"]
    assert record["command"].startswith("edge-bench selftest --models digits")
    out = capsys.readouterr().out
    assert f"compare called {record['changed']} of 2 unchanged rows changed" in out
