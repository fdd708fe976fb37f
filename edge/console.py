"""The camera app's terminal: a live status line, and SIGINT/SIGTERM from the first instruction to the last.

A run stopped by a signal exits with 128 + its number, as shells report a death by that signal:
130 after Ctrl-C (SIGINT), 143 after SIGTERM (``systemctl stop``, ``kill``), and says which.

Kept apart from :mod:`edge.camera` (the command line and the run) because both are about the process and
its terminal, not about models, sources or outputs.
"""

import os
import signal
import sys
import time
from typing import Any, Optional, Tuple


def stderr_is_terminal() -> bool:
    """Whether stderr is a terminal (a live status line makes sense there)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class StatusLine:
    """A live one-line status on a terminal: FPS, frames, detections, dropped frames, at most twice a second."""

    def __init__(self, stream: Any = None, every_s: float = 0.5) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.every_s = every_s
        self._last_s = 0.0
        self._shown = False
        self._first: Optional[Tuple[float, int]] = None

    def line(self, summary: Any, fps: Optional[float]) -> str:
        """The status text for a summary in progress (fps None: not measured yet)."""
        dropped = int(getattr(summary, "dropped", 0) or 0)
        parts = [f"{summary.frames} frames"] + ([f"{fps:.1f} FPS"] if fps is not None else [])
        parts.append(f"{summary.detections} detections")
        if dropped:
            parts.append(f"{dropped} dropped")
        return ", ".join(parts) + " (Ctrl-C stops)"

    def update(self, summary: Any) -> None:
        """Redraw the line when due (called after every frame); FPS over the frames since the first update."""
        now = time.perf_counter()
        if self._shown and now - self._last_s < self.every_s:
            return
        if not self._shown and self._first is None:
            self._first = (now, summary.frames)
        since_s, since_frames = self._first
        fps = (summary.frames - since_frames) / (now - since_s) if summary.frames > since_frames else None
        self._last_s, self._shown = now, True
        self._write("\r\033[K" + self.line(summary, fps))

    def clear(self) -> None:
        """Erase the line before the summary."""
        if self._shown:
            self._write("\r\033[K")
            self._shown = False

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass  # the terminal went away: the status line is a courtesy


def signal_name(signum: Optional[int]) -> str:
    """How a stop signal is reported: "SIGTERM" (systemctl stop, kill), "Ctrl-C (SIGINT)"; None: Ctrl-C."""
    if signum is None or signum == signal.SIGINT:
        return "Ctrl-C (SIGINT)"
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def stop_exit_code(signum: Optional[int]) -> int:
    """128 + the signal number, as shells report a death by that signal: 130 for SIGINT, 143 for SIGTERM.

    systemd counts 143 as a failure unless the unit lists it in SuccessExitStatus (jetson/edge-camera.service
    does), so a `systemctl stop` ends the unit as inactive rather than failed; it never restarts a stopped unit.
    """
    return 128 + int(signal.SIGINT if signum is None else signum)


def ignore_further_interrupts() -> None:
    """From now on SIGINT/SIGTERM are ignored: the summary and the clean-up must not be cut short."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    except ValueError:  # not the main thread (embedded use)
        pass


class Signals:
    """SIGINT/SIGTERM for the whole run, from the first instruction to the last.

    The first signal during the pipeline stops it between two frames (every output keeps the same
    frames). Elsewhere a signal raises KeyboardInterrupt and is remembered: C code that swallows the
    exception (a native module's init, a probe) cannot make the run go on, because ``check()`` and
    ``attach()`` raise it again. A watchdog thread, woken through the signal wake-up fd, ends the process
    when a signal is not acknowledged within ``grace_s`` (the main thread stuck in C code that never
    returns to Python, such as opening a FIFO nobody writes to); no output file exists before the
    pipeline starts, so nothing is lost.
    """

    def __init__(self, grace_s: float = 2.0) -> None:
        self.pipeline: Any = None
        self.grace_s = grace_s
        self.requested = False
        #: the first stop signal received (signal.SIGINT, signal.SIGTERM), None before any
        self.signum: Optional[int] = None
        self._handled = 0
        self._acknowledged = 0
        self._received = 0

    def install(self) -> None:
        """Install the handlers and the watchdog (main thread only; a no-op elsewhere)."""
        try:
            signal.signal(signal.SIGINT, self.handle)
            signal.signal(signal.SIGTERM, self.handle)
        except ValueError:  # not the main thread (embedded use): keep the defaults
            return
        import threading

        try:
            read_fd, write_fd = os.pipe()
            os.set_blocking(write_fd, False)
            try:
                signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)  # novermin - 3.7+, guarded
            except TypeError:  # Python 3.6: no keyword (a full pipe warns; the watchdog reads it promptly)
                signal.set_wakeup_fd(write_fd)
        except (AttributeError, OSError, ValueError):  # Windows: no watchdog, the handlers alone
            return
        threading.Thread(target=self._watch, args=(read_fd,), name="edge-signals", daemon=True).start()

    def handle(self, signum: int, frame: Any) -> None:
        """The Python-level handler: runs in the main thread between two bytecodes."""
        if self.signum is None:
            self.signum = signum
        self._handled += 1
        pipeline = self.pipeline
        if pipeline is not None and self._handled == 1:
            pipeline.interrupt()
            self.acknowledge()
            return
        self.requested = True
        raise KeyboardInterrupt

    def acknowledge(self) -> None:
        """The main thread has taken the stop in hand (the watchdog stands down)."""
        self._acknowledged = max(self._acknowledged, self._handled)

    @property
    def name(self) -> str:
        """The first stop signal, as reported ("SIGTERM", "Ctrl-C (SIGINT)")."""
        return signal_name(self.signum)

    @property
    def exit_code(self) -> int:
        """The exit code for a run stopped by the first signal: 143 for SIGTERM, 130 for SIGINT."""
        return stop_exit_code(self.signum)

    def check(self) -> None:
        """Raise KeyboardInterrupt when a signal came and was swallowed on the way."""
        if self.requested:
            raise KeyboardInterrupt

    def attach(self, pipeline: Any) -> None:
        """Route the next signal to ``pipeline.interrupt()``; None detaches."""
        if pipeline is not None:
            self.check()
        self.pipeline = pipeline

    def _watch(self, read_fd: int) -> None:
        while True:
            try:
                signums = os.read(read_fd, 64)  # the wake-up fd carries one byte per signal: its number
            except OSError:
                return
            if not signums:
                return
            self._received += len(signums)
            deadline = time.perf_counter() + self.grace_s
            while self._acknowledged < self._received and time.perf_counter() < deadline:
                time.sleep(0.05)
            if self._acknowledged < self._received:  # stuck outside Python, or the interrupt was swallowed
                first = self.signum if self.signum is not None else signums[0]
                os.write(2, f"stopped by {signal_name(first)} while busy outside Python\n".encode())
                os._exit(stop_exit_code(first))
