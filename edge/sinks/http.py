"""A live page in any browser: ``--output http://HOST:PORT/`` serves the annotated video and the results.

Paths: ``/`` one self-contained page (the video, FPS, stage times and the latest results, live); ``/stream.mjpg``
the annotated frames as MJPEG (multipart/x-mixed-replace); ``/events`` each frame's JSON line (what a .jsonl
file gets) as server-sent events; ``/snapshot.jpg`` the newest frame. Anything else is 404. Options:
``quality`` (JPEG quality 1-100, default 80) and ``fps`` (at most this many JPEG frames a second, default 15),
e.g. ``http://127.0.0.1:8080/?quality=70&fps=10``.

Safe by default: with no host (``http://:8080/``) or a loopback one the server listens on this machine only;
``http://0.0.0.0:8080/`` (or ``@`` for every interface) listens on the network and then needs a token, taken
from the environment variable EDGE_HTTP_TOKEN (so it is not in the process list): every request must give it as
``?token=`` or an ``Authorization: Bearer`` header, or gets 401. A token set for a loopback server is
required too.

The camera thread only hands the newest frame and record to a :class:`~edge.sinks.live.LiveFeed`; viewers'
threads encode and send (see there): a stalled viewer never slows the run, and one that stays stalled for
:data:`SEND_TIMEOUT_S` is dropped. With nobody watching, the output costs the run nothing more: the pipeline draws
the overlay for it only while someone watches the video, and converts results to JSON only while someone reads
the events. Constructing the sink checks the URL, the token and that the port is free
(binding and releasing it at once); the server starts on the first frame and stops when the sink closes, which
also ends every viewer's response.
"""

import threading
from typing import Any, Callable, Dict, Optional
from urllib.parse import parse_qsl, urlsplit

import numpy as np

from edge.errors import EdgeError
from edge.results import Frame
from edge.sinks.base import Sink
from edge.sinks.live import LiveFeed, probe_bind, stderr_line, url_number

TOKEN_ENV = "EDGE_HTTP_TOKEN"
DEFAULT_PORT = 8080
DEFAULT_QUALITY = 80
DEFAULT_FPS = 15.0
MAX_CLIENTS = 16  # connections served at once; more get 503
SEND_TIMEOUT_S = 30.0  # a viewer whose socket takes nothing for this long is dropped
CLOSE_GRACE_S = 1.0  # at the end of a run, for viewers to take the last frames and events before they are cut off
KEEPALIVE_S = 10.0  # an event stream with no frame for this long gets a comment, so proxies keep it open
_OPTIONS = ("quality", "fps")


def is_loopback(host: str) -> bool:
    """Whether a bind address is reachable from this machine only."""
    import ipaddress  # here: not every run needs it at start-up

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: whatever it resolves to, assume the network


class HttpTarget:
    """A live-page URL taken apart and checked: bind address, port, JPEG quality and frame-rate cap, token."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        where = url
        try:
            port = parts.port
        except ValueError:
            raise EdgeError("the port is not a number from 1 to 65535", "write it like http://127.0.0.1:8080/",
                            where) from None
        host = parts.hostname or ""
        if "@" in parts.netloc and not host and not parts.username and parts.password is None:
            host = "0.0.0.0"  # jetson-utils' spelling of "every interface": http://@:8080/
        elif parts.username or parts.password is not None:
            raise EdgeError("a user or password in the URL", "give the token in the EDGE_HTTP_TOKEN environment "
                            "variable instead", where)
        self.host = host or "127.0.0.1"
        self.port = DEFAULT_PORT if port is None else port
        if parts.path not in ("", "/"):
            raise EdgeError(f"the live page is served at '/', not at '{parts.path}'",
                            f"write it like http://{self.host}:{self.port}/", where)
        self.loopback = is_loopback(self.host)
        self.name = f"http://{_host_in_url(self.host)}:{self.port}/"
        self._read_options(dict(parse_qsl(parts.query, keep_blank_values=True)), parts.query)
        from edge.settings import http_token

        self.token = http_token()
        if not self.loopback and not self.token:
            raise EdgeError(f"the live page on {self.host} would be open to the network without a token",
                            f"set a token in the {TOKEN_ENV} environment variable (viewers then open "
                            f"{self.name}?token=...), or serve on this machine only with http://127.0.0.1:"
                            f"{self.port}/ and watch through ssh -L {self.port}:127.0.0.1:{self.port}", self.name)

    def _read_options(self, query: Dict[str, str], raw: str) -> None:
        if "token" in query:
            raise EdgeError("a token in the output URL is visible in the process list",
                            f"set it in the {TOKEN_ENV} environment variable instead", self.name)
        unknown = sorted(set(query) - set(_OPTIONS))
        if unknown:
            raise EdgeError(f"unknown option '{unknown[0]}'", f"use {' or '.join(_OPTIONS)}, e.g. "
                            f"{self.name}?quality=80&fps=15", self.name)
        self.quality = url_number(query, "quality", DEFAULT_QUALITY, 1, 100, self.name, whole=True)
        self.fps = url_number(query, "fps", DEFAULT_FPS, 0.1, 120, self.name, whole=False)

    def check_port(self) -> None:
        """Fail now, with one line, when the address cannot be bound (port in use, no such address); releases it."""
        try:
            probe_bind(self.host, self.port)
        except OSError as exc:
            raise _bind_error(exc, self) from None

    def token_ok(self, given: Optional[str]) -> bool:
        """Whether a request's token matches (constant time); True when no token is set."""
        import hmac

        if not self.token:
            return True
        return given is not None and hmac.compare_digest(given.encode("utf-8"), self.token.encode("utf-8"))


