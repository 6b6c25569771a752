"""A request that times out waiting for its commit (issue 17): its 503 never lies.

A job the writer has not taken yet is abandoned and never stored ("nothing was
stored" is true); one the writer has taken (its transaction is open) is answered
"may have been stored", and a resend is then answered `duplicate`. The writer is
held inside a transaction by a gate the test opens (events, not sleeps); the
receiver's commit timeout is tiny, so the wait that times out is the one the
gate makes long."""

from __future__ import annotations

import http.client
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cbor2
import framefactory as ff
import psycopg
import pytest
from conftest import LOC, SMS_SECRET, Clock, answer_map, post, sms_headers, statuses

from host_tools.receiver.ingest import Receiver, StorageUnavailable
from host_tools.receiver.ingest.txn import _Job
from host_tools.receiver.ingest.writer import Writer
from host_tools.receiver.server import RunningServer, ServerConfig, start_in_thread
from host_tools.receiver.store import open_db
from host_tools.storage import POSTGRESQL, backend_of

TINY_S = 0.05      # the commit timeout while the writer is held
BOUND_S = 30.0     # how long a test waits for an event before it fails (never reached when it passes)


class _Gate:
    """Holds the writer inside the transaction of the next group it takes
    (after BEGIN, before anything is written) until `release` is set."""

    def __init__(self, writer: Writer) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        _GATES.append(self)
        self._armed = True
        verify = writer._verify

        def held(jobs: list[_Job]) -> None:
            if self._armed:
                self._armed = False
                self.entered.set()
                assert self.release.wait(BOUND_S), "the test never released the writer"
            verify(jobs)

        writer._verify = held   # type: ignore[method-assign]

    def hold_with(self, writer: Writer, wires: list[bytes]) -> _Job:
        """Another request's job, taken by the writer and held in its transaction."""
        job = _Job(wires, "http", "10.0.0.9", 1_790_000_100.0)
        writer.submit(job)
        assert self.entered.wait(BOUND_S)
        return job


def _taken_before_timeout(writer: Writer, gate: _Gate) -> Callable[[], None]:
    """The next job submitted returns from submit() only once the writer has taken
    it and is held: its waiter's timeout then surely hits a taken job. Returns undo."""
    submit = writer.submit

    def submit_then_held(job: _Job) -> None:
        submit(job)
        assert gate.entered.wait(BOUND_S)

    writer.submit = submit_then_held   # type: ignore[method-assign]

    def undo() -> None:
        writer.submit = submit   # type: ignore[method-assign]
    return undo


def _other() -> bytes:
    """A frame of another request, for the writer to be held with (its device is not
    registered: it is rejected, which is all the same here)."""
    return ff.DeviceSim(kid=b"SOTTO-99", seed=b"\x01" * 32, time=1_790_000_000).heartbeat()


def _stored(db: Any, dev: ff.DeviceSim, seq: int) -> int:
    conn = open_db(db)
    try:
        return int(conn.execute("SELECT count(*) FROM frames WHERE device_id = ? AND seq = ?",
                                (dev.kid, seq)).fetchone()[0])
    finally:
        conn.close()


_GATES: list[_Gate] = []


@pytest.fixture(autouse=True)
def _open_gates() -> Iterator[None]:
    """A failing test still lets the writer go (its receiver then stops at once)."""
    yield
    while _GATES:
        _GATES.pop().release.set()


@pytest.fixture
def slow_receiver(db: Path, clock: Clock, dev: ff.DeviceSim) -> Iterator[Receiver]:
    r = Receiver(db, clock=clock, commit_timeout_s=TINY_S)
    yield r
    r.close()


# -- the library (Receiver.ingest, what http_handler and SMS use) -----------------------

def test_a_request_that_times_out_while_queued_is_never_stored(slow_receiver: Receiver, db: Any,
                                                                dev: ff.DeviceSim) -> None:
    gate = _Gate(slow_receiver.writer)
    held = gate.hold_with(slow_receiver.writer, [_other()])   # the writer is busy with it
    frame = dev.alert_start(loc=LOC)
    with pytest.raises(StorageUnavailable) as e:
        slow_receiver.ingest([frame])
    gate.release.set()
    assert held.done.wait(BOUND_S)
    slow_receiver.commit_timeout_s = BOUND_S
    again = slow_receiver.ingest([frame])     # queued behind the abandoned job: it was skipped first
    assert statuses(again) == ["accepted"]    # not duplicate: the 503 was true, nothing was stored
    assert "nothing was stored" in str(e.value.detail) and not e.value.maybe_stored
    assert slow_receiver.writer.abandoned == 1 and _stored(db, dev, 1) == 1


