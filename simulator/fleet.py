"""Fleets: N virtual devices, each through the same scenario with its own id,
key and seed, against one receiver. What it measures: did the receiver accept
every frame, how quickly did it answer (wall time from a request's last byte to
its answer), and how fast the simulation ran.

Fleets talk plain HTTP on loopback so that the figures are the receiver's, not
the cost of a thousand TLS handshakes inside the one simulator process.

Answer times: a background thread notes the wall time at which each answer
becomes readable (simulator.vmodem.stamp_ready), while the main thread steps
the devices, so a device's answer time is the receiver's and not the time the
simulator took to get round to that device (resolution: the interpreter's
thread switch interval, 5 ms at most). Flash directories go to /dev/shm when it
exists (a thousand devices' queues; nothing there needs the disk)."""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host_tools.ids import format_device_id
from simulator.clock import VirtualClock
from simulator.device import DeviceSpec, VirtualDevice
from simulator.expect import Check, evaluate
from simulator.receiver import OutsideReceiver, ReceiverProcess
from simulator.run import Runner, device_spec
from simulator.scenario import Event, Scenario
from simulator.vmodem import stamp_ready


class _Stamper(threading.Thread):
    """Notes when answers become readable, while the main thread steps devices."""

    def __init__(self) -> None:
        super().__init__(name="answer-stamper", daemon=True)
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            stamp_ready()
            time.sleep(0.0005)  # releases the GIL; the main thread runs meanwhile


def fleet_id(i: int) -> bytes:
    return b"FLT%05d" % i


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(p / 100 * (len(v) - 1)))))
    return v[k]


def fleet_spec(sc: Scenario, i: int) -> DeviceSpec:
    """Device i (from 1) of a fleet running sc: its own id, seed and officer."""
    spec = device_spec(sc)
    spec.device_id = fleet_id(i)
    spec.seed = sc.seed * 100_003 + i - 1
    spec.officer = f"{sc.officer or 'officer'} #{i}"
    return spec


def device_keys(sc: Scenario, n: int | None = None) -> list[tuple[bytes, str | None, bytes]]:
    """(device id, officer, public key) of the devices a run (n None) or a fleet of n
    would provision: their keys come from their seeded RNG, so they are known
    beforehand and can be registered with an outside receiver (`sotto sim keys`)."""
    specs = [device_spec(sc, "cpython")] if n is None else [fleet_spec(sc, i) for i in range(1, n + 1)]
    out = []
    with tempfile.TemporaryDirectory(prefix="sotto-keys-") as tmp:
        stand_in = OutsideReceiver("http://127.0.0.1:9", None, bytes(32))
        for k, spec in enumerate(specs):
            spec.runtime = "cpython"
            dev = VirtualDevice(spec, VirtualClock(epoch_s=sc.epoch_s), stand_in, Path(tmp) / f"flash-{k}")
            try:
                out.append((spec.device_id, spec.officer, dev.provision()))
            finally:
                dev.close()
    return out


@dataclass
class FleetResult:
    devices: int
    sim_s: float
    wall_s: float
    made: int
    stored: int
    rejected: int
    latencies_ms: list[float] = field(default_factory=list)
    expectations: int = 0                                     # how many each device was held to
    failures: list[tuple[str, Check]] = field(default_factory=list)   # (device, failed expectation)

    @property
    def ok(self) -> bool:
        return self.stored == self.made and self.rejected == 0 and not self.failures

    def to_json(self) -> dict[str, Any]:
        return {"devices": self.devices, "simulated_s": self.sim_s, "wall_s": round(self.wall_s, 2),
                "frames_made": self.made, "frames_stored": self.stored, "frames_rejected": self.rejected,
                "requests": len(self.latencies_ms),
                "answer_ms_p50": round(percentile(self.latencies_ms, 50), 2),
                "answer_ms_p99": round(percentile(self.latencies_ms, 99), 2),
                "sim_speed_x": round(self.sim_s * self.devices / max(self.wall_s, 1e-9), 1),
                "expectations_per_device": self.expectations,
                "expectation_failures": [{"device": d, "name": c.name, "detail": c.detail}
                                         for d, c in self.failures]}

    def lines(self) -> list[str]:
        j = self.to_json()
        mean = statistics.mean(self.latencies_ms) if self.latencies_ms else float("nan")
        return [
            f"{self.devices} devices, {self.sim_s:.0f} s simulated each, in {self.wall_s:.1f} s of wall time "
            f"({j['sim_speed_x']}x device-seconds per second)",
            f"frames: {self.made} made, {self.stored} stored and verified, {self.rejected} rejected"
            + ("" if self.ok else "  <- NOT ALL ACCEPTED"),
            f"receiver answers: {len(self.latencies_ms)} requests, p50 {j['answer_ms_p50']} ms, "
            f"p99 {j['answer_ms_p99']} ms, mean {mean:.2f} ms",
            self._expectation_line(),
            *(f"  FAIL  {d}: {c.name}: {c.detail}" for d, c in self.failures[:20]),
        ] + ([f"  ... and {len(self.failures) - 20} more"] if len(self.failures) > 20 else [])

    def _expectation_line(self) -> str:
        if not self.expectations:
            return "expectations: none (the scenario has no [expect] table, so nothing was checked)"
        failed = len({d for d, _ in self.failures})
        return (f"expectations: {self.expectations} per device, held by {self.devices - failed} of "
                f"{self.devices} devices" + (f"; {len(self.failures)} failed" if self.failures else ""))


