"""The receiver's log of rejected frames, rate-limited so a flood of bad frames
cannot flood the log."""

from __future__ import annotations

import logging
import threading
import time

from host_tools.ids import format_device_id
from host_tools.receiver.ingest.answer import Result
from host_tools.receiver.ingest.keybook import Incoming
from host_tools.receiver.ingest.txn import _Job

log = logging.getLogger("sotto.receiver")


class _RateLimit:
    """At most `per_s` log lines a second; the rest are counted and summarised."""

    def __init__(self, per_s: float = 20.0) -> None:
        self.per_s = per_s
        self.window = 0.0
        self.count = 0
        self.suppressed = 0
        self.lock = threading.Lock()

    def allow(self) -> bool:
        with self.lock:
            now = time.monotonic()
            if now - self.window >= 1.0:
                if self.suppressed:
                    log.warning("%d more rejections not logged in the last second", self.suppressed)
                self.window, self.count, self.suppressed = now, 0, 0
            self.count += 1
            if self.count > self.per_s:
                self.suppressed += 1
                return False
            return True


_rejection_log_limit = _RateLimit()


def _log_rejection(job: _Job, item: Incoming, result: Result) -> None:
    if not _rejection_log_limit.allow():
        return
    who = f"device {format_device_id(result.device)} seq {result.seq}" if result.device else \
        f"{len(item.wire)} bytes"
    log.warning("rejected %s via %s from %s: %s: %s", who, job.via, job.peer or "?", result.reason,
                result.detail)
