"""The console as it runs in `sotto receive`: live events read from the database
(so writes by any process show), filtered by role; notifications by webhook
(HMAC-signed) and e-mail, sent once even with two consoles, never carrying a
location or audio."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from console_support import PASSWORD, loc, make_device

from host_tools.receiver.console import ConsoleConfig, NotifyConfig
from host_tools.receiver.console.server import RunningConsole, start_console
from host_tools.receiver.ingest import Receiver
from host_tools.registry import Registry
from sotto_cli.cli import main

SECRET = b"a webhook secret of some length"


def wait_for(cond: Any, what: str, timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class EventStream:
    """A logged-in /api/events stream read line by line on a thread."""

    def __init__(self, url: str, name: str) -> None:
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        conn.request(
            "POST",
            "/api/login",
            json.dumps({"name": name, "password": PASSWORD}),
            {"Content-Type": "application/json"},
        )
        resp = conn.getresponse()
        cookie = resp.getheader("set-cookie", "").split(";")[0]
        resp.read()
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        self.conn.request("GET", "/api/events", headers={"Cookie": cookie})
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200 and self.resp.getheader("content-type").startswith("text/event-stream")
        self.events: list[tuple[str, dict[str, Any]]] = []
        threading.Thread(target=self._read, daemon=True).start()
        wait_for(lambda: self.kinds("hello"), "the stream's hello")

    def _read(self) -> None:
        kind = None
        try:
            for raw in self.resp:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind:
                    self.events.append((kind, json.loads(line[6:])))
        except (OSError, ValueError, AttributeError):
            pass  # the test closed the connection

    def kinds(self, kind: str) -> list[dict[str, Any]]:
        return [d for k, d in self.events if k == kind]

    def close(self) -> None:
        if self.conn.sock is not None:  # wake the reading thread at once
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        self.conn.close()


def new_alert(db: Path, name: bytes = b"SOTTO-77", duress: bool = False) -> None:
    """An alert written by an ingest of its own (as another process would)."""
    dev = make_device(name)
    with Registry(db) as reg:
        reg.add(dev.kid, dev.public_key, officer="K. Jones")
    with Receiver(db, clock=lambda: 1_790_000_500) as rx:
        rx.ingest([dev.alert_start(loc=loc(3))] + ([dev.duress(loc(4))] if duress else []))


@pytest.fixture
def console(centre: dict[str, Any]) -> Iterator[RunningConsole]:
    running = start_console(centre["db"], ConsoleConfig(port=0, poll_interval_s=0.05))
    yield running
    running.stop()


def test_events_come_from_the_database_and_follow_the_role(
    console: RunningConsole, centre: dict[str, Any]
) -> None:
    assert console.url.startswith("http://127.0.0.1:")
    operator, auditor = EventStream(console.url, "olga"), EventStream(console.url, "aud")
    try:
        new_alert(centre["db"], duress=True)
        (alert,) = wait_for(lambda: operator.kinds("alert"), "the alert event")
        assert (alert["alert"], alert["device"], alert["officer"]) == ("A2", "SOTTO-77", "K. Jones")
        wait_for(lambda: operator.kinds("duress"), "the duress event")
        assert main(["alerts", "ack", "A2", "--operator", "night-cli", "--db", str(centre["db"])]) == 0
        state = wait_for(lambda: [e for e in operator.kinds("audit") if e["action"] == "acknowledge"], "ack")
        assert state[0]["state"] is True and state[0]["role"] == "cli"
        wait_for(lambda: [e for e in auditor.kinds("audit") if e["action"] == "acknowledge"], "auditor's")
        assert auditor.kinds("alert") == [] and auditor.kinds("frame") == []  # no alert traffic
        for kind, data in operator.events:
            assert "lat" not in json.dumps(data), (kind, data)
    finally:
        operator.close()
        auditor.close()


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    received: list[tuple[dict[str, str], bytes]] = []
    handler = type("Hook", (_Hook,), {"received": received})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/sotto", received
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def smtp() -> Iterator[tuple[int, list[Any]]]:
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    got: list[Any] = []

    class Keep(Message):
        def handle_message(self, message: Any) -> None:
            got.append(message)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctl = Controller(Keep(), hostname="127.0.0.1", port=port)
    ctl.start()
    yield port, got
    ctl.stop()


def test_notifications_by_webhook_and_mail_carry_no_location(
    centre: dict[str, Any], webhook: Any, smtp: Any
) -> None:
    url, hooks = webhook
    port, mails = smtp
    notify = NotifyConfig(
        webhook_url=url,
        webhook_secret=SECRET,
        smtp_host="127.0.0.1",
        smtp_port=port,
        mail_from="centre@example.org",
        mail_to=("duty@example.org",),
    )
    consoles = [
        start_console(
            centre["db"],
            ConsoleConfig(
                port=0, poll_interval_s=0.05, notify=notify, public_url="https://console.example.org"
            ),
        )
        for _ in range(2)
    ]  # two consoles on one database: each notification once
    try:
        time.sleep(0.3)  # both feeds have taken their marks
        new_alert(centre["db"], duress=True)
        wait_for(lambda: len(hooks) >= 2 and len(mails) >= 2, "two webhooks and two mails")
        time.sleep(0.5)  # anything sent twice would have arrived by now
    finally:
        for c in consoles:
            c.stop()
    bodies = [json.loads(b) for _, b in hooks]
    assert sorted((b["event"], b["alert"]) for b in bodies) == [("alert", "A2"), ("duress", "A2")]
    for headers, body in hooks:
        expected = hmac.new(SECRET, headers["x-sotto-timestamp"].encode() + b"." + body, hashlib.sha256)
        assert headers["x-sotto-signature"] == "sha256=" + expected.hexdigest()
        assert abs(int(headers["x-sotto-timestamp"]) - time.time()) < 60
        assert b"lat" not in body and b"51." not in body and b"K. Jones" not in body
    assert bodies[0]["console"] == "https://console.example.org/#/alerts/A2"
    subjects = sorted(m["Subject"] for m in mails)
    assert subjects == ["Sotto: DURESS A2 (SOTTO-77)", "Sotto: new alert A2 (SOTTO-77)"]
    for m in mails:
        text = m.get_payload()
        assert "https://console.example.org/#/alerts/A2" in text and "51." not in text


def test_receive_serves_the_console_on_its_own_port(tmp_path: Path) -> None:
    """`sotto receive --console-port 0`: the second line says where; plain HTTP only on loopback."""
    import subprocess
    import sys

    db = tmp_path / "r.db"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sotto_cli",
            "receive",
            "--db",
            str(db),
            "--port",
            "0",
            "--console-port",
            "0",
            "-q",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        first, second = proc.stdout.readline(), proc.stdout.readline()  # type: ignore[union-attr]
        assert first.startswith("listening on http://127.0.0.1:") and second.startswith("console on http://")
        parts = urlsplit(second.split()[2])
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
        conn.request("GET", "/api/alerts")
        assert conn.getresponse().status == 401
        assert parts.port != urlsplit(first.split()[2]).port
    finally:
        proc.terminate()
        assert proc.wait(15) == 0
    assert main(["receive", "--db", str(db), "--console-port", "0", "--console-host", "0.0.0.0"]) == 2
