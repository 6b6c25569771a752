"""Timed check-in visits at the centre (host_tools.receiver.visits): read from
the stored check-in frames, with the centre's own timer (receipt + dur), and
the CLI views `sotto visits list` and the visits section of `sotto alerts list`."""

from __future__ import annotations

import json
from pathlib import Path

import framefactory as ff
import pytest
from conftest import NOW, Clock, device

from host_tools.receiver.ingest import Receiver
from host_tools.receiver.store import open_db
from host_tools.receiver.visits import ALERTED, ENDED, OPEN, OVERDUE, list_visits
from host_tools.registry import Registry
from host_tools.storage.backend import POSTGRESQL, backend_of
from sotto_cli.cli import main


def _send(r: Receiver, wire: bytes) -> None:
    ans = r.ingest([wire])
    assert [x.status for x in ans.results] == ["accepted"], ans.results


def _visits(db: Path, now: float, **kw: object) -> list:
    conn = open_db(db)
    try:
        return list_visits(conn, now=now, **kw)  # type: ignore[arg-type]
    finally:
        conn.close()


def test_open_then_extended_then_ended(receiver: Receiver, clock: Clock, dev: ff.DeviceSim, db: Path) -> None:
    _send(receiver, ff.check_in(dev, loc=ff.pack_location(1, 2, 8, 1, 1), visit=(1, dev.time + 1800, 1800)))
    v = _visits(db, NOW + 60)
    assert [(x.visit, x.state) for x in v] == [(1, OPEN)]
    assert v[0].due_at == NOW + 1800 and v[0].left_s == 1740 and v[0].officer == "J. Smith"
    clock.t = NOW + 1700
    _send(receiver, ff.check_in(dev, visit=(1, dev.time + 900, 900)))
    v = _visits(db, NOW + 1900)  # past the first end: extended, so still open
    assert [(x.state, x.due_at, x.checkins) for x in v] == [(OPEN, NOW + 2600, 2)]
    clock.t = NOW + 2000
    _send(receiver, ff.check_in(dev, visit=(1, dev.time, 0)))
    assert _visits(db, NOW + 9000) == []  # ended: not listed by default
    v = _visits(db, NOW + 9000, include_ended=True)
    assert [(x.state, x.ended_at) for x in v] == [(ENDED, NOW + 2000)]


def test_the_centres_timer_marks_a_silent_device_overdue(receiver: Receiver, dev: ff.DeviceSim,
                                                          db: Path) -> None:
    # the device's own clock is far off: the centre uses its receipt time + dur
    _send(receiver, ff.check_in(dev, visit=(5, 1, 600)))
    assert [x.state for x in _visits(db, NOW + 599)] == [OPEN]
    v = _visits(db, NOW + 601)
    assert [(x.state, x.device_due) for x in v] == [(OVERDUE, 1)]
    assert v[0].to_json()["left_s"] == -1.0 and v[0].to_json()["alert"] is None


def test_the_devices_overdue_alert_takes_the_visit_over(receiver: Receiver, clock: Clock, dev: ff.DeviceSim,
                                                        db: Path) -> None:
    _send(receiver, ff.check_in(dev, visit=(2, dev.time + 600, 600)))
    clock.t = NOW + 600
    _send(receiver, dev.alert_start(trig=3))
    v = _visits(db, NOW + 700)
    assert [(x.state, x.alert_id) for x in v] == [(ALERTED, 1)]
    # an alert of another kind does not close a visit
    other = device(b"SOTTO-43")
    with Registry(db) as reg:
        reg.add(other.kid, other.public_key, officer="K. Lee")
    _send(receiver, ff.check_in(other, visit=(1, other.time + 60, 60)))
    _send(receiver, other.alert_start(trig=1))
    v = _visits(db, NOW + 700)
    assert [(x.device, x.state) for x in v] == [("SOTTO-43", OVERDUE), ("SOTTO-42", ALERTED)]
    assert [x.device for x in _visits(db, NOW + 700, device_id=other.kid)] == ["SOTTO-43"]


def test_plain_check_ins_are_not_visits(receiver: Receiver, dev: ff.DeviceSim, db: Path) -> None:
    _send(receiver, ff.check_in(dev, loc=ff.pack_location(1, 2, 8, 1, 1)))
    assert _visits(db, NOW, include_ended=True) == []


def test_urgency_order(receiver: Receiver, clock: Clock, dev: ff.DeviceSim, db: Path) -> None:
    _send(receiver, ff.check_in(dev, visit=(1, 0, 0 + 3600)))
    _send(receiver, ff.check_in(dev, visit=(2, 0, 60)))
    _send(receiver, ff.check_in(dev, visit=(3, 0, 1200)))
    _send(receiver, ff.check_in(dev, visit=(4, 0, 0)))
    got = [(x.visit, x.state) for x in _visits(db, NOW + 120, include_ended=True)]
    assert got == [(2, OVERDUE), (3, OPEN), (1, OPEN), (4, ENDED)]


def test_cli(receiver: Receiver, dev: ff.DeviceSim, db: Path, capsys: pytest.CaptureFixture[str],
             monkeypatch: pytest.MonkeyPatch) -> None:
    _send(receiver, ff.check_in(dev, visit=(9, dev.time + 600, 600)))
    monkeypatch.setenv("SOTTO_DB", str(db))
    assert main(["visits", "list"]) == 0
    out = capsys.readouterr().out
    # the CLI's clock is the real one: the test receiver's receipt (2026-09-21) + 600 s has passed
    assert "SOTTO-42" in out and "visit 9" in out and "OVERDUE" in out and "no end, no alert" in out
    assert main(["visits", "list", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [v["visit"] for v in doc["visits"]] == [9] and "lat" not in json.dumps(doc)
    assert main(["alerts", "list", "--json"]) == 0
    assert [v["visit"] for v in json.loads(capsys.readouterr().out)["visits"]] == [9]
    assert main(["alerts", "list"]) == 0
    assert "visits (timed check-in)" in capsys.readouterr().out
    assert main(["visits", "list", "--device", "not an id"]) == 2
    assert "--device" in capsys.readouterr().err
    assert main(["visits"]) == 2


def test_a_damaged_stored_frame_is_skipped(receiver: Receiver, dev: ff.DeviceSim, db: Path) -> None:
    _send(receiver, ff.check_in(dev, visit=(1, 0, 600)))
    conn = open_db(db)
    try:
        # on PostgreSQL stored frames are write-once (a trigger): the damage, like a disk
        # fault's, goes around it
        pg = backend_of(conn) == POSTGRESQL
        if pg:
            conn.execute("ALTER TABLE frames DISABLE TRIGGER frames_write_once")
        conn.execute("UPDATE frames SET wire = ? WHERE type = 8", (b"\x00",))
        if pg:
            conn.execute("ALTER TABLE frames ENABLE TRIGGER frames_write_once")
        conn.commit()
    finally:
        conn.close()
    assert _visits(db, NOW, include_ended=True) == []
