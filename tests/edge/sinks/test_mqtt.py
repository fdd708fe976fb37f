"""The MQTT output against a real broker (Debian's mosquitto, started here on 127.0.0.1) and a real subscriber."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import pytest

from edge.errors import EdgeError, MissingDependency

ROOT = Path(__file__).resolve().parents[3]
TOPIC = "edge/test"


# ------------------------------------------------------------------ helpers
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition: Callable[[], Any], timeout_s: float = 30.0, what: str = "") -> Any:
    """Poll until condition() is truthy; fail with ``what`` after timeout_s (a bound, not a timing assert)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what or condition}")


class Broker:
    """A mosquitto process on 127.0.0.1:port with persistence (so a restart keeps queued messages)."""

    def __init__(self, folder: Path, port: int, password_file: Optional[Path] = None,
                 tls: Optional[Dict[str, Path]] = None) -> None:
        self.folder, self.port = folder, port
        self.config = folder / "mosquitto.conf"
        lines = [f"listener {port} 127.0.0.1", f"allow_anonymous {'false' if password_file else 'true'}",
                 "persistence true", f"persistence_location {folder}/", "user root", "log_type error",
                 "log_type warning", f"log_dest file {folder}/mosquitto.log"]
        if password_file:
            lines.append(f"password_file {password_file}")
        for name, path in (tls or {}).items():
            lines.append(f"{name} {path}")
        self.config.write_text("\n".join(lines) + "\n")
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> "Broker":
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        wait_until(self._listening, 20, f"mosquitto on port {self.port}")
        return self

    def _listening(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"mosquitto exited: {self.process.stderr.read().decode(errors='replace')}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM: mosquitto saves its persistence file (messages queued for offline subscribers) and exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


class Subscriber:
    """A paho client with a durable session (clean_session False, QoS 1) that records what it receives."""

    def __init__(self, port: int, topics: List[str], client_id: str, **credentials: str) -> None:
        kwargs = {"client_id": client_id, "clean_session": False}
        if hasattr(mqtt, "CallbackAPIVersion"):
            self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, **kwargs)
        else:
            self.client = mqtt.Client(**kwargs)
        if credentials:
            self.client.username_pw_set(credentials["user"], credentials["password"])
        self.lock = threading.Lock()
        self.messages: List[tuple] = []  # (topic, payload text, retained)
        self.topics = topics
        self.client.on_connect = lambda client, *rest: client.subscribe([(topic, 1) for topic in self.topics])
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 2)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        with self.lock:
            self.messages.append((message.topic, message.payload.decode(), bool(message.retain)))

    def payloads(self, topic: str = TOPIC) -> List[str]:
        with self.lock:
            return [payload for name, payload, _ in self.messages if name == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def unique_frames(payloads: List[str]) -> List[str]:
    """Payloads with repeats removed (QoS 1 is at-least-once: a lost acknowledgement sends a message twice)."""
    seen, kept = set(), []
    for payload in payloads:
        if payload not in seen:
            seen.add(payload)
            kept.append(payload)
    return kept


def run_camera(*args: str, env: Optional[Dict[str, str]] = None, **popen: Any) -> subprocess.Popen:
    environment = {key: value for key, value in os.environ.items() if key not in ("DISPLAY", "EDGE_MQTT_PASSWORD")}
    environment.update(env or {}, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "edge.camera", "--headless", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, env=environment, cwd=ROOT, **popen)


def finish(process: subprocess.Popen, timeout_s: float = 120) -> subprocess.CompletedProcess:
    try:
        out, err = process.communicate(timeout=timeout_s)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
needs_broker = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (bash .ci/broker.sh as root "
                                  "installs Debian's package)")
mqtt = pytest.importorskip("paho.mqtt.client", reason="pip install paho-mqtt")


@pytest.fixture()
def broker(tmp_path: Path):
    server = Broker(tmp_path, free_port()).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def subscriber(broker):
    client = Subscriber(broker.port, [TOPIC, TOPIC + "/status"], "edge-test-subscriber")
    wait_until(lambda: client.client.is_connected(), 20, "the subscriber to connect")
    try:
        yield client
    finally:
        client.close()


# ------------------------------------------------------------------ URL checks (no broker)
@pytest.mark.parametrize("url, expected", [
    ("mqtt://broker/cams/1", {"host": "broker", "port": 1883, "topic": "cams/1", "qos": 1, "queue": 1000}),
    ("mqtts://u@broker:9999/t?qos=0&queue=5&client_id=cam", {"port": 9999, "user": "u", "qos": 0, "queue": 5,
                                                               "client_id": "cam", "tls": True}),
    ("mqtts://broker/t?insecure=1", {"port": 8883, "insecure": True}),
    ("MQTT://u:p%40ss@broker/t", {"password": "p@ss", "password_in_url": True, "name": "mqtt://u@broker:1883/t"}),
    ("mqtt://broker/t?qos=3", "qos=3 is not a whole number from 0 to 2"),
    ("mqtt://broker/t?queue=0", "queue=0 is not a whole number"),
    ("mqtt://broker/t?color=red", "unknown option 'color'"),
    ("mqtt://broker/", "the topic is missing"),
    ("mqtt://broker/cams/#", "holds a wildcard"),
    ("mqtt://broker/cams/+/boxes", "holds a wildcard"),
    ("mqtt:///t", "no broker host"),
    ("mqtt://broker:99999/t", "the port is not a number"),
    ("mqtt://broker/t?ca=/etc/hostname", "'ca' is a TLS option. Fix: use mqtts://"),
    ("mqtts://broker/t?ca=/no/such.pem", "the ca file does not exist"),
    ("mqtts://broker/t?key=/etc/hostname", "key= needs cert= too"),
    ("mqtts://broker/t?ca=/etc/hostname", "cannot read the TLS files"),
])
def test_url_options_and_their_errors(url, expected, monkeypatch):
    from edge.sinks.mqtt import MqttSink

    monkeypatch.delenv("EDGE_MQTT_PASSWORD", raising=False)
    if isinstance(expected, str):
        with pytest.raises(EdgeError, match=expected.replace("(", r"\(").replace("?", r"\?")) as caught:
            MqttSink(url)
        assert "p%40ss" not in str(caught.value) and "\n" not in str(caught.value)
        return
    with MqttSink(url) as sink:
        for name, value in expected.items():
            holder = sink if name == "name" else sink.target
            assert getattr(holder, name if name != "queue" else "queue") == value, name
        assert sink.summary() == {"published": 0, "dropped": 0, "unconfirmed": 0}  # never connected


def test_password_comes_from_the_environment_unless_the_url_has_one(monkeypatch):
    from edge.sinks.mqtt import MqttTarget

    monkeypatch.setenv("EDGE_MQTT_PASSWORD", "from-env")
    assert MqttTarget("mqtt://u@h/t").password == "from-env"
    assert MqttTarget("mqtt://u:in-url@h/t").password == "in-url"


def test_open_sinks_makes_an_mqtt_sink_and_connects_nowhere():
    from edge.sinks import MqttSink, close_sinks, open_sinks

    sinks = open_sinks([f"mqtt://127.0.0.1:{free_port()}/{TOPIC}"], headless=True, fps=None)
    assert [type(sink) for sink in sinks] == [MqttSink]
    close_sinks(sinks)  # nothing was started: no thread, no wait
    assert sinks[0]._client is None


def test_missing_paho_names_the_pip_line(monkeypatch):
    from edge.sinks.mqtt import MqttSink

    monkeypatch.setitem(sys.modules, "paho.mqtt.client", None)
    with pytest.raises(MissingDependency, match="pip install 'paho-mqtt"):
        MqttSink("mqtt://broker/t")


# ------------------------------------------------------------------ against a real broker
@needs_broker
def test_messages_equal_the_json_lines_and_status_is_retained(tmp_path, broker, subscriber):
    lines_path = tmp_path / "out.jsonl"
    done = finish(run_camera("--source", "demo://?frames=25", "--output", str(lines_path), "--output",
                             f"mqtt://127.0.0.1:{broker.port}/{TOPIC}?client_id=edge-camera"))
    assert done.returncode == 0, done.stderr
    lines = lines_path.read_text().splitlines()
    assert len(lines) == 25
    wait_until(lambda: len(subscriber.payloads()) >= 25, 20, "25 messages")
    assert subscriber.payloads() == lines  # the same JSON, in order, once each
    assert f"mqtt://127.0.0.1:{broker.port}/{TOPIC}: 25 frames" in done.stderr
    assert "warning" not in done.stderr
    wait_until(lambda: subscriber.payloads(TOPIC + "/status")[-1:] == ["offline"], 20, "offline")
    assert subscriber.payloads(TOPIC + "/status") == ["online", "offline"]
    late = Subscriber(broker.port, [TOPIC + "/status"], "edge-test-late")  # a retained message reaches newcomers
    try:
        wait_until(lambda: late.messages, 20, "the retained status")
        assert late.messages == [(TOPIC + "/status", "offline", True)]
    finally:
        late.close()


@needs_broker
def test_last_will_says_offline_when_the_app_is_killed(broker, subscriber):
    app = run_camera("--source", "demo://?realtime=1&fps=20", "--output", f"mqtt://127.0.0.1:{broker.port}/{TOPIC}",
                     "--quiet")
    try:
        wait_until(lambda: len(subscriber.payloads()) >= 3, 120, "the first messages")
        assert subscriber.payloads(TOPIC + "/status") == ["online"]
        app.send_signal(signal.SIGKILL)
        app.wait(timeout=20)
    finally:
        finish(app)
    wait_until(lambda: subscriber.payloads(TOPIC + "/status")[-1:] == ["offline"], 30, "the last will")
    assert subscriber.payloads(TOPIC + "/status") == ["online", "offline"]


@needs_broker
def test_broker_restart_the_run_goes_on_and_drops_are_counted_exactly(tmp_path, broker, subscriber, face_model):
    from edge.pipeline import Pipeline
    from edge.sinks import JsonLinesSink, MqttSink
    from edge.sources import open_source

    notes: List[str] = []
    jsonl = JsonLinesSink(tmp_path / "out.jsonl")
    sink = MqttSink(f"mqtt://127.0.0.1:{broker.port}/{TOPIC}?queue=5", report=notes.append)
    with open_source("demo://?realtime=1&fps=25") as source:
        pipeline = Pipeline(face_model, source, [jsonl, sink])
        runner = threading.Thread(target=pipeline.run, daemon=True)
        runner.start()
        try:
            wait_until(lambda: len(subscriber.payloads()) >= 5, 120, "the first messages")
            broker.stop()
            stopped_at = jsonl.lines_written
            wait_until(lambda: jsonl.lines_written >= stopped_at + 20, 120, "20 frames without the broker")
            broker.start()
            restarted_at = jsonl.lines_written
            wait_until(lambda: sink.published >= restarted_at + 10, 120, "publishing to go on after the restart")
        finally:
            pipeline.stop()
            runner.join(timeout=60)
    assert not runner.is_alive()
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    counts = sink.summary()
    assert counts["published"] + counts["dropped"] + counts["unconfirmed"] == len(lines) == sink.written
    assert counts["unconfirmed"] == 0 and counts["dropped"] >= 20 - 5
    wait_until(lambda: len(unique_frames(subscriber.payloads())) >= counts["published"], 30, "every message")
    received = unique_frames(subscriber.payloads())
    assert len(received) == counts["published"]
    assert set(received) <= set(lines)
    assert received == [line for line in lines if line in set(received)]  # in order
    assert any("lost the connection" in note for note in notes), notes
    during = [int(m.group(1)) for m in map(re.compile(r"(\d+) messages dropped meanwhile").search, notes) if m]
    assert len(during) == 1 and 0 < during[0] <= counts["dropped"], notes  # the buffer may still be full just after


@needs_broker
def test_writes_never_wait_for_the_network(broker, subscriber):
    """With paho stuck inside publish(), write() still returns at once: the buffer fills, the oldest waiting
    messages are dropped and counted, and what was kept arrives once paho moves again."""
    from edge.sinks import FrameRecord, MqttSink

    notes: List[str] = []
    sink = MqttSink(f"mqtt://127.0.0.1:{broker.port}/{TOPIC}?queue=3", report=notes.append)
    sink.preflight()  # connects
    entered, release = threading.Event(), threading.Event()
    publish = sink._client.publish

    def stuck_publish(topic: str, payload: Any = None, qos: int = 0, retain: bool = False) -> Any:
        if topic == TOPIC:
            entered.set()
            release.wait(60)
        return publish(topic, payload, qos=qos, retain=retain)

    sink._client.publish = stuck_publish
    records = [FrameRecord(None, frame=index, timestamp_s=index / 10) for index in range(8)]
    try:
        sink.write(None, None, records[0])
        wait_until(entered.is_set, 20, "the sink's thread to take the first message")
        writer = threading.Thread(target=lambda: [sink.write(None, None, record) for record in records[1:]])
        writer.start()
        writer.join(timeout=60)
        assert not writer.is_alive(), "write() waited for the network"
        assert sink.dropped == 5  # frames 1-5: the oldest waiting while 0 is being handed over and 6, 7 wait
    finally:
        release.set()
        sink.close()
    assert sink.summary() == {"published": 3, "dropped": 5, "unconfirmed": 0}
    assert notes == []
    wait_until(lambda: len(subscriber.payloads()) >= 3, 20, "three messages")
    assert [json.loads(payload)["frame"] for payload in subscriber.payloads()] == [0, 6, 7]


@needs_broker
@pytest.mark.parametrize("how, env, expect_ok", [
    ("right password from the environment", {"EDGE_MQTT_PASSWORD": "s3cret"}, True),
    ("right password in the URL", {}, True),
    ("wrong password", {"EDGE_MQTT_PASSWORD": "wrong"}, False),
    ("no password", {}, False),
])
def test_credentials(tmp_path, how, env, expect_ok):
    passwords = tmp_path / "passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "edge", "s3cret"], check=True)
    server = Broker(tmp_path, free_port(), password_file=passwords).start()
    try:
        user = "edge:s3cret" if "in the URL" in how else "edge"
        done = finish(run_camera("--source", "demo://?frames=3", "--quiet", "--output",
                                 f"mqtt://{user}@127.0.0.1:{server.port}/{TOPIC}", env=env))
    finally:
        server.stop()
    if expect_ok:
        assert done.returncode == 0, done.stderr
        assert f"mqtt://edge@127.0.0.1:{server.port}/{TOPIC}: 3 frames" in done.stderr
        warned = "the password in the URL is visible in the process list" in done.stderr
        assert warned == ("in the URL" in how)
    else:
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().count("\n") == 0, done.stderr  # one line
        assert "the broker refused the connection: " in done.stderr
        assert "not authorised" in done.stderr or "bad user name or password" in done.stderr
        assert "s3cret" not in done.stderr


@needs_broker
def test_unreachable_broker_warns_and_the_run_goes_on(tmp_path):
    port = free_port()  # nothing listens there
    lines_path = tmp_path / "out.jsonl"
    done = finish(run_camera("--source", "demo://?frames=4", "--quiet", "--output", str(lines_path),
                             "--output", f"mqtt://127.0.0.1:{port}/{TOPIC}?queue=3"))
    assert done.returncode == 0, done.stderr
    assert len(lines_path.read_text().splitlines()) == 4
    assert f"mqtt://127.0.0.1:{port}/{TOPIC} | cannot reach the broker" in done.stderr
    assert "buffering up to 3 messages" in done.stderr
    assert f"mqtt://127.0.0.1:{port}/{TOPIC}: 0 frames" in done.stderr
    assert "3 messages not acknowledged" in done.stderr  # 4 frames, a buffer of 3: one dropped, three unconfirmed


def make_certificates(folder: Path) -> Dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1 / localhost, made with the openssl command."""
    paths = {name: folder / f"{name}.pem" for name in ("ca", "ca_key", "server", "server_key")}
    extensions = folder / "san.cnf"
    extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=edge test CA",
            "-keyout", str(paths["ca_key"]), "-out", str(paths["ca"]))
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", str(paths["server_key"]),
            "-out", str(folder / "server.csr"))
    openssl("x509", "-req", "-in", str(folder / "server.csr"), "-CA", str(paths["ca"]), "-CAkey",
            str(paths["ca_key"]), "-CAcreateserial", "-days", "2", "-extfile", str(extensions),
            "-out", str(paths["server"]))
    return paths


@needs_broker
@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make test certificates")
@pytest.mark.parametrize("query, expect_ok", [("ca={ca}", True), ("insecure=1", True), ("", False)])
def test_tls(tmp_path, query, expect_ok):
    certificates = make_certificates(tmp_path)
    server = Broker(tmp_path, free_port(), tls={"cafile": certificates["ca"], "certfile": certificates["server"],
                                                 "keyfile": certificates["server_key"]}).start()
    try:
        done = finish(run_camera("--source", "demo://?frames=3", "--quiet", "--output",
                                 f"mqtts://localhost:{server.port}/{TOPIC}?" + query.format(ca=certificates["ca"])))
    finally:
        server.stop()
    if expect_ok:
        assert done.returncode == 0, done.stderr
        assert f"mqtts://localhost:{server.port}/{TOPIC}: 3 frames" in done.stderr
    else:  # the system's CAs do not know ours
        assert done.returncode == 2 and done.stderr.strip().count("\n") == 0, done.stderr
        assert "the broker's TLS certificate was refused" in done.stderr
