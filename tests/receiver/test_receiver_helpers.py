"""The receiver's helper processes (`sotto receive --verify-processes N`,
host_tools.receiver.verifier): they check signatures and sign the answers of a
committed group; whatever they fail to do is done in the receiver, nothing is
stored unchecked and nothing is answered `accepted` before its COMMIT. On both
backends (the `db` fixture). Bound by count, not by wall time."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
from pathlib import Path

import framefactory as ff
from conftest import LOC, device, open_answer, post
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from host_tools.receiver.centre_key import CentreKey
from host_tools.receiver.ingest import ACCEPTED, Receiver, Result
from host_tools.receiver.ingest.answer import answer_payload
from host_tools.receiver.ingest.txn import _Job
from host_tools.receiver.server import ServerConfig, default_verify_processes, start_in_thread
from host_tools.registry import Registry
from host_tools.registry import connect as db_connect


def _devices(db: Path, n: int) -> list[ff.DeviceSim]:
    devs = [device(b"HELP-%03d" % i) for i in range(n)]
    with Registry(db) as reg:
        for d in devs:
            reg.add(d.kid, d.public_key)
    return devs


def _committed_jobs(n: int) -> list[_Job]:
    jobs = []
    for i in range(n):
        job = _Job([b"x"], "http", "10.0.0.1", 1_800_000_000.0 + i)
        job.results = [Result(ACCEPTED, b"SOTTO-42", i)]
        job.req = hashlib.sha256(b"request %d" % i).digest()
        jobs.append(job)
    return jobs


def test_the_helpers_sign_answers_byte_for_byte_as_the_receiver_would(db: Path) -> None:
    centre = CentreKey(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
    with Receiver(db, verify_processes=2) as r:
        r.writer.answer_key = centre
        signer = r.writer.signer        # a helper of its own: signing never waits behind a check
        assert signer is not None and signer not in r.writer.helpers
        jobs = _committed_jobs(9)
        r.writer._sign_answers(jobs)
        for job in jobs:     # Ed25519 is deterministic: the same bytes as signing here
            assert job.req is not None
            assert job.signed == centre.sign_answer(answer_payload(job.req, job.answer()))
        assert signer.has_centre_key
        assert not any(h.has_centre_key for h in r.writer.helpers)    # the checking ones never get it
        # the signer killed: the answers are left unsigned (the event loop signs those), never wrong
        victim = signer._proc
        os.kill(victim.pid, signal.SIGKILL)
        victim.join(10)
        jobs = _committed_jobs(8)
        r.writer._sign_answers(jobs)
        assert [job.signed for job in jobs] == [None] * 8
        # restarted for the next group
        jobs = _committed_jobs(8)
        r.writer._sign_answers(jobs)
        assert [job.signed for job in jobs] == [
            centre.sign_answer(answer_payload(j.req, j.answer())) for j in jobs]   # type: ignore[arg-type]


def test_a_helper_killed_mid_ingest_loses_nothing_acknowledged(db: Path) -> None:
    """SIGKILL a helper process again and again while 6 devices post: every POST is
    answered 200 with every frame accepted (signed so the device opens it) or 503, and
    every frame answered accepted is stored."""
    devs = _devices(db, 6)
    rs = start_in_thread(db, ServerConfig(port=0, verify_processes=2, io_timeout_s=10,
                                          request_deadline_s=20))
    acked: list[bytes] = []
    statuses: list[int] = []
    problems: list[str] = []
    lock = threading.Lock()
    per_device = 30

    def run(d: ff.DeviceSim) -> None:
        frames = [d.alert_start(loc=LOC)] + [d.location(LOC) for _ in range(per_device - 1)]
        i = 0
        while i < len(frames):
            batch = frames[i:i + 1 + i % 3]
            body = b"".join(batch)
            status, _headers, out = post(rs.port, body)
            with lock:
                statuses.append(status)
            if status == 503:
                continue          # the device sends the same frames again
            if status != 200:
                problems.append(f"HTTP {status}")
                return
            doc = open_answer(rs.centre.public_key, body, out)   # the signature checks out
            if [x["status"] for x in doc["results"]] != ["accepted"] * len(batch):
                problems.append(repr(doc["results"]))
                return
            with lock:
                acked.extend(batch)
            i += len(batch)

    try:
        threads = [threading.Thread(target=run, args=(d,)) for d in devs]
        for t in threads:
            t.start()
        kills = 0
        seen = 0
        while any(t.is_alive() for t in threads) and kills < 4:
            with lock:
                done = len(statuses)
            if done >= seen + 8:           # after every 8 answers (by count), kill a helper
                seen = done
                writer = rs.receiver.writer
                helpers = [h for h in [*writer.helpers, writer.signer] if h is not None and h.alive]
                if helpers:
                    os.kill(helpers[kills % len(helpers)]._proc.pid, signal.SIGKILL)
                    kills += 1
            threading.Event().wait(0.001)
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads)
    finally:
        rs.stop()
    assert problems == []
    assert kills >= 1
    assert len(acked) == 6 * per_device
    conn = db_connect(db)
    stored = {bytes(w) for (w,) in conn.execute("SELECT wire FROM frames")}
    conn.close()
    assert set(acked) <= stored and len(stored) == 6 * per_device


def test_verify_processes_option(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "sotto_cli", "receive", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "--verify-processes" in out
    for bad in (["--verify-processes", "-1"], ["--verify-processes", "2", "--no-verify-helper"]):
        r = subprocess.run([sys.executable, "-m", "sotto_cli", "receive", "--db", str(tmp_path / "r.db"),
                            "--port", "0", *bad], capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and "--verify-processes" in r.stderr
    assert 0 <= default_verify_processes() <= 2
    assert ServerConfig().verify_processes == default_verify_processes()


def test_frames_the_helpers_checked_get_the_verdicts_the_receiver_gives_and_are_not_decoded_twice(
        db: Path, monkeypatch) -> None:
    """A batch of good, forged, broken and unknown frames: checked by the helpers (which
    hand each frame back decoded) the verdicts are those the receiver gives checking them
    itself, and the receiver decodes none of them again."""
    import random

    from host_tools.receiver.ingest import writer as writer_module

    good, other = _devices(db, 2)
    stranger = device(b"HELP-999")                       # not in the registry
    start = good.alert_start(loc=LOC)
    audio = good.audio(random.Random(3).randbytes(400), offset=0, samples=800, state=(0, 0))
    forged = bytearray(good.location(LOC))
    forged[-5] ^= 0x40                                    # in the signature
    wires = [start, audio, bytes(forged), b"\xa1\x01", stranger.heartbeat(),
             other.heartbeat(), good.end()]
    with Receiver(db, verify_processes=2) as r:
        writer = r.writer
        here = [writer._check_here(w, _Job([w], "http", "10.0.0.1", good.time + 60)) for w in wires]
        decoded = []
        real_resolve = writer_module._resolve
        monkeypatch.setattr(writer_module, "_resolve",
                            lambda w, keys: decoded.append(w) or real_resolve(w, keys))
        job = _Job(wires, "http", "10.0.0.1", good.time + 60)
        batches = sum(h.batches for h in writer.helpers)
        writer._verify([job])
        assert sum(h.batches for h in writer.helpers) == batches + 2    # both helpers took a share
        assert decoded == []                                            # nothing decoded twice

    def summary(i: object) -> tuple[object, ...]:
        return (i.wire, i.digest, i.frame.wire if i.frame else None, i.frame.payload if i.frame else None,  # type: ignore[attr-defined]
                i.reason, i.detail, i.key_id, i.officer)                                                      # type: ignore[attr-defined]
    assert [summary(i) for i in job.items] == [summary(i) for i in here]
    assert [i.reason.value if i.reason else "ok" for i in job.items] == [
        "ok", "ok", "bad-signature", "malformed-cbor", "unknown-device", "ok", "ok"]


def test_a_helper_answering_a_malformed_verdict_counts_as_failed_and_its_frames_are_checked_here(
        db: Path, monkeypatch) -> None:
    """Fail closed: a verdict of the wrong shape (the old 3-tuple, ok as 1, no decoded frame
    beside a good verdict) is never trusted: the helper counts as failed (restarted for the
    next batch) and the receiver checks those frames itself, forged ones included."""
    good = _devices(db, 1)[0]
    start = good.alert_start(loc=LOC)
    forged = bytearray(good.location(LOC))
    forged[-5] ^= 0x40                                    # in the signature
    wires = [start, bytes(forged), good.heartbeat(), good.end()]
    with Receiver(db, verify_processes=1) as r:
        writer = r.writer
        helper = writer.helpers[0]
        for bad in ((True, None, ""), (1, None, "", None), (True, None, "", None)):
            monkeypatch.setattr(helper, "_receive", lambda bad=bad: [bad] * len(wires))
            failures = helper.failures
            job = _Job(wires, "http", "10.0.0.1", good.time + 60)
            writer._verify([job])
            assert helper.failures == failures + 1
            assert [i.reason.value if i.reason else "ok" for i in job.items] == [
                "ok", "bad-signature", "ok", "ok"]
