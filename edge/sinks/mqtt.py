"""MQTT: one message per frame, the JSON line the .jsonl sink writes, and a retained status topic.

``mqtt://[user[:password]@]host[:port]/topic?qos=1&client_id=cam1&queue=1000``, or ``mqtts://`` for TLS (port
8883 by default). Options: ``qos`` 0, 1 (default) or 2; ``client_id`` (default: one the broker assigns);
``queue`` messages held while the broker is away (default 1000); ``keepalive`` seconds (60); for mqtts:
``ca=/path/ca.pem`` trusts that CA (default: the system's), ``cert=/path/client.pem`` and ``key=/path/client.key``
present a client certificate, ``insecure=1`` accepts any broker certificate (tests only). Each frame is
published on ``topic`` as :func:`edge.sinks.jsonl.dumps_line` of its record (no newline). ``topic/status`` holds a
retained "online" while the app is connected and "offline" after a clean close, or from the broker itself
(the last will) when the app dies or its network goes. The password (used with a user name) may come from the
environment variable EDGE_MQTT_PASSWORD, which keeps it out of the process list; one in the URL works, with a warning.

Publishing never blocks the camera loop: write() turns the record into its JSON line and appends it to a
bounded buffer; a thread of this sink hands messages to paho-mqtt while connected, at most 20 awaiting the
broker's acknowledgement. The buffer counts every message not yet acknowledged; while the broker is
unreachable it fills, and beyond ``queue`` the oldest message not yet handed to the connection is dropped (a live
feed's newest results matter most) and counted. paho reconnects with a back-off from 1 s doubling to 30 s and
sends again what the broker had not acknowledged, so with QoS 1 every message that stayed inside the buffer
arrives at least once (twice where an acknowledgement was lost). close() waits up to 5 s for the buffer to drain
while connected (not at all without a connection: stopping must not hang on an absent broker); what is still
unacknowledged then counts as unconfirmed. :meth:`MqttSink.summary` reports published
(acknowledged; with QoS 0, written to the connection), dropped and unconfirmed: they add up to the frames written.

At start (the first frame) the sink connects and waits a few seconds for the broker's answer. A broker that
refuses the credentials or the client id (bad user name or password, not authorised, identifier rejected,
banned), or a certificate that the CA does not vouch for, is a one-line error: those are configuration and
never fix themselves, and a camera that runs for days publishing nothing is worse than one that does not start.
An unreachable broker (connection refused, unknown host, timeout) is a warning and the run goes on, buffering
and reconnecting: brokers restart and networks come back, and the camera's other outputs must not stop for them.
"""

import os
import sys
import threading
import time
from collections import deque
from typing import Any, Callable, Deque, Dict, Optional, Set
from urllib.parse import parse_qsl, unquote, urlsplit

import numpy as np

from edge.errors import EdgeError, MissingDependency
from edge.results import Frame
from edge.sinks.base import Sink
from edge.sinks.jsonl import dumps_line

MQTT_SCHEMES = ("mqtt://", "mqtts://")
PASSWORD_ENV = "EDGE_MQTT_PASSWORD"
DEFAULT_QUEUE = 1000
MAX_INFLIGHT = 20
RECONNECT_DELAY_S = (1, 30)
CONNECT_WAIT_S = 5.0  # at start: for the TCP/TLS connection, then again for the broker's answer
CLOSE_WAIT_S = 5.0
_OPTIONS = ("qos", "client_id", "queue", "keepalive", "ca", "cert", "key", "insecure")
# CONNACK codes that retrying never fixes: MQTT 3.1.1 (1-5 less 3, "server unavailable") and their MQTT 5
# reason codes (what paho 2.x reports): unsupported protocol, bad client id, bad user name or password,
# not authorised, banned, bad authentication method.
_PERMANENT_REFUSALS = {1: "unsupported protocol version", 2: "client id rejected",
                       4: "bad user name or password", 5: "not authorised",
                       132: "unsupported protocol version", 133: "client id rejected",
                       134: "bad user name or password", 135: "not authorised", 138: "banned",
                       140: "bad authentication method"}


