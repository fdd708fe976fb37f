"""Node placement per execution provider, read from ONNX Runtime's own verbose log."""

import pytest
from old_runtimes import ort_logs_placement

from edge.backends import create_backend
from edge.backends.ort_placement import parse_placement, placement_note

# Lines as ONNX Runtime's session_state.cc (VerifyEachNodeIsAssignedToAnEp) writes them; the
# mixed case is the shape of a detector whose NMS and shape ops stay on the CPU provider.
CPU_ONLY = """2026-11-27 03:22:29.736147969 [V:onnxruntime:, session_state.cc:1598 VerifyEachNodeIsAssignedToAnEp] Node placements
2026-11-27 03:22:29.736151158 [V:onnxruntime:, session_state.cc:1601 VerifyEachNodeIsAssignedToAnEp]  All nodes placed on [CPUExecutionProvider]. Number of nodes: 7
"""
MIXED = """2026-11-27 03:22:29.1 [V:onnxruntime:, session_state.cc:1598 VerifyEachNodeIsAssignedToAnEp] Node placements
2026-11-27 03:22:29.2 [V:onnxruntime:, session_state.cc:1604 VerifyEachNodeIsAssignedToAnEp]  Node(s) placed on [CUDAExecutionProvider]. Number of nodes: 212
2026-11-27 03:22:29.3 [V:onnxruntime:, session_state.cc:1606 VerifyEachNodeIsAssignedToAnEp]   Conv (/model.0/conv/Conv)
2026-11-27 03:22:29.4 [V:onnxruntime:, session_state.cc:1604 VerifyEachNodeIsAssignedToAnEp]  Node(s) placed on [CPUExecutionProvider]. Number of nodes: 18
2026-11-27 03:22:29.5 [V:onnxruntime:, session_state.cc:1606 VerifyEachNodeIsAssignedToAnEp]   NonMaxSuppression (/nms)
"""


@pytest.mark.parametrize("text, expected", [
    (CPU_ONLY, {"CPUExecutionProvider": 7}),
    (MIXED, {"CUDAExecutionProvider": 212, "CPUExecutionProvider": 18}),
    ("", {}),
    ("garbage\nNode(s) placed on [X]. Number of nodes: many\n", {}),
])
def test_parse_placement(text, expected):
    assert parse_placement(text) == expected


def test_note_only_when_a_gpu_provider_shares_the_graph():
    assert placement_note({"CPUExecutionProvider": 7}, "onnxruntime") == ""
    assert placement_note({"CUDAExecutionProvider": 230}, "onnxruntime-cuda") == ""
    note = placement_note(parse_placement(MIXED), "onnxruntime-cuda")
    assert "18 of 230 nodes run on the CPU provider" in note and "CUDA" in note and "\n" not in note


@ort_logs_placement
def test_capture_reads_the_real_session_log_and_leaves_stderr_alone(capfd):
    from edge.zoo import resolve_model

    with create_backend(resolve_model("digits"), "onnxruntime-cpu", options={"report_placement": True}) as backend:
        assert backend.placement == {"CPUExecutionProvider": 7}
        assert backend.notes == []
    captured = capfd.readouterr()
    assert "onnxruntime" not in captured.err  # the verbose log went to the capture, not to the user
