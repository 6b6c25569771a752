"""Several `sotto receive` processes (ingest nodes) on one PostgreSQL database:

- no frame is stored twice, and a frame sent again is answered `duplicate`
  whichever node gets it — also when the same frames reach every node at once;
- one alert's frames arriving through two nodes at the same time give one alert
  whose counters and chain check agree with its stored frames (complete, no
  dangling links, no forks), as if one receiver had taken them all;
- one device's frames are written by one node at a time, but a node writing
  one device does not hold up another node writing a different device;
- the SQLite lock that refuses a second receiver is not taken on PostgreSQL.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import storage_support as rs

from host_tools.frames import decode_frame
from host_tools.receiver.alerts import chain_status, get_alert
from host_tools.receiver.evidence import analyse_chain
from host_tools.receiver.ingest.writer import INGEST_LOCK, device_lock_key
from host_tools.registry import Registry
from host_tools.registry import connect as db_connect
from host_tools.storage.pgserver import TempPostgres

REPO = Path(__file__).resolve().parents[2]
NODES = 3


class Node:
    """One `sotto receive` process."""

    def __init__(self, url: str, key: Path) -> None:
        cmd = [sys.executable, "-m", "sotto_cli", "receive", "--db", url, "--port", "0", "-q",
               "--centre-key", str(key)]
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert "listening on" in line, line
        self.port = int(line.split("://")[1].split()[0].rsplit(":", 1)[1])

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture(scope="module")
def centre(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A PostgreSQL database with NODES receivers on it, and devices registered."""
    tmp = tmp_path_factory.mktemp("nodes")
    with TempPostgres() as pg:
        url = pg.create_database("nodes")
        devices = [rs.device(b"NODES-%02d" % i) for i in range(6)]
        pair = [rs.device(b"NODES-XX"), rs.device(b"NODES-YY")]
        with Registry(url) as reg:
            for d in devices + pair:
                reg.add(d.kid, d.public_key)
        nodes = [Node(url, tmp / "centre.key")]          # the first makes the centre key,
        nodes += [Node(url, tmp / "centre.key") for _ in range(NODES - 1)]   # the others share it
        try:
            yield {"url": url, "nodes": nodes, "devices": devices, "pair": pair}
        finally:
            for n in nodes:
                n.stop()


def _statuses(port: int, batch: list[bytes]) -> list[str]:
    status, answer = rs.post(port, batch)
    assert status == 200, (status, answer)
    return [r["status"] for r in answer["results"]]


def _stored(url: str, wires: list[bytes]) -> list[int]:
    conn = db_connect(url)
    try:
        counts = {bytes(w): 0 for w in wires}
        for (w,) in conn.execute("SELECT wire FROM frames"):
            if bytes(w) in counts:
                counts[bytes(w)] += 1
        return [counts[w] for w in wires]
    finally:
        conn.close()


def test_a_frame_sent_again_is_a_duplicate_whichever_node_gets_it(centre: Any) -> None:
    a, b, c = centre["nodes"]
    d = centre["devices"][0]
    frames = [d.alert_start(loc=rs.loc(0)), d.location(rs.loc(1)), d.end()]
    assert _statuses(a.port, frames) == ["accepted"] * 3
    assert _statuses(b.port, frames) == ["duplicate"] * 3
    assert _statuses(c.port, frames[1:]) == ["duplicate"] * 2
    assert _stored(centre["url"], frames) == [1, 1, 1]