def is_mqtt_spec(spec: str) -> bool:
    """Whether an --output spec is an MQTT URL."""
    return spec.lower().startswith(MQTT_SCHEMES)


def _password_from_environment() -> Optional[str]:
    """EDGE_MQTT_PASSWORD, or None when unset or empty."""
    from edge.settings import mqtt_password

    return mqtt_password()


class MqttTarget:
    """An MQTT output URL taken apart and checked: broker, topic, credentials, QoS, buffer and TLS options."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.tls = parts.scheme.lower() == "mqtts"
        try:
            port = parts.port
        except ValueError:
            raise EdgeError("the port is not a number from 1 to 65535", "write it like mqtt://host:1883/topic",
                            _redacted(url)) from None
        self.host = parts.hostname or ""
        self.port = port or (8883 if self.tls else 1883)
        self.topic = unquote(parts.path.lstrip("/"))
        self.user = unquote(parts.username) if parts.username else None
        self.password_in_url = parts.password is not None
        self.password = unquote(parts.password) if parts.password is not None else _password_from_environment()
        user = f"{self.user}@" if self.user else ""
        self.name = f"{parts.scheme.lower()}://{user}{self.host}:{self.port}/{self.topic}"
        if not self.host:
            raise EdgeError("no broker host", "write it like mqtt://host:1883/topic", self.name)
        if not self.topic or any(c in self.topic for c in "+#\0") or "#" in url:
            raise EdgeError("the topic is missing or holds a wildcard (+ or #)",
                            "write it like mqtt://host:1883/edge/camera1", self.name)
        self._read_options(dict(parse_qsl(parts.query, keep_blank_values=True)))

    def _read_options(self, query: Dict[str, str]) -> None:
        unknown = sorted(set(query) - set(_OPTIONS))
        if unknown:
            raise EdgeError(f"unknown option '{unknown[0]}'", f"use {', '.join(_OPTIONS)}", self.name)
        self.qos = self._integer(query, "qos", 1, 0, 2)
        self.queue = self._integer(query, "queue", DEFAULT_QUEUE, 1, 10 ** 7)
        self.keepalive_s = self._integer(query, "keepalive", 60, 5, 65535)
        self.client_id = query.get("client_id", "")
        self.insecure = query.get("insecure", "0").lower() in ("1", "true", "yes")
        self.ca, self.cert, self.key = (query.get(name) or None for name in ("ca", "cert", "key"))
        tls_options = [name for name in ("ca", "cert", "key", "insecure") if name in query]
        if tls_options and not self.tls:
            raise EdgeError(f"'{tls_options[0]}' is a TLS option", "use mqtts:// for TLS", self.name)
        for name, path in (("ca", self.ca), ("cert", self.cert), ("key", self.key)):
            if path and not os.path.isfile(path):
                raise EdgeError(f"the {name} file does not exist: {path}", "give the path of a PEM file", self.name)
        if self.key and not self.cert:
            raise EdgeError("key= needs cert= too", "give the client certificate with cert=", self.name)

    def _integer(self, query: Dict[str, str], name: str, default: int, low: int, high: int) -> int:
        text = query.get(name)
        if text is None:
            return default
        if not text.isdigit() or not low <= int(text) <= high:
            raise EdgeError(f"{name}={text} is not a whole number from {low} to {high}", f"fix {name}=", self.name)
        return int(text)

    def ssl_context(self) -> Optional[Any]:
        """The TLS context for mqtts (certificate files read here, so a bad one fails before the run), else None."""
        if not self.tls:
            return None
        import ssl  # here: ssl costs ~4 ms of every start-up otherwise

        try:
            context = ssl.create_default_context(cafile=self.ca)
            if self.cert:
                context.load_cert_chain(self.cert, self.key)
        except (ssl.SSLError, OSError) as exc:
            raise EdgeError(f"cannot read the TLS files ({exc})", "give PEM files for ca=, cert= and key=",
                            self.name) from None
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def _redacted(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


def _import_paho() -> Any:
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise MissingDependency("paho.mqtt", "the MQTT output (mqtt://)", "pip install 'paho-mqtt>=1.6,<3'") from None
    return mqtt


def _new_client(mqtt: Any, target: MqttTarget) -> Any:
    """A paho client for this target: paho 2.x (callback API version 2) or 1.6, which Python 3.6 has."""
    kwargs = {"client_id": target.client_id, "clean_session": True, "protocol": mqtt.MQTTv311}
    if hasattr(mqtt, "CallbackAPIVersion"):
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, **kwargs)
        client.connect_timeout = CONNECT_WAIT_S
    else:
        client = mqtt.Client(**kwargs)
        client._connect_timeout = CONNECT_WAIT_S  # paho 1.6 has no setter; 5.0 is its own default
    if target.user is not None:
        client.username_pw_set(target.user, target.password)
    context = target.ssl_context()
    if context is not None:
        client.tls_set_context(context)
        if target.insecure:
            client.tls_insecure_set(True)
    client.will_set(target.topic + "/status", "offline", qos=1, retain=True)
    client.reconnect_delay_set(*RECONNECT_DELAY_S)
    client.max_inflight_messages_set(MAX_INFLIGHT)
    return client


def _code(reason: Any) -> int:
    """A CONNACK or disconnect code as an int: paho 1.6 gives ints, paho 2.x ReasonCode objects."""
    return int(getattr(reason, "value", reason) or 0)


def _stderr_line(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _certificate_refused(exc: BaseException) -> bool:
    """Whether a connection error is the broker's certificate failing verification (configuration, not weather)."""
    import ssl

    certificate_error = getattr(ssl, "CertificateError", ())
    return (isinstance(certificate_error, type) and isinstance(exc, certificate_error)) or (
        isinstance(exc, ssl.SSLError) and getattr(exc, "reason", "") == "CERTIFICATE_VERIFY_FAILED")


