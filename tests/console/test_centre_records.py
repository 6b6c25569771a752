"""Monthly statistics, the access ledger, the queue's silent and rejected devices,
the change feed's look-back, and their commands (`sotto stats|ledger|operators`)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pg_support
import pytest
from console_support import NOW, T0, loc, make_device

from host_tools.errors import UsageError
from host_tools.receiver import access, alerts, devcfg
from host_tools.receiver.changes import changes_since, high_water
from host_tools.receiver.ingest import Receiver
from host_tools.receiver.queue import live_queue
from host_tools.receiver.roles import Actor
from host_tools.receiver.stats import month_bounds, month_stats
from host_tools.receiver.store import open_db
from host_tools.registry import Registry
from host_tools.registry import connect as db_connect  # noqa: E402
from sotto_cli.cli import main


@pytest.fixture
def month_of_alerts(tmp_path: Path) -> Path:
    """Ten alerts in 2026-09: answered after 2, 4, ... 20 s; one never; one in October."""
    db = tmp_path / "r.db"
    clock = [0.0]
    devices = [make_device(b"STATS-%02d" % i, t0=T0) for i in range(12)]
    with Registry(db) as reg:
        for d in devices:
            reg.add(d.kid, d.public_key)
    with Receiver(db, clock=lambda: clock[0], max_future_s=10**9) as rx:
        for i, d in enumerate(devices):
            clock[0] = (NOW if i < 11 else month_bounds("2026-10")[0] + 60) + i * 100
            rx.ingest([d.alert_start(loc=loc(i))])
    conn = open_db(db)
    for a in alerts.list_alerts(conn):
        if a.alert_id <= 10:
            alerts.acknowledge(conn, a.alert_id, operator="olga", now=a.first_received_at + 2 * a.alert_id)
    conn.close()
    return db


def test_month_figures(month_of_alerts: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s = month_stats(db_connect(month_of_alerts), "2026-09").to_json()
    assert (s["alerts"], s["acknowledged"], s["unacknowledged"]) == (11, 10, 1)
    assert (s["within_10s"], s["within_40s"]) == (5, 10)
    assert s["within_10s_pct"] == round(500 / 11, 2) and s["meets_10s"] is False and s["meets_40s"] is False
    assert s["median_s"] == 11.0 and s["p95_s"] == pytest.approx(19.1)
    assert month_stats(db_connect(month_of_alerts), "2026-10").alerts == 1
    assert main(["stats", "--month", "2026-09", "--json", "--db", str(month_of_alerts)]) == 0
    assert json.loads(capsys.readouterr().out) == s
    assert main(["stats", "--month", "2026-09", "--db", str(month_of_alerts)]) == 0
    assert "NOT met" in capsys.readouterr().out
    with pytest.raises(UsageError):
        month_bounds("2026-13")


def test_the_ledger_lists_who_saw_a_device(
    centre: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    conn = open_db(centre["db"])
    access.alert_page(conn, Actor("olga", "operator"), 1)
    access.alert_audio(conn, Actor("sam", "supervisor"), 1)
    alerts.acknowledge(conn, 1, operator="olga", role="operator")  # not an access to content
    conn.close()
    assert main(["ledger", "SOTTO-42", "--json", "--db", str(centre["db"])]) == 0
    rows = json.loads(capsys.readouterr().out)["accesses"]
    assert [(r["operator"], r["role"], r["action"], r["alert"]) for r in rows] == [
        ("olga", "operator", "view", "A1"),
        ("sam", "supervisor", "listen", "A1"),
    ]
    assert main(["ledger", "SOTTO-43", "--db", str(centre["db"])]) == 0
    assert "nobody" in capsys.readouterr().out


def test_the_queue_shows_never_heard_devices_and_rejections(centre: dict[str, Any]) -> None:
    quiet, stranger = make_device(b"SOTTO-50"), make_device(b"SOTTO-51")
    with Registry(centre["db"]) as reg:
        reg.add(quiet.kid, quiet.public_key, officer="Q. Uiet")
        reg.add(stranger.kid, make_device(b"OTHER-99").public_key)  # registered with another key
    with Receiver(centre["db"], clock=centre["clock"]) as rx:
        rx.ingest([stranger.heartbeat()])  # bad signature: rejected
    devcfg.record_provisioned(open_db(centre["db"]), quiet.kid, {"heartbeat_every_s": 300}, by="t", now=NOW)
    q = live_queue(open_db(centre["db"]), now=NOW + 10)
    assert [d["device"] for d in q["never_heard"]] == ["SOTTO-50", "SOTTO-51"]
    # the interval each is expected within, and where it comes from (the console shows both)
    assert [(d["heartbeat_s"], d["heartbeat_from"]) for d in q["never_heard"]] == [
        (300, "provisioned"), (900, "default")]
    assert [(r["device"], r["reason"]) for r in q["rejections"]] == [("SOTTO-51", "bad-signature")]
    (row,) = q["alerts"]
    assert (row["id"], row["location_accuracy_m"], row["audio_seconds"], row["unacknowledged_s"]) == (
        "A1",
        9,
        1.5,
        10.0,
    )


def test_the_change_feed_reports_late_commits_once(centre: dict[str, Any]) -> None:
    conn = open_db(centre["db"])
    marks = high_water(conn)
    assert changes_since(conn, marks) == []
    conn.execute(
        "INSERT INTO audit_head(id, entries, last_id, last_hash) VALUES (1, 0, 0, '') "
        "ON CONFLICT(id) DO NOTHING"
    )
    top = marks.audit.top
    from host_tools.receiver import audit

    audit.record(conn, "a", "view")
    audit.record(conn, "b", "view")
    assert [e["operator"] for e in changes_since(conn, marks)] == ["a", "b"]
    # a row with a lower id committed later (several writers): reported once, in the next poll
    pg_support.lift_audit_guard(conn)
    conn.execute("DELETE FROM audit WHERE audit_id = ?", (top + 1,))
    marks.audit.seen.remove(top + 1)
    conn.execute(
        "INSERT INTO audit(audit_id, at, operator, action) VALUES (?, 0, 'late', 'view')", (top + 1,)
    )
    assert [e["operator"] for e in changes_since(conn, marks)] == ["late"]
    assert changes_since(conn, marks) == []


def test_operators_commands(
    centre: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(centre["db"])
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["operators", "add", "kim", "--role", "operator", "--password-stdin", "--db", db]) == 1
    assert "at least" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("long enough password\n"))
    assert main(["operators", "add", "olga", "--role", "operator", "--password-stdin", "--db", db]) == 1
    assert "exists already" in capsys.readouterr().err
    assert main(["operators", "disable", "olga", "--db", db]) == 0
    assert "disabled" in capsys.readouterr().out
    assert main(["operators", "list", "--json", "--db", db]) == 0
    listed = {o["name"]: o for o in json.loads(capsys.readouterr().out)}
    assert listed["olga"]["disabled"] and listed["sam"]["role"] == "supervisor"
    assert "password" not in json.dumps(listed).replace("password_changed", "")
    monkeypatch.setattr("sys.stdin", io.StringIO("a new password here\n"))
    assert main(["operators", "passwd", "sam", "--password-stdin", "--db", db]) == 0
