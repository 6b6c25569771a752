"""Alerts as operators see them: list, show (audited), ack, close, silent devices, and the CLI."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import framefactory as ff
import pytest
from conftest import LOC, NOW, Clock, device, loc

from host_tools import storage  # noqa: E402
from host_tools.errors import UsageError
from host_tools.receiver import audit
from host_tools.receiver.alerts import (
    AlertNotFoundError,
    AlertStateError,
    acknowledge,
    close,
    list_alerts,
    show_alert,
    silent_devices,
)
from host_tools.receiver.ingest import Receiver
from host_tools.receiver.store import parse_alert_id
from host_tools.registry import Registry
from host_tools.registry import connect as db_connect  # noqa: E402
from sotto_cli.cli import main


@pytest.fixture
def two_alerts(receiver: Receiver, db: Path, dev: ff.DeviceSim) -> sqlite3.Connection:
    """A1: SOTTO-42, with audio and a moving track. A2: SOTTO-43, a duress alert."""
    other = device(b"SOTTO-43", t0=1_790_000_100)
    with Registry(db) as reg:
        reg.add(other.kid, other.public_key, officer="K. Jones")
    receiver.ingest([dev.alert_start(loc=loc(0, 30), trig=2), dev.audio(b"\x33" * 4000, 0, 8000),
                     dev.location(loc(1, 12)), dev.audio(b"\x33" * 2000, 8000, 4000),
                     dev.location(loc(2, 9))])
    receiver.ingest([other.alert_start(loc=LOC), other.duress(loc(5))])
    return db_connect(db)


def test_list_puts_duress_first_and_shows_no_location(two_alerts: sqlite3.Connection) -> None:
    alerts = list_alerts(two_alerts)
    assert [a.code for a in alerts] == ["A2", "A1"]
    a2, a1 = alerts
    assert a2.duress and a2.officer == "K. Jones"
    assert (a1.trigger_name, a1.audio_seconds, a1.frames, a1.chain.state) == ("presses", 1.5, 5, "open")
    assert "location" not in json.dumps(a1.to_json())
    assert audit.entries(two_alerts) == []          # listing reads no location: nothing to audit


def test_show_gives_everything_and_is_audited_first(two_alerts: sqlite3.Connection) -> None:
    d = show_alert(two_alerts, 1, operator="Bob", now=NOW + 60)
    loc_now = d.location
    assert loc_now is not None
    assert (loc_now.seq, round(loc_now.lat, 7), round(loc_now.lon, 7), loc_now.accuracy_m) == \
        (5, 51.5007592, -0.1245794, 9)
    assert loc_now.fix_time == 1_790_000_005 - 1      # the frame's time less the fix age
    assert [p.seq for p in d.track] == [1, 3, 5]
    assert d.alert.officer == "J. Smith" and d.alert.started_at == 1_790_000_001
    assert d.alert.audio_seconds == 1.5 and d.frame_counts == {"alert-start": 1, "location": 2, "audio": 2}
    (entry,) = audit.entries(two_alerts)
    assert (entry.operator, entry.action, entry.alert_id, entry.at) == ("Bob", "view", 1, NOW + 60)
    j = d.to_json()
    assert j["location"]["age_now_s"] == NOW + 60 - (1_790_000_005 - 1)
    with pytest.raises(AlertNotFoundError):
        show_alert(two_alerts, 99, operator="Bob")


def test_ack_then_close_with_outcome(two_alerts: sqlite3.Connection) -> None:
    a = acknowledge(two_alerts, 1, operator="Bob", now=NOW)
    with pytest.raises(AlertStateError) as again:
        acknowledge(two_alerts, 1, operator="Eve")
    with pytest.raises(UsageError):
        close(two_alerts, 1, operator="Bob", outcome="   ")
    c = close(two_alerts, 1, operator="Carol", outcome="officer safe, false alarm", now=NOW + 5)
    with pytest.raises(AlertStateError) as closed:
        close(two_alerts, 1, operator="Carol", outcome="again")
    direct = close(two_alerts, 2, operator="Dan", outcome="police attended", now=NOW + 9)
    assert a.state == "acknowledged" and a.acked_by == "Bob"
    assert "already acknowledged by Bob" in str(again.value)
    assert (c.state, c.closed_by, c.outcome, c.acked_by) == ("closed", "Carol", "officer safe, false alarm",
                                                             "Bob")
    assert "already closed (by Carol" in str(closed.value)
    assert direct.acked_by == "Dan" and direct.acked_at == NOW + 9     # closing implies acknowledging
    assert [(e.action, e.operator) for e in audit.entries(two_alerts)] == \
        [("acknowledge", "Bob"), ("command", "Bob"), ("close", "Carol"), ("close", "Dan")]   # + listening
    assert list_alerts(two_alerts) == [] and len(list_alerts(two_alerts, include_closed=True)) == 2


def test_the_audit_log_is_append_only(two_alerts: sqlite3.Connection) -> None:
    acknowledge(two_alerts, 1, operator="Bob")
    with pytest.raises(storage.IntegrityError):
        two_alerts.execute("DELETE FROM audit")
    with pytest.raises(storage.IntegrityError):
        two_alerts.execute("UPDATE audit SET operator = 'nobody'")
    assert [e.operator for e in audit.entries(two_alerts)] == ["Bob", "Bob"]     # ack, its listening command


def test_a_device_is_silent_once_its_heartbeat_is_overdue(db: Path, dev: ff.DeviceSim) -> None:
    clock = Clock(NOW)
    quiet = device(b"SOTTO-50")
    revoked = device(b"SOTTO-51")
    with Registry(db) as reg:
        reg.add(quiet.kid, quiet.public_key, officer="Q")
        reg.add(revoked.kid, revoked.public_key)
    with Receiver(db, clock=clock) as r:
        r.ingest([dev.heartbeat(interval_s=900), quiet.heartbeat(interval_s=600),
                  revoked.heartbeat(interval_s=60)])
        clock.t = NOW + 800
        r.ingest([dev.heartbeat(interval_s=900)])
    with Registry(db) as reg:
        reg.revoke(revoked.kid)
    conn = db_connect(db)
    assert silent_devices(conn, now=NOW + 600 + 300) == []                 # exactly interval + grace: not yet
    late = silent_devices(conn, now=NOW + 600 + 301)
    assert [(s.device, s.officer, s.heartbeat_s) for s in late] == [("SOTTO-50", "Q", 600)]
    assert round(late[0].overdue_s) == 301
    assert [s.device for s in silent_devices(conn, now=NOW + 800 + 900 + 301)] == ["SOTTO-50", "SOTTO-42"]
    assert [s.device for s in silent_devices(conn, now=NOW + 700,
                                             grace_s=60)] == ["SOTTO-50"]   # a shorter grace


@pytest.mark.parametrize("text, number", [("A12", 12), ("a12", 12), ("A-12", 12), ("#12", 12), (" 12 ", 12),
                                          ("A0012", 12)])
def test_alert_ids_are_short_and_forgiving(text: str, number: int) -> None:
    assert parse_alert_id(text) == number


@pytest.mark.parametrize("text", ["", "A", "B12", "A0", "12x", "A1.5"])
def test_bad_alert_ids_say_what_one_looks_like(text: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_alert_id(text)
    assert "A12" in str(e.value)


def test_alerts_cli(two_alerts: sqlite3.Connection, db: Path, capsys: pytest.CaptureFixture[str],
                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOTTO_DB", str(db))
    monkeypatch.setenv("SOTTO_OPERATOR", "Olga")
    assert main(["alerts", "list"]) == 0
    listing = capsys.readouterr().out
    assert main(["alerts", "show", "A1"]) == 0
    shown = capsys.readouterr().out
    assert main(["alerts", "show", "A1", "--json", "--operator", "Pat"]) == 0
    shown_json = json.loads(capsys.readouterr().out)
    assert main(["alerts", "ack", "A2", "--operator", "Bob"]) == 0
    assert main(["alerts", "close", "A2", "--operator", "Bob", "--outcome", "police attended"]) == 0
    acted = capsys.readouterr().out
    assert main(["alerts", "close", "A2", "--operator", "Bob", "--outcome", "twice"]) == 1
    assert main(["alerts", "show", "A9"]) == 1
    out = capsys.readouterr()
    assert main(["alerts", "list", "--json", "--all"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert main(["alerts", "audit", "A1"]) == 0
    audit_out = capsys.readouterr().out
    lines = listing.splitlines()
    assert lines[0].split()[:3] == ["ALERT", "STATE", "OFFICER"]
    assert lines[1].startswith("A2") and "DURESS OPEN" in lines[1] and "K. Jones" in lines[1]
    assert "51.5007592, -0.1245794  ±9 m" in shown and "audio" in shown and "1.5 s received" in shown
    assert re.search(r"^trigger +presses$", shown, re.M)
    assert re.search(r"^chain +unbroken so far", shown, re.M)
    assert shown_json["location"]["accuracy_m"] == 9 and len(shown_json["track"]) == 3
    assert "A2 acknowledged by Bob" in acted and "A2 closed by Bob: police attended" in acted
    assert "already closed" in out.err and "no alert A9" in out.err
    assert {a["id"]: a["state"] for a in listed["alerts"]} == {"A1": "open", "A2": "closed"}
    assert "Olga  view  A1" in audit_out and "Pat  view  A1" in audit_out
