"""Ingest: verify each frame, store it durably, then answer.

    receiver = Receiver(db_path)
    answer = receiver.ingest([wire, wire, ...], via="http", peer="10.0.0.7")
    answer.results[0].status          # "accepted" | "duplicate" | "rejected" (+ .reason)
    answer.to_cbor()                  # the body of the HTTP answer (docs/frames.md)

One writer thread owns the database: it takes every request waiting at that
moment, decodes and verifies their frames (host_tools.frames against the
registry's keys, reloaded when the registry changed) and stores them in a single
transaction (group commit). The request threads only do HTTP.
A request's answer is built only after that COMMIT returned: `accepted` and
`duplicate` mean "on disk". If the transaction fails, nothing is acknowledged
(StorageUnavailable, HTTP 503) and the device sends the frames again.

Per frame, in order:
1. not decodable -> rejected with the decoder's reason;
2. the exact bytes are already stored (same device and seq, same SHA-256)
   -> duplicate, whatever else is true now (e.g. the key was rotated since);
3. verification failed (unknown or revoked key, bad signature, digest, time)
   -> rejected with that reason, recorded in `rejections`, never stored;
4. otherwise stored (accepted). A *different* frame with a seq this key used
   before is stored too, not discarded: it is signed by the device, so it is
   evidence; the alert counts it (`seq_reused`) and the log warns.

Alert frames join their alert (device key, sid); the alert's hash-chain
counters are updated as frames arrive in any order: `starts` (alert-start
frames), `dangling` (frames whose predecessor is not here yet: a gap) and
`forks` (two frames naming the same predecessor: a break).

Inside: answer (Result, Answer), keybook (KeyBook, check_frame), txn and sql (what a
group commit accumulates and writes), writer (the thread); this module is the facade.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from host_tools.frames import MAX_FUTURE_S
from host_tools.receiver.ingest.answer import (
    ACCEPTED,
    DUPLICATE,
    REJECTED,
    Answer,
    Result,
    StorageUnavailable,
)
from host_tools.receiver.ingest.keybook import (
    Incoming,
    KeyBook,
    check_frame,
)
from host_tools.receiver.ingest.txn import ABANDONED, TAKEN, _Job
from host_tools.receiver.ingest.writer import Writer
from host_tools.receiver.store import open_db
from host_tools.registry import Registry

# A request waits this long for its commit, then gets 503: under the device's own
# answer deadline (20 s from its last byte, firmware delivery.response_ms), so a
# device hears the 503 (and its Retry-After) instead of timing out on its side.
COMMIT_TIMEOUT_S = 15.0

# --------------------------------------------------------------------------
# The library facade.


class Receiver:
    """Verify, store, answer: everything `sotto receive` does except HTTP.

    clock: epoch seconds (tests move it); the frames' `time` is judged against it.
    verify_processes: how many helper processes check the signatures (so ingest
    uses more than one core; 0: all in this process; `sotto receive --verify-processes`).
    verify_helper=True is the older spelling of verify_processes=1.
    """

    def __init__(self, db_path: str | os.PathLike[str], *, clock: Callable[[], float] = time.time,
                 max_future_s: int = MAX_FUTURE_S, commit_timeout_s: float = COMMIT_TIMEOUT_S,
                 verify_helper: bool = False, verify_processes: int | None = None) -> None:
        self.db_path = db_path
        self.clock = clock
        self.max_future_s = max_future_s
        self.commit_timeout_s = commit_timeout_s
        if verify_processes is None:
            verify_processes = 1 if verify_helper else 0
        self.writer = Writer(db_path, verify_processes=verify_processes)
        self._registry = Registry(open_db(db_path, create=True))
        self.keys = KeyBook(self._registry)
        self.keys.refresh()
        self.writer.start()
        self._closed = False

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Commit what is queued and close the database."""
        if not self._closed:
            self._closed = True
            self.writer.stop()
            self._registry.connection.close()

    @property
    def healthy(self) -> bool:
        """The writer runs and its last transaction (if any) committed."""
        return self.writer.is_alive() and self.writer.last_error is None

    def check(self, wires: Sequence[bytes], now: float | None = None) -> list[Incoming]:
        """Decode and verify (no storage)."""
        now = self.clock() if now is None else now
        self.keys.refresh()
        return [check_frame(w, self.keys, now, self.max_future_s) for w in wires]

    def ingest(self, wires: Sequence[bytes], *, via: str = "http", peer: str | None = None) -> Answer:
        """Verify and store `wires`; the answer exists only once they are committed.
        Raises StorageUnavailable when they could not be (nothing acknowledged).

        After commit_timeout_s the request is abandoned if the writer has not
        taken it yet (it then never is: "nothing was stored" is true). If the
        writer has taken it (its transaction is open: e.g. waiting for
        PostgreSQL), the wait is not extended (the device's own answer
        deadline, 20 s, firmware delivery.response_ms, would pass before
        another timeout did), so it is answered at once with
        StorageUnavailable(maybe_stored=True), which says the frames may have
        been stored; the device sends them again either way and a stored frame
        is then answered `duplicate`, which it counts as acknowledged."""
        now = self.clock()
        job = _Job(list(wires), via, peer, now, self.max_future_s)
        self.writer.submit(job)
        if not job.done.wait(self.commit_timeout_s):
            state = job.abandon()
            why = f"storing {len(job.wires)} frames took over {self.commit_timeout_s:g} s"
            if state == ABANDONED:
                raise StorageUnavailable(why)
            if state == TAKEN:
                raise StorageUnavailable(why, maybe_stored=True)
            job.done.wait()     # DONE: the writer set its outcome just now and sets the event next
        if job.error is not None:
            raise StorageUnavailable(job.error, maybe_stored=job.maybe_stored)
        return Answer(job.results, int(now), job.closed, job.cmds, job.rel)


__all__ = ["ACCEPTED", "COMMIT_TIMEOUT_S", "DUPLICATE", "REJECTED", "Answer", "Incoming", "KeyBook",
           "Receiver", "Result", "StorageUnavailable", "Writer", "check_frame"]
