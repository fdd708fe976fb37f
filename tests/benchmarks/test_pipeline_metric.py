"""benchmarks/pipeline_metric.py: the camera loop against its own stages timed alone."""

import json

import pytest

from benchmarks import pipeline_metric
from benchmarks.report import _efficiency_line

pytest.importorskip("onnxruntime")


def test_efficiency_figures_from_known_samples():
    alone = {"video decode": [2.0, 3.0, 4.0], "preprocess": [0.5], "infer": [1.0, 1.0], "output decode": [0.5]}
    skewed = dict(alone, **{"video decode": [1.0, 1.0, 7.0]})  # a keyframe: median 1, mean 3
    assert pipeline_metric.efficiency(skewed, {"fps": 1.0})["bound_fps"] == pytest.approx(1000 / 3.0, abs=0.05)
    summary = {"fps": 200.0, "stages": {"latency": {"p50_ms": 10.0}, "infer": {"p50_ms": 1.5}}}
    result = pipeline_metric.efficiency(alone, summary)
    assert result["slowest_alone"] == "video decode"
    assert result["bound_fps"] == pytest.approx(1000 / 3.0, abs=0.05)
    assert result["throughput_share"] == pytest.approx(200 / (1000 / 3.0), abs=1e-4)
    assert result["sum_alone_p50_ms"] == pytest.approx(5.0)
    assert result["latency_multiple"] == pytest.approx(2.0)
    assert result["pipeline_stages_p50_ms"] == {"latency": 10.0, "infer": 1.5}


def test_a_summary_without_latency_gives_no_multiple():
    alone = {stage: [1.0] for stage in pipeline_metric.STAGES}
    result = pipeline_metric.efficiency(alone, {"fps": 100.0, "stages": {}})
    assert result["latency_multiple"] is None and result["throughput_share"] == pytest.approx(0.1)


def test_a_real_run_on_a_small_clip(tmp_path, capsys):
    out = tmp_path / "pm.json"
    assert pipeline_metric.main(["--frames", "20", "--size", "320x180", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["frames"] == 20 and result["clip"] == {"frames": 20, "size": [320, 180], "codec": "mp4v"}
    assert set(result["alone_p50_ms"]) == set(pipeline_metric.STAGES)
    assert all(value > 0 for value in result["alone_p50_ms"].values())
    assert 0 < result["throughput_share"] and result["latency_multiple"] > 0
    assert result["pipeline_stages_p50_ms"]["latency"] == result["latency_p50_ms"]
    from edge.cpu_budget import usable_cores

    candidates = pipeline_metric.thread_candidates(None, usable_cores())
    assert all(count in candidates for count in result["infer_threads_alone"])  # the fastest of them, each pass
    assert result["threads"]["chosen_by"] in ("measured", "measured earlier")  # the app measured its choice
    assert result["cpu_ms_per_frame"] > 0 and 0 < result["cpu_busy"] <= 1.05  # process CPU over cores x elapsed
    placed = result["preprocess_on"]
    assert placed["capture"] + placed["inference"] == 20 and placed["moves"] >= 0
    text = capsys.readouterr().out
    assert "% of the bound" in text and "the sum of the stages alone" in text
    assert _efficiency_line("face", result).startswith("Camera loop, face on onnxruntime-cpu, a 320x180 clip: ")


@pytest.mark.parametrize("threads, cores, candidates", [(None, 2, [1, 2]), (None, 1, [1]), (None, 4, [1, 2, 4]),
                                                        (None, 16, [1, 14, 16]), (3, 16, [3])])
def test_inference_alone_is_timed_with_every_thread_count_the_app_could_choose(threads, cores, candidates):
    assert pipeline_metric.thread_candidates(threads, cores) == candidates


@pytest.mark.parametrize("argv, message", [(["--frames", "5"], "at least 10"),
                                          (["--model", "missing.onnx", "--frames", "10"], "model file not found")])
def test_bad_input_is_one_line(argv, message, capsys):
    assert pipeline_metric.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err
