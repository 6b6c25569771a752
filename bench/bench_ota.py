"""Over-the-air updates on the simulator (docs/ota.md): release bytes on the air
for a release with one changed file against the full release (every file
changed, same run), and the time from assignment to the device running the new
version, on the simulator's clock (virtual modem timing, firmware on CPython)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.common import Row, lower_is_better
from simulator.run import run_scenario
from simulator.scenario import parse, tomllib

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "ota" / "update_applied.toml"
ASSIGN_S = 20


def _run(changed: int) -> tuple[int, float, int]:
    data = tomllib.loads(SCENARIO.read_text())
    data["events"][0]["changed"] = changed
    sc = parse(data, SCENARIO)
    with tempfile.TemporaryDirectory(prefix="sotto-bench-ota-") as work:
        r = run_scenario(sc, work)
        if r.failures:
            raise RuntimeError("; ".join(c.line() for c in r.failures))
        dev = r.device
        t_ms = dev.ota_running.get("9.0.1")
        if t_ms is None:
            raise RuntimeError("9.0.1 never ran")
        return dev.ota_air_bytes, t_ms / 1000 - ASSIGN_S, len(dev.ota_posts)


def run() -> list[Row]:
    one_bytes, one_s, one_req = _run(1)
    full_bytes, full_s, full_req = _run(10_000)
    return [
        lower_is_better("ota.bytes_on_air.one_changed_file", one_bytes, "B", full_bytes,
                        target="< full release", note=f"{one_req} chunk requests; full release {full_req} "
                                                      "(baseline: every file changed, same run)"),
        lower_is_better("ota.assign_to_running_s.one_changed_file (sim clock)", round(one_s, 1), "s",
                        round(full_s, 1), target="", note="assignment -> new version marked good; "
                                                         "baseline: the full release"),
    ]
