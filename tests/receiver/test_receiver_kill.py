"""Durable before acknowledged: `sotto receive` is killed with SIGKILL at random
moments while devices post frames; after each restart every frame that was
answered `accepted` (or `duplicate`) is in the database, byte for byte. On both
backends (the `db` fixture: SQLite, or PostgreSQL in `make pytest-pg`).

Bound by count, not by wall time: each round kills the receiver once it has
acknowledged a random number (5..40) of further frames, however slow the machine.
SOTTO_KILL_LOOPS sets how many kills (default 12).
"""

from __future__ import annotations

import http.client
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import framefactory as ff
import pg_support
from conftest import answer_map, device, loc

from host_tools.frames import decode_frame
from host_tools.receiver.alerts import chain_status
from host_tools.receiver.evidence import analyse_chain
from host_tools.registry import Registry
from host_tools.registry import connect as db_connect  # noqa: E402

KILLS = int(os.environ.get("SOTTO_KILL_LOOPS", "12"))
REPO = Path(__file__).resolve().parents[2]


def _stream(d: ff.DeviceSim, rng: random.Random) -> list[bytes]:
    """What a device queues: alerts with positions and audio, heartbeats between them."""
    frames: list[bytes] = []
    for _ in range(40):
        frames.append(d.alert_start(loc=loc(0)))
        for i in range(rng.randint(3, 12)):
            frames.append(d.audio(rng.randbytes(300), i * 600, 600) if i % 2 else d.location(loc(i)))
        frames.append(d.end())
        frames.append(d.heartbeat())
    return frames


class Receiver:
    def __init__(self, db: Path) -> None:
        # two helper processes: they check the signatures and sign the answers (after COMMIT)
        self.proc = subprocess.Popen([sys.executable, "-m", "sotto_cli", "receive", "--db", str(db),
                                      "--port", "0", "-q", "--verify-processes", "2"],
                                     cwd=REPO, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert "listening on" in line, line
        self.port = int(line.split("://")[1].split()[0].rsplit(":", 1)[1])

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def _deliver(port: int, queue: list[bytes], acked: dict[bytes, bytes], lock: threading.Lock,
             rng: random.Random) -> None:
    """Post batches like a device until the receiver disappears; remember what it acknowledged."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while queue:
            batch = queue[:rng.randint(1, 8)]
            conn.request("POST", "/v1/frames", b"".join(batch), {"Content-Type": "application/cbor-seq"})
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200, body
            results = answer_map(body)["results"]
            with lock:
                for wire, result in zip(batch, results, strict=True):
                    assert result["status"] in ("accepted", "duplicate"), result
                    acked[wire] = wire
            del queue[:len(batch)]
    except (OSError, http.client.HTTPException):
        return        # killed


ROUND_LIMIT_S = 300     # only a hung receiver takes this long: the test fails, it does not shrink


def _wait_for_acks(acked: dict[bytes, bytes], lock: threading.Lock, target: int,
                   threads: list[threading.Thread]) -> None:
    deadline = time.monotonic() + ROUND_LIMIT_S
    while True:
        with lock:
            if len(acked) >= target:
                return
        if not any(t.is_alive() for t in threads):
            return                      # every queue delivered
        assert time.monotonic() < deadline, f"the receiver acknowledged {len(acked)} < {target} frames"
        time.sleep(0.002)


def test_every_acknowledged_frame_survives_sigkill(db: Path) -> None:
    rng = random.Random(7)
    devices = [device(b"KILL-%03d" % i) for i in range(4)]
    with Registry(db) as reg:
        for d in devices:
            reg.add(d.kid, d.public_key)
    queues = [_stream(d, rng) for d in devices]
    everything = [w for q in queues for w in q]
    acked: dict[bytes, bytes] = {}
    lock = threading.Lock()
    for _ in range(KILLS):
        rx = Receiver(db)
        threads = [threading.Thread(target=_deliver, args=(rx.port, q, acked, lock,
                                                           random.Random(rng.random())))
                   for q in queues]
        for t in threads:
            t.start()
        _wait_for_acks(acked, lock, len(acked) + rng.randint(5, 40), threads)
        rx.kill()
        for t in threads:
            t.join()
        conn = db_connect(db)
        stored = {bytes(w) for (w,) in conn.execute("SELECT wire FROM frames")}
        conn.close()
        missing = [w for w in acked if w not in stored]
        assert missing == [], f"{len(missing)} acknowledged frames lost"
    assert len(acked) >= 5 * KILLS        # the loop did ingest under fire (by count)
    # Afterwards the devices send whatever was never acknowledged: nothing is lost or doubled.
    rx = Receiver(db)
    try:
        for q in queues:
            _deliver(rx.port, q, acked, lock, rng)
    finally:
        rx.kill()
    conn = db_connect(db)
    if not pg_support.PG:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    stored_rows = [bytes(w) for (w,) in conn.execute("SELECT wire FROM frames")]
    assert sorted(stored_rows) == sorted(everything)
    for alert_id, starts, dangling, forks, frames in conn.execute(
            "SELECT alert_id, starts, dangling, forks, frames FROM alerts").fetchall():
        wires = [bytes(w) for (w,) in conn.execute("SELECT wire FROM frames WHERE alert_id = ?", (alert_id,))]
        assert frames == len(wires)
        expected = analyse_chain([decode_frame(w) for w in wires]).state
        assert chain_status(conn, alert_id, starts, dangling, forks, frames).state == expected == "complete"
