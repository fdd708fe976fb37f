"""``python -m edge.camera`` end to end, in a subprocess, as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_camera(*args: str, timeout_s: float = 120, **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("DISPLAY", None)
    return subprocess.run([sys.executable, "-m", "edge.camera", *args], capture_output=True, text=True,
                          timeout=timeout_s, env=env, cwd=kwargs.get("cwd", ROOT))


def frame_count(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), path
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def box_iou(a, b) -> float:
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_demo_run_writes_video_and_json_lines(tmp_path):
    video = tmp_path / "out.mp4"
    done = run_camera("--source", "demo://", "--headless", "--max-frames", "100", "--output", str(video),
                      "--output", "-")
    assert done.returncode == 0, done.stderr
    assert frame_count(video) == 100
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["frame"] for r in records] == list(range(100))
    assert {"capture", "preprocess", "infer", "decode"} <= set(records[0]["timings_ms"])
    in_view = [r for r in records if r["truth"]["faces_xyxy"]]
    assert len(in_view) >= 60 and len(in_view) < len(records)  # the face leaves the frame for a while
    found = [r for r in in_view if len(r["result"]["detections"]) == 1
             and box_iou(r["result"]["detections"][0]["box_xyxy"], r["truth"]["faces_xyxy"][0]) >= 0.5]
    assert len(found) >= 0.9 * len(in_view), f"{len(found)} of {len(in_view)} frames with the face in view"
    assert "summary: 100 frames" in done.stderr and "p50 ms" in done.stderr


def test_video_file_source_delivers_every_frame_in_order(tmp_path):
    source = tmp_path / "numbers.avi"
    writer = cv2.VideoWriter(str(source), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for i in range(23):
        frame = np.full((120, 160, 3), (i * 10) % 256, np.uint8)
        writer.write(frame)
    writer.release()
    done = run_camera("--source", str(source), "--headless", "--output", "-", "--quiet")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["frame"] for r in records] == list(range(23))
    assert "ended: end of file" in done.stderr or "ended: end of input" in done.stderr


def test_sigint_leaves_a_valid_video_and_prints_the_summary(tmp_path):
    video = tmp_path / "interrupted.mp4"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("DISPLAY", None)
    process = subprocess.Popen([sys.executable, "-m", "edge.camera", "--source", "demo://?realtime=1",
                                "--headless", "--output", str(video), "--output", "-", "--quiet"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    lines = 0
    deadline = time.monotonic() + 60
    while lines < 15 and time.monotonic() < deadline:  # wait for real progress, not for a fixed time
        if process.stdout.readline():
            lines += 1
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    written = lines + len(stdout.splitlines())
    assert "summary:" in stderr and "interrupted" in stderr
    assert frame_count(video) == written
    assert "Traceback" not in stderr


def _truncated(tmp_path: Path) -> str:
    from edge.zoo import resolve_model

    path = tmp_path / "truncated.onnx"
    path.write_bytes(resolve_model(None).read_bytes()[:5000])
    return str(path)


def _bare(tmp_path: Path) -> str:
    from tiny_models import make_colour_classifier

    return str(make_colour_classifier(tmp_path / "bare.onnx", embed=False))


def _bad_video(tmp_path: Path) -> str:
    path = tmp_path / "broken.mp4"
    path.write_bytes(os.urandom(4096))
    return str(path)


BAD_INPUTS = [
    (lambda d: ["--model", str(d / "missing.onnx")], "model file not found"),
    (lambda d: ["--model", _truncated(d)], "not a readable ONNX model"),
    (lambda d: ["--model", _bare(d)], "no complete edge config (missing: task"),
    (lambda d: ["--source", "ftp://camera"], "unknown source scheme"),
    (lambda d: ["--source", "99"], "no camera at index 99"),
    (lambda d: ["--source", _bad_video(d)], "cannot"),
    (lambda d: ["--backend", "onnxruntime-tensorrt"], "cannot run here"),
    (lambda d: ["--backend", "tensorflow"], "unknown backend"),
    (lambda d: ["--output", str(d / "no" / "such" / "dir" / "out.mp4")], "mkdir"),
    (lambda d: ["--output", "out.xyz"], "output"),
    (lambda d: ["--max-frames", "0"], "--max-frames"),
    (lambda d: ["--model", "digits", "--track"], "--track | --track follows detected objects"),
]


@pytest.mark.parametrize("make_args, expected", BAD_INPUTS)
def test_bad_input_is_one_line_with_a_fix(tmp_path, make_args, expected):
    done = run_camera("--headless", "--max-frames", "1", "--quiet", *make_args(tmp_path), timeout_s=60)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], done.stderr
    assert "Fix:" in errors[0]
    assert "Traceback" not in done.stderr


def test_list_cameras_and_backends():
    cameras = run_camera("--list-cameras")
    assert cameras.returncode == 0
    backends = run_camera("--list-backends")
    assert backends.returncode == 0 and "onnxruntime-cpu" in backends.stderr and "available" in backends.stderr


def test_track_gives_persistent_ids_in_json_lines_and_a_track_stage():
    done = run_camera("--source", "demo://?frames=60", "--headless", "--track", "--output", "-", "--quiet")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    detections = [d for r in records for d in r["result"]["detections"]]
    assert len(detections) >= 55  # the face is in view for all 60 frames
    assert {d["track_id"] for d in detections} == {1}
    assert all("track" in r["timings_ms"] for r in records)
    assert any(line.split()[:1] == ["track"] for line in done.stderr.splitlines())  # summary row


def test_list_models_shows_the_zoo_with_task_and_input_size():
    done = run_camera("--list-models")
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line.split()[1:3] for line in done.stderr.splitlines()[1:]}
    assert rows["face_detection_short_range"] == ["detect", "128x128"]
    assert rows["digits"] == ["classify", "8x8"]
    assert done.stderr.splitlines()[0].split()[:3] == ["name", "task", "input"]
