"""``python -m edge.camera`` end to end, in a subprocess, as a user runs it."""

import json
import os
import re
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
    return subprocess.run([sys.executable, "-m", "edge.camera", *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True,
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
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, env=env,
                               cwd=ROOT)
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
    assert f"summary: {written} frames" in stderr  # video, JSON lines and summary agree (issue 9 item 4)
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
    # issue 9: a duplicated output, a window without --headless, csi:// off a Jetson, an existing file
    (lambda d: ["--output", str(d / "a.jsonl"), "--output", str(d / "a.jsonl")], "given twice"),
    (lambda d: ["--output", str(d / "a.mp4"), "--output", str(d / ".." / d.name / "a.mp4")], "given twice"),
    (lambda d: ["--source", "csi://0", "--output", str(d / "csi.jsonl")], "csi://"),
    (lambda d: ["--output", _existing(d)], "already exists. Fix: add --overwrite"),
    (lambda d: ["--precision", "int8", "--calib-images", str(d / "nonexistent")], "calibration image folder"),
]


def _existing(tmp_path: Path) -> str:
    path = tmp_path / "existing.jsonl"
    path.write_text('{"frame": 0}\n')
    return str(path)


@pytest.mark.parametrize("make_args, expected", BAD_INPUTS)
def test_bad_input_is_one_line_with_a_fix(tmp_path, make_args, expected):
    args = make_args(tmp_path)
    before = sorted(tmp_path.iterdir())
    done = run_camera("--headless", "--max-frames", "1", "--quiet", *args, timeout_s=60)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], done.stderr
    assert "Fix:" in errors[0]
    assert "Traceback" not in done.stderr
    assert sorted(tmp_path.iterdir()) == before  # a failed run creates no output file


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


# -- issue 9: failed runs keep files, full disks, signals, status -----------------------------


@pytest.mark.parametrize("make_args", [
    lambda d: ["--threshold", "2"],
    lambda d: ["--model", str((d / "zero.onnx").resolve())] if (d / "zero.onnx").touch() is None else [],
    lambda d: ["--source", str(d / "unreadable.mp4")] if (d / "unreadable.mp4").write_bytes(b"x" * 99) else [],
    lambda d: ["--source", "csi://0"],
])
@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_a_failed_run_leaves_the_existing_output_untouched(tmp_path, make_args, overwrite):
    out = tmp_path / "keep.jsonl"
    out.write_text('{"frame": 0}\n')
    done = run_camera("--headless", "--quiet", *overwrite, "--output", str(out), *make_args(tmp_path),
                      timeout_s=60)
    assert done.returncode == 2, done.stderr
    assert out.read_text() == '{"frame": 0}\n'


def test_display_output_without_headless_does_not_blame_headless(tmp_path):
    done = run_camera("--source", "demo://", "--output", "display", "--quiet", timeout_s=60)
    assert done.returncode == 2 and "--headless is set" not in done.stderr and "no display" in done.stderr


@pytest.fixture()
def small_disk(mount_tmpfs):
    return mount_tmpfs("size=3m", "small")


def test_full_disk_exits_1_with_one_line_and_outputs_that_agree_with_the_summary(small_disk):
    video, lines = small_disk / "out.mp4", small_disk / "out.jsonl"
    done = run_camera("--source", "demo://?width=320&height=240", "--headless", "--max-frames", "3000",
                      "--output", str(video), "--output", str(lines), "--quiet")
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Fix:" in errors[0] and "Traceback" not in done.stderr
    records = [json.loads(line) for line in lines.read_text().splitlines()]
    assert 0 < len(records) < 3000
    assert frame_count(video) == len(records)
    assert f"{video}: {len(records)} frames, {lines}: {len(records)} frames" in done.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_json_lines_to_a_full_stdout_is_one_line_exit_1(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("DISPLAY", None)
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "edge.camera", "--source", "demo://", "--headless",
                               "--max-frames", "5", "--output", "-", "--quiet"], stdout=full,
                              stderr=subprocess.PIPE, universal_newlines=True, timeout=120, env=env, cwd=ROOT)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
    assert len([line for line in done.stderr.splitlines() if line.startswith("error:")]) == 1


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_fifo_nobody_writes_to_still_stops_on_a_signal(tmp_path, signum):
    fifo = tmp_path / "silent.mp4"
    os.mkfifo(fifo)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("DISPLAY", None)
    process = subprocess.Popen([sys.executable, "-m", "edge.camera", "--source", str(fifo), "--headless",
                                "--output", str(tmp_path / "out.jsonl"), "--quiet"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, env=env,
                               cwd=ROOT)
    time.sleep(3)  # let it reach the blocking open (no progress to wait for: nothing is ever written)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 128 + signum, stderr  # 130 for SIGINT, 143 for SIGTERM
    assert "stopped" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "out.jsonl").exists()


