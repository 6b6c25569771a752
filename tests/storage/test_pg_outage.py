"""Durable before acknowledged when PostgreSQL itself dies: the server is stopped
with `pg_ctl stop -m immediate` (no checkpoint, as if killed) while devices post
frames to a receiver, then restarted.

- every frame answered `accepted` (or `duplicate`) before the outage is stored;
- every request sent while the server is down is answered 503 storage-unavailable
  (retryable: nothing stored), never `accepted`;
- after the restart the receiver stores again without being restarted itself, and
  once the devices have resent what was never acknowledged, every frame is stored
  exactly once and every alert's chain is complete.

Bound by counts: each outage starts after a number of further acknowledged frames,
and a fixed number of requests is sent while the server is down.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import storage_support as rs
from storage_support import ff

from host_tools.frames import decode_frame  # noqa: E402
from host_tools.receiver.alerts import chain_status  # noqa: E402
from host_tools.receiver.evidence import analyse_chain  # noqa: E402
from host_tools.receiver.server import ServerConfig, start_in_thread  # noqa: E402
from host_tools.registry import Registry  # noqa: E402
from host_tools.registry import connect as db_connect  # noqa: E402
from host_tools.storage.pgserver import TempPostgres  # noqa: E402

OUTAGES = 3
DOWN_REQUESTS = 20          # requests sent while the server is down, per outage
ROUND_LIMIT_S = 300         # only a hung receiver takes this long: the test fails


@pytest.fixture
def pg() -> Any:
    with TempPostgres() as server:
        yield server


class Devices:
    """Devices posting their queues; what the receiver acknowledged and refused."""

    def __init__(self, port: int, queues: list[list[bytes]], seed: int) -> None:
        self.port, self.queues = port, queues
        self.acked: set[bytes] = set()
        self.refused = 0
        self.lock = threading.Lock()
        self.pause = threading.Event()
        self.stop = threading.Event()
        self.rng = random.Random(seed)

    def run(self, queue: list[bytes], rng: random.Random) -> None:
        while queue and not self.stop.is_set():
            if self.pause.is_set():
                time.sleep(0.005)
                continue
            batch = queue[:rng.randint(1, 4)]
            status, info = rs.post(self.port, batch)
            if status == 503:
                with self.lock:
                    self.refused += 1
                time.sleep(0.01)
                continue              # retryable: send the same frames again
            assert status == 200, (status, info)
            statuses = [r["status"] for r in info["results"]]
            assert set(statuses) <= {"accepted", "duplicate"}, statuses
            with self.lock:
                self.acked.update(batch)
            del queue[:len(batch)]

    def count(self) -> int:
        with self.lock:
            return len(self.acked)


def _stream(d: ff.DeviceSim, rng: random.Random) -> list[bytes]:
    frames: list[bytes] = []
    for _ in range(25):
        frames.append(d.alert_start(loc=rs.loc(0)))
        for i in range(rng.randint(2, 8)):
            frames.append(d.audio(rng.randbytes(200), i * 400, 400) if i % 2 else d.location(rs.loc(i)))
        frames.append(d.end())
    return frames


def test_frames_acknowledged_before_postgres_dies_survive_and_none_while_down(pg: TempPostgres,
                                                                              tmp_path: Path) -> None:
    url = pg.create_database("outage")
    rng = random.Random(17)
    devices = [rs.device(b"PGDOWN-%d" % i) for i in range(4)]
    with Registry(url) as reg:
        for d in devices:
            reg.add(d.kid, d.public_key)
    queues = [_stream(d, rng) for d in devices]
    everything = [w for q in queues for w in q]
    running = start_in_thread(url, ServerConfig(port=0, io_timeout_s=30, request_deadline_s=60,
                                                centre_key=str(tmp_path / "centre.key")))
    try:
        devs = Devices(running.port, queues, 1)
        threads = [threading.Thread(target=devs.run, args=(q, random.Random(rng.random()))) for q in queues]
        for t in threads:
            t.start()
        for _ in range(OUTAGES):
            target = devs.count() + rng.randint(10, 60)
            deadline = time.monotonic() + ROUND_LIMIT_S
            while devs.count() < target and any(t.is_alive() for t in threads):
                assert time.monotonic() < deadline, f"only {devs.count()} < {target} acknowledged"
                time.sleep(0.002)
            pg.stop(mode="immediate")            # mid-ingest: requests are in flight
            devs.pause.set()
            acked_before = set(devs.acked)
            # while it is down: a fixed number of requests, each refused with a retryable 503
            spare = [d.location(rs.loc(99)) for d in devices]
            for n in range(DOWN_REQUESTS):
                status, headers = rs.post(running.port, [spare[n % len(spare)]])
                assert status == 503, (status, headers)
            assert _reason_while_down(running.port, spare[0]) == "storage-unavailable"   # retryable
            pg.start()
            conn = db_connect(url)
            stored = {bytes(w) for (w,) in conn.execute("SELECT wire FROM frames")}
            conn.close()
            lost = [w for w in acked_before if w not in stored]
            assert lost == [], f"{len(lost)} acknowledged frames lost when PostgreSQL died"
            assert not any(s in stored for s in spare), "a frame sent while the server was down was stored"
            devs.pause.clear()
        for t in threads:
            t.join(ROUND_LIMIT_S)
        assert not any(t.is_alive() for t in threads)
    finally:
        devs.stop.set()
        running.stop()
    assert len(devs.acked) == len(everything)
    conn = db_connect(url)
    rows = [bytes(w) for (w,) in conn.execute("SELECT wire FROM frames")]
    assert sorted(rows) == sorted(everything)          # each exactly once
    for alert_id, starts, dangling, forks, frames in conn.execute(
            "SELECT alert_id, starts, dangling, forks, frames FROM alerts").fetchall():
        wires = [bytes(w) for (w,) in conn.execute("SELECT wire FROM frames WHERE alert_id = ?", (alert_id,))]
        assert frames == len(wires)
        expected = analyse_chain([decode_frame(w) for w in wires]).state
        assert chain_status(conn, alert_id, starts, dangling, forks, frames).state == expected == "complete"
    conn.close()


def test_a_begin_that_fails_while_postgres_is_down_does_not_latch_the_connection(pg: TempPostgres) -> None:
    # The receiver's writer sends BEGIN first; when PostgreSQL has just died, that BEGIN
    # is what fails. Once the server is back, the next transaction must work: a
    # connection that still believed itself inside the failed transaction refused
    # every later one, and the receiver answered 503 for good (seen under load).
    conn = db_connect(pg.create_database("latch"))
    conn.execute("CREATE TABLE t (x integer)")
    pg.stop(mode="immediate")
    for _ in range(3):
        with pytest.raises(psycopg.OperationalError):
            conn.execute("BEGIN")
    pg.start()
    conn.execute("BEGIN")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.execute("COMMIT")
    assert list(conn.execute("SELECT x FROM t")) == [(1,)]
    conn.close()


def _reason_while_down(port: int, wire: bytes) -> str:
    """The reason a refusal names (its CBOR body): the device keeps the frame and sends it again."""
    import http.client

    import cbor2

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/v1/frames", wire, {"Content-Type": "application/cbor-seq"})
        resp = conn.getresponse()
        assert resp.status == 503
        return cbor2.loads(resp.read())["reason"]
    finally:
        conn.close()
