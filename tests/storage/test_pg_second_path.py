"""The second path with both receivers on one PostgreSQL database (two sites of one
centre, docs/operator-guide.md "A second path"): the scenario
`primary_killed_mid_alert` (the primary `sotto receive` SIGKILLed mid-alert, the
device goes on through the secondary) with both receivers storing into the same
database. Operators there see ONE alert: one alert row, every frame the device
made stored exactly once, its chain complete in that one record (not a `gap` at
one centre and a start at the other), the primary's part and the secondary's
part both in it, and the device's receiver-down report (st 9, rx 0) beside it.
The independent-centres variant (each its own database) is the scenario itself
(tests/simulator/test_scenarios.py) and tests/receiver/test_receiver_dualpath.py."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from host_tools.frames import FrameType, decode_frame
from host_tools.receiver.alerts import chain_status
from host_tools.receiver.evidence import analyse_chain
from host_tools.receiver.paths import RX_KEY, ST_RECEIVER_DOWN, payload_of
from host_tools.registry import connect as db_connect
from host_tools.storage.pgserver import TempPostgres
from simulator.run import run_scenario
from simulator.scenario import load

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "primary_killed_mid_alert.toml"
ST_KEY = 18   # a status frame's status code (docs/frames.md)
KILLED_AT_MS = 40_000   # the scenario's kill_receiver event


@pytest.fixture
def shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    # the centre key of a PostgreSQL database lives under $XDG_DATA_HOME: both sites find the same one
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    with TempPostgres() as pg:
        yield pg.create_database("centre")


def test_primary_killed_mid_alert_with_both_receivers_on_one_database_is_one_alert(shared: str,
                                                                                     tmp_path: Path) -> None:
    sc = load(SCENARIO)
    # both sites write one record: there is no "secondary centre's view" to say "delivered via secondary"
    expect = {k: v for k, v in sc.expect.items() if k != "delivered_via_secondary"}
    sc = dataclasses.replace(sc, expect=expect)
    result = run_scenario(sc, tmp_path / "run", shared_db=shared)
    assert not result.failures, [(c.name, c.detail) for c in result.failures]
    dev = result.device
    assert result.receiver.db == shared
    made = {bytes(wire) for _, _, _, wire in dev.made}
    conn = db_connect(shared)
    try:
        did = dev.spec.device_id
        rows = conn.execute("SELECT alert_id, starts, dangling, forks, frames FROM alerts "
                            "WHERE device_id = ?", (did,)).fetchall()
        assert len(rows) == 1, rows                       # one alert, whichever site took its frames
        alert_id, starts, dangling, forks, count = rows[0]
        stored = [bytes(w) for (w,) in conn.execute("SELECT wire FROM frames WHERE device_id = ?", (did,))]
        assert len(stored) == len(set(stored))            # nothing stored twice
        assert set(stored) == made                        # nothing lost: every frame the device made
        wires = [bytes(w) for (w,) in conn.execute("SELECT wire FROM frames WHERE alert_id = ?", (alert_id,))]
        assert count == len(wires) and (starts, dangling, forks) == (1, 0, 0)
        frames = [decode_frame(w) for w in wires]
        assert analyse_chain(frames).state == "complete"
        assert chain_status(conn, alert_id, starts, dangling, forks, count).state == "complete"
        # both paths carried part of it: acknowledged before the primary was killed (at 40 s) and after
        # it, when only the secondary answers
        assert not result.receiver.alive
        before = [seq for t, seq in dev.acked if t < KILLED_AT_MS]
        after = [seq for t, seq in dev.acked if t > KILLED_AT_MS]
        assert before and len(after) >= 10, (before, after)
        down = [decode_frame(w).seq for w in stored if decode_frame(w).type == FrameType.STATUS
                and payload_of(w).get(ST_KEY) == ST_RECEIVER_DOWN and payload_of(w).get(RX_KEY) == 0]
        assert down, "the device's report that the primary is down (st 9, rx 0) is not stored"
    finally:
        conn.close()
