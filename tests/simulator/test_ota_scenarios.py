"""The over-the-air update scenarios (scenarios/ota/, docs/ota.md) against the
real firmware, virtual modem and a real `sotto receive`; and that the boot
selector on the virtual flash is what the device reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.run import run_scenario
from simulator.scenario import load

OTA = sorted((Path(__file__).resolve().parents[2] / "scenarios" / "ota").glob("*.toml"))


def test_the_update_scenarios_ship():
    assert {p.stem for p in OTA} >= {"update_applied", "update_tampered_file", "update_wrong_key",
                                     "update_health_rollback", "update_deferred_by_alert",
                                     "update_coverage_lost", "update_alert_mid_download"}


@pytest.mark.parametrize("path", OTA, ids=[p.stem for p in OTA])
def test_update_scenario_meets_its_expectations(path, tmp_path):
    sc = load(path)
    result = run_scenario(sc, tmp_path)
    failures = [c.line() for c in result.failures]
    assert not failures, "\n".join(failures)
    assert len(result.checks) == len(sc.expect)


def test_only_the_changed_file_travels(tmp_path):
    sc = load(OTA[0].parent / "update_applied.toml")
    result = run_scenario(sc, tmp_path)
    f = result.device.device.fetcher
    assert f is not None
    # after the switch the fetcher is a new one; the slot holds the whole release
    slot = tmp_path / "flash" / "app" / "a" / "sotto"
    assert slot.is_dir() and len(list(slot.glob("*.mpy"))) > 20
    rel = tmp_path / "release-9.0.1" / "files" / "sotto"
    for p in rel.glob("*.mpy"):
        assert (slot / p.name).read_bytes() == p.read_bytes()
