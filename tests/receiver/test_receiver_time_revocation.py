"""Device time far from receipt (flagged, listed by receipt) and revocation with
`revoked_at` (frames dated before it accepted and flagged, after it rejected)."""

from __future__ import annotations

import json
from pathlib import Path

import framefactory as ff
import pytest
from conftest import LOC, NOW, Clock, device

from host_tools.receiver import alerts, flags
from host_tools.receiver.alerts import get_alert, list_alerts
from host_tools.receiver.ingest import Receiver
from host_tools.registry import Registry
from host_tools.registry import connect as db_connect
from sotto_cli.cli import main


def _flags(db: Path, alert_id: int) -> dict[str, flags.AlertFlag]:
    return {f.flag: f for f in get_alert(db_connect(db), alert_id).flags}


def _at(t: int, name: bytes = b"SOTTO-42") -> ff.DeviceSim:
    d = device(name)
    d.time = t - 1          # its next frame is dated t
    return d


@pytest.mark.parametrize("offset,flag", [(-901, "time-behind"), (-899, None), (61, "time-ahead"),
                                         (59, None), (-(NOW - 86_400), "time-behind")])
def test_a_frame_far_from_receipt_is_accepted_and_flagged(receiver: Receiver, db: Path, offset: int,
                                                          flag: str | None) -> None:
    d = _at(NOW + offset)
    result = receiver.ingest([d.alert_start(loc=LOC)]).results[0]
    assert result.status == "accepted"
    found = _flags(db, 1)
    assert list(found) == ([flag] if flag else [])
    if flag:
        assert found[flag].worst_s == offset and found[flag].frames == 1


def test_time_zero_and_the_window_setting(receiver: Receiver, db: Path, clock: Clock) -> None:
    d = _at(NOW)
    start = d.alert_start(loc=LOC)
    unknown = ff.resign(d, {0: 1, 1: 2, 2: d.sid, 3: 9, 4: 0, 5: 1, 6: LOC, 8: ff.chain_link(start)})
    receiver.ingest([start, unknown])
    assert _flags(db, 1)["time-behind"].frames == 1          # time 0: the device has no clock
    conn = db_connect(db)
    assert flags.set_time_window(conn, behind_s=2000, ahead_s=None, operator="dpo") == (2000, 60)
    d2 = _at(NOW - 1500, b"SOTTO-77")
    with Registry(db) as reg:
        reg.add(d2.kid, d2.public_key)
    receiver.ingest([d2.alert_start(loc=LOC)])
    assert _flags(db, 2) == {}                                # within the wider window
    with pytest.raises(Exception, match="whole seconds"):
        flags.set_time_window(conn, behind_s=0, ahead_s=None, operator="dpo")


def test_open_alerts_sort_by_first_receipt_not_device_time(receiver: Receiver, db: Path,
                                                          clock: Clock) -> None:
    good = _at(NOW)
    receiver.ingest([good.alert_start(loc=LOC)])                 # A1 at NOW, device clock right
    rolled = _at(86_400 * 200, b"SOTTO-77")                       # GNSS week roll-over: 1970
    with Registry(db) as reg:
        reg.add(rolled.kid, rolled.public_key, officer="K. Jones")
    clock.t = NOW + 30
    receiver.ingest([rolled.alert_start(loc=LOC)])                # A2, 30 s later
    listed = list_alerts(db_connect(db))
    assert [a.code for a in listed] == ["A2", "A1"]               # newest receipt first
    assert [f.flag for f in listed[0].flags] == ["time-behind"]