class MqttSink(Sink):
    """Publishes each frame's JSON line to an MQTT broker without ever blocking the caller (see the module doc).

    url: ``mqtt://`` or ``mqtts://`` URL. report: where warnings go, one line each (default: stderr).
    Nothing connects until the first frame, so creating and closing the sink is a side-effect-free check.
    """

    needs_record = True

    def __init__(self, url: str, *, report: Optional[Callable[[str], None]] = None) -> None:
        super().__init__()
        self.target = MqttTarget(url)
        self.target.ssl_context()  # unreadable TLS files fail here, before the run
        self.name = self.target.name
        self.report = report or _stderr_line
        self._mqtt = _import_paho()
        self._client: Any = None
        self._cond = threading.Condition()
        self._pending: Deque[str] = deque()
        self._inflight: Dict[int, str] = {}  # mid -> "frame" or "status", handed to paho, not yet acknowledged
        self._acked_early: Set[int] = set()  # acknowledged before publish() returned the mid to us
        self._handing = 0  # 1 while the sink's thread is inside publish() with a message taken from the buffer
        self._frames_inflight = 0  # frames in _inflight: with _pending and _handing, what the buffer holds
        self._status_acked = 0
        self._connected = False
        self._refused: Optional[int] = None
        self._lost_at: Optional[float] = None
        self._dropped_at_loss = 0
        self._stopping = False
        self._started = False  # the start's verdict is given: later refusals are warnings
        self._shut = False
        self._pump_thread: Optional[threading.Thread] = None
        self.written = self.published = self.dropped = self.unconfirmed = 0

    def __repr__(self) -> str:
        return f"MqttSink({self.name!r})"

    @property
    def frames_in_output(self) -> Optional[int]:
        """Messages the broker acknowledged (QoS 0: written to the connection)."""
        return self.published

    def summary(self) -> Dict[str, int]:
        """published, dropped (buffer full) and unconfirmed (not acknowledged at close) messages."""
        with self._cond:
            return {"published": self.published, "dropped": self.dropped, "unconfirmed": self.unconfirmed}

    # ------------------------------------------------------------ camera thread
    def preflight(self) -> None:
        """Connect on the first frame: refused credentials raise EdgeError before any output writes it."""
        if self._client is None:
            self._start()

    def _write(self, frame: Frame, annotated: Optional[np.ndarray], record: Dict[str, Any]) -> bool:
        if self._client is None:
            self._start()
        line = dumps_line(record)
        with self._cond:
            self.written += 1
            if len(self._pending) + self._frames_inflight + self._handing >= self.target.queue:
                if self._pending:
                    self._pending.popleft()
                    self._pending.append(line)
                self.dropped += 1  # the oldest waiting message, or this one when all are with the connection
            else:
                self._pending.append(line)
            self._cond.notify_all()
        return True

    def _start(self) -> None:
        """Connect (bounded wait); a refusal that retrying cannot fix raises EdgeError, the rest warns."""
        target = self.target
        if target.password_in_url:
            self.report(f"warning: {self.name} | the password in the URL is visible in the process list; "
                        f"set it in the {PASSWORD_ENV} environment variable instead")
        client = self._client = _new_client(self._mqtt, target)
        client.on_connect, client.on_disconnect = self._on_connect, self._on_disconnect
        client.on_publish = self._on_publish
        unreachable = None
        try:
            client.connect(target.host, target.port, target.keepalive_s)
        except (OSError, ValueError) as exc:  # ValueError: ssl.CertificateError on Python 3.6
            if _certificate_refused(exc):
                self._client = None
                raise EdgeError(f"the broker's TLS certificate was refused ({exc})",
                                "give the CA that signed it with ca=/path/ca.pem (insecure=1 skips the check, for "
                                "tests only)", self.name) from None
            unreachable = str(exc) or type(exc).__name__
            client.connect_async(target.host, target.port, target.keepalive_s)  # the network thread retries
        client.loop_start()
        self._pump_thread = threading.Thread(target=self._pump, name="edge-mqtt", daemon=True)
        self._pump_thread.start()
        if unreachable is None:
            with self._cond:
                self._cond.wait_for(lambda: self._connected or self._refused is not None, CONNECT_WAIT_S)
                refused = self._refused
            if refused in _PERMANENT_REFUSALS:
                self._shut_down_client()
                raise EdgeError(f"the broker refused the connection: {_PERMANENT_REFUSALS[refused]}",
                                f"check the user name, the password ({PASSWORD_ENV} or the URL) and the broker's "
                                "access rules" if refused not in (2, 133) else "choose another client_id=", self.name)
            if not self._connected:
                unreachable = "no answer" if refused is None else f"refused: code {refused}"
        if unreachable is not None:
            with self._cond:
                if not self._connected:  # the network thread may have connected meanwhile
                    self._lost_at = time.perf_counter()
            low, high = RECONNECT_DELAY_S
            self.report(f"warning: {self.name} | cannot reach the broker ({unreachable}); buffering up to "
                        f"{target.queue} messages and reconnecting every {low}-{high} s")
        self._started = True

    # ------------------------------------------------------------ sink's thread
    def _pump(self) -> None:
        """Hand buffered messages to paho while connected, MAX_INFLIGHT at a time; never on the camera thread."""
        client, topic, qos = self._client, self.target.topic, self.target.qos
        while True:
            with self._cond:
                while not self._stopping and not (self._connected and self._pending
                                                  and len(self._inflight) < MAX_INFLIGHT):
                    self._cond.wait(0.5)
                if self._stopping:
                    return
                line = self._pending.popleft()
                self._handing = 1
            info = client.publish(topic, line, qos=qos)
            with self._cond:
                self._handing = 0
                if qos == 0 and info.rc != 0:
                    self.dropped += 1  # QoS 0 is not kept for a reconnect
                else:
                    self._track(info.mid, "frame")

    def _track(self, mid: int, kind: str) -> None:
        """Remember a message handed to paho until it is acknowledged (under the lock)."""
        if mid in self._acked_early:
            self._acked_early.discard(mid)
            self._count_ack(kind)
        else:
            self._inflight[mid] = kind
            self._frames_inflight += kind == "frame"

    def _count_ack(self, kind: str) -> None:
        if kind == "frame":
            self.published += 1
        else:
            self._status_acked += 1
        self._cond.notify_all()

    # ------------------------------------------------------------ paho's thread
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, *properties: Any) -> None:
        code = _code(reason)
        if code != 0:
            with self._cond:
                first = self._refused != code
                self._refused = code
                self._cond.notify_all()
            if first and self._started:
                self.report(f"warning: {self.name} | the broker refused the connection "
                            f"({_PERMANENT_REFUSALS.get(code, f'code {code}')}); retrying")
            return
        info = client.publish(self.target.topic + "/status", "online", qos=1, retain=True)
        with self._cond:
            self._track(info.mid, "status")
            self._connected, self._refused = True, None
            lost_at, self._lost_at = self._lost_at, None
            dropped = self.dropped - self._dropped_at_loss
            self._cond.notify_all()
        if lost_at is not None:
            self.report(f"{self.name} | connected after {time.perf_counter() - lost_at:.1f} s without the broker; "
                        f"{dropped} message{'s' if dropped != 1 else ''} dropped meanwhile (buffer of "
                        f"{self.target.queue})")

    def _on_disconnect(self, client: Any, userdata: Any, *args: Any) -> None:
        with self._cond:
            was_connected, self._connected = self._connected, False
            if self._stopping or not was_connected:
                return
            self._lost_at, self._dropped_at_loss = time.perf_counter(), self.dropped
        self.report(f"warning: {self.name} | lost the connection to the broker; buffering up to "
                    f"{self.target.queue} messages and reconnecting")

    def _on_publish(self, client: Any, userdata: Any, mid: int, *args: Any) -> None:
        with self._cond:
            kind = self._inflight.pop(mid, None)
            if kind is None:
                self._acked_early.add(mid)
            else:
                self._frames_inflight -= kind == "frame"
                self._count_ack(kind)

    # ------------------------------------------------------------ closing
    def _close(self) -> None:
        """Drain the buffer (up to CLOSE_WAIT_S), publish "offline", disconnect; count what never got through."""
        if self._client is None:
            return
        deadline = time.perf_counter() + CLOSE_WAIT_S
        with self._cond:  # no wait without a connection: a stop must not hang on a broker that is away
            self._cond.wait_for(lambda: not self._connected or not (self._pending or self._inflight or self._handing),
                                CLOSE_WAIT_S)
        if self._connected:
            info = self._client.publish(self.target.topic + "/status", "offline", qos=1, retain=True)
            with self._cond:
                acked = self._status_acked
                self._track(info.mid, "status")
                self._cond.wait_for(lambda: self._status_acked > acked, max(0.5, deadline - time.perf_counter()))
        self._shut_down_client()
        with self._cond:
            self.unconfirmed = len(self._pending) + self._handing + self._frames_inflight
            self._pending.clear()
        if self.unconfirmed:
            self.report(f"warning: {self.name} | {self.unconfirmed} message{'s' if self.unconfirmed != 1 else ''} "
                        "not acknowledged by the broker when the output closed")

    def _shut_down_client(self) -> None:
        """Stop our thread and paho's and disconnect (a clean disconnect: the broker keeps the last will unsent)."""
        with self._cond:
            if self._shut:
                return
            self._shut = self._stopping = True
            self._cond.notify_all()
        if self._pump_thread is not None:
            self._pump_thread.join(timeout=2.0)
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()
