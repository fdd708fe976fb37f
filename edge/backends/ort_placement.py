"""Which execution provider ONNX Runtime really put each node on.

``get_providers()`` only says which providers loaded; it does not say that, for example, 40 of
230 nodes of a detector run on the CPU provider between two GPU partitions (each boundary costs
a device copy). ONNX Runtime logs the placement at verbose level while it creates the session
("Node placements" / "All nodes placed on [X]. Number of nodes: N" / "Node(s) placed on [X].
Number of nodes: N"), so ``capture_placement`` creates the session with verbose logging while
the process's stderr file descriptor points at a temporary file, and parses those lines.

The redirection is process-wide for the few hundred milliseconds of session creation: output
written to stderr by other threads at that moment lands in the log file (and is replayed,
minus ONNX Runtime's own lines, afterwards).
"""

import os
import re
import sys
import tempfile
from typing import Any, Callable, Dict, Tuple

_PLACED = re.compile(r"(?:All nodes|Node\(s\)) placed on \[(\w+)\]\. Number of nodes: (\d+)")
_ORT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \[[VIWEF]:onnxruntime")


def parse_placement(log_text: str) -> Dict[str, int]:
    """Node counts per provider from ONNX Runtime's verbose session log."""
    counts: Dict[str, int] = {}
    for provider, count in _PLACED.findall(log_text):
        counts[provider] = counts.get(provider, 0) + int(count)
    return counts


def capture_placement(create: Callable[[int], Any]) -> Tuple[Any, Dict[str, int]]:
    """Call ``create(log_severity_level)`` with stderr captured; returns (its result, node counts).

    ``create`` must create the InferenceSession with the given severity (0 = verbose).
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as log:
        os.dup2(log.fileno(), 2)
        try:
            result = create(0)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        log.seek(0)
        text = log.read().decode("utf-8", "replace")
    others = [line for line in text.splitlines() if line and not _ORT_LINE.match(line)]
    if others:  # someone else's stderr output during the capture: give it back
        sys.stderr.write("\n".join(others) + "\n")
    return result, parse_placement(text)


def placement_note(counts: Dict[str, int], backend: str) -> str:
    """One line when a GPU provider shares the graph with the CPU provider, else ''."""
    total = sum(counts.values())
    on_cpu = counts.get("CPUExecutionProvider", 0)
    gpu = [p for p in counts if p != "CPUExecutionProvider"]
    if not gpu or not on_cpu:
        return ""
    return (f"{backend}: {on_cpu} of {total} nodes run on the CPU provider, the rest on "
            f"{', '.join(p.replace('ExecutionProvider', '') for p in gpu)}: each switch copies tensors between "
            "host and device (ops the GPU provider lacks, or shape ops ONNX Runtime keeps on the CPU on purpose)")
