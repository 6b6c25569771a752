"""Simulator figures (issue 6): simulated seconds per wall second for one
device, and a fleet of devices each raising one alert against one receiver:
every frame accepted, p99 of the receiver's answer time.

SOTTO_BENCH_FLEET sets the fleet size (default 1000; the issue's figure)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bench.common import Row, higher_is_better, lower_is_better
from simulator.fleet import percentile, run_fleet
from simulator.run import run_scenario
from simulator.scenario import load

REPO = Path(__file__).resolve().parent.parent


def run() -> list[Row]:
    rows = []
    sc = load(REPO / "scenarios" / "covert_sos.toml")
    with tempfile.TemporaryDirectory() as d:
        res = run_scenario(sc, d)
    speed = res.sim_s / res.wall_s
    rows.append(higher_is_better("sim: one device, covert SOS (sim s per wall s)", speed, "x", 200.0,
                                 target=">= 200x",
                                 note=f"{res.sim_s:.0f} s in {res.wall_s:.2f} s, real receiver"))
    day = load(REPO / "scenarios" / "heartbeats_day.toml")
    with tempfile.TemporaryDirectory() as d:
        res = run_scenario(day, d)
    rows.append(higher_is_better("sim: one device, a day of heartbeats", res.sim_s / res.wall_s, "x", 200.0,
                                 target=">= 200x", note=f"{res.sim_s:.0f} s in {res.wall_s:.1f} s"))
    n = int(os.environ.get("SOTTO_BENCH_FLEET", "1000"))
    alert = load(REPO / "scenarios" / "false_alarm_cancelled.toml")
    with tempfile.TemporaryDirectory() as d:
        fr = run_fleet(alert, n, d, spread_s=60.0)
    accepted = fr.stored / fr.made if fr.made else 0.0
    rows.append(higher_is_better(f"fleet: {n} devices, one alert each: frames accepted", accepted * 100, "%",
                                 100.0, target="100 %", note=f"{fr.stored}/{fr.made} stored, "
                                 f"{fr.rejected} rejected, alerts spread over 60 s"))
    rows.append(lower_is_better(f"fleet: {n} devices, receiver answer p99", percentile(fr.latencies_ms, 99),
                                "ms", 100.0, target="<= 100 ms on loopback",
                                note=f"p50 {percentile(fr.latencies_ms, 50):.1f} ms over "
                                f"{len(fr.latencies_ms)} requests"))
    rows.append(higher_is_better(f"fleet: {n} devices, device-seconds per wall second",
                                 fr.sim_s * n / fr.wall_s, "x", 200.0, target=">= 200x",
                                 note=f"{fr.sim_s:.0f} s each in {fr.wall_s:.0f} s"))
    return rows
