"""Receiver ingest, end to end: HTTP request -> verified -> committed -> answered.

A real `sotto receive` process (subprocess, database on disk, WAL +
synchronous=FULL) gets frames from 8 concurrent keep-alive connections; a
request's time ends when its CBOR answer has been read. Frames are made by
tests/framefactory.py before timing. Two workloads, batched by the device's own
delivery rules (docs/modem.md: an alert-start alone, then at most 16 frames and
8 KB per POST):

- "backlog": a device back in coverage with positions queued: full batches of
  16 location frames (the delivery maximum);
- "live alert": the standard alert of the cellular issue streamed as it happens
  (alert-start, 30 one-second IMA-ADPCM chunks of 4,000 bytes with a position
  every 15 s, end): each POST carries what one second produced, 1-2 frames.

Baselines in the same run, over exactly the same frames:
- raw: cryptography's Ed25519 verify of each frame's Sig_structure (the floor);
- pycose: Sign1Message.decode + verify_signature (plus the audio digest).
Ratios above 1 mean the receiver, HTTP and disk included, beats the baseline.
Latency: single-frame alert-start requests one after another on an idle
receiver, p50 and p99, against the 100 ms budget of the fleet target.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cbor2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.messages import Sign1Message

from bench.common import Row, higher_is_better, lower_is_better, raw_verify_rate
from host_tools.frames import decode_frame
from host_tools.registry import Registry

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
import framefactory as ff  # noqa: E402

CONNECTIONS = 8
BACKLOG_BATCHES = 24          # per connection, 16 frames each
LIVE_ALERTS = 3               # per connection
LATENCY_REQUESTS = 300
LOC = ff.pack_location(515007292, -1246254, 8, 1, ff.SRC_GNSS)


def _devices(n: int, t0: int) -> list[ff.DeviceSim]:
    out = []
    for i in range(n):
        d = ff.DeviceSim(kid=b"BENCH-%02d" % i, seed=hashlib.sha256(b"bench %d" % i).digest())
        d.time = t0
        out.append(d)
    return out


def _backlog(d: ff.DeviceSim) -> list[list[bytes]]:
    batches = [[d.alert_start(loc=LOC)]]
    for _ in range(BACKLOG_BATCHES):
        batches.append([d.location(LOC) for _ in range(16)])
    return batches


def _live(d: ff.DeviceSim, rng: random.Random) -> list[list[bytes]]:
    batches: list[list[bytes]] = []
    for _ in range(LIVE_ALERTS):
        batches.append([d.alert_start(loc=LOC)])
        for second in range(30):
            batch = [d.audio(rng.randbytes(4000), offset=second * 8000, samples=8000, state=(0, 0))]
            if second % 15 == 14:
                batch.append(d.location(LOC))
            batches.append(batch)
        batches.append([d.end()])
    return batches


class _Receiver:
    """`sotto receive` in a subprocess on a fresh database."""

    def __init__(self, db: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "sotto_cli", "receive", "--db", str(db),
                                      "--port", "0", "-q"], cwd=REPO, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.stop()
            raise RuntimeError(f"sotto receive did not start: {line!r}")
        self.port = int(line.split("://", 1)[1].split()[0].rsplit(":", 1)[1])

    def connect(self) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.connect()
        assert conn.sock is not None
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _post(conn: http.client.HTTPConnection, body: bytes, count: int) -> None:
    conn.request("POST", "/v1/frames", body, {"Content-Type": "application/cbor-seq"})
    resp = conn.getresponse()
    answer = resp.read()
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}: {answer[:200]!r}")
    signed = cbor2.loads(answer)            # the centre's signed answer: COSE_Sign1, payload map inside
    results = cbor2.loads(signed.value[2])["results"]
    if len(results) != count or any(r["status"] != "accepted" for r in results):
        raise RuntimeError(f"not every frame was accepted: {results}")


def _ingest(rx: _Receiver, per_connection: list[list[list[bytes]]]) -> float:
    """Seconds to deliver every batch, CONNECTIONS at a time."""
    bodies = [[(b"".join(batch), len(batch)) for batch in batches] for batches in per_connection]
    errors: list[BaseException] = []

    def deliver(items: list[tuple[bytes, int]]) -> None:
        try:
            conn = rx.connect()
            for body, count in items:
                _post(conn, body, count)
            conn.close()
        except BaseException as e:  # reported below; a bench that lost frames has no figure
            errors.append(e)

    threads = [threading.Thread(target=deliver, args=(b,)) for b in bodies]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return elapsed


def _pycose_verify(wire: bytes, key: OKPKey) -> bool:
    """What a receiver built on pycose would do per frame: decode, verify, check the audio digest."""
    audio = None
    cose = wire
    if wire[0] == 0x82:
        _, audio = cbor2.loads(wire)
        cose = wire[1:len(wire) - len(cbor2.dumps(audio))]
    msg = Sign1Message.decode(cose)
    msg.key = key
    ok = bool(msg.verify_signature())
    if audio is not None:
        ok = ok and hmac.compare_digest(hashlib.sha256(audio).digest(), cbor2.loads(msg.payload)[14])
    return ok


def _pycose_rate(frames: list[bytes], keys: dict[bytes, bytes]) -> float:
    okp = {kid: OKPKey(crv=Ed25519, x=pub) for kid, pub in keys.items()}
    sample = [(w, okp[decode_frame(w).kid]) for w in frames[:: max(1, len(frames) // 400)]]
    assert all(_pycose_verify(w, k) for w, k in sample[:5])
    t0 = time.perf_counter()
    for w, k in sample:
        _pycose_verify(w, k)
    return len(sample) / (time.perf_counter() - t0)


def _latency(rx: _Receiver, devices: list[ff.DeviceSim]) -> list[float]:
    conns = {d.kid: rx.connect() for d in devices}
    starts = [devices[i % len(devices)] for i in range(LATENCY_REQUESTS)]
    frames = [(d.kid, d.alert_start(loc=LOC)) for d in starts]
    times = []
    for kid, wire in frames:
        t0 = time.perf_counter()
        _post(conns[kid], wire, 1)
        times.append(time.perf_counter() - t0)
    for c in conns.values():
        c.close()
    return times


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def run() -> list[Row]:
    rng = random.Random(5)
    t0 = int(time.time()) - 86_400   # frames from the past: never time-in-future
    devices = _devices(CONNECTIONS, t0)
    backlog = [_backlog(d) for d in devices]
    live = [_live(d, rng) for d in devices]
    lat_devices = _devices(CONNECTIONS * 2, t0)[CONNECTIONS:]
    keys_raw = {d.kid: d.public_key for d in devices + lat_devices}
    keys = {kid: Ed25519PublicKey.from_public_bytes(pub) for kid, pub in keys_raw.items()}
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="sotto-bench-rx-") as tmp:
        db = Path(tmp) / "receiver.db"
        with Registry(db) as reg:
            for kid, pub in keys_raw.items():
                reg.add(kid, pub)
        rx = _Receiver(db)
        try:
            for name, work in (("backlog, 16 frames/POST", backlog), ("live alert, 1-2 frames/POST", live)):
                frames = [w for batches in work for batch in batches for w in batch]
                posts = sum(len(batches) for batches in work)
                seconds = _ingest(rx, work)
                rate = len(frames) / seconds
                raw = raw_verify_rate(frames, keys)
                pycose = _pycose_rate(frames, keys_raw)
                note = f"{len(frames)} frames in {posts} POSTs over {CONNECTIONS} connections"
                rows.append(higher_is_better(f"receiver ingest {name} vs raw Ed25519", rate, "frames/s", raw,
                                             target=">= 0.6x", note=note))
                rows.append(higher_is_better(f"receiver ingest {name} vs pycose", rate, "frames/s", pycose,
                                             target=">= 5x", note=note))
            times = _latency(rx, lat_devices)
        finally:
            rx.stop()
    p50 = _percentile(times, 50) * 1000
    p99 = _percentile(times, 99) * 1000
    mean_ms = statistics.mean(times) * 1000
    note = f"{len(times)} alert-starts, one at a time, each a new alert; mean {mean_ms:.2f} ms"
    rows.append(lower_is_better("receiver alert-start latency p50", p50, "ms", 100.0, target="<= 100 ms",
                                note=note))
    rows.append(lower_is_better("receiver alert-start latency p99", p99, "ms", 100.0, target="<= 100 ms",
                                note=note))
    return rows
