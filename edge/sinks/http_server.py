"""The live page's HTTP server: the standard library's threading server, one daemon thread per connection.

Four paths, GET only, every other path 404 (compared whole, so ``/../etc/passwd`` is just another unknown path);
a token when the target has one (401 without it). See :mod:`edge.sinks.http` for what each path serves.
"""

import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Optional, Set
from urllib.parse import parse_qsl, urlsplit

from edge.sinks.http_page import PAGE_HTML
from edge.sinks.live import LiveFeed

_ROUTES = {"/": "_page", "/stream.mjpg": "_mjpeg", "/events": "_events", "/snapshot.jpg": "_snapshot"}
_NO_CACHE = (("Cache-Control", "no-cache, no-store, must-revalidate"), ("Pragma", "no-cache"))
# The page is self-contained: nothing may be loaded from elsewhere, and the token in its URL goes nowhere else.
_PAGE_HEADERS = (("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; "
                  "style-src 'unsafe-inline'; img-src 'self'; connect-src 'self'"),
                 ("Referrer-Policy", "no-referrer"), ("X-Content-Type-Options", "nosniff"))
_BOUNDARY = b"edgeframe"


class LiveServer(socketserver.ThreadingMixIn, HTTPServer):
    """Serves one run's :class:`~edge.sinks.live.LiveFeed` to at most MAX_CLIENTS connections at once.

    address: (host, port). target: the checked :class:`~edge.sinks.http.HttpTarget` (token, limits).
    """

    daemon_threads = True  # a viewer stalled in a send must not keep the app alive
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: Any, target: Any, feed: LiveFeed) -> None:
        self.target, self.feed = target, feed
        self._clients: Set[socket.socket] = set()
        self._clients_lock = threading.Lock()
        self.clients_served = 0
        super().__init__(address, LiveHandler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup of the address (seconds on a board with no DNS)."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def add_client(self, connection: socket.socket) -> bool:
        """Register a connection (so close_clients can end it); False when MAX_CLIENTS are connected already."""
        from edge.sinks.http import MAX_CLIENTS

        with self._clients_lock:
            if len(self._clients) >= MAX_CLIENTS:
                return False
            self._clients.add(connection)
            return True

    def remove_client(self, connection: socket.socket) -> None:
        """A connection ended."""
        with self._clients_lock:
            self._clients.discard(connection)

    def close_clients(self, grace_s: float) -> None:
        """End every open connection, after up to grace_s for viewers to take what is left (the run's last
        events), so that viewer threads blocked in a send return."""
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            with self._clients_lock:
                if not self._clients:
                    return
            time.sleep(0.02)
        with self._clients_lock:
            clients = list(self._clients)
        for connection in clients:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # gone already

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A viewer that went away mid-response is normal; anything else is a bug and keeps its traceback."""
        import sys

        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class LiveServer6(LiveServer):
    """The same on an IPv6 address (``http://[::]:8080/``)."""

    address_family = socket.AF_INET6


class LiveHandler(BaseHTTPRequestHandler):
    """One connection: the page, the MJPEG stream, the event stream or a snapshot."""

    server: LiveServer
    server_version = "edge"
    sys_version = ""

    def setup(self) -> None:
        """Sends that make no progress for SEND_TIMEOUT_S end the connection (a viewer gone without a word)."""
        from edge.sinks.http import SEND_TIMEOUT_S

        self.timeout = SEND_TIMEOUT_S
        super().setup()

    def handle(self) -> None:
        """Serve the connection when there is room for it (else 503)."""
        self.accepted = self.server.add_client(self.connection)
        try:
            super().handle()
        finally:
            if self.accepted:
                self.server.remove_client(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Quiet: the camera app's output is its own (and request lines would carry tokens)."""

    def do_GET(self) -> None:  # noqa: N802 - the name BaseHTTPRequestHandler calls
        """Route: unknown path 404, missing or wrong token 401, too many viewers 503, else the path's response."""
        parts = urlsplit(self.path)
        route = _ROUTES.get(parts.path)
        if route is None:
            self.send_error(404, "Not Found", "edge serves /, /stream.mjpg, /events and /snapshot.jpg only")
            return
        if not self.server.target.token_ok(self._token(parts.query)):
            self.send_response(401, "Unauthorized")
            self._body(b"token missing or wrong: add ?token= or an 'Authorization: Bearer' header\n", "text/plain",
                       (("WWW-Authenticate", 'Bearer realm="edge"'),))
            return
        if not self.accepted:
            self.send_error(503, "Service Unavailable", "too many viewers; try again later")
            return
        self.server.clients_served += 1
        try:
            getattr(self, route)()
        except OSError:
            self.close_connection = True  # the viewer went away or stalled too long

    def _token(self, query: str) -> Optional[str]:
        """The token given as ?token= or as an 'Authorization: Bearer' header."""
        given = dict(parse_qsl(query)).get("token")
        header = self.headers.get("Authorization", "")
        if given is None and header[:7].lower() == "bearer ":
            given = header[7:].strip()
        return given

    def _body(self, data: bytes, content_type: str, headers: Any = ()) -> None:
        """Finish a response started with send_response: headers, then ``data`` whole."""
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in tuple(headers) + _NO_CACHE:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _page(self) -> None:
        self.send_response(200)
        self._body(PAGE_HTML.encode("utf-8"), "text/html; charset=utf-8", _PAGE_HEADERS)

    def _snapshot(self) -> None:
        feed = self.server.feed
        feed.watch_images()
        try:
            item = feed.jpeg_newest(5.0)  # encoded now unless it was already
        finally:
            feed.unwatch_images()
        if item is None:
            self.send_error(503, "Service Unavailable", "no frame yet")
            return
        self.send_response(200)
        self._body(item[1], "image/jpeg")

    def _mjpeg(self) -> None:
        """Each new JPEG as one part of a multipart/x-mixed-replace response, until the viewer or the run ends."""
        from edge.sinks.http import KEEPALIVE_S

        feed = self.server.feed
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=" + _BOUNDARY.decode())
        for name, value in _NO_CACHE:
            self.send_header(name, value)
        self.end_headers()
        seen = 0
        feed.watch_images()
        try:
            while not feed.closed:
                item = feed.jpeg_after(seen, KEEPALIVE_S)
                if item is None:
                    continue
                seen, data = item
                self.wfile.write(b"--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                 % (_BOUNDARY, len(data)))
                self.wfile.write(data)
                self.wfile.write(b"\r\n")
        finally:
            feed.unwatch_images()
        self.close_connection = True

    def _events(self) -> None:
        """Each frame's JSON line as a server-sent event (id: the frame's number in this run); a viewer that fell
        behind by more than the kept lines gets a "dropped" event with the running count, then the newest."""
        from edge.sinks.http import KEEPALIVE_S

        feed = self.server.feed
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("X-Accel-Buffering", "no")
        for name, value in _NO_CACHE:
            self.send_header(name, value)
        self.end_headers()
        seen = feed.watch_lines()
        dropped, first = 0, True
        try:
            self.wfile.write(b"retry: 2000\n\n")
            while True:
                got = feed.lines_after(seen, KEEPALIVE_S)
                if got is None:
                    break
                lines, lost = got
                if not lines:
                    self.wfile.write(b": waiting for frames\n\n")
                    continue
                chunks = []
                if lost and not first:  # the first call may start a frame late: the viewer came mid-publish
                    dropped += lost
                    chunks.append(f": {dropped} events dropped (this viewer was too slow)\n"
                                  f"event: dropped\ndata: {dropped}\n\n")
                first = False
                chunks.extend(f"id: {number}\ndata: {line}\n\n" for number, line in lines)
                seen = lines[-1][0]
                self.wfile.write("".join(chunks).encode("utf-8"))
        finally:
            feed.unwatch_lines()
        self.close_connection = True
