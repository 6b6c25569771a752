"""The live feed: one thread per console reads what changed in the database
(host_tools.receiver.changes) every poll_interval_s and hands each event to
the subscribers (the open /api/events streams) whose role may see it, and to
the notifier. Every few seconds it also looks for devices that fell silent.

Events carry ids and labels only, never a position or audio: the page fetches
what it needs through the audited routes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from host_tools.receiver.alerts import silent_devices
from host_tools.receiver.changes import changes_since, high_water
from host_tools.receiver.queue import never_heard
from host_tools.receiver.roles import ACCOUNTS, AUDIT_LOG, LIVE_ALERTS, Actor
from host_tools.receiver.store import open_db

log = logging.getLogger("sotto.console")
SUBSCRIBER_QUEUE = 1000  # events a slow page may fall behind by before it is told to resync


def visible_to(actor: Actor, event: dict[str, Any]) -> bool:
    """Which roles hear which events (the page refetches through the audited routes)."""
    kind = event["kind"]
    if kind == "audit":
        return actor.may(AUDIT_LOG) or (event.get("state", False) and actor.may(LIVE_ALERTS))
    if kind in ("silent", "rejected", "device"):
        return actor.may(LIVE_ALERTS) or actor.may(ACCOUNTS)
    return actor.may(LIVE_ALERTS)


class _Subscriber:
    def __init__(self, actor: Actor, loop: asyncio.AbstractEventLoop) -> None:
        self.actor = actor
        self.loop = loop
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(SUBSCRIBER_QUEUE)

    def offer(self, event: dict[str, Any]) -> None:
        def put() -> None:
            try:
                self.queue.put_nowait(event)
            except asyncio.QueueFull:
                pass  # the page gets `resync` from the stream when it notices the gap

        self.loop.call_soon_threadsafe(put)


class EventFeed(threading.Thread):
    """Polls the database and fans events out (see module doc)."""

    def __init__(
        self,
        db_path: str,
        *,
        poll_interval_s: float = 0.1,
        silent_check_s: float = 5.0,
        clock: Callable[[], float] = time.time,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        super().__init__(name="sotto-console-feed", daemon=True)
        self.db_path = db_path
        self.poll_interval_s = poll_interval_s
        self.silent_check_s = silent_check_s
        self.clock = clock
        self.on_event = on_event
        self._subs: set[_Subscriber] = set()
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._silent: set[str] = set()
        self.polls = 0
        self.errors = 0

    def subscribe(self, actor: Actor, loop: asyncio.AbstractEventLoop) -> _Subscriber:
        sub = _Subscriber(actor, loop)
        with self._lock:
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: _Subscriber) -> None:
        with self._lock:
            self._subs.discard(sub)

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(5)

    def publish(self, event: dict[str, Any]) -> None:
        event.setdefault("at", self.clock())
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            if visible_to(sub.actor, event):
                sub.offer(event)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # a notifier bug must not stop the feed
                log.exception("notification hook failed for %s", event.get("kind"))

    def run(self) -> None:
        conn = open_db(self.db_path)
        try:
            marks = high_water(conn)
            self._silent = self._silent_now(conn)  # already silent at start: not news
            next_silent = time.monotonic() + self.silent_check_s
            while not self._halt.wait(self.poll_interval_s):
                try:
                    for event in changes_since(conn, marks):
                        self.publish(event)
                    if time.monotonic() >= next_silent:
                        next_silent = time.monotonic() + self.silent_check_s
                        now_silent = self._silent_now(conn)
                        for device in sorted(now_silent - self._silent):
                            self.publish({"kind": "silent", "device": device})
                        self._silent = now_silent
                    self.polls += 1
                except Exception as e:  # a locked or failing database: say so, keep polling
                    self.errors += 1
                    if self.errors in (1, 10) or self.errors % 1000 == 0:
                        log.error("console event feed cannot read the database: %s", e)
        finally:
            conn.close()

    def _silent_now(self, conn: Any) -> set[str]:
        now = self.clock()
        return {s.device for s in silent_devices(conn, now=now)} | {
            d["device"] for d in never_heard(conn, now) if d["silent_s"] > 3600
        }
