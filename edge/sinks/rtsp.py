"""RTSP out for recorders and players: ``--output rtsp://@:8554/live`` serves the annotated video as H.264.

GStreamer's RTSP server (gst-rtsp-server) through PyGObject. ``@`` (as jetson-utils writes it) listens on every
interface, a host on that address only, no host (``rtsp://:8554/live``) on this machine only. Options:
``encoder`` (default: the first present of nvv4l2h264enc, Jetson's hardware encoder, then x264enc, then
openh264enc; the choice is printed with the reasons, like backends), ``bitrate`` in kbit/s (default 4000) and
``fps`` (at most this many frames a second, default 30). Players open ``rtsp://<board>:8554/live``.

The camera thread only hands the newest frame to a :class:`~edge.sinks.live.LiveFeed`; a thread of this sink
pushes frames to the encoder while at least one client watches (a shared media, one encoder for all), through
a one-frame leaky queue, so a slow encoder drops frames instead of slowing the run. Python without the GObject
bindings (a virtual environment, usually) gets a one-line error with what to install. Constructing the sink
checks the URL, the library, the encoder and the port (binding and releasing it); the server starts on the
first frame, when the frame size is known, and stops when the sink closes.
"""

import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import parse_qsl, urlsplit

import numpy as np

from edge.errors import EdgeError
from edge.results import Frame
from edge.sinks.base import Sink, _pixels
from edge.sinks.live import LiveFeed, probe_bind, stderr_line, url_number

DEFAULT_PORT = 8554
DEFAULT_BITRATE_KBPS = 4000
DEFAULT_FPS = 30.0
APT_PACKAGES = "python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-ugly"
#: H.264 encoders in order of preference: (element, what it is, launch text after a BGR appsrc up to the payloader)
ENCODERS: Tuple[Tuple[str, str, str], ...] = (
    ("nvv4l2h264enc", "Jetson's hardware encoder",
     "videoconvert ! video/x-raw,format=BGRx ! nvvidconv ! video/x-raw(memory:NVMM),format=I420 ! "
     "nvv4l2h264enc bitrate={bps} insert-sps-pps=true idrinterval={gop} ! h264parse"),
    ("x264enc", "software, gstreamer1.0-plugins-ugly",
     "videoconvert ! video/x-raw,format=I420 ! x264enc tune=zerolatency speed-preset=ultrafast "
     "bitrate={kbps} key-int-max={gop} ! video/x-h264,profile=baseline"),
    ("openh264enc", "software, gstreamer1.0-plugins-bad",
     "videoconvert ! video/x-raw,format=I420 ! openh264enc bitrate={bps} gop-size={gop} complexity=low ! "
     "h264parse"),
)
_OPTIONS = ("encoder", "bitrate", "fps")


def import_gstreamer() -> Tuple[Any, Any, Any]:
    """(Gst, GstRtspServer, GLib), initialised; EdgeError with the packages to install when they are missing."""
    where = "--output rtsp://"
    try:
        import gi
    except ImportError:
        raise EdgeError(f"the RTSP output needs GStreamer's RTSP server through PyGObject ('gi'), which this Python "
                        f"({sys.executable}) cannot import", f"run edge with the system's python3 after "
                        f"sudo apt-get install {APT_PACKAGES} (or pip install PyGObject, plus those GIR packages)",
                        where) from None
    try:
        gi.require_version("Gst", "1.0")
        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import GLib, Gst, GstRtspServer
    except (ValueError, ImportError) as exc:
        raise EdgeError(f"the RTSP output needs GStreamer's RTSP server library ({exc})",
                        f"sudo apt-get install {APT_PACKAGES}", where) from None
    Gst.init(None)
    return Gst, GstRtspServer, GLib