def test_flags_show_in_the_cli_and_json(receiver: Receiver, db: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    receiver.ingest([_at(NOW - 5000).alert_start(loc=LOC)])
    assert main(["alerts", "list", "--db", str(db)]) == 0
    assert "time-behind" in capsys.readouterr().out
    assert main(["alerts", "show", "A1", "--db", str(db), "--operator", "Bob"]) == 0
    shown = capsys.readouterr().out
    assert "FLAGGED" in shown and "device clock behind" in shown and "83 min" in shown
    assert main(["alerts", "list", "--db", str(db), "--json"]) == 0
    (item,) = json.loads(capsys.readouterr().out)["alerts"]
    assert item["flags"][0]["flag"] == "time-behind" and item["flags"][0]["worst_offset_s"] == -5000
    assert main(["centre", "time-window", "--db", str(db), "--behind-s", "6000", "--operator", "dpo",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"behind_s": 6000, "ahead_s": 60}


# --------------------------------------------------------------------------
# Revocation: revoked_at decides.


@pytest.mark.parametrize("helper", [False, True], ids=["writer", "helper-process"])
def test_revoke_and_replace_while_the_old_unit_holds_an_undelivered_alert(db: Path, clock: Clock,
                                                                          helper: bool) -> None:
    old = _at(NOW - 600)                          # the unit's SOS, ten minutes ago, never delivered
    held = [old.alert_start(loc=LOC), old.location(LOC), old.location(LOC), old.location(LOC), old.end()]
    new = device(b"SOTTO-42")
    new.seed = bytes(range(1, 33))                # the replacement unit, a new key, same device id
    new.time = NOW
    with Registry(db) as reg:
        reg.add(old.kid, old.public_key, officer="J. Smith")
    with Registry(db, clock=lambda: NOW - 60) as reg:
        reg.rotate(old.kid, new.public_key)       # the technician swapped the unit a minute ago
        assert reg.get("SOTTO-42").keys[0].revoked_at == NOW - 60
    with Receiver(db, clock=clock, verify_helper=helper) as r:
        late = r.ingest(held)                     # the old unit finds coverage and sends its queue
        old.time = NOW - 30                       # dated after the revocation: whoever holds the old key
        after = r.ingest([old.alert_start(loc=LOC)])
        fresh = r.ingest([new.alert_start(loc=LOC)])
    assert [x.status for x in late.results] == ["accepted"] * 5
    assert (after.results[0].status, after.results[0].reason) == ("rejected", "revoked-device")
    assert "dated" in after.results[0].detail
    assert fresh.results[0].status == "accepted"
    conn = db_connect(db)
    a1 = get_alert(conn, 1)
    assert a1.chain.state == "complete" and a1.frames == 5
    assert [f.flag for f in a1.flags] == ["signed-before-revocation"] and a1.flags[0].frames == 5
    assert get_alert(conn, 2).flags == ()        # the new unit's alert
    assert {r.code for r in alerts.list_alerts(conn, include_closed=True)} == {"A1", "A2"}


def test_a_revoked_device_without_a_replacement(db: Path, clock: Clock) -> None:
    d = _at(NOW - 300)
    with Registry(db) as reg:
        reg.add(d.kid, d.public_key)
    with Registry(db, clock=lambda: NOW - 100) as reg:
        reg.revoke(d.kid)
    before = d.alert_start(loc=LOC)
    d.time = NOW - 50
    after = d.location(LOC)
    d.time = -1
    undated = d.location(LOC)                      # time 0: no clock, cannot show it predates
    forged = ff.resign(device(b"SOTTO-42", 0), {0: 1, 1: 2, 2: 1, 3: 50, 4: NOW - 200, 5: 1, 6: LOC,
                                                8: bytes(8)})
    forged = forged[:-1] + bytes([forged[-1] ^ 1])  # a bad signature
    with Receiver(db, clock=clock) as r:
        results = r.ingest([before, after, undated, forged]).results
    assert [(x.status, x.reason) for x in results] == [
        ("accepted", None), ("rejected", "revoked-device"), ("rejected", "revoked-device"),
        ("rejected", "revoked-device")]
    assert [f.flag for f in _flags(db, 1).values()] == ["signed-before-revocation"]


def test_the_consoles_queue_carries_the_flags_and_ages_from_receipt(receiver: Receiver, db: Path,
                                                                    clock: Clock) -> None:
    from host_tools.receiver.queue import live_queue

    receiver.ingest([_at(86_400 * 200).alert_start(loc=LOC)])     # a 1970 date
    (row,) = live_queue(db_connect(db), now=NOW + 20)["alerts"]
    assert row["flags"] == ["time-behind"] and row["age_s"] == 20.0


def test_the_flags_travel_into_the_evidence_bundle(receiver: Receiver, db: Path, tmp_path: Path) -> None:
    from host_tools.receiver import centre_key
    from host_tools.receiver.evidence import export_alert, verify_bundle

    d = _at(NOW - 5000)
    receiver.ingest([d.alert_start(loc=LOC), d.end()])
    conn = db_connect(db)
    key = centre_key.ensure(conn, centre_key.default_path(db))[0]
    export_alert(conn, 1, tmp_path / "b", operator="Bob")
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert [f["flag"] for f in report["receiver"]["flags"]] == ["time-behind"]
    assert "device clock behind" in (tmp_path / "b" / "report.html").read_text()
    assert verify_bundle(tmp_path / "b", centre_key=key.public_key, device_key=d.public_key).ok


def test_the_old_unit_gets_no_commands_meant_for_its_replacement(db: Path, clock: Clock) -> None:
    from host_tools.receiver import commands

    old = _at(NOW - 600)
    held = [old.alert_start(loc=LOC)]
    new = device(b"SOTTO-42")
    new.seed = bytes(range(1, 33))
    new.time = NOW
    with Registry(db) as reg:
        reg.add(old.kid, old.public_key, officer="J. Smith")
    with Registry(db, clock=lambda: NOW - 60) as reg:
        reg.rotate(old.kid, new.public_key)
    with Receiver(db, clock=clock) as r:
        r.ingest([new.alert_start(loc=LOC)])                      # A1: the new unit's alert
        commands.queue(db_connect(db), 1, "locate", operator="Bob")
        to_old = r.ingest(held)                                   # the old unit's A2, signed before
        to_new = r.ingest([new.heartbeat()])
    assert to_old.results[0].status == "accepted" and to_old.cmds == []
    assert len(to_new.cmds) == 1
