"""The firmware's build date (firmware/sotto/build.py) is the pivot for GNSS week
roll-overs and the floor for every clock: it must never be later than a true date
the device, the simulator or a shipped scenario can see, and must lie after the
last roll-over (2019-04-07) so that 1024 weeks after it reach well past today."""

from __future__ import annotations

import time
from pathlib import Path

from sotto.build import BUILD_UTC_S

from simulator.clock import VirtualClock
from simulator.scenario import load

ROLLOVER_2019_S = 1554595200  # 2019-04-07T00:00:00Z
SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


def test_build_date_is_not_in_the_future() -> None:
    assert ROLLOVER_2019_S < BUILD_UTC_S <= time.time()


def test_build_date_is_not_after_any_simulated_start() -> None:
    assert BUILD_UTC_S <= VirtualClock().epoch_s
    starts = {p.name: load(p).epoch_s for p in sorted(SCENARIOS.glob("*.toml"))}
    assert starts
    late = {name: s for name, s in starts.items() if s < BUILD_UTC_S}
    assert not late, f"scenarios start before the firmware's build date: {late}"
