"""Checks ahead of the commit and answers signed behind it (host_tools.receiver.ingest.ahead
and .behind, with `--verify-processes` >= 1): the helpers check the next group's frames
while the writer stores the current one, and sign a group's answers while it stores the next.
A verdict made ahead is only taken when it was made with the keys the writer holds at
its COMMIT; whatever those threads fail to do, the writer and the event loop do, and
nothing is lost or answered before its COMMIT. On both backends (the `db` fixture);
every wait is bounded by an event, never a sleep."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import framefactory as ff
from conftest import device, open_answer, post
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from host_tools.receiver.ingest import Receiver
from host_tools.receiver.ingest import writer as writer_module
from host_tools.receiver.ingest.txn import _Job
from host_tools.receiver.server import ServerConfig, start_in_thread
from host_tools.registry import Registry
from host_tools.registry import connect as db_connect


def _registered(db: Path, name: bytes) -> ff.DeviceSim:
    d = device(name)
    with Registry(db) as reg:
        reg.add(d.kid, d.public_key)
    return d


def _forged(wire: bytes) -> bytes:
    bad = bytearray(wire)
    bad[-5] ^= 0x40              # in the signature
    return bytes(bad)


def _run(writer: writer_module.Writer, jobs: list[_Job]) -> None:
    """Start the writer with `jobs` already waiting (so how they group is known), until all are done."""
    for job in jobs:
        writer._queue.put(job)
    writer.start()
    try:
        for job in jobs:
            assert job.done.wait(30)
    finally:
        writer.stop()


def test_frames_checked_ahead_are_taken_by_the_writer_without_decoding_them_again(
        db: Path, monkeypatch) -> None:
    d = _registered(db, b"AHEAD-01")
    wires = [d.heartbeat() for _ in range(writer_module.AHEAD_MIN_FRAMES - 1)] + [_forged(d.heartbeat())]
    decoded: list[bytes] = []
    real_resolve = writer_module._resolve
    monkeypatch.setattr(writer_module, "_resolve", lambda w, keys: decoded.append(w) or real_resolve(w, keys))
    with Receiver(db, verify_processes=1, clock=lambda: d.time + 60) as r:
        answer = r.ingest(wires)
        assert [h.batches for h in r.writer.helpers] == [1]
    assert [x.status for x in answer.results] == ["accepted"] * (len(wires) - 1) + ["rejected"]
    assert str(answer.results[-1].reason) == "bad-signature"
    assert decoded == []          # every verdict came from the helper, none was made again here


def test_the_next_group_goes_to_the_helpers_before_the_current_one_is_stored(db: Path, monkeypatch) -> None:
    """The overlap itself: four requests waiting, one group each (MAX_TXN_FRAMES = 4):
    each group's frames are sent to the helper before the group ahead of it is stored
    (the first group's own frames are checked in its transaction)."""
    d = _registered(db, b"AHEAD-06")
    monkeypatch.setattr(writer_module, "MAX_TXN_FRAMES", 4)
    monkeypatch.setattr(writer_module, "AHEAD_MIN_FRAMES", 4)
    writer = writer_module.Writer(db, verify_processes=1)
    events: list[tuple[str, int]] = []
    helper = writer.helpers[0]
    send, commit_group = helper.send, writer._commit_group

    def sending(tasks: Any) -> bool:
        events.append(("sent", tasks[0][1]))       # the job's `now` names it
        return send(tasks)

    def committing(jobs: list[_Job]) -> None:
        commit_group(jobs)
        events.append(("stored", jobs[0].now))

    monkeypatch.setattr(helper, "send", sending)
    writer._commit_group = committing              # type: ignore[method-assign]
    jobs = [_Job([d.heartbeat() for _ in range(4)], "http", None, d.time + 60 + i) for i in range(4)]
    _run(writer, jobs)
    t = [job.now for job in jobs]
    assert events == [("sent", t[0]), ("sent", t[1]), ("stored", t[0]), ("sent", t[2]), ("stored", t[1]),
                      ("sent", t[3]), ("stored", t[2]), ("stored", t[3])]
    assert [[x.status for x in job.results] for job in jobs] == [["accepted"] * 4] * 4


def test_a_small_group_checked_in_its_commit_and_a_large_one_sent_ahead_share_the_helper(
        db: Path, monkeypatch) -> None:
    """A group of 8 frames (checked by the helper inside its transaction) then one of 20
    (sent ahead): the helper is never given a second batch before the first is back, so it
    never fails, and every frame is accepted."""
    d = _registered(db, b"AHEAD-07")
    monkeypatch.setattr(writer_module, "MAX_TXN_FRAMES", 8)
    writer = writer_module.Writer(db, verify_processes=1)
    jobs = [_Job([d.heartbeat() for _ in range(n)], "http", None, d.time + 60) for n in (8, 20, 8)]
    _run(writer, jobs)
    assert [h.failures for h in writer.helpers] == [0]
    assert [[x.status for x in job.results] for job in jobs] == [
        ["accepted"] * len(job.wires) for job in jobs]


def test_a_verdict_made_ahead_with_a_key_since_rotated_is_made_again_with_the_new_key_book(
        db: Path) -> None:
    """The key is rotated after the helper checked the frames with it and before the
    writer's COMMIT: the writer checks them again with the key book it holds then, so they
    are stored as signed by the key that signed them (now revoked, signed before its
    revocation), never credited to the new key."""
    d = _registered(db, b"AHEAD-02")
    wires = [d.heartbeat() for _ in range(4)]
    with Receiver(db, verify_processes=1, clock=lambda: d.time + 60) as r:
        writer = r.writer
        arrived, go = threading.Event(), threading.Event()
        commit_group = writer._commit_group

        def held(jobs: list[_Job]) -> None:
            arrived.set()
            assert go.wait(30)
            commit_group(jobs)

        writer._commit_group = held          # type: ignore[method-assign]
        out: dict[str, Any] = {}
        t = threading.Thread(target=lambda: out.setdefault("answer", r.ingest(wires)))
        t.start()
        assert arrived.wait(30)
        generation = writer.keys.generation
        with Registry(db) as reg:
            old_key = reg.get(d.kid)
            reg.rotate(d.kid, Ed25519PrivateKey.generate().public_key())
        go.set()
        t.join(30)
        assert writer.keys.generation != generation     # the writer saw the rotation at its COMMIT
    assert [x.status for x in out["answer"].results] == ["accepted"] * 4
    conn = db_connect(db)
    try:
        keys = {row[0] for row in conn.execute("SELECT key_id FROM frames")}
        old_id = conn.execute("SELECT key_id FROM device_keys WHERE device_id = ? AND revoked_at IS NOT NULL",
                              (d.kid,)).fetchone()[0]
    finally:
        conn.close()
    assert old_key is not None
    assert keys == {old_id}


def test_when_the_helpers_hit_a_bug_the_writer_checks_every_frame_itself(db: Path, monkeypatch) -> None:
    """Fail closed: sending to the helpers raises; the requests are still stored, their
    frames checked by the writer itself (the forged one rejected), and nothing is lost."""
    d = _registered(db, b"AHEAD-03")
    wires = [d.heartbeat() for _ in range(4)] + [_forged(d.heartbeat())]

    def broken(*_: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(writer_module, "send_to_helpers", broken)
    monkeypatch.setattr(writer_module, "check_with_helpers", broken)
    with Receiver(db, verify_processes=1, clock=lambda: d.time + 60) as r:
        first = r.ingest(wires[:2] + wires[4:] + wires[2:3])
        second = r.ingest(wires[3:4])
        assert r.writer.is_alive()
    assert [x.status for x in first.results] == ["accepted", "accepted", "rejected", "accepted"]
    assert str(first.results[2].reason) == "bad-signature"
    assert [x.status for x in second.results] == ["accepted"]
    conn = db_connect(db)
    try:
        assert conn.execute("SELECT count(*) FROM frames").fetchone()[0] == 4
    finally:
        conn.close()


def test_requests_waiting_when_the_receiver_stops_are_stored_and_answered(db: Path) -> None:
    d = _registered(db, b"AHEAD-04")
    r = Receiver(db, verify_processes=1, clock=lambda: d.time + 60)
    arrived, go = threading.Event(), threading.Event()
    commit_group = r.writer._commit_group

    def held(jobs: list[_Job]) -> None:
        arrived.set()
        assert go.wait(30)
        commit_group(jobs)

    r.writer._commit_group = held              # type: ignore[method-assign]
    jobs = [_Job([d.heartbeat() for _ in range(4)], "http", None, d.time + 60) for _ in range(3)]
    r.writer.submit(jobs[0])
    assert arrived.wait(30)              # the first is being stored; the others queue behind it
    for job in jobs[1:]:
        r.writer.submit(job)
    closing = threading.Thread(target=r.close)
    closing.start()
    go.set()
    closing.join(60)
    assert not closing.is_alive()
    assert [job.state for job in jobs] == ["done"] * 3
    assert [[x.status for x in job.results] for job in jobs] == [["accepted"] * 4] * 3
    conn = db_connect(db)
    try:
        assert conn.execute("SELECT count(*) FROM frames").fetchone()[0] == 12
    finally:
        conn.close()


def test_answers_the_signing_helper_failed_to_sign_are_signed_by_the_receiver(db: Path, monkeypatch) -> None:
    """The thread that signs behind the writer hits a bug on a group of 4 requests: each is
    still answered, after its COMMIT, with an answer the centre's key signed (made on the
    event loop)."""
    devs = [_registered(db, b"AHEAD-1%d" % i) for i in range(5)]
    monkeypatch.setattr(writer_module, "BEHIND_MIN_ANSWERS", 4)
    rs = start_in_thread(db, ServerConfig(port=0, verify_processes=1, io_timeout_s=30, request_deadline_s=40))
    writer = rs.receiver.writer
    try:
        behind = writer.behind
        assert behind is not None and writer.answer_key is not None
        calls: list[int] = []

        def broken(jobs: list[_Job]) -> None:
            calls.append(len(jobs))
            raise RuntimeError("a bug")

        behind.sign = broken
        arrived, go = threading.Event(), threading.Event()
        commit_group = writer._commit_group

        def held(jobs: list[_Job]) -> None:      # the first request's group waits: the 4 others queue
            arrived.set()
            assert go.wait(30)
            commit_group(jobs)

        writer._commit_group = held              # type: ignore[method-assign]
        bodies = [d.heartbeat() for d in devs]
        answers: dict[int, tuple[int, bytes]] = {}

        def send(i: int) -> None:
            status, _headers, out = post(rs.port, bodies[i])
            answers[i] = (status, out)

        threads = [threading.Thread(target=send, args=(0,))]
        threads[0].start()
        assert arrived.wait(30)
        threads += [threading.Thread(target=send, args=(i,)) for i in range(1, 5)]
        for t in threads[1:]:
            t.start()
        for _ in range(3000):                    # bounded by count: until all 4 are queued
            if writer._queue.qsize() >= 4:
                break
            threading.Event().wait(0.01)
        assert writer._queue.qsize() == 4
        go.set()
        for t in threads:
            t.join(60)
        for i, body in enumerate(bodies):
            status, out = answers[i]
            assert status == 200
            doc = open_answer(rs.centre.public_key, body, out)      # the signature checks out
            assert [x["status"] for x in doc["results"]] == ["accepted"]
        assert calls == [4]
    finally:
        rs.stop()