def _interrupted_before_edge_ran(stderr: str) -> bool:
    """Whether a KeyboardInterrupt traceback stops before edge.camera installed its handlers: in the
    interpreter's start-up, runpy, the import of the edge package or camera.py's lines above the handlers."""
    if not stderr.rstrip().endswith("KeyboardInterrupt"):
        return False
    source = (ROOT / "edge" / "camera.py").read_text().splitlines()
    handler_line = next(i for i, line in enumerate(source, 1) if "signal.signal(signal.SIGINT, _exit_now)" in line)
    for path, line in re.findall(r'File "([^"]+)", line (\d+)', stderr):
        if path.endswith("edge/camera.py") and int(line) >= handler_line:
            return False
        if "/edge/" in path and not path.endswith(("edge/__init__.py", "edge/camera.py")):
            return False
    return True


@pytest.mark.parametrize("signum, delay_s", [(signal.SIGINT, 0.0), (signal.SIGINT, 0.2), (signal.SIGINT, 0.5),
                                             (signal.SIGINT, 1.0), (signal.SIGTERM, 0.3), (signal.SIGTERM, 1.0)])
def test_a_signal_at_any_moment_of_start_up_stops_the_run(tmp_path, signum, delay_s):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("DISPLAY", None)
    process = subprocess.Popen([sys.executable, "-m", "edge.camera", "--source", "demo://", "--headless",
                                "--output", str(tmp_path / "out.jsonl"), "--quiet"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, env=env,
                               cwd=ROOT)
    time.sleep(delay_s)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=30)
    if process.returncode == 1 and signum == signal.SIGINT and _interrupted_before_edge_ran(stderr):
        return  # Python's own Ctrl-C handler, before edge.camera's first lines (a loaded machine's slow start)
    # 128 + signum (130 SIGINT, 143 SIGTERM); -signum: the signal landed before Python ran any of edge
    assert process.returncode in (128 + signum, -signum), stderr
    if process.returncode == 128 + signal.SIGTERM:
        assert "stopped by SIGTERM" in stderr and "Ctrl-C" not in stderr, stderr


def test_in_process_signals_are_remembered_when_swallowed():
    from edge.console import Signals as _Signals

    class FakePipeline:
        interrupted = 0

        def interrupt(self) -> None:
            self.interrupted += 1

    signals = _Signals()
    with pytest.raises(KeyboardInterrupt):
        signals.handle(signal.SIGINT, None)  # e.g. during a native import that clears the exception
    with pytest.raises(KeyboardInterrupt):
        signals.attach(FakePipeline())  # so the run never starts
    running, pipeline = _Signals(), FakePipeline()
    running.attach(pipeline)
    running.handle(signal.SIGTERM, None)  # first: stop between frames
    assert pipeline.interrupted == 1
    with pytest.raises(KeyboardInterrupt):
        running.handle(signal.SIGTERM, None)  # second: now