def test_a_request_that_times_out_in_an_open_transaction_says_it_may_be_stored(
        slow_receiver: Receiver, db: Any, dev: ff.DeviceSim) -> None:
    gate = _Gate(slow_receiver.writer)
    undo = _taken_before_timeout(slow_receiver.writer, gate)
    frame = dev.alert_start(loc=LOC)
    with pytest.raises(StorageUnavailable) as e:
        slow_receiver.ingest([frame])
    undo()
    gate.release.set()
    slow_receiver.commit_timeout_s = BOUND_S
    again = slow_receiver.ingest([frame])   # after the held transaction (one writer, in order)
    assert statuses(again) == ["duplicate"]    # it was stored: the device counts this as acknowledged
    assert _stored(db, dev, 1) == 1
    detail = getattr(e.value, "detail", str(e.value))   # the old code said "nothing was stored" here
    assert "nothing was stored" not in detail and "may have been" in detail and e.value.maybe_stored


class _LateEvent(threading.Event):
    """A done event whose first timed wait reports a timeout even though the writer
    finished: the waiter's timeout and the writer's outcome crossing."""

    def __init__(self) -> None:
        super().__init__()
        self._late = True

    def wait(self, timeout: float | None = None) -> bool:
        if self._late and timeout is not None:
            self._late = False
            assert super().wait(BOUND_S)     # the writer did finish ...
            return False                     # ... but the waiter saw its timeout first
        return super().wait(timeout)


def test_a_timeout_crossing_the_writers_outcome_answers_that_outcome(slow_receiver: Receiver,
                                                                      dev: ff.DeviceSim) -> None:
    submit = slow_receiver.writer.submit

    def late(job: _Job) -> None:
        job.done = _LateEvent()
        submit(job)

    slow_receiver.writer.submit = late   # type: ignore[method-assign]
    answer = slow_receiver.ingest([dev.alert_start(loc=LOC)])
    assert statuses(answer) == ["accepted"]    # committed, so acknowledged: no needless 503


