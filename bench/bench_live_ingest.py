"""Live ingest at scale (issue 17), on each storage backend: real `sotto receive`
processes (TLS) against 200 concurrent devices on keep-alive connections, a fleet
of simulated devices each raising one alert, and a thundering herd.

- SQLite (this module, rows "[sqlite]"): one receiver, WAL + synchronous=FULL;
- PostgreSQL (bench_live_ingest_pg.py, rows "[postgresql, 2 nodes]"): two
  receivers (ingest nodes) on one database of a real PostgreSQL server started
  for the run (host_tools.storage.pgserver: Debian's binaries, fsync and
  synchronous_commit on); the load generator sends device i to node i % 2.
  No PostgreSQL server binaries is an error, never a skip (`make bench` needs
  `make postgres`).

Both backends get the same frames (built once per run), each into a new database.

The devices are driven by bench/loadgen.py: one asyncio loop per process
(SOTTO_BENCH_LOADGEN_PROCS, default 1), requests built before the clock starts,
every answer checked against its request (HTTP 200, its `req`, every frame
`accepted`: a duplicate is an error). Latencies count from each POST's scheduled
send (no coordinated omission); the notes split the p99 into the load
generator's lag, TCP connect, TLS handshake and request -> answer, count retries
by cause, and give the receiver's and the load generator's CPU seconds and the
seconds they waited for a CPU (run-queue wait, /proc schedstat): on a machine
loaded by other work, that wait, not the receiver, can be the latency.
SOTTO_BENCH_LIVE_PARTS (default live,batch,paced,fleet,herd) runs only some parts.

Baseline, same run: cryptography's raw Ed25519 verify of the same frames'
Sig_structures on one core (the floor of any receiver's per-frame work).

Rows:
- live: every device streams alerts as they happen: an alert-start alone, then
  POSTs of 1-2 frames (a 1 s IMA-ADPCM chunk, a position every 15 s), then the
  end; closed loop (the next POST as soon as the answer came);
- batches: 16 positions per POST (a device back in coverage with a backlog);
- alert-start answer p99 while the live load runs (the alert-starts are in it),
  closed loop (saturation: p99 is then about the queue of 200 requests over the
  throughput) and at the devices' real pace (one POST per second each: the load
  200 devices in an alert actually make), each device's start staggered over 1 s;
- fleet: SOTTO_BENCH_FLEET devices (default 10,000) each raise one alert of
  30 s of device time (alert-start, a position, the end, 1 s apart in wall time),
  their starts spread over FLEET_SPREAD_S on new TLS connections;
- herd: SOTTO_BENCH_HERD devices (default 2,000) all connect at once and post a
  heartbeat (503 busy and refused connections are retried, and counted).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bench.common import (
    Row,
    cpu_s,
    higher_is_better,
    listen_overflows,
    lower_is_better,
    raw_verify_rate,
    runqueue_wait_s,
)
from bench.loadgen import Plan, Result, drive
from host_tools.registry import Registry
from host_tools.storage.pgserver import TempPostgres
from simulator.pki import make_pki

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
import framefactory as ff  # noqa: E402

DEVICES = 200
LIVE_ALERTS = 2            # per device
LIVE_SECONDS = 20          # audio seconds per alert
BATCHES = 6                # per device, 16 frames each
FLEET = int(os.environ.get("SOTTO_BENCH_FLEET", "10000"))
FLEET_SPREAD_S = float(os.environ.get("SOTTO_BENCH_FLEET_SPREAD", "40"))
HERD = int(os.environ.get("SOTTO_BENCH_HERD", "2000"))
# load generator processes (device i in process i % N); 1 leaves the receiver a core of this 2-core machine
LOADGEN_PROCS = int(os.environ.get("SOTTO_BENCH_LOADGEN_PROCS", "1"))
# which parts to run (quick runs: SOTTO_BENCH_LIVE_PARTS=fleet); rows of parts not run are not made
# the receivers' accept queue: the herd's 2,000 connect at once (the kernel caps it at somaxconn)
LISTEN_BACKLOG = 4096
PARTS = os.environ.get("SOTTO_BENCH_LIVE_PARTS", "live,batch,paced,fleet,herd").split(",")
LOC = ff.pack_location(515007292, -1246254, 8, 1, ff.SRC_GNSS)


def _device(tag: bytes, i: int, t0: int) -> ff.DeviceSim:
    kid = b"%s%05d" % (tag, i)
    return ff.DeviceSim(kid=kid, seed=hashlib.sha256(b"bench-live " + kid).digest(), time=t0)


def _live_plan(d: ff.DeviceSim, rng: random.Random) -> Plan:
    posts = []
    for _ in range(LIVE_ALERTS):
        posts.append((d.alert_start(loc=LOC), 1, "start"))
        for second in range(LIVE_SECONDS):
            frames = [d.audio(rng.randbytes(4000), offset=second * 8000, samples=8000, state=(0, 0))]
            if second % 15 == 14:
                frames.append(d.location(LOC))
            posts.append((b"".join(frames), len(frames), "live"))
        posts.append((d.end(), 1, "live"))
    return Plan(0.0, posts)


def _paced_plan(d: ff.DeviceSim, rng: random.Random, i: int) -> Plan:
    plan = _live_plan(d, rng)
    plan.posts = plan.posts[:LIVE_SECONDS + 2]      # one alert
    plan.start_s = i / DEVICES
    plan.pace_s = 1.0
    return plan


def _batch_plan(d: ff.DeviceSim) -> Plan:
    posts = [(d.alert_start(loc=LOC), 1, "start")]
    for _ in range(BATCHES):
        posts.append((b"".join(d.location(LOC) for _ in range(16)), 16, "batch"))
    return Plan(0.0, posts)


def _fleet_plan(d: ff.DeviceSim, start_s: float) -> Plan:
    first = d.alert_start(loc=LOC)
    d.time += 14
    middle = d.location(LOC)
    d.time += 14
    return Plan(start_s, [(first, 1, "start"), (middle, 1, "live"), (d.end(), 1, "live")], pace_s=1.0)


def _retries(res: Result) -> str:
    """"N retries (why: count, ...)": a POST sent again after a 503 or a lost connection
    (its answer time is the last attempt's)."""
    why = ", ".join(f"{k}: {n}" for k, n in sorted(res.retry_reasons.items(), key=lambda kv: -kv[1]))
    return f"{res.retries} retries" + (f" ({why})" if why else "")


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class _Receiver:
    """One `sotto receive` process (an ingest node)."""

    def __init__(self, db: str, cert: str, key: str, centre_key: Path) -> None:
        cmd = [sys.executable, "-m", "sotto_cli", "receive", "--db", db, "--port", "0", "-q",
               "--tls-cert", cert, "--tls-key", key, "--max-per-address", "20000",
               "--max-connections", "16000", "--listen-backlog", str(LISTEN_BACKLOG),
               "--centre-key", str(centre_key)]
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.stop()
            raise RuntimeError(f"sotto receive did not start: {line!r}")
        self.port = int(line.split("://", 1)[1].split()[0].rsplit(":", 1)[1])

    def cpu_s(self) -> float:
        return cpu_s(self.proc.pid)     # its verify worker processes, if any, in

    def wait_s(self) -> float:
        return runqueue_wait_s(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _check(name: str, res: Result, plans: list[Plan]) -> None:
    want = sum(len(p.posts) for p in plans)
    if res.errors or res.posts != want:
        raise RuntimeError(f"{name}: {res.posts}/{want} POSTs answered accepted; {len(res.errors)} "
                           f"errors: {res.errors[:3]}; {_retries(res)}")


@dataclass
class _Workload:
    keys: dict[bytes, bytes]          # device id -> public key, every device of the run
    live: list[Plan]
    batch: list[Plan]
    paced: list[Plan]
    fleet: list[Plan]
    herd: list[Plan]
    live_frames: list[bytes]          # for the raw verify baseline


@functools.lru_cache(maxsize=1)
def _workload() -> _Workload:
    """Every device's plan, built once per run (both backends send the same frames)."""
    rng = random.Random(17)
    t0 = int(time.time()) - 86_400
    live_devs = [_device(b"LIV", i, t0) for i in range(DEVICES)]
    paced_devs = [_device(b"PAC", i, t0) for i in range(DEVICES)]
    batch_devs = [_device(b"BAT", i, t0) for i in range(DEVICES)]
    fleet_devs = [_device(b"FLT", i, t0) for i in range(FLEET)]
    herd_devs = [_device(b"HRD", i, t0) for i in range(HERD)]
    everyone = live_devs + paced_devs + batch_devs + fleet_devs + herd_devs
    live = [_live_plan(d, rng) for d in live_devs]
    live_frames = [w for p in live for body, n, _ in p.posts for w in ([body] if n == 1 else _split(body))]
    return _Workload(
        keys={d.kid: d.public_key for d in everyone}, live=live,
        batch=[_batch_plan(d) for d in batch_devs],
        paced=[_paced_plan(d, rng, i) for i, d in enumerate(paced_devs)],
        fleet=[_fleet_plan(d, FLEET_SPREAD_S * i / max(1, FLEET)) for i, d in enumerate(fleet_devs)],
        herd=[Plan(0.0, [(d.heartbeat(), 1, "herd")]) for d in herd_devs],
        live_frames=live_frames[:4000])


def _register(db: str, keys: dict[bytes, bytes]) -> None:
    with Registry(db) as reg:
        for kid, pub in keys.items():
            reg.add(kid, pub)


@contextlib.contextmanager
def _database(backend: str, tmp: str, keys: dict[bytes, bytes]) -> Iterator[str]:
    """A new receiver database with every device registered: a SQLite file, or a
    database on a PostgreSQL server started for the run (an error if it cannot be)."""
    if backend == "sqlite":
        db = str(Path(tmp) / "receiver.db")
        _register(db, keys)
        yield db
        return
    with TempPostgres() as pg:
        url = pg.create_database("bench")
        # registering 12,600 devices one transaction each is set-up, not the measurement:
        # without waiting for each commit's flush; the receivers' sessions wait for theirs
        with pg.admin() as conn:
            conn.execute("ALTER DATABASE bench SET synchronous_commit = off")
        _register(url, keys)
        with pg.admin() as conn:
            conn.execute("ALTER DATABASE bench RESET synchronous_commit")
            if conn.execute("SHOW synchronous_commit").fetchone() != ("on",):
                raise RuntimeError("PostgreSQL's synchronous_commit is not on for the receivers")
        yield url


def measure(backend: str, nodes: int) -> list[Row]:
    """The rows on one backend ("sqlite" or "postgresql") with `nodes` receivers on
    one database (the devices spread over them)."""
    tag = f" [{backend}]" if nodes == 1 else f" [{backend}, {nodes} nodes]"
    w = _workload()
    keys = {kid: Ed25519PublicKey.from_public_bytes(pub) for kid, pub in w.keys.items()}
    raw = raw_verify_rate(w.live_frames, keys)
    with tempfile.TemporaryDirectory(prefix="sotto-bench-live-") as tmp, \
            _database(backend, tmp, w.keys) as db:
        pki = make_pki(tmp)
        rxs: list[_Receiver] = []
        try:
            for _ in range(nodes):   # one by one: the first makes the centre key, the others read it
                rxs.append(_Receiver(db, pki.cert_file, pki.key_file, Path(tmp) / "centre.key"))
            ports = [rx.port for rx in rxs]
            figures: dict[str, tuple[Result, float]] = {}
            waits: dict[str, float] = {}
            overflows: dict[str, int] = {}
            for name, plans in (("live", w.live), ("batch", w.batch), ("paced", w.paced),
                                ("fleet", w.fleet), ("herd", w.herd)):
                if name not in PARTS:
                    continue
                cpu0 = sum(rx.cpu_s() for rx in rxs)
                wait0 = sum(rx.wait_s() for rx in rxs)
                ovf0 = listen_overflows()
                res = drive(plans, "127.0.0.1", ports, pki.ca_pem, procs=LOADGEN_PROCS)
                waits[name] = sum(rx.wait_s() for rx in rxs) - wait0
                overflows[name] = listen_overflows() - ovf0
                if name not in ("fleet", "herd"):   # those two rows show what was not accepted
                    _check(name + tag, res, plans)
                figures[name] = (res, sum(rx.cpu_s() for rx in rxs) - cpu0)
        finally:
            for rx in rxs:
                rx.stop()
    return _rows(tag, raw, figures, waits, overflows)


def _ms(values: list[float], p: float) -> str:
    return f"{_pct(values, p) * 1000:.1f} ms"


def _where(res: Result) -> str:
    """Where the time accrued, p99 of each: the load generator's own lag behind the
    schedule, TCP connect, TLS handshake (first attempts), request -> answer."""
    return ", ".join(f"{k} {_ms(res.phases.get(k, []), 99)}"
                     for k in ("lag", "connect", "handshake", "answer"))


def _errors(res: Result) -> str:
    """", N wrong answers or given up (e.g. ...)": answers that were not all `accepted`
    (a `duplicate` after a retry included) and devices that gave up."""
    if not res.errors:
        return ""
    return f", {len(res.errors)} wrong answers or given up (e.g. {res.errors[0][:100]})"


def _client(res: Result) -> str:
    return (f"load generator CPU {res.client_cpu_s:.1f} s in {res.procs} process(es) "
            f"(waited {res.client_wait_s:.1f} s for a CPU)")


def _rows(tag: str, raw: float, figures: dict[str, tuple[Result, float]],
          waits: dict[str, float], overflows: dict[str, int]) -> list[Row]:
    rows: list[Row] = []
    cores = os.cpu_count() or 1
    for name, label, target in (("live", "live ingest, 1-2 frames/POST", ">= 0.5x"),
                                ("batch", "batch ingest, 16 frames/POST", ">= 0.8x")):
        if name not in figures:
            continue
        res, rx_cpu = figures[name]
        rate = res.frames / res.wall_s
        rows.append(higher_is_better(
            f"{label}, TLS keep-alive, {DEVICES} devices vs raw Ed25519 verify (1 core){tag}",
            rate, "frames/s", raw,
            target=target, note=f"{res.frames} frames in {res.posts} POSTs, {res.wall_s:.1f} s; receiver CPU "
            f"{rx_cpu:.1f} s, {_client(res)}, {cores} cores shared"))
    if "live" in figures:
        live_res = figures["live"][0]
        starts = live_res.latencies.get("start", [])
        rows.append(lower_is_better(
            f"alert-start answer p99 under the live load ({DEVICES} devices, closed loop){tag}",
            _pct(starts, 99) * 1000, "ms", 20.0, target="<= 20 ms",
            note=f"{len(starts)} alert-starts, from when each was due (the previous answer; the first: "
                 f"connecting in); p50 {_ms(starts, 50)}; other POSTs p99 "
                 f"{_ms(live_res.latencies.get('live', []), 99)}; p99 {_where(live_res)}"))
    if "paced" in figures:
        paced_res = figures["paced"][0]
        pstarts = paced_res.latencies.get("start", [])
        pall = [x for v in paced_res.latencies.values() for x in v]
        rows.append(lower_is_better(
            f"alert-start answer p99, {DEVICES} devices streaming alerts at their real pace "
            f"(1 POST/s each){tag}",
            _pct(pstarts, 99) * 1000, "ms", 20.0, target="<= 20 ms",
            note=f"{len(pstarts)} alert-starts, from their scheduled send (connecting in); p50 "
                 f"{_ms(pstarts, 50)}; all {paced_res.posts} POSTs p99 {_ms(pall, 99)}; "
                 f"p99 {_where(paced_res)}"))
    if "fleet" in figures:
        fleet_res, rx_cpu = figures["fleet"]
        all_fleet = [x for v in fleet_res.latencies.values() for x in v]
        split = "/".join(str(n) for _, n in sorted(fleet_res.per_port.items()))
        rows.append(higher_is_better(
            f"fleet: {FLEET} devices, one alert each: frames accepted{tag}",
            100.0 * fleet_res.frames / (3 * FLEET), "%", 100.0, target="100 %",
            note=f"{fleet_res.frames} of {3 * FLEET} frames accepted{_errors(fleet_res)}, "
            f"{_retries(fleet_res)}, "
            f"{overflows['fleet']} connections dropped on full accept queues (kernel ListenOverflows), "
            f"POSTs per node {split}, starts spread over {FLEET_SPREAD_S:g} s, a new TLS connection per "
            f"device ({fleet_res.connections} connections, retries in)"))
        rows.append(lower_is_better(
            f"fleet: {FLEET} devices, answer p99{tag}", _pct(all_fleet, 99) * 1000, "ms", 100.0,
            target="<= 100 ms",
            note=f"from each POST's scheduled send to its accepted answer (connecting, retries and the load "
                 f"generator's lag in: no coordinated omission); p50 {_ms(all_fleet, 50)} over "
                 f"{len(all_fleet)} POSTs; alert-start p99 {_ms(fleet_res.latencies.get('start', []), 99)}; "
                 f"p99 {_where(fleet_res)}; receiver CPU {rx_cpu:.1f} s (waited {waits['fleet']:.1f} s "
                 f"for a CPU: the machine's "
                 f"other load), {_client(fleet_res)}"))
        rows.append(higher_is_better(
            f"fleet: {FLEET} devices, device-seconds per wall second{tag}",
            30.0 * FLEET / fleet_res.wall_s, "x", 200.0,
            target=">= 200x", note=f"30 s of device time per alert, all done in {fleet_res.wall_s:.1f} s "
            f"(the starts alone span {FLEET_SPREAD_S:g} s)"))
    if "herd" in figures:
        herd_res, rx_cpu = figures["herd"]
        herd_lat = herd_res.latencies.get("herd", [])
        steady = None
        if "live" in figures:
            live_res = figures["live"][0]
            steady = HERD / (live_res.posts / live_res.wall_s)
        rows.append(Row(
            f"thundering herd: {HERD} devices connect at once, all accepted in{tag}",
            herd_res.wall_s, "s", steady, steady / herd_res.wall_s if steady else None,
            target="measured", note=f"{herd_res.posts} of {HERD} accepted{_errors(herd_res)}; "
            f"baseline: as many POSTs on warm keep-alive connections; p99 "
            f"{_ms(herd_lat, 99)} from the common start; p99 {_where(herd_res)}; {_retries(herd_res)}; "
            f"{overflows['herd']} connections dropped on full accept queues (kernel ListenOverflows, "
            f"backlog {LISTEN_BACKLOG}); "
            f"receiver CPU {rx_cpu:.1f} s (waited {waits['herd']:.1f} s for a CPU), "
            f"{_client(herd_res)}"))
    return rows


def run() -> list[Row]:
    return measure("sqlite", nodes=1)


def _split(body: bytes) -> list[bytes]:
    from host_tools.frames import split_sequence

    return split_sequence(body)