def test_status_line_shows_frames_fps_detections_and_dropped():
    import io

    from edge.console import StatusLine
    from edge.pipeline import RunSummary

    stream = io.StringIO()
    status = StatusLine(stream, every_s=0.0)
    status.update(RunSummary(frames=1, detections=1))
    assert "FPS" not in stream.getvalue()  # one frame measures no rate
    status.update(RunSummary(frames=10, detections=7, dropped=2))
    status.clear()
    text = stream.getvalue()
    assert "10 frames" in text and " FPS" in text and "7 detections" in text and "2 dropped" in text
    assert text.endswith("\r\033[K")


def test_no_status_line_when_stderr_is_not_a_terminal_and_a_hint_when_nothing_was_found():
    done = run_camera("--source", "demo://?frames=5", "--headless", "--threshold", "0.9999", "--output", "none")
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr
    assert "no detections in any frame" in done.stderr and "within about 2 m" in done.stderr


@pytest.mark.parametrize("suffix, survives", [(".mkv", True), (".avi", True), (".mp4", False)])
def test_recording_killed_with_sigkill(tmp_path, suffix, survives):
    """Power loss, approximated by SIGKILL mid-recording: .mkv and .avi keep the frames written so far,
    .mp4 does not open (its index is written at the end) — and the app says so when it starts one."""
    import signal
    import time

    video = tmp_path / f"rec{suffix}"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("DISPLAY", None)
    process = subprocess.Popen([sys.executable, "-m", "edge.camera", "--source", "demo://?width=320&height=240",
                                "--headless", "--output", str(video)], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, universal_newlines=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not video.exists() or video.stat().st_size < 200_000):
            time.sleep(0.05)  # until well over a hundred frames are on disk
        assert video.exists() and video.stat().st_size >= 200_000, "the recording did not start"
        process.send_signal(signal.SIGKILL)
        stderr = process.communicate(timeout=30)[1]
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    if survives:
        assert frame_count(video) >= 10 and "cannot be opened if the run is killed" not in stderr
    else:
        capture = cv2.VideoCapture(str(video))
        assert not capture.isOpened() or not capture.read()[0]
        assert f"note: {video.name} cannot be opened if the run is killed" in stderr and "rec.mkv" in stderr