def _host_in_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _bind_error(exc: OSError, target: HttpTarget) -> EdgeError:
    import errno

    if exc.errno == errno.EADDRINUSE:
        return EdgeError(f"port {target.port} is already in use", f"choose another port, e.g. "
                         f"http://{_host_in_url(target.host)}:{target.port + 1}/, or stop what uses it", target.name)
    if exc.errno == errno.EACCES:
        return EdgeError(f"no permission to listen on port {target.port}", "use a port above 1023", target.name)
    return EdgeError(f"cannot listen on {target.host}:{target.port} ({exc.strerror or exc})",
                     "give an address of this machine, 127.0.0.1 or 0.0.0.0", target.name)


def _server_class(host: str) -> Any:
    from edge.sinks.http_server import LiveServer, LiveServer6

    return LiveServer6 if ":" in host else LiveServer


class HttpSink(Sink):
    """Serves the live page, MJPEG, server-sent events and snapshots of the run (see the module doc).

    url: ``http://[host]:port/[?quality=80&fps=15]``. report: where the start line goes (default: stderr).
    """

    def __init__(self, url: str, *, report: Optional[Callable[[str], None]] = None) -> None:
        super().__init__()
        self.target = HttpTarget(url)
        self.target.check_port()
        self.name = self.target.name
        self.report = report or stderr_line
        self.feed = LiveFeed(self.target.quality, self.target.fps)
        self._server: Any = None
        self._thread: Optional[threading.Thread] = None
        self._asked = False  # whether needs_annotated asked for this frame's pixels

    def __repr__(self) -> str:
        return f"HttpSink({self.name!r})"

    @property
    def needs_annotated(self) -> bool:  # type: ignore[override]
        """True while someone watches the video or asks for a snapshot, for a frame an encoding will use (at most
        ``fps`` a second): nobody watching, nothing drawn for it; a stalled viewer costs no drawing either."""
        self._asked = self.feed.wants_image()
        return self._asked

    @property
    def needs_record(self) -> bool:  # type: ignore[override]
        """True while someone reads /events: only then are results converted to JSON for this output."""
        return self.feed.line_viewers > 0

    def preflight(self) -> None:
        """Start serving before the first frame is written (a port taken meanwhile is a one-line error)."""
        if self._server is None:
            self._start()

    def _start(self) -> None:
        target = self.target
        try:
            self._server = _server_class(target.host)((target.host, target.port), target, self.feed)
        except OSError as exc:
            raise _bind_error(exc, target) from None
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="edge-http", daemon=True)
        self._thread.start()
        self.report(start_line(target))

    def _write(self, frame: Frame, annotated: Optional[np.ndarray], record: Dict[str, Any]) -> bool:
        if self._server is None:
            self._start()
        if annotated is None and self._asked:
            annotated = frame.image  # the pipeline has nothing to draw with: the plain frame
        self.feed.publish(annotated, record)
        return True

    def summary(self) -> Optional[Dict[str, int]]:
        """Requests served (the page, streams, snapshots) and JPEG frames encoded (once per frame for all viewers);
        None when nobody came."""
        if self._server is None or not self._server.clients_served:
            return None
        return {"requests": self._server.clients_served, "jpeg_frames": self.feed.encoded}

    def _close(self) -> None:
        self.feed.close()
        if self._server is None:
            return
        self._server.shutdown()
        self._server.close_clients(CLOSE_GRACE_S)
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2.0)


def start_line(target: HttpTarget) -> str:
    """The line printed when the server starts: where to look, and for loopback how to look from a laptop."""
    if target.loopback:
        return (f"live view: {target.name} (this machine only; from a laptop: ssh -L {target.port}:127.0.0.1:"
                f"{target.port} user@board, then open http://localhost:{target.port}/)")
    return (f"live view: {target.name} on the network, token required: open http://<this board>:{target.port}/"
            f"?token=<{TOKEN_ENV}> (or send 'Authorization: Bearer <token>')")
