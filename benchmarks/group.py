"""The rows of one model measured together: one worker process per row (``benchmarks.worker --serve``),
alternated in blocks by ``benchmarks.paired.interleave`` with the calibration probe between rounds.

Every row keeps its own process, so its cold start and peak memory stay its own and a crash fails that
row only; the processes take turns, so the rows are measured in the same time window. A process waits
for its turn blocked on a pipe: ONNX Runtime rows run with their intra-op pool's spinning off (the
worker's ``spinning`` spec key) and the torch baseline with OpenMP's passive wait policy, so a waiting row does
not busy-wait on the cores the measured row needs.
"""

import json
import os
import select
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

from .drift import row_drift
from .paired import block_size, flatten, interleave, interval_consistency, layer_consistency, medians
from .stats import summarize
from .worker import INCLUDES, base_row

#: blocks per row in --seconds mode (each block then lasts seconds / this per layer)
SECONDS_BLOCKS = 20
#: per backend, the environment that keeps its thread pool from busy-waiting while the process waits for its
#: turn: torch's OpenMP pool sleeps at once (ONNX Runtime's spinning is turned off through the worker's spec;
#: OpenCV's pool is left as it is)
WAIT_QUIETLY = {"torch-cpu": {"OMP_WAIT_POLICY": "PASSIVE"}}


class RowFailed(Exception):
    """A worker process failed, crashed or ran out of time; the message is the row's one-line reason."""


class WorkerProcess:
    """One row's ``python -m benchmarks.worker --serve`` process, driven one JSON line at a time."""

    def __init__(self, spec: Dict[str, Any], timeout_s: float, env: Dict[str, str],
                 block_seconds: Optional[float] = None) -> None:
        self.spec = spec
        self.row = base_row(spec)
        self.block_seconds = block_seconds
        self.deadline = time.monotonic() + timeout_s
        self.timeout_s = timeout_s
        self._stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
        self._buffer = b""
        self.process = subprocess.Popen([sys.executable, "-m", f"{__package__}.worker", "--serve"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                        env=dict(env, **WAIT_QUIETLY.get(spec["backend"], {})))

    def _read_line(self) -> bytes:
        fd = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise RowFailed(f"the worker ran past the row timeout of {self.timeout_s:.0f} s")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise RowFailed(self._exit_reason())
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def _exit_reason(self) -> str:
        """Why the worker stopped answering: its exit status and last stderr line."""
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        last = next((line for line in reversed(self.stderr().strip().splitlines()) if line.strip()), "no output")
        how = (f"killed by signal {-code}" if code is not None and code < 0
               else f"exited with {code}" if code is not None else "stopped answering")
        return f"the worker {how}: {last.strip()[:300]}"

    def request(self, message: Dict[str, Any]) -> Dict[str, Any]:
        """Send one message, return the reply; RowFailed when the process is gone or late."""
        try:
            self.process.stdin.write((json.dumps(message) + "\n").encode("utf-8"))
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise RowFailed(self._exit_reason()) from None
        return json.loads(self._read_line().decode("utf-8"))

    def start(self) -> bool:
        """Load and warm up; False with the failed row in ``self.row`` when it cannot."""
        payload = {k: v for k, v in self.spec.items() if k != "verdict"}
        try:
            reply = self.request(dict(payload, spinning=False))
        except (RowFailed, ValueError) as exc:
            self.row["reason"] = str(exc)
            self.kill()
            return False
        self.row.update(reply.get("row") or {})
        if not reply.get("ready"):
            self.kill()
        return bool(reply.get("ready"))

    def run_block(self, calls: int, layers: Sequence[str]) -> Dict[str, List[float]]:
        """One block: ``calls`` timed calls of each layer (``block_seconds`` of them in --seconds mode)."""
        message = {"block": None if self.block_seconds else calls, "seconds": self.block_seconds,
                   "layers": list(layers)}
        reply = self.request(message)
        if "error" in reply:
            raise RowFailed(reply["error"])
        return reply["samples"]

    def finish(self) -> Dict[str, Any]:
        """The closing fields (power, stable, memory); the process exits."""
        reply = self.request({"finish": True})
        self.kill()
        return reply["row"]

    def stderr(self) -> str:
        """What the worker printed to stderr so far."""
        self._stderr.seek(0)
        return self._stderr.read()

    def kill(self) -> None:
        """End the process (a no-op once it has exited) and close its pipes."""
        if self.process.poll() is None:
            try:
                self.process.stdin.close()  # a waiting worker reads the end of its input and exits
                self.process.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass


def measure_group(specs: Sequence[Dict[str, Any]], options: Any, env: Dict[str, str],
                  probe: Optional[Callable[[], float]], log: Callable[[str], None],
                  drift_threshold: float) -> Dict[str, Dict[str, Any]]:
    """Measure the rows of one model (specs without a verdict) interleaved; rows by backend.

    Each ok row gets ``samples_ms``, ``latency_ms``, ``blocks_ms`` (per-block medians), ``block``, ``blocks_n``,
    ``drift`` and, where its layers contradict each other, ``unstable`` reasons.
    """
    seconds = options.seconds
    block_seconds = seconds / SECONDS_BLOCKS if seconds else None
    count, block = (SECONDS_BLOCKS, 1) if seconds else (options.count, block_size(options.count))
    rows: Dict[str, Dict[str, Any]] = {}
    workers: Dict[str, WorkerProcess] = {}
    for spec in specs:  # loaded one after another: each cold start has the machine to itself
        worker = WorkerProcess(spec, options.row_timeout_s, env, block_seconds)
        if worker.start():
            workers[spec["backend"]] = worker
        else:
            rows[spec["backend"]] = worker.row
            log(f"[{spec['model']} {spec['backend']}] failed to start\n{worker.stderr()}")
    measured = interleave(workers, count, block, probe=probe, now=time.perf_counter)
    probe_ms = [ms for _, ms in measured.probe]
    for backend, worker in workers.items():
        row = worker.row
        try:
            if backend in measured.failed:
                raise RowFailed(measured.failed[backend])
            row.update(worker.finish())
        except RowFailed as exc:
            worker.kill()
            row.update(status="failed", reason=str(exc))
            rows[backend] = row
            log(f"[{row['model']} {backend}] failed\n{worker.stderr()}")
            continue
        log(f"[{row['model']} {backend}] ok\n{worker.stderr()}")
        rows[backend] = finish_row(row, measured.blocks[backend], None if seconds else block, options.seed)
        rows[backend]["drift"] = row_drift(probe_ms, drift_threshold, row.get("stable"))
    return rows


def finish_row(row: Dict[str, Any], blocks: List[Dict[str, List[float]]], block: Optional[int],
               seed: int) -> Dict[str, Any]:
    """An ok row from its blocks: all samples, their statistics, per-block medians, layer consistency."""
    samples = flatten(blocks)
    layers = [layer for layer in ("compute", "inference", "e2e") if samples.get(layer)]
    per_block = {layer: medians(blocks, layer) for layer in layers}
    row.update(status="ok", reason=None, samples_ms={layer: samples[layer] for layer in layers},
               latency_ms={layer: summarize(samples[layer], includes=INCLUDES[layer], seed=seed) for layer in layers},
               blocks_ms=per_block, block=block,
               blocks_n={layer: [len(b.get(layer) or []) for b in blocks if b.get(layer)] for layer in layers})
    reasons = layer_consistency(per_block, seed=seed) + interval_consistency(row["latency_ms"])
    row.pop("unstable", None)
    if reasons:
        row["unstable"] = reasons
    return row