def run_fleet(sc: Scenario, n: int, workdir: str | Path | None = None, on_progress: Any = None,
              receiver: Any = None, spread_s: float = 0.0) -> FleetResult:
    """spread_s: device i is switched on i * spread_s / n after the start and its
    events happen that much later (alerts spread over time, as in a real fleet);
    0 runs every device in lock step."""
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="sotto-fleet-"))
    shm = Path("/dev/shm")
    flash_root = Path(tempfile.mkdtemp(prefix="sotto-fleet-flash-", dir=shm)) if shm.is_dir() \
        and os.access(shm, os.W_OK) else work
    own = receiver is None
    rx = receiver or ReceiverProcess(work / "receiver", tls=False)
    old_switch = sys.getswitchinterval()
    stamper = _Stamper()
    devices: list[VirtualDevice] = []
    try:
        clock = VirtualClock(epoch_s=sc.epoch_s)
        runner = Runner(clock)
        for i in range(n):
            dev = VirtualDevice(fleet_spec(sc, i + 1), clock, rx, flash_root / f"flash-{i + 1}")
            # answers are waited for when due, not at the send: the receiver answers many devices
            # at once (what it sees may then depend on its speed; a single run's never does)
            dev.modem.answer_at_send = False
            dev.provision()
            runner.add(dev)
            # device i is switched on at its shift and lives its scenario from there:
            # a fleet is not powered up in the same millisecond
            shift = int(spread_s * 1000 * i / n)
            runner.schedule(dev, Event(shift, "_power_on", {}))
            for ev in sc.events:
                runner.schedule(dev, Event(ev.at_ms + shift, ev.action, ev.args))
            devices.append(dev)
        sys.setswitchinterval(0.001)  # the stamper gets its turn within 1 ms
        stamper.start()
        wall0 = time.monotonic()
        t = 0
        end = sc.duration_ms + int(spread_s * 1000)
        while t < end:
            t = min(end, t + 5_000)
            runner.run_until(t)
            if on_progress is not None:
                on_progress(t, end)
        wall = time.monotonic() - wall0
        stamper.halt.set()
        stamper.join()
        made = sum(len(d.made) for d in devices)
        lat = [x for d in devices for x in d.modem.answer_wall_ms]
        result = FleetResult(n, end / 1000, wall, made, *_counts(rx, devices), lat,
                             expectations=len(sc.expect))
        for d in devices:   # every device is held to the scenario's expectations
            result.failures += [(format_device_id(d.spec.device_id), c) for c in evaluate(sc.expect, d, rx)
                                if not c.ok]
        return result
    finally:
        stamper.halt.set()
        if stamper.is_alive():
            stamper.join()
        sys.setswitchinterval(old_switch)
        for d in devices:
            d.close()
        if own:
            rx.stop()
        if flash_root != work:
            shutil.rmtree(flash_root, ignore_errors=True)
        if workdir is None:
            shutil.rmtree(work, ignore_errors=True)


def _counts(rx: Any, devices: list[VirtualDevice]) -> tuple[int, int]:
    """Frames stored and rejected at the receiver, of these devices only (an outside
    receiver has others); made-count when its database is not here."""
    if rx.db is None:
        return sum(len(d.acked) for d in devices), 0
    from host_tools.receiver import store

    ids = [d.spec.device_id for d in devices]
    marks = ",".join("?" * len(ids))
    conn = store.open_db(rx.db)
    try:
        stored = conn.execute(f"SELECT count(*) FROM frames WHERE device_id IN ({marks})", ids).fetchone()[0]
        rejected = conn.execute(f"SELECT count(*) FROM rejections WHERE device_id IN ({marks})",
                                ids).fetchone()[0]
    finally:
        conn.close()
    return stored, rejected
