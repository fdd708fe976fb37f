"""Inference threads chosen by measuring the model: the decision from measured times, the loads it costs, the
copy it closes, its cache, and the real ONNX Runtime session it leaves. Times are given, never asserted."""

import json
import os
from pathlib import Path
from typing import Dict, List

import pytest

from edge import thread_tuning
from edge.cpu_budget import cpu_budget
from edge.model import Model
from edge.thread_tuning import (
    CACHE_VERSION,
    ChoiceCache,
    cache_key,
    keep_more_threads,
    probe_ms,
    tuned_model,
    worth_more_threads,
)


# ------------------------------------------------------------------------------------ the decision
@pytest.mark.parametrize("cores, measured_ms, worth", [
    (2, 1.2, False),   # the face detector here: even a perfect split saves 0.6 ms, capture needs 3
    (2, 8.0, True),    # 4 ms saved at best, 3 ms needed: try
    (2, 75.0, True),   # ResNet-50 on one thread
    (1, 75.0, False),  # one core: nothing more to give
    (4, 4.0, False),   # 2 of 4 cores: 4 -> 2 ms at best, 3 ms needed
    (4, 20.0, True),
])
def test_more_threads_are_tried_only_where_a_perfect_split_would_pay_for_the_pipeline(cores, measured_ms, worth):
    assert worth_more_threads(cpu_budget(cores=cores), measured_ms) is worth


def test_more_threads_are_kept_only_when_faster_after_paying_the_pipeline_threads():
    budget = cpu_budget(cores=2)
    assert keep_more_threads(budget, few_ms=75.0, many_ms=38.0)
    assert not keep_more_threads(budget, few_ms=75.0, many_ms=88.0)  # a busy machine: two threads lost
    assert not keep_more_threads(budget, few_ms=10.0, many_ms=6.5)  # 6.5 + 3 > 9: not by the margin


def test_each_capture_thread_counts():
    one, three = cpu_budget(streams=1, cores=8), cpu_budget(streams=3, cores=8)
    assert keep_more_threads(one, few_ms=20.0, many_ms=10.0)
    assert not keep_more_threads(three, few_ms=20.0, many_ms=10.0)  # 10 + 3 x 3 > 18


# ------------------------------------------------------------------------------------ the flow
class FakeModel:
    """A loaded model whose backend is named like the real one; records closes."""

    def __init__(self, threads: int, backend: str = "onnxruntime-cpu") -> None:
        self.threads = threads
        self.backend = type("Backend", (), {"name": backend})()
        self.closed = False

    def close(self) -> None:
        self.closed = True


class Loader:
    def __init__(self, backend: str = "onnxruntime-cpu") -> None:
        self.backend = backend
        self.loaded: List[FakeModel] = []

    def __call__(self, threads: int) -> FakeModel:
        self.loaded.append(FakeModel(threads, self.backend))
        return self.loaded[-1]


def _times(monkeypatch, by_threads: Dict[int, float]) -> None:
    monkeypatch.setattr(thread_tuning, "probe_ms", lambda *models: [by_threads[m.threads] for m in models])


@pytest.mark.parametrize("by_threads, chosen", [({1: 75.0, 2: 38.0}, 2), ({1: 75.0, 2: 88.0}, 1)])
def test_a_heavy_model_is_loaded_twice_and_the_slower_copy_closed(monkeypatch, tmp_path, by_threads, chosen):
    _times(monkeypatch, by_threads)
    load = Loader()
    model, budget = tuned_model(load, cpu_budget(cores=2), None, "auto", {})
    assert [m.threads for m in load.loaded] == [1, 2]
    assert model.threads == chosen and not model.closed
    assert [m.closed for m in load.loaded if m is not model] == [True]
    assert budget.inference == chosen and budget.chosen_by == "measured"
    assert dict(budget.measured_ms) == by_threads
    assert budget.opencv == max(1, 2 - chosen)
    assert f"measured: {by_threads[chosen]:.1f} ms a call on {chosen} thread" in budget.text()


def test_a_light_model_is_loaded_once(monkeypatch):
    _times(monkeypatch, {1: 1.2})
    load = Loader()
    model, budget = tuned_model(load, cpu_budget(cores=2), None, "auto", {})
    assert len(load.loaded) == 1 and model.threads == 1
    assert budget.measured_ms == ((1, 1.2),) and budget.text().endswith("measured: 1.2 ms a call on 1 thread")


def test_threads_given_and_gpu_backends_are_not_measured(monkeypatch):
    monkeypatch.setattr(thread_tuning, "probe_ms", lambda *models: pytest.fail("measured"))
    load = Loader()
    model, budget = tuned_model(load, cpu_budget(cores=2, threads=2), None, "auto", {})
    assert model.threads == 2 and budget.chosen_by == "--threads" and len(load.loaded) == 1
    gpu = Loader("tensorrt")
    model, budget = tuned_model(gpu, cpu_budget(cores=2), None, "auto", {})
    assert len(gpu.loaded) == 1 and budget.chosen_by == "budget" and not budget.measured_ms


