"""GPU check for the CUDA layers and the preprocessing kernel, on a machine with a CUDA GPU (TensorRT
not needed): device info, pinned round trips, pageable memory refused, zero-copy, streams, use from a
worker thread, then the kernel on 1280x720 and 1920x1080 frames against the CPU path, timed.

    python benchmarks/gpu_check.py [--iterations 200] [--warmup 20] [--output gpu_check.json]

Pass criterion for every comparison: |gpu - cpu| <= |scale / std_c| * 1 grey level per value (1/255
in normalised units for scale 1/255, std 1), plus the CPU path's float16 rounding for float16 inputs
(``edge.cuda.gpu_preprocess.tolerance``); the kernel must also equal ``reference_preprocess`` exactly.
Times: CUDA events for the kernel alone and for H2D copy + kernel + D2H copy; time.perf_counter for
the same end to end (wall) and for the CPU Preprocessor; p50/p95 in microseconds after warm-up.
Prints a Markdown table, writes JSON to --output, else $OUT/gpu_check.json, else ./gpu_check.json.
Exits 1 when any check or comparison fails; with no GPU it says "no GPU: nothing to check" and exits 0.
"""

import argparse
import json
import os
import platform
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np

if __package__:  # python -m benchmarks.gpu_check, or the installed edge_benchmarks.gpu_check
    from . import help_text
    from .stats import brief
else:  # python benchmarks/gpu_check.py, from anywhere
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks import help_text
    from benchmarks.stats import brief
from edge.config import InputSpec, PreprocessSpec  # noqa: E402
from edge.cuda import available_layers, open_cuda  # noqa: E402
from edge.cuda.gpu_preprocess import GpuPreprocessor, reference_preprocess, tolerance  # noqa: E402
from edge.errors import MissingDependency  # noqa: E402
from edge.preprocess import Preprocessor, geometry  # noqa: E402

