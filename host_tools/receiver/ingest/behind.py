"""Answers signed behind the writer: after a group's COMMIT the writer hands the
group to the `sotto-answers` thread and goes on to the next group, while this
thread has the signing helper sign the group's answers and then wakes each
request (job.finish).

Without it the writer waited for the signatures before it took the next group
(measured on 2 cores under 200 devices' live load: 15 % of the writer's time,
half of it waiting for the helper). A job is only ever finished after its COMMIT,
as before, and always finished: an answer the helper did not sign is signed by
the event loop (fastpath), and a group still here when the receiver stops is
finished before the writer closes.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from host_tools.receiver.ingest.txn import _Job

log = logging.getLogger("sotto.receiver")
_STOP = object()


def sign_then_finish(sign: Callable[[list[_Job]], None], jobs: list[_Job]) -> None:
    """A committed group's answers signed (`sign(jobs)`), then every job finished,
    whatever signing did (an answer left unsigned is signed on the event loop)."""
    try:
        sign(jobs)
    except Exception:
        log.exception("bug while signing answers in the helper")
    finally:
        for job in jobs:
            job.finish()


class SignBehind(threading.Thread):
    """Committed groups: their answers signed (`sign(jobs)`), then each job finished."""

    def __init__(self, sign: Callable[[list[_Job]], None]) -> None:
        super().__init__(name="sotto-answers", daemon=True)
        self.sign = sign
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def put(self, jobs: list[_Job]) -> None:
        """A committed group (every job's outcome set)."""
        self._queue.put(jobs)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Finish what is queued, then stop."""
        if self.is_alive():
            self._queue.put(_STOP)
            self.join(timeout_s)
        self._drain()       # if it could not: every group still here is finished unsigned

    def run(self) -> None:
        while True:
            jobs = self._queue.get()
            if jobs is _STOP:
                return
            self._answer(jobs)

    def _answer(self, jobs: list[_Job]) -> None:
        sign_then_finish(self.sign, jobs)

    def _drain(self) -> None:
        while True:
            try:
                jobs = self._queue.get_nowait()
            except queue.Empty:
                return
            if jobs is not _STOP:
                for job in jobs:
                    job.finish()