def test_the_choice_is_cached_per_file_and_reused_with_one_load(monkeypatch, tmp_path):
    _times(monkeypatch, {1: 75.0, 2: 38.0})
    model_file = tmp_path / "m.onnx"
    model_file.write_bytes(b"weights")
    cache = ChoiceCache(tmp_path / "cache" / "threads.json")
    tuned_model(Loader(), cpu_budget(cores=2), model_file, "auto", {}, cache)
    monkeypatch.setattr(thread_tuning, "probe_ms", lambda *models: pytest.fail("measured again"))
    load = Loader()
    model, budget = tuned_model(load, cpu_budget(cores=2), model_file, "auto", {}, cache)
    assert [m.threads for m in load.loaded] == [2] and model.threads == 2
    assert budget.chosen_by == "measured earlier" and "measured earlier: 38.0 ms" in budget.text()
    data = json.loads(cache.path.read_text())
    assert data["version"] == CACHE_VERSION and len(data["choices"]) == 1
    assert not list(cache.path.parent.glob(".*.tmp"))


def test_the_key_changes_with_the_file_the_backend_the_precision_and_the_cores(tmp_path):
    model_file = tmp_path / "m.onnx"
    model_file.write_bytes(b"weights")
    key = cache_key(model_file, "auto", {}, cpu_budget(cores=2))
    assert key == cache_key(model_file, "auto", {}, cpu_budget(cores=2))
    assert key != cache_key(model_file, "opencv", {}, cpu_budget(cores=2))
    assert key != cache_key(model_file, "auto", {"precision": "int8"}, cpu_budget(cores=2))
    assert key != cache_key(model_file, "auto", {}, cpu_budget(cores=4))
    assert key != cache_key(model_file, "auto", {}, cpu_budget(cores=2, streams=2))
    stat = model_file.stat()
    os.utime(str(model_file), ns=(stat.st_atime_ns, stat.st_mtime_ns + 10 ** 9))
    assert key != cache_key(model_file, "auto", {}, cpu_budget(cores=2))


@pytest.mark.parametrize("content", ["not json", "[]", json.dumps({"version": 999, "choices": {"k": {}}}),
                                     json.dumps({"version": CACHE_VERSION, "choices": {"k": {"threads": "x"}}}),
                                     json.dumps({"version": CACHE_VERSION, "choices": {"k": {"threads": 0,
                                                                                              "measured_ms": {}}}})])
def test_a_damaged_or_foreign_cache_is_an_empty_one_and_is_rewritten(tmp_path, content):
    cache = ChoiceCache(tmp_path / "threads.json")
    cache.path.write_text(content)
    assert cache.get("k") is None
    cache.put("k", 2, {1: 75.0, 2: 38.0})
    assert cache.get("k") == (2, {1: 75.0, 2: 38.0})


def test_an_unwritable_cache_is_ignored(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    cache = ChoiceCache(blocker / "sub" / "threads.json")  # its folder cannot be made
    cache.put("k", 1, {1: 1.0})
    assert cache.get("k") is None


# ------------------------------------------------------------------------------------ real ONNX Runtime
def test_the_real_session_gets_the_chosen_threads_and_a_blank_input_is_timed(face_model_path):
    budget = cpu_budget(cores=2)
    load = []

    def open_model(threads: int) -> Model:
        load.append(threads)
        return Model(face_model_path, backend="onnxruntime-cpu", threads=threads,
                     backend_options=budget.backend_options())

    model, chosen = tuned_model(open_model, budget, Path(face_model_path), "onnxruntime-cpu", {})
    with model:
        options = model.backend._session.get_session_options()
        assert options.intra_op_num_threads == chosen.inference
        assert chosen.chosen_by == "measured" and chosen.inference in dict(chosen.measured_ms)
        assert all(ms > 0 for _, ms in chosen.measured_ms)
        assert load[0] == budget.inference
        times = probe_ms(model, model)
        assert times is not None and len(times) == 2


def test_a_model_without_a_fixed_input_buffer_is_not_timed():
    assert probe_ms(object()) is None


def test_the_app_prints_the_backend_choice_once_when_a_second_copy_is_timed(monkeypatch, tmp_path, capsys):
    from edge.camera import main

    monkeypatch.setenv("EDGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(thread_tuning, "worth_more_threads", lambda budget, ms: True)  # a second copy, always
    loads: List[str] = []

    class CountingModel(Model):
        def __init__(self, *args, **kwargs):
            loads.append(kwargs.get("backend"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr("edge.model.Model", CountingModel)
    assert main(["--source", "demo://", "--headless", "--output", "none", "--max-frames", "2"]) == 0
    err = capsys.readouterr().err
    assert len(loads) == 2 and "measured:" in err
    chosen = [line for line in err.splitlines() if line.startswith("backend ") and ": chosen" in line]
    assert len(chosen) == 1, err
    assert loads[0] == "auto" and set(loads[1:]) <= {"onnxruntime-cpu"}  # the copy: the backend auto chose
