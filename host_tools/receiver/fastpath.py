"""The fast path of POST /v1/frames: no worker thread, no http.server parsing.

A plain, well-formed device request (HTTP/1.1, one Content-Length, an
application/cbor-seq body of 1..max_frames frames) is handled on the event loop:
split (bounded by max_frames), handed to the storage writer as an ingest job
whose completion is signalled back to the loop, and answered (the centre's
signed answer) by the loop once the writer's group COMMIT returned. With helper
processes (--verify-processes) the writer has them sign the answers of a group
after its COMMIT (ingest.writer._sign_answers); an answer without a signature from
them is signed here (ingest.answer.signed_answer, as http_handler does). So a request
costs two thread hand-offs (loop -> writer -> loop) instead of four, and no
thread waits for a commit. Everything else (errors, other endpoints, odd
headers) goes to the full handler in the worker pool (http_handler), which
answers exactly as before; this path only ever answers 200 or the same 503 the
handler gives when storage fails or is too slow (with the same job states: a job
that times out while queued is abandoned and never stored; one the writer took is
answered "may have been stored"; see Receiver.ingest).

This mirrors host_tools.receiver.ingest.Receiver.ingest (a _Job on the writer's
queue; `accepted` only after COMMIT); keep the two in step.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import cbor2

from host_tools import __version__
from host_tools.frames import FrameError, split_sequence
from host_tools.receiver.http_handler import COSE, FRAME_TYPES, PATH_FRAMES, RETRY_AFTER_S
from host_tools.receiver.ingest import Answer
from host_tools.receiver.ingest.answer import unavailable_detail
from host_tools.receiver.ingest.txn import DONE, TAKEN, _Job

if TYPE_CHECKING:
    import asyncio

    from host_tools.receiver.front import FrontEnd

_SERVER_LINE = f"\r\nServer: sotto-receiver/{__version__}\r\n".encode()
_FAST_TYPES = frozenset(t.encode() for t in FRAME_TYPES)
_RETRY_AFTER = f"Retry-After: {RETRY_AFTER_S}\r\n".encode()


def eligible(head: bytes) -> tuple[bool, bool]:
    """(a plain frames POST this path takes, the client asked to close after it)."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[0] != b"POST" or parts[1] != PATH_FRAMES.encode() or parts[2] != b"HTTP/1.1":
        return False, False
    ctype = None
    lengths = 0
    close = False
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            return False, False
        name = name.strip().lower()
        if name == b"content-type":
            ctype = value.split(b";", 1)[0].strip().lower()
        elif name == b"content-length":
            lengths += 1
        elif name in (b"transfer-encoding", b"expect"):
            return False, False
        elif name == b"connection":
            close = b"close" in value.lower()
    return (lengths == 1 and ctype in _FAST_TYPES), close


_date: list[Any] = [-1, b""]     # [second, "Date: ...\r\n"]: formatted once a second


def _date_line() -> bytes:
    now = time.time()
    second = int(now)
    if second != _date[0]:
        _date[1] = f"Date: {email.utils.formatdate(now, usegmt=True)}\r\n".encode()
        _date[0] = second
    return _date[1]


def _response(status: str, ctype: str, body: bytes, close: bool, extra: bytes = b"") -> bytes:
    tail = b"Connection: close\r\n\r\n" if close else b"\r\n"
    return b"".join((b"HTTP/1.1 ", status.encode(), _SERVER_LINE, _date_line(), b"Content-Type: ",
                     ctype.encode(), b"\r\nContent-Length: ", str(len(body)).encode(),
                     b"\r\nCache-Control: no-store\r\n", extra, tail, body))


class _Request:
    """One fast-path request in flight. It is its job's `done` (the writer's set()
    calls back on the loop), its commit-timeout timer's callback, and its answer.

    A class rather than closures, and its references dropped once it has answered,
    so a request leaves no reference cycle behind: its job, frames and answer are
    freed when it is answered, not by the cyclic garbage collector, whose full
    collections under load held the GIL for 100-290 ms at a time (docs/architecture.md).
    """

    __slots__ = ("front", "body", "close", "reply", "job", "timer")

    def __init__(self, front: FrontEnd, body: bytes, close: bool,
                 reply: Callable[[bytes, bool], None]) -> None:
        self.front: FrontEnd | None = front
        self.body = body
        self.close = close
        self.reply: Callable[[bytes, bool], None] | None = reply
        self.job: _Job | None = None     # its job (set by handle); None once it has answered
        self.timer: asyncio.TimerHandle | None = None

    # -- the job's `done` event, set by the writer thread --------------------------------
    def set(self) -> None:
        front = self.front
        if front is None:
            return     # answered already (the commit timeout)
        with contextlib.suppress(RuntimeError):      # the loop closed: the receiver stopped
            front.loop.call_soon_threadsafe(self.finish)

    def is_set(self) -> bool:
        return self.job is None

    def wait(self, timeout: float | None = None) -> bool:   # not used on this path
        return self.job is None

    # -- on the loop ----------------------------------------------------------------------
    def finish(self, timed_out: str | None = None, maybe_stored: bool = False) -> None:
        front, job, reply = self.front, self.job, self.reply
        if job is None or front is None or reply is None:
            return      # answered already
        if self.timer is not None:
            self.timer.cancel()
        self.front = self.job = self.reply = self.timer = None    # no cycle outlives the answer
        stop = self.close or front.stopping
        why = timed_out or job.error
        if why is not None:
            front.count_error("storage-unavailable")
            maybe = maybe_stored or job.maybe_stored
            doc = {"reason": "storage-unavailable", "detail": unavailable_detail(why, maybe),
                   "maybe_stored": maybe}
            reply(_response("503 Service Unavailable", "application/cbor", cbor2.dumps(doc, canonical=True),
                            stop, _RETRY_AFTER), stop)
            return
        signed = job.signed    # by a helper process after the COMMIT (ingest.writer._sign_answers)
        if signed is None:
            signed = Answer(job.results, int(job.now), job.closed, job.cmds, job.rel).signed(
                front.centre, self.body)
        reply(_response("200 OK", COSE, signed, stop), stop)

    def too_slow(self) -> None:
        # as Receiver.ingest: abandoned while queued (never stored), or answered at once
        # with "may have been stored" once the writer took it; job.error stays the writer's
        job, front = self.job, self.front
        if job is None or front is None:
            return      # answered already
        job_state = job.abandon()
        if job_state == DONE:
            self.finish()       # the writer finished just now: its outcome is set
        else:
            self.finish(f"storing {len(job.wires)} frames took over {front.receiver.commit_timeout_s:g} s",
                        maybe_stored=job_state == TAKEN)


def handle(front: FrontEnd, body: bytes, peer: str, close: bool,
           answer: Callable[[bytes, bool], None]) -> bool:
    """Start handling a frames body; `answer(bytes, close)` is called on the loop
    when done. False (nothing started): the caller gives it to the full handler."""
    try:
        wires = split_sequence(body, max_items=front.config.max_frames)
    except FrameError:
        return False
    if not wires:
        return False
    receiver = front.receiver
    now = receiver.clock()
    request = _Request(front, body, close, answer)
    job = _Job(wires, "http", peer, now, receiver.max_future_s, done=request)  # type: ignore[arg-type]
    if receiver.writer.answer_key is not None:
        job.req = hashlib.sha256(body).digest()
    request.job = job
    request.timer = front.loop.call_later(receiver.commit_timeout_s, request.too_slow)
    receiver.writer.submit(job)
    return True