class _CommitLost:
    """The writer's connection, whose next COMMIT commits and then raises: as if the
    connection were lost after the server committed (the client cannot know)."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self.lost = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def execute(self, sql: str, *args: Any) -> Any:
        cur = self._conn.execute(sql, *args)
        if sql == "COMMIT" and not self.lost:
            self.lost += 1
            if backend_of(self._conn) == POSTGRESQL:
                raise psycopg.OperationalError("server closed the connection unexpectedly (the test's)")
            raise sqlite3.OperationalError("disk I/O error (the test's: after the COMMIT)")
        return cur


def test_a_failed_commit_does_not_say_nothing_was_stored(slow_receiver: Receiver, db: Any,
                                                         dev: ff.DeviceSim) -> None:
    writer = slow_receiver.writer
    lost = _CommitLost(writer.conn)
    writer.conn = lost     # type: ignore[assignment]   # taken at the next group
    slow_receiver.commit_timeout_s = BOUND_S
    frame = dev.alert_start(loc=LOC)
    with pytest.raises(StorageUnavailable) as e:
        slow_receiver.ingest([frame])
    again = slow_receiver.ingest([frame])
    assert lost.lost == 1 and statuses(again) == ["duplicate"]   # it had been committed
    detail = getattr(e.value, "detail", str(e.value))
    assert "nothing was stored" not in detail and "may have been stored" in detail


def test_job_states_let_only_one_side_win() -> None:
    queued = _Job([b"x"], "http", None, 0.0)
    assert queued.abandon() == "abandoned" and not queued.move("queued", "taken")
    queued.finish()                    # a writer stopping: the waiter answered already
    assert not queued.done.is_set() and queued.state == "abandoned"
    taken = _Job([b"x"], "http", None, 0.0)
    assert taken.move("queued", "taken") and taken.abandon() == "taken"
    taken.finish()
    assert taken.done.is_set() and taken.abandon() == "done"


# -- over HTTP: the fast path (frames), the full handler (SMS, HTTP/1.0) -----------------

@pytest.fixture
def slow_server(db: Path, dev: ff.DeviceSim) -> Iterator[RunningServer]:
    config = ServerConfig(port=0, io_timeout_s=5, request_deadline_s=10, sms_secret=SMS_SECRET)
    rs = start_in_thread(db, config, receiver=Receiver(db, commit_timeout_s=TINY_S))
    yield rs
    rs.stop()


def _refusal(status: int, headers: dict[str, str], body: bytes, ctype: str = "cbor") -> str:
    retry_after = headers.get("retry-after", "")
    assert status == 503 and retry_after.isdigit() and 1 <= int(retry_after) <= 5
    doc = cbor2.loads(body) if ctype == "cbor" else json.loads(body)
    assert doc["reason"] == "storage-unavailable"
    # the machine-readable field says what the detail's words say
    assert doc["maybe_stored"] is ("may have been stored" in doc["detail"])
    return str(doc["detail"])


def _resend(server: RunningServer, gate: _Gate, frame: bytes, held: _Job | None = None) -> list[str]:
    """Opens the gate (and waits for the held job to finish), lets requests wait as
    long as they need, and posts `frame` again: the statuses of its results."""
    gate.release.set()
    if held is not None:
        assert held.done.wait(BOUND_S)
    server.receiver.commit_timeout_s = BOUND_S
    status, _, body = post(server.port, frame)
    assert status == 200
    return [r["status"] for r in answer_map(body)["results"]]


def test_fast_path_503_while_queued_is_true_and_has_retry_after(slow_server: RunningServer, db: Any,
                                                                 dev: ff.DeviceSim) -> None:
    writer = slow_server.receiver.writer
    gate = _Gate(writer)
    held = gate.hold_with(writer, [_other()])
    frame = dev.alert_start(loc=LOC)
    refusal = post(slow_server.port, frame)
    assert _resend(slow_server, gate, frame, held) == ["accepted"]
    assert writer.abandoned == 1 and _stored(db, dev, 1) == 1
    assert "nothing was stored" in _refusal(*refusal)
    status, _, health = post(slow_server.port, b"", path="/v1/health", method="GET")
    assert status == 200 and json.loads(health)["abandoned"] == 1    # monitoring sees the dropped request


def test_fast_path_503_in_an_open_transaction_says_it_may_be_stored(slow_server: RunningServer, db: Any,
                                                                     dev: ff.DeviceSim) -> None:
    writer = slow_server.receiver.writer
    gate = _Gate(writer)
    undo = _taken_before_timeout(writer, gate)
    frame = dev.alert_start(loc=LOC)
    refusal = post(slow_server.port, frame)
    undo()
    assert _resend(slow_server, gate, frame) == ["duplicate"]
    assert _stored(db, dev, 1) == 1
    detail = _refusal(*refusal)
    assert "nothing was stored" not in detail and "may have been" in detail


def test_sms_503_in_an_open_transaction_says_it_may_be_stored(slow_server: RunningServer, db: Any,
                                                               dev: ff.DeviceSim) -> None:
    writer = slow_server.receiver.writer
    gate = _Gate(writer)
    undo = _taken_before_timeout(writer, gate)
    frame = dev.alert_start(loc=LOC)
    body = json.dumps({"sender": "+447700900123", "time": 1_790_000_000, "payload": frame.hex()}).encode()

    def sms() -> tuple[int, dict[str, str], bytes]:
        return post(slow_server.port, body, "application/json", path="/v1/sms", headers=sms_headers(body))

    refusal = sms()
    undo()
    gate.release.set()
    slow_server.receiver.commit_timeout_s = BOUND_S
    status, _, answer = sms()
    assert status == 200 and json.loads(answer)["status"] == "duplicate"
    detail = _refusal(*refusal, ctype="json")
    assert "nothing was stored" not in detail and "may have been" in detail


def test_handler_frames_503_while_queued_is_true_and_has_retry_after(slow_server: RunningServer, db: Any,
                                                                      dev: ff.DeviceSim) -> None:
    # HTTP/1.0 is not the fast path's: the full handler (Receiver.ingest) answers it
    writer = slow_server.receiver.writer
    gate = _Gate(writer)
    held = gate.hold_with(writer, [_other()])
    frame = dev.alert_start(loc=LOC)

    class _HTTP10(http.client.HTTPConnection):
        _http_vsn, _http_vsn_str = 10, "HTTP/1.0"

    conn = _HTTP10("127.0.0.1", slow_server.port, timeout=10)
    try:
        conn.request("POST", "/v1/frames", frame, {"Content-Type": "application/cbor-seq"})
        resp = conn.getresponse()
        answer = resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()
    assert _resend(slow_server, gate, frame, held) == ["accepted"]
    assert writer.abandoned == 1 and _stored(db, dev, 1) == 1
    assert "nothing was stored" in _refusal(*answer)
