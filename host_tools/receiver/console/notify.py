"""Outgoing notifications: a new alert, duress, a device gone silent, to a webhook
(JSON, HMAC-SHA256 signed) and/or by e-mail (SMTP). They never carry a location
or audio, nor the officer's name: an id, a device, a time and a link to the
console, where the operator logs in and the access is audited.

Webhook: POST with headers
    X-Sotto-Timestamp: <epoch seconds>
    X-Sotto-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>
so the receiving end can check the sender and refuse replays (compare the
timestamp with its clock). Each notification is claimed in the database first
(changes.claim_notification), so several console processes send it once.
Sending happens in its own thread with a few retries; a failure is logged (without the secret).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import smtplib
import threading
import time
import urllib.request
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

from host_tools.receiver.changes import claim_notification
from host_tools.receiver.console.config import NotifyConfig
from host_tools.receiver.format import iso_utc
from host_tools.receiver.store import open_db

log = logging.getLogger("sotto.console")
RETRIES = 3
TIMEOUT_S = 10.0
_STOP = object()

TITLES = {"alert": "new alert", "duress": "DURESS", "silent": "device silent"}


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """The X-Sotto-Signature value of a webhook body."""
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def message_for(event: dict[str, Any], console_url: str, now: float) -> dict[str, Any] | None:
    """The notification for a feed event, or None if it is not one we send."""
    kind = event.get("kind")
    if kind not in TITLES:
        return None
    alert = event.get("alert")
    link = f"{console_url}/#/alerts/{alert}" if alert else f"{console_url}/#/queue"
    return {
        "event": kind,
        "alert": alert,
        "device": event.get("device"),
        "time": iso_utc(now),
        "console": link,
    }


class Notifier(threading.Thread):
    def __init__(
        self,
        db_path: str,
        config: NotifyConfig,
        *,
        console_url: str,
        clock: Callable[[], float] = time.time,
        retry_pause_s: float = 1.0,
    ) -> None:
        super().__init__(name="sotto-notify", daemon=True)
        self.db_path = db_path
        self.config = config
        self.console_url = console_url.rstrip("/")
        self.clock = clock
        self.retry_pause_s = retry_pause_s
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.sent = 0
        self.failed = 0

    def on_event(self, event: dict[str, Any]) -> None:
        """Called by the feed for every event (cheap: the work happens in this thread)."""
        if event.get("kind") in TITLES:
            self._queue.put(event)

    def stop(self) -> None:
        self._queue.put(_STOP)
        if self.is_alive():
            self.join(TIMEOUT_S * 2)

    def run(self) -> None:
        conn = open_db(self.db_path)
        try:
            while (event := self._queue.get()) is not _STOP:
                now = self.clock()
                msg = message_for(event, self.console_url, now)
                if msg is None:
                    continue
                subject = msg["alert"] or f"{msg['device']}@{int(now // 3600)}"  # silent: once an hour
                try:
                    if not claim_notification(conn, msg["event"], subject, now):
                        continue
                except Exception as e:
                    log.error("cannot record a notification (%s); sending it anyway", e)
                self._send(msg)
        finally:
            conn.close()

    def _send(self, msg: dict[str, Any]) -> None:
        channels: list[tuple[str, Callable[[dict[str, Any]], None]]] = []
        if self.config.webhook_url:
            channels.append(("webhook", self.send_webhook))
        if self.config.smtp_host and self.config.mail_to:
            channels.append(("e-mail", self.send_mail))
        for name, send in channels:
            for attempt in range(1, RETRIES + 1):
                try:
                    send(msg)
                    self.sent += 1
                    break
                except Exception as e:  # network, SMTP, HTTP status: retry, then log
                    if attempt == RETRIES:
                        self.failed += 1
                        log.error(
                            "%s notification for %s failed after %d tries: %s",
                            name,
                            msg["alert"] or msg["device"],
                            RETRIES,
                            e,
                        )
                    else:
                        time.sleep(self.retry_pause_s * attempt)

    def send_webhook(self, msg: dict[str, Any]) -> None:
        body = json.dumps(msg, separators=(",", ":"), sort_keys=True).encode()
        stamp = str(int(self.clock()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "sotto-receiver",
            "X-Sotto-Timestamp": stamp,
        }
        if self.config.webhook_secret:
            headers["X-Sotto-Signature"] = signature(self.config.webhook_secret, stamp, body)
        req = urllib.request.Request(str(self.config.webhook_url), data=body, headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:  # noqa: S310 - a configured URL
            if not 200 <= resp.status < 300:
                raise OSError(f"webhook answered HTTP {resp.status}")

    def send_mail(self, msg: dict[str, Any]) -> None:
        c = self.config
        em = EmailMessage()
        what = TITLES[msg["event"]]
        em["Subject"] = f"Sotto: {what} {msg['alert'] or ''} ({msg['device']})".replace("  ", " ")
        em["From"] = c.mail_from
        em["To"] = ", ".join(c.mail_to)
        em.set_content(
            f"{what}: {msg['alert'] or 'no alert'}, device {msg['device']}, at {msg['time']}.\n\n"
            f"Open the console: {msg['console']}\n\n"
            "(No location or audio is sent by e-mail; log in to the console to see them.)\n"
        )
        with smtplib.SMTP(str(c.smtp_host), c.smtp_port, timeout=TIMEOUT_S) as smtp:
            if c.smtp_starttls:
                smtp.starttls()
            if c.smtp_user:
                smtp.login(c.smtp_user, c.smtp_password or "")
            smtp.send_message(em)