def choose_encoder(asked: str, present: Callable[[str], bool]) -> Tuple[str, str, List[str]]:
    """The H.264 encoder to use: (element, launch text, one line per candidate saying chosen or why skipped).

    asked: "auto" or an element name from ENCODERS. present: whether GStreamer has an element of that name.
    """
    lines: List[str] = []
    for name, what, launch in ENCODERS:
        if asked not in ("auto", name):
            continue
        if present(name):
            lines.append(f"rtsp encoder {name}: chosen ({what})")
            return name, launch, lines
        lines.append(f"rtsp encoder {name}: skipped, this GStreamer has no {name} ({what})")
    names = ", ".join(name for name, _, _ in ENCODERS)
    raise EdgeError(f"no H.264 encoder for the RTSP output ({'; '.join(lines)})",
                    f"sudo apt-get install gstreamer1.0-plugins-ugly (x264enc), or choose one of {names} with "
                    "?encoder=", "--output rtsp://")


class RtspTarget:
    """An RTSP output URL taken apart and checked: bind address, port, mount path, encoder, bitrate, fps."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            raise EdgeError("the port is not a number from 1 to 65535", "write it like rtsp://@:8554/live",
                            url) from None
        if parts.scheme.lower() == "rtsps":
            raise EdgeError("the RTSP output serves plain rtsp:// only", "write it like rtsp://@:8554/live", url)
        every = "@" in parts.netloc and not parts.hostname
        self.host = "0.0.0.0" if every else (parts.hostname or "127.0.0.1")
        self.port = DEFAULT_PORT if port is None else port
        self.path = parts.path.rstrip("/")
        shown = "@" if every else self.host
        self.name = f"rtsp://{shown}:{self.port}{self.path}"
        if not self.path or any(c in self.path for c in " ?#"):
            raise EdgeError("no mount path", f"write it like rtsp://{shown}:{self.port}/live", self.name)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        unknown = sorted(set(query) - set(_OPTIONS))
        if unknown:
            raise EdgeError(f"unknown option '{unknown[0]}'", f"use {', '.join(_OPTIONS)}", self.name)
        self.encoder = query.get("encoder", "auto")
        known = ("auto",) + tuple(name for name, _, _ in ENCODERS)
        if self.encoder not in known:
            raise EdgeError(f"unknown encoder '{self.encoder}'", f"use one of {', '.join(known)}", self.name)
        self.bitrate_kbps = url_number(query, "bitrate", DEFAULT_BITRATE_KBPS, 100, 100000, self.name)
        self.fps = float(url_number(query, "fps", int(DEFAULT_FPS), 1, 120, self.name))

    def play_url(self) -> str:
        """What a player opens (the board's address in place of 0.0.0.0)."""
        host = "<this board>" if self.host == "0.0.0.0" else self.host
        return f"rtsp://{host}:{self.port}{self.path}"

    def check_port(self) -> None:
        """Fail now, with one line, when the port cannot be bound; releases it at once."""
        try:
            probe_bind(self.host, self.port)
        except OSError as exc:
            raise EdgeError(f"cannot listen on {self.host}:{self.port} ({exc.strerror or exc})",
                            "choose another port, or stop what uses it", self.name) from None


class RtspSink(Sink):
    """Serves the annotated frames over RTSP as H.264 (see the module doc).

    url: ``rtsp://[@|host]:port/path[?encoder=&bitrate=&fps=]``. report: where start lines go (default: stderr).
    """

    needs_annotated = True
    needs_record = False

    def __init__(self, url: str, *, report: Optional[Callable[[str], None]] = None) -> None:
        super().__init__()
        self.target = RtspTarget(url)
        self.name = self.target.name
        self.report = report or stderr_line
        self._gst, self._rtsp, self._glib = import_gstreamer()
        self.encoder, self._encode, self.encoder_lines = choose_encoder(
            self.target.encoder, lambda name: self._gst.ElementFactory.find(name) is not None)
        self.target.check_port()
        self.feed = LiveFeed(fps_cap=self.target.fps)
        self._sources: List[Any] = []  # the appsrc of the shared media while clients watch
        self._lock = threading.Lock()
        self._loop: Any = None
        self._server: Any = None
        self._context: Any = None
        self._source_id = 0
        self._size_wh = (0, 0)
        self._threads: List[threading.Thread] = []
        self.frames_sent = 0
        self.clients = 0

    def __repr__(self) -> str:
        return f"RtspSink({self.name!r})"

    def launch(self, size_wh: Tuple[int, int]) -> str:
        """The media's gst-launch description for frames of this size."""
        target = self.target
        gop = max(1, int(round(target.fps)))
        encode = self._encode.format(kbps=target.bitrate_kbps, bps=target.bitrate_kbps * 1000, gop=gop)
        caps = f"video/x-raw,format=BGR,width={size_wh[0]},height={size_wh[1]},framerate={gop}/1"
        return (f"( appsrc name=src is-live=true format=time do-timestamp=true caps={caps} ! "
                f"queue max-size-buffers=1 leaky=downstream ! {encode} ! rtph264pay name=pay0 pt=96 "
                "config-interval=1 )")

    def _start(self, size_wh: Tuple[int, int]) -> None:
        """Start the server for frames of this size, its main loop and the thread that feeds the encoder."""
        server = self._rtsp.RTSPServer()
        server.set_address(self.target.host)
        server.set_service(str(self.target.port))
        factory = self._rtsp.RTSPMediaFactory()
        factory.set_launch(self.launch(size_wh))
        factory.set_shared(True)
        factory.connect("media-configure", self._on_media)
        server.get_mount_points().add_factory(self.target.path, factory)
        context = self._glib.MainContext.new()
        self._source_id = server.attach(context)
        if not self._source_id:
            raise EdgeError(f"cannot listen on {self.target.host}:{self.target.port}",
                            "choose another port, or stop what uses it", self.name)
        self._server, self._context, self._size_wh = server, context, size_wh
        self._loop = self._glib.MainLoop.new(context, False)
        self._threads = [threading.Thread(target=self._loop.run, name="edge-rtsp-loop", daemon=True),
                         threading.Thread(target=self._push, name="edge-rtsp-push", daemon=True)]
        for thread in self._threads:
            thread.start()
        for line in self.encoder_lines:
            self.report(line)
        self.report(f"rtsp: serving {size_wh[0]}x{size_wh[1]} H.264 at {self.target.play_url()} "
                    f"(at most {self.target.fps:g} FPS, {self.target.bitrate_kbps} kbit/s)")

    def _on_media(self, factory: Any, media: Any) -> None:
        """A client opened the stream (the first of a shared media): feed its appsrc until it is unprepared."""
        source = media.get_element().get_by_name("src")
        with self._lock:
            self._sources.append(source)
            self.clients += 1
        media.connect("unprepared", lambda *args: self._forget(source))

    def _forget(self, source: Any) -> None:
        with self._lock:
            if source in self._sources:
                self._sources.remove(source)

    def _push(self) -> None:
        """Hand the newest frame to every watching media's appsrc, at most fps a second (never on the camera
        thread)."""
        seen, interval_s, next_s = 0, 1.0 / self.target.fps, 0.0
        while True:
            item = self.feed.frame_after(seen, 1.0)
            if item is None:
                if self.feed.closed:
                    return
                continue
            seen, image = item
            with self._lock:
                sources = list(self._sources)
            if not sources or (image.shape[1], image.shape[0]) != self._size_wh:
                continue  # nobody watches, or a frame of another size than the stream's (the caps are fixed)
            wait_s = next_s - time.monotonic()
            if wait_s > 0:
                time.sleep(wait_s)
            next_s = time.monotonic() + interval_s
            data = np.ascontiguousarray(image).tobytes()
            for source in sources:
                source.emit("push-buffer", self._gst.Buffer.new_wrapped(data))
            self.frames_sent += 1

    def _write(self, frame: Frame, annotated: Optional[np.ndarray], record: Dict[str, Any]) -> bool:
        image = _pixels(frame, annotated)
        if self._loop is None:
            self._start((image.shape[1], image.shape[0]))
        self.feed.publish(image, record)
        return True

    def summary(self) -> Optional[Dict[str, int]]:
        """Frames handed to the encoder and clients that opened the stream; None when nobody watched."""
        return {"frames_sent": self.frames_sent, "clients": self.clients} if self.clients else None

    def _close(self) -> None:
        self.feed.close()
        if self._loop is None:
            return
        with self._lock:
            sources, self._sources = list(self._sources), []
        for source in sources:
            source.emit("end-of-stream")
        server_source = self._context.find_source_by_id(self._source_id)
        if server_source is not None:
            server_source.destroy()  # stops listening
        self._loop.quit()
        for thread in self._threads:
            thread.join(timeout=2.0)
