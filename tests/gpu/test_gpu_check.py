"""benchmarks/gpu_check.py runs anywhere: with no GPU it says so and exits 0; its table renders."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge.cuda import gpu_available

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


@pytest.mark.skipif(gpu_available()[0], reason="this machine has a CUDA device: gpu_check really runs there")
def test_without_a_gpu_it_says_nothing_to_check_and_writes_json(tmp_path):
    output = tmp_path / "check.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--output", str(output)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True,
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "no GPU: nothing to check" in done.stdout
    assert "cuda-python: skipped --" in done.stdout and "pycuda: skipped --" in done.stdout
    report = json.loads(output.read_text())
    assert report["gpu"] is False and report["ok"] is True and report["schema"] == "edge-gpu-check/1"
    assert [layer["layer"] for layer in report["layers"]] == ["cuda-python", "pycuda"]


def test_json_goes_to_out_when_set(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks import gpu_check

    monkeypatch.setenv("OUT", str(tmp_path))
    monkeypatch.setattr(gpu_check, "available_layers", lambda: [("cuda-python", "no CUDA device"),
                                                                ("pycuda", "not installed")])
    assert gpu_check.main([]) == 0
    assert json.loads((tmp_path / "gpu_check.json").read_text())["gpu"] is False


def test_the_markdown_table_has_one_row_per_case():
    from benchmarks.gpu_check import markdown

    timing = {"p50_us": 12.5, "p95_us": 14.0, "n": 200}
    row = {"frame": "1280x720", "input": "224x224 stretch", "max_diff_over_bound": 0.0,
           "max_abs_diff_vs_reference": 0.0, "ok": True, "kernel": timing, "h2d_kernel_d2h": timing,
           "h2d_kernel_d2h_wall": timing, "cpu_preprocessor": timing}
    table = markdown([{"layer": "cuda-python", "preprocess": [row, dict(row, ok=False)]}, {"layer": "pycuda"}])
    lines = table.splitlines()
    assert len(lines) == 4 and lines[2].count("|") == lines[0].count("|") == 11
    assert "| 12.5 / 14.0 |" in lines[2] and lines[3].endswith("| NO |")


def test_the_gpu_path_runs_end_to_end_on_the_fake_runtime(tmp_path, monkeypatch, capsys):
    """Every step of a real run (checks, comparisons, events, table, JSON, exit code) on the fake
    runtime with the kernel emulated by its NumPy reference: no Python error waits for the GPU machine."""
    from cuda_bindings_fakes import EmulatedKernel, FakeCudaRuntime

    from edge.cuda import kernels
    from edge.cuda.cuda_python_layer import CudaPythonLayer

    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks import gpu_check

    runtime = FakeCudaRuntime()
    monkeypatch.setattr(gpu_check, "available_layers", lambda: [("cuda-python", None), ("pycuda", "not installed")])
    monkeypatch.setattr(gpu_check, "open_cuda", lambda name: CudaPythonLayer(0, runtime=runtime, native_handle=int))
    monkeypatch.setattr(kernels, "load_kernel", lambda layer: EmulatedKernel(runtime))
    monkeypatch.setattr(gpu_check, "FRAMES", [(192, 108)])
    output = tmp_path / "gpu.json"
    assert gpu_check.main(["--iterations", "3", "--warmup", "1", "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "pycuda: skipped -- not installed" in printed and "PASS" in printed
    report = json.loads(output.read_text())
    layer = report["layers"][1]
    assert layer["ok"] and all(check["ok"] for check in layer["checks"]) and len(layer["checks"]) == 6
    rows = layer["preprocess"]
    assert len(rows) == len(gpu_check.TARGETS) and all(row["ok"] and row["zero_copy_equal"] for row in rows)
    assert rows[0]["kernel"] == {"p50_us": 42.0, "p95_us": 42.0, "n": 3} and "cpu_preprocessor" in rows[0]
    assert runtime.heap.blocks == {} and runtime.host == {}  # everything freed
    assert printed.count("| cuda-python | 192x108 |") == len(gpu_check.TARGETS)


def test_a_failed_comparison_makes_the_exit_code_non_zero(tmp_path, monkeypatch):
    from cuda_bindings_fakes import EmulatedKernel, FakeCudaRuntime

    from edge.cuda import kernels
    from edge.cuda.cuda_python_layer import CudaPythonLayer

    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks import gpu_check

    class OffByTwo(EmulatedKernel):
        def launch(self, args, grid, stream):
            values = list(args.values)
            values[NAMES.index("pad_value")] += 2  # a wrong pad value: the letterbox borders differ
            super().launch(kernels.LaunchArgs(values), grid, stream)

    NAMES = [name for name, _ in kernels.PARAMETERS]
    runtime = FakeCudaRuntime()
    monkeypatch.setattr(gpu_check, "available_layers", lambda: [("cuda-python", None), ("pycuda", "not installed")])
    monkeypatch.setattr(gpu_check, "open_cuda", lambda name: CudaPythonLayer(0, runtime=runtime, native_handle=int))
    monkeypatch.setattr(kernels, "load_kernel", lambda layer: OffByTwo(runtime))
    monkeypatch.setattr(gpu_check, "FRAMES", [(192, 108)])
    monkeypatch.setattr(gpu_check, "TARGETS", gpu_check.TARGETS[:1])
    assert gpu_check.main(["--iterations", "2", "--warmup", "0", "--output", str(tmp_path / "x.json")]) == 1
