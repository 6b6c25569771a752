"""Fleets: N virtual devices, each through the same scenario with its own id,
key and seed, against one receiver. What it measures: did the receiver accept
every frame, how quickly did it answer (wall time from a request's last byte to
its answer), and how fast the simulation ran.

Fleets talk plain HTTP on loopback so that the figures are the receiver's, not
the cost of a thousand TLS handshakes inside the one simulator process."""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.clock import VirtualClock
from simulator.device import VirtualDevice
from simulator.receiver import ReceiverProcess
from simulator.run import Runner, device_spec
from simulator.scenario import Event, Scenario
from simulator.vmodem import stamp_ready


def fleet_id(i: int) -> bytes:
    return b"FLT%05d" % i


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(p / 100 * (len(v) - 1)))))
    return v[k]


@dataclass
class FleetResult:
    devices: int
    sim_s: float
    wall_s: float
    made: int
    stored: int
    rejected: int
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.stored == self.made and self.rejected == 0

    def to_json(self) -> dict[str, Any]:
        return {"devices": self.devices, "simulated_s": self.sim_s, "wall_s": round(self.wall_s, 2),
                "frames_made": self.made, "frames_stored": self.stored, "frames_rejected": self.rejected,
                "requests": len(self.latencies_ms),
                "answer_ms_p50": round(percentile(self.latencies_ms, 50), 2),
                "answer_ms_p99": round(percentile(self.latencies_ms, 99), 2),
                "sim_speed_x": round(self.sim_s * self.devices / max(self.wall_s, 1e-9), 1)}

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
        ]


def run_fleet(sc: Scenario, n: int, workdir: str | Path | None = None, on_progress: Any = None,
              receiver: Any = None, spread_s: float = 0.0) -> FleetResult:
    """spread_s: device i's events happen i * spread_s / n later (alerts spread
    over time, as in a real fleet); 0 runs every device in lock step."""
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="sotto-fleet-"))
    own = receiver is None
    rx = receiver or ReceiverProcess(work / "receiver", tls=False)
    try:
        clock = VirtualClock(epoch_s=sc.epoch_s)
        runner = Runner(clock)
        devices: list[VirtualDevice] = []
        for i in range(n):
            spec = device_spec(sc)
            spec.device_id = fleet_id(i + 1)
            spec.seed = sc.seed * 100_003 + i
            spec.officer = f"{sc.officer or 'officer'} #{i + 1}"
            dev = VirtualDevice(spec, clock, rx, work / f"flash-{i + 1}")
            dev.provision()
            dev.boot()
            runner.add(dev)
            shift = int(spread_s * 1000 * i / n)
            for ev in sc.events:
                runner.schedule(dev, Event(ev.at_ms + shift, ev.action, ev.args))
            devices.append(dev)
        modems = [d.modem for d in devices]
        runner.on_iteration = lambda: stamp_ready(modems)
        wall0 = time.monotonic()
        t = 0
        end = sc.duration_ms + int(spread_s * 1000)
        while t < end:
            t = min(end, t + 5_000)
            runner.run_until(t)
            if on_progress is not None:
                on_progress(t, end)
        wall = time.monotonic() - wall0
        from host_tools.receiver import store

        conn = store.open_db(rx.db)
        try:
            stored = conn.execute("SELECT count(*) FROM frames").fetchone()[0]
            rejected = conn.execute("SELECT count(*) FROM rejections").fetchone()[0]
        finally:
            conn.close()
        made = sum(len(d.made) for d in devices)
        lat = [x for d in devices for x in d.modem.answer_wall_ms]
        for d in devices:
            d.modem.close()
        return FleetResult(n, end / 1000, wall, made, stored, rejected, lat)
    finally:
        if own:
            rx.stop()