UNIT = dict(color="RGB", scale=1 / 255, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
IMAGENET = dict(color="RGB", scale=1 / 255, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
# (name, input shape, layout, dtype, preprocess fields, timed)
TARGETS = [
    ("128x128 letterbox", (1, 3, 128, 128), "NCHW", "float32", dict(UNIT, resize="letterbox"), True),
    ("224x224 stretch", (1, 3, 224, 224), "NCHW", "float32", dict(IMAGENET, resize="stretch"), True),
    ("640x640 letterbox", (1, 3, 640, 640), "NCHW", "float32", dict(UNIT, resize="letterbox", pad_value=114), True),
    ("640x640 letterbox f16 NHWC BGR", (1, 640, 640, 3), "NHWC", "float16",
     dict(IMAGENET, color="BGR", resize="letterbox", pad_value=114), False),
    ("112x112 centre-crop gray uint8", (1, 1, 112, 112), "NCHW", "uint8",
     dict(UNIT, resize="center_crop", scale=1.0), False),
    ("300x300 stretch nearest", (1, 300, 300, 3), "NHWC", "float32", dict(IMAGENET, interpolation="nearest"), False),
]
FRAMES = [(1280, 720), (1920, 1080)]


def log(text: str) -> None:
    print(text, flush=True)


def frame_for(width: int, height: int) -> np.ndarray:
    """A gradient with noise: structure for the resize, noise for the rounding."""
    rng = np.random.default_rng(width * height)
    gradient = (np.arange(width)[None, :, None] * 3 + np.arange(height)[:, None, None] * 2 + np.arange(3) * 40)
    return np.clip(gradient % 256 + rng.integers(-40, 41, (height, width, 3)), 0, 255).astype(np.uint8)


def percentiles(samples_us: List[float]) -> Dict[str, float]:
    """p50 and p95 in microseconds, rounded to 0.1, and n (benchmarks.stats.brief)."""
    return brief(samples_us, fields=("p50", "p95"), digits=1)


class Events:
    """CUDA event timing on either layer: ``elapsed_us(stream, fn)``."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        if layer.name == "pycuda":
            drv = layer.driver_module
            self.start, self.end = drv.Event(), drv.Event()
        else:
            from edge.cuda.cuda_python_layer import check

            self._rt, self._check = layer.runtime_module, check
            self.start = check(self._rt, self._rt.cudaEventCreate(), "cudaEventCreate")
            self.end = check(self._rt, self._rt.cudaEventCreate(), "cudaEventCreate")

    def elapsed_us(self, stream: Any, fn: Callable[[], object]) -> float:
        if self.layer.name == "pycuda":
            self.start.record(stream.raw)
            fn()
            self.end.record(stream.raw)
            self.end.synchronize()
            return self.end.time_since(self.start) * 1000.0
        rt, check = self._rt, self._check
        check(rt, rt.cudaEventRecord(self.start, stream.raw), "cudaEventRecord")
        fn()
        check(rt, rt.cudaEventRecord(self.end, stream.raw), "cudaEventRecord")
        check(rt, rt.cudaEventSynchronize(self.end), "cudaEventSynchronize")
        return float(check(rt, rt.cudaEventElapsedTime(self.start, self.end), "cudaEventElapsedTime")) * 1000.0

    def close(self) -> None:
        if self.layer.name != "pycuda":
            for event in (self.start, self.end):
                self._check(self._rt, self._rt.cudaEventDestroy(event), "cudaEventDestroy")


def memory_checks(layer: Any) -> List[Dict[str, Any]]:
    """Round trips, pageable refusal, streams, zero-copy pointer, worker-thread use."""
    checks = []

    def record(name: str, ok: bool, detail: str = "") -> None:
        checks.append({"check": name, "ok": bool(ok), "detail": detail})
        log(f"  {'ok  ' if ok else 'FAIL'} {name} {detail}")

    with layer.activate():
        stream, other = layer.stream(), layer.stream()
        record("streams have distinct non-zero int handles", stream.handle != other.handle and stream.handle != 0,
               f"{stream.handle:#x} {other.handle:#x}")
        for nbytes in (1024, 16 << 20):
            host, back = layer.alloc_host((nbytes,), np.uint8), layer.alloc_host((nbytes,), np.uint8)
            device = layer.alloc_device(nbytes)
            host.array[:] = np.arange(nbytes) % 251
            layer.copy_to_device(device.ptr, host.array, stream)
            layer.copy_to_host(back.array, device.ptr, stream)
            stream.synchronize()
            record(f"pinned round trip {nbytes} bytes", np.array_equal(host.array, back.array))
        try:
            layer.copy_to_device(device.ptr, np.zeros(16, np.uint8), stream)
            record("pageable source refused for async copy", False, "accepted")
        except ValueError:
            record("pageable source refused for async copy", True)
        mapped = layer.alloc_host((4096,), np.uint8, mapped=True)
        record("mapped (zero-copy) host memory has a device pointer", mapped.device_ptr is not None,
               f"{mapped.device_ptr:#x}" if mapped.device_ptr else "")
    box: Dict[str, Any] = {}

    def worker() -> None:
        try:
            with layer.activate():
                s = layer.stream()
                host.array[:] = 7
                layer.copy_to_device(device.ptr, host.array, s)
                layer.copy_to_host(back.array, device.ptr, s)
                s.synchronize()
                box["ok"] = bool((back.array == 7).all())
        except Exception as exc:  # noqa: BLE001 - reported as a failed check
            box["error"] = repr(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    record("created on main, used inside activate() on a worker thread", box.get("ok", False), box.get("error", ""))
    return checks


def preprocess_case(layer: Any, frame_wh: Any, target: Any, iterations: int, warmup: int) -> Dict[str, Any]:
    name, shape, layout, dtype, fields, timed = target
    input_spec, spec = InputSpec("input", shape, layout, dtype), PreprocessSpec(**fields)
    frame = frame_for(*frame_wh)
    reference = reference_preprocess(frame, input_spec, spec)[0]
    row: Dict[str, Any] = {"frame": f"{frame_wh[0]}x{frame_wh[1]}", "input": name}
    cpu_pre: Optional[Preprocessor] = Preprocessor(input_spec, spec)
    try:
        cpu, cpu_transform = cpu_pre(frame)  # type: ignore[misc]
    except MissingDependency:  # no OpenCV here: the reference (equal to the CPU path, tests/gpu) stands in
        cpu_pre, cpu, cpu_transform = None, reference, geometry(frame_wh, input_spec.size_wh, spec.resize)[3]
    row["compared_with"] = "cpu Preprocessor" if cpu_pre else "reference_preprocess (no cv2 on this machine)"
    with GpuPreprocessor(layer, input_spec, spec) as gpu, layer.activate():
        stream = layer.stream()
        _, transform = gpu(frame, stream)
        result = gpu.download(stream)
        bound = tolerance(input_spec, spec, cpu)
        difference = np.abs(result.astype(np.float64) - cpu.astype(np.float64))
        row["max_abs_diff_vs_cpu"] = float(difference.max())
        row["max_diff_over_bound"] = float((difference / bound).max())
        row["max_abs_diff_vs_reference"] = float(np.abs(result.astype(np.float64) - reference).max())
        row["transform_equal"] = transform == cpu_transform
        staging = layer.alloc_host(frame.shape, np.uint8, mapped=True)
        np.copyto(staging.array, frame)
        if staging.device_ptr is not None:  # the kernel reading the frame straight from host memory
            gpu.run_on_device(staging.device_ptr, frame_wh, stream)
            row["zero_copy_equal"] = bool(np.array_equal(gpu.download(stream), result))
        row["ok"] = (row["max_diff_over_bound"] <= 1.0 and row["max_abs_diff_vs_reference"] == 0.0
                     and row["transform_equal"] and row.get("zero_copy_equal", True))
        if timed:
            device_frame = layer.alloc_device(frame.nbytes)
            layer.copy_to_device(device_frame.ptr, staging.array, stream)
            out_host = layer.alloc_host(gpu.output_shape, gpu.output_dtype)
            events = Events(layer)
            kernel_us, e2e_us, wall_us = [], [], []

            def end_to_end() -> None:
                gpu(frame, stream)
                layer.copy_to_host(out_host.array, gpu.output_ptr, stream)

            for i in range(warmup + iterations):
                k = events.elapsed_us(stream, lambda: gpu.run_on_device(device_frame.ptr, frame_wh, stream))
                e = events.elapsed_us(stream, end_to_end)
                start = time.perf_counter()
                end_to_end()
                stream.synchronize()
                w = (time.perf_counter() - start) * 1e6
                if i >= warmup:
                    kernel_us.append(k)
                    e2e_us.append(e)
                    wall_us.append(w)
            events.close()
            row["kernel"], row["h2d_kernel_d2h"], row["h2d_kernel_d2h_wall"] = (
                percentiles(kernel_us), percentiles(e2e_us), percentiles(wall_us))
    if timed and cpu_pre is not None:
        samples = []
        for i in range(warmup + iterations):
            start = time.perf_counter()
            cpu_pre(frame)
            if i >= warmup:
                samples.append((time.perf_counter() - start) * 1e6)
        row["cpu_preprocessor"] = percentiles(samples)
    timing = f", kernel p50 {row['kernel']['p50_us']} us" if timed else ""
    log(f"  {'ok  ' if row['ok'] else 'FAIL'} {row['frame']} -> {name}: diff/bound {row['max_diff_over_bound']:.3f}, "
        f"vs reference {row['max_abs_diff_vs_reference']}{timing}")
    return row


def check_layer(name: str, iterations: int, warmup: int) -> Dict[str, Any]:
    started = time.perf_counter()
    layer = open_cuda(name)
    info = layer.device()
    log(f"[{name}] {info.name}, sm_{info.compute_capability[0]}{info.compute_capability[1]}, "
        f"{info.total_memory_bytes / 2**30:.1f} GiB, integrated={info.integrated}")
    result: Dict[str, Any] = {"layer": name, "device": asdict(info), "checks": memory_checks(layer), "preprocess": []}
    for frame_wh in FRAMES:
        for target in TARGETS:
            result["preprocess"].append(preprocess_case(layer, frame_wh, target, iterations, warmup))
    layer.close()
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["ok"] = all(c["ok"] for c in result["checks"]) and all(r["ok"] for r in result["preprocess"])
    return result


def markdown(layers: List[Dict[str, Any]]) -> str:
    def cell(row: Dict[str, Any], key: str) -> str:
        return f"{row[key]['p50_us']} / {row[key]['p95_us']}" if key in row else "-"

    lines = ["| layer | frame | input | diff / bound | vs reference | kernel µs p50/p95 | H2D+kernel+D2H µs "
             "(events) | same, wall µs | CPU Preprocessor µs | ok |", "|---" * 10 + "|"]
    for layer in layers:
        for row in layer.get("preprocess", []):
            cells = [layer["layer"], row["frame"], row["input"], f"{row['max_diff_over_bound']:.3f}",
                     f"{row['max_abs_diff_vs_reference']:g}", cell(row, "kernel"), cell(row, "h2d_kernel_d2h"),
                     cell(row, "h2d_kernel_d2h_wall"), cell(row, "cpu_preprocessor"), "yes" if row["ok"] else "NO"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def environment() -> Dict[str, Any]:
    if __package__:
        from .environment import dist_version
    else:
        from benchmarks.environment import dist_version

    versions = {}
    for package in ("numpy", "opencv-python", "cuda-python", "cuda-bindings", "pycuda", "cupy-cuda12x",
                    "cupy-cuda13x", "torch", "nvidia-cuda-nvrtc"):
        version = dist_version(package)
        if version is not None:
            versions[package] = version
    return {"python": platform.python_version(), "machine": platform.machine(), "packages": versions}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/gpu_check.py", description=help_text(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=200, help="timed iterations per case (after warm-up)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed iterations first")
    parser.add_argument("--output", type=Path, default=None, help="JSON path (default $OUT/gpu_check.json)")
    args = parser.parse_args(argv)
    output = args.output or Path(os.environ["OUT"] if os.environ.get("OUT") else ".") / "gpu_check.json"
    report: Dict[str, Any] = {"schema": "edge-gpu-check/1", "environment": environment(), "layers": []}
    log(f"environment: {json.dumps(report['environment'])}")
    usable = []
    for name, reason in available_layers():
        if reason is None:
            usable.append(name)
        else:
            log(f"{name}: skipped -- {reason}")
            report["layers"].append({"layer": name, "skipped": reason})
    if not usable:
        log("no GPU: nothing to check")
        report.update(gpu=False, ok=True)
    else:
        report["gpu"] = True
        for name in usable:
            try:
                report["layers"].append(check_layer(name, args.iterations, args.warmup))
            except Exception as exc:  # noqa: BLE001 - one layer's failure is reported, the next still runs
                log(f"[{name}] FAIL {type(exc).__name__}: {exc}")
                report["layers"].append({"layer": name, "ok": False, "error": f"{type(exc).__name__}: {exc}"})
        report["ok"] = all(layer.get("ok", True) for layer in report["layers"])
        log("\n" + markdown(report["layers"]))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2))
    log(f"\n{'PASS' if report['ok'] else 'FAIL'}; JSON written to {output}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
