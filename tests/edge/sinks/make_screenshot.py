"""The README's picture of the live page, made by headless Chromium from a running demo:// app.

    python tests/edge/sinks/make_screenshot.py [docs/live_page.png]

Also the helpers the live-output tests share: :class:`LiveApp` runs the camera app as a subprocess with an
http:// output on a free port, :func:`chromium_screenshot` and :func:`chromium_dom` look at its page.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[3]
WINDOW_WH = (1100, 500)  # the page's video fills most of it at this size
CHROMIUM_WAIT_MS = 8000  # headless Chromium's --timeout; it returns sooner, once the page has settled


def free_port() -> int:
    """A TCP port that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:port."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


class LiveApp:
    """``python -m edge.camera --headless --source demo:// --output http://HOST:PORT/ [args]`` as a subprocess.

    host: the bind address in the URL. args: more camera flags. env: extra environment variables (EDGE_HTTP_TOKEN
    is dropped unless given here). Use as a context manager: started and serving on entry, stopped on exit.
    """

    def __init__(self, *args: str, host: str = "127.0.0.1", port: Optional[int] = None, options: str = "",
                 env: Optional[Dict[str, str]] = None, source: str = "demo://", python: str = sys.executable) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        environment = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "EDGE_HTTP_TOKEN")}
        environment.update(env or {}, PYTHONPATH=str(ROOT))
        self.command: List[str] = [python, "-m", "edge.camera", "--headless", "--source", source,
                                   "--output", f"http://{host}:{self.port}/{options}", *args]
        self.environment = environment
        self.process: Optional[subprocess.Popen] = None
        self.stdout = self.stderr = ""
        self.stopped = False

    def start(self, timeout_s: float = 90.0) -> "LiveApp":
        """Start the app and wait until its server accepts connections (the first frame was processed)."""
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        universal_newlines=True, env=self.environment, cwd=str(ROOT))
        deadline = time.monotonic() + timeout_s
        while not listening(self.port):
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"the camera app exited with {self.process.returncode}: {self.stderr}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the camera app did not serve within {timeout_s} s: {self.stderr}")
            time.sleep(0.05)
        return self

    def stop(self, timeout_s: float = 60.0, interrupt: bool = True) -> int:
        """Ctrl-C (the app stops between two frames, closing every output) and wait; returns the exit code.

        interrupt: False waits for the app to end by itself (--max-frames)."""
        process = self.process
        if process is None:
            return -1
        if self.stopped:
            return int(process.returncode)
        self.stopped = True
        if interrupt and process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            out, err = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        self.stdout, self.stderr = self.stdout + (out or ""), self.stderr + (err or "")
        return int(process.returncode)

    def __enter__(self) -> "LiveApp":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def chromium() -> Optional[str]:
    """Debian's chromium (or another Chromium/Chrome on PATH), or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _chromium_run(arguments: Sequence[str], timeout_s: float = 60.0) -> subprocess.CompletedProcess:
    """Run headless Chromium once, in a profile folder of its own. The page's MJPEG response never ends, so the
    page never finishes loading: --timeout stops it after CHROMIUM_WAIT_MS (events and frames shown by then)."""
    with tempfile.TemporaryDirectory() as profile:
        command = [chromium() or "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                   "--no-first-run", f"--user-data-dir={profile}", f"--timeout={CHROMIUM_WAIT_MS}",
                   "--window-size={},{}".format(*WINDOW_WH), *arguments]
        return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                              timeout=timeout_s)


def chromium_screenshot(url: str, path: Path) -> Path:
    """A PNG of the page at WINDOW_WH."""
    done = _chromium_run([f"--screenshot={path}", url])
    if not path.is_file():
        raise RuntimeError(f"chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}")
    return path


def chromium_dom(url: str, until: str = "", attempts: int = 3) -> str:
    """The page's DOM as serialised HTML after its scripts ran for a while; with ``until``, looked at again (up to
    ``attempts`` times) until it holds that text (the first events may come after Chromium's first look)."""
    dom = ""
    for _ in range(attempts):
        dom = _chromium_run(["--dump-dom", url]).stdout
        if until in dom:
            break
    return dom


def shrink_png(source: Path, target: Path, scale: float = 0.8, step: int = 8) -> Path:
    """A smaller copy for the README (< 200 KB): scaled down, colours in steps of ``step`` (PNG compresses that)."""
    import cv2

    image = cv2.imread(str(source))
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    posterised = (small // step) * step + step // 2
    if not cv2.imwrite(str(target), posterised, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise RuntimeError(f"cannot write {target}")
    return target


def main(argv: Sequence[str]) -> int:
    """Run the demo app, take the page's screenshot, write the README's copy."""
    target = Path(argv[0]) if argv else ROOT / "docs" / "live_page.png"
    if chromium() is None:
        print("no chromium on PATH (apt-get install chromium)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as folder, LiveApp() as app:
        time.sleep(1.0)  # a second of frames, so the page's frame rate has something to average
        shot = chromium_screenshot(app.url, Path(folder) / "page.png")
        shrink_png(shot, target)
    print(f"wrote {target} ({target.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