def test_segmented_mp4_recording_killed_with_sigkill_loses_at_most_the_last_segment(tmp_path):
    """--segment-seconds: every segment but the one being written when SIGKILL lands opens and holds
    exactly its share of frames, and the frames run on from one segment to the next."""
    import signal
    import time

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("DISPLAY", None)
    pattern = str(tmp_path / "rec_%05d.mp4")
    process = subprocess.Popen([sys.executable, "-m", "edge.camera", "--source", "demo://?width=320&height=240&fps=20",
                                "--headless", "--output", str(tmp_path / "rec.mp4"), "--segment-seconds", "0.5"],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               universal_newlines=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not os.path.exists(pattern % 4):
            time.sleep(0.02)  # until four segments are finished and a fifth is being written
        assert os.path.exists(pattern % 4), "the recording did not reach its fifth segment"
        process.send_signal(signal.SIGKILL)
        stderr = process.communicate(timeout=30)[1]
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    assert "recording in 0.5 s segments" in stderr and "cannot be opened if the run is killed" not in stderr
    segments = sorted(tmp_path.glob("rec_*.mp4"))
    assert len(segments) >= 5
    for segment in segments[:-1]:
        assert frame_count(segment) == 10, segment.name  # 0.5 s at 20 fps


class _OneShotMjpegCamera:
    """An IP camera on 127.0.0.1 that serves one MJPEG stream of ``frames`` JPEGs, then is gone for good."""

    def __init__(self, frames: int) -> None:
        import http.server
        import threading

        jpeg = (ROOT / "edge" / "data" / "samples" / "astronaut.jpg").read_bytes()
        camera = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server name
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                for _ in range(frames):
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                     + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
                camera.served += 1
                threading.Thread(target=camera.unplug, daemon=True).start()  # the camera goes away

            def log_message(self, *args) -> None:
                pass

        self.served = 0
        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/video.mjpg"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def unplug(self) -> None:
        self.server.shutdown()
        self.server.server_close()  # later connections are refused


def test_a_stream_lost_for_good_exits_3_with_the_summary_and_one_line(tmp_path):
    """issue 11: a source gone for good is a failure (exit 3), so systemd's Restart=on-failure restarts the app."""
    from edge.sources.base import EXIT_SOURCE_LOST

    camera = _OneShotMjpegCamera(frames=20)
    summary_json = tmp_path / "summary.json"
    done = run_camera("--source", camera.url + "?reconnect=2", "--headless", "--output", "-",
                      "--summary-json", str(summary_json))
    assert camera.served == 1
    assert done.returncode == EXIT_SOURCE_LOST == 3, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "stream lost after 2 reconnect attempts" in errors[0], done.stderr
    assert "Fix:" in errors[0] and "Traceback" not in done.stderr
    summary = json.loads(summary_json.read_text())
    assert summary["ended"] == "stream lost after 2 reconnect attempts"
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert 1 <= summary["frames"] == len(records) <= 20
    assert all(len(r["result"]["detections"]) == 1 for r in records)  # the astronaut's face, in every frame


def test_sigterm_is_reported_as_sigterm_and_exits_143(tmp_path):
    """systemctl stop sends SIGTERM: the summary and the exit code (128 + 15) say SIGTERM, not Ctrl-C."""
    from edge.console import stop_exit_code

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("DISPLAY", None)
    process = subprocess.Popen([sys.executable, "-m", "edge.camera", "--source", "demo://?realtime=1",
                                "--headless", "--output", str(tmp_path / "out.jsonl"), "--output", "-"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, env=env,
                               cwd=ROOT)
    lines = 0
    deadline = time.monotonic() + 60
    while lines < 5 and time.monotonic() < deadline:  # wait for real progress, not for a fixed time
        if process.stdout.readline():
            lines += 1
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == stop_exit_code(signal.SIGTERM) == 143, stderr
    assert "ended: stopped by SIGTERM" in stderr and "Ctrl-C" not in stderr.split("summary:")[1]
    written = lines + len(stdout.splitlines())
    assert f"summary: {written} frames" in stderr and "Traceback" not in stderr
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == written


@pytest.mark.parametrize(("signum", "name", "code"), [(signal.SIGINT, "Ctrl-C (SIGINT)", 130),
                                                      (signal.SIGTERM, "SIGTERM", 143)])
def test_signal_names_and_exit_codes(signum, name, code):
    from edge.console import Signals as _Signals

    signals = _Signals()
    assert (signals.name, signals.exit_code) == ("Ctrl-C (SIGINT)", 130)  # a KeyboardInterrupt with no signal
    with pytest.raises(KeyboardInterrupt):
        signals.handle(signum, None)
    with pytest.raises(KeyboardInterrupt):
        signals.handle(signal.SIGINT if signum == signal.SIGTERM else signal.SIGTERM, None)  # the first one counts
    assert (signals.name, signals.exit_code) == (name, code)


def test_an_import_cut_short_by_a_stop_signal_is_the_stop_not_a_traceback(monkeypatch, capsys):
    """A SIGINT landing inside numpy's import surfaces as ImportError (seen under emulation): exit 130, one line."""
    import edge.camera as camera

    def interrupted_run(args, say, signals):
        signals.signum, signals.requested = signal.SIGINT, True  # what the handler records before it raises
        raise ImportError('PyCapsule_Import could not import module "datetime"')  # what the import turns it into

    monkeypatch.setattr(camera, "run", interrupted_run)
    monkeypatch.setattr(camera.Signals, "install", lambda self: None)
    assert camera.main(["--source", "demo://", "--headless"]) == 130
    assert "stopped by Ctrl-C" in capsys.readouterr().err

    def broken_run(args, say, signals):
        raise ImportError("a real missing module")

    monkeypatch.setattr(camera, "run", broken_run)
    with pytest.raises(ImportError, match="a real missing module"):
        camera.main(["--source", "demo://", "--headless"])