def test_the_same_frames_at_every_node_at_once_are_stored_once(centre: Any) -> None:
    nodes = centre["nodes"]
    rounds = 15
    for r in range(rounds):
        d = centre["devices"][1 + r % 2]
        frames = [d.alert_start(loc=rs.loc(r))] + [d.location(rs.loc(i)) for i in range(4)] + [d.end()]
        barrier = threading.Barrier(len(nodes))
        answers: list[list[str]] = [[] for _ in nodes]

        def send(i: int, frames: list[bytes] = frames, barrier: threading.Barrier = barrier,
                 answers: list[list[str]] = answers) -> None:
            barrier.wait()
            answers[i] = _statuses(nodes[i].port, frames)

        threads = [threading.Thread(target=send, args=(i,)) for i in range(len(nodes))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        for k in range(len(frames)):
            column = sorted(ans[k] for ans in answers)
            assert column == ["accepted"] + ["duplicate"] * (len(nodes) - 1), (r, k, column)
        assert _stored(centre["url"], frames) == [1] * len(frames)


def test_one_alert_through_two_nodes_at_once_is_one_consistent_alert(centre: Any) -> None:
    a, b, _ = centre["nodes"]
    rng = random.Random(5)
    for n, d in enumerate(centre["devices"][3:]):
        frames = [d.alert_start(loc=rs.loc(0), trig=1)]
        for i in range(40):
            frames.append(d.audio(rng.randbytes(160), i * 320, 320) if i % 3 else d.location(rs.loc(i)))
        frames.append(d.end())
        # the device's two paths: each frame goes to one node, in small batches, both at once
        halves: list[list[bytes]] = [[], []]
        for w in frames:
            halves[rng.randrange(2)].append(w)
        results: dict[bytes, str] = {}
        lock = threading.Lock()

        def deliver(port: int, mine: list[bytes], results: dict[bytes, str] = results,
                    lock: threading.Lock = lock) -> None:
            i = 0
            while i < len(mine):
                batch = mine[i:i + rng.randint(1, 3)]
                for w, s in zip(batch, _statuses(port, batch), strict=True):
                    with lock:
                        results[w] = s
                i += len(batch)

        threads = [threading.Thread(target=deliver, args=(node.port, half))
                   for node, half in zip((a, b), halves, strict=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert sorted(results.values()) == ["accepted"] * len(frames), n
        conn = db_connect(centre["url"])
        try:
            rows = conn.execute("SELECT alert_id, starts, dangling, forks, frames FROM alerts "
                                "WHERE device_id = ?", (d.kid,)).fetchall()
            assert len(rows) == 1                          # one alert, not one per node
            alert_id, starts, dangling, forks, count = rows[0]
            wires = [bytes(w) for (w,) in conn.execute("SELECT wire FROM frames WHERE alert_id = ?",
                                                        (alert_id,))]
            assert sorted(wires) == sorted(frames) and count == len(frames)
            assert (starts, dangling, forks) == (1, 0, 0)
            expected = analyse_chain([decode_frame(w) for w in wires]).state
            state = chain_status(conn, alert_id, starts, dangling, forks, count).state
            assert state == expected == "complete"
            summary = get_alert(conn, alert_id)
            assert summary.frames == len(frames) and summary.end_type is not None
        finally:
            conn.close()


def test_a_node_writing_one_device_does_not_hold_up_another_device(centre: Any) -> None:
    """Device X's ingest lock is held (as by a node in the middle of a commit): X's frame
    waits for it, at any node, while Y's frame is stored and answered meanwhile."""
    a, b, _ = centre["nodes"]
    x, y = centre["pair"]
    holder = db_connect(centre["url"])
    got: list[list[str]] = []
    waiting = threading.Thread(target=lambda: got.append(_statuses(a.port, [x.alert_start(loc=rs.loc(0))])))
    try:
        holder.execute("SELECT pg_advisory_lock(?, ?)", (INGEST_LOCK, device_lock_key(x.kid)))
        waiting.start()
        assert _statuses(b.port, [y.alert_start(loc=rs.loc(1))]) == ["accepted"]
        assert waiting.is_alive() and not got          # X still waits for its device's lock
    finally:
        holder.execute("SELECT pg_advisory_unlock(?, ?)", (INGEST_LOCK, device_lock_key(x.kid)))
        holder.close()
    waiting.join(120)
    assert got == [["accepted"]]
