"""Commands to a device (host_tools.receiver.commands): queued by operators, carried
in the device's signed answers until its reply frame, shown with their state;
`ack` sends `listening`; holds; devices and alerts that run insecure TLS."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import framefactory as ff
import pytest
from conftest import LOC, Clock, device, open_answer, post

from host_tools.errors import UsageError
from host_tools.receiver import audit, commands, holds
from host_tools.receiver.alerts import AlertStateError, acknowledge, close, get_alert, list_alerts, show_alert
from host_tools.receiver.format import format_alert
from host_tools.receiver.ingest import Receiver
from host_tools.receiver.server import RunningServer
from host_tools.registry import Registry
from host_tools.registry import connect as db_connect  # noqa: E402
from sotto_cli.cli import main


@pytest.fixture
def alert(receiver: Receiver, db: Path, dev: ff.DeviceSim) -> sqlite3.Connection:
    """A1: SOTTO-42's live alert."""
    receiver.ingest([dev.alert_start(loc=LOC)])
    return db_connect(db)


def _states(conn: sqlite3.Connection) -> list[tuple[int, str, str, int | None]]:
    return [(c.command_id, c.op, c.state, c.result) for c in commands.for_alert(conn, 1)]


def test_a_command_rides_in_every_answer_until_its_reply(alert: sqlite3.Connection, receiver: Receiver,
                                                         dev: ff.DeviceSim) -> None:
    c1 = commands.queue(alert, 1, "locate", operator="Bob")
    c2 = commands.queue(alert, 1, "more-audio", operator="Bob", seconds=30)
    c3 = commands.queue(alert, 1, "ask", operator="Bob", question="can-you-talk")
    assert c1.command_id < c2.command_id < c3.command_id
    assert _states(alert) == [(c1.command_id, "locate", "queued", None), (c2.command_id, "more-audio",
                              "queued", None), (c3.command_id, "ask", "queued", None)]
    first = receiver.ingest([dev.location(LOC)])
    assert first.cmds == [{"id": c1.command_id, "op": "locate", "sid": 1},
                          {"id": c2.command_id, "op": "more-audio", "s": 30, "sid": 1},
                          {"id": c3.command_id, "op": "ask", "q": 1, "sid": 1}]
    assert {s for _, _, s, _ in _states(alert)} == {"delivered"}
    # the replies come in the device's next request; the answer to it no longer carries them
    second = receiver.ingest([dev.reply(c1.command_id, 1, sid=1), dev.reply(c2.command_id, 2, sid=1),
                              dev.location(LOC)])
    assert [c["id"] for c in second.cmds] == [c3.command_id]          # still waiting for the officer
    third = receiver.ingest([dev.reply(c3.command_id, 3, sid=1)])
    assert third.cmds == [] and "cmds" not in third.to_wire()
    got = {c.op: c for c in commands.for_alert(alert, 1)}
    assert (got["locate"].state, got["more-audio"].state, got["ask"].state) == ("done", "refused", "answered")
    assert got["ask"].answer == "yes" and got["ask"].outcome == "answered: yes"
    assert got["locate"].sent == 1 and got["ask"].sent == 2


def test_replies_for_unknown_or_closed_commands_change_nothing(alert: sqlite3.Connection, receiver: Receiver,
                                                               dev: ff.DeviceSim) -> None:
    c = commands.queue(alert, 1, "listening", operator="Bob")
    other = device(b"SOTTO-43")
    with Registry(alert) as reg:
        reg.add(other.kid, other.public_key)
    receiver.ingest([other.reply(c.command_id, 1)])                   # another device's reply
    assert _states(alert) == [(c.command_id, "listening", "queued", None)]
    receiver.ingest([dev.reply(c.command_id + 100, 1)])               # an id nobody queued
    assert _states(alert) == [(c.command_id, "listening", "delivered", None)]    # (in that answer)
    receiver.ingest([dev.reply(c.command_id, 1, sid=1)])
    receiver.ingest([dev.reply(c.command_id, 6, sid=1)])              # a second reply: the first stands
    assert _states(alert) == [(c.command_id, "listening", "done", 1)]


def test_only_the_device_that_sent_the_request_gets_its_commands(alert: sqlite3.Connection,
                                                                 receiver: Receiver, db: Path,
                                                                 dev: ff.DeviceSim) -> None:
    commands.queue(alert, 1, "locate", operator="Bob")
    other = device(b"SOTTO-43")
    with Registry(db) as reg:
        reg.add(other.kid, other.public_key)
    forged = bytearray(dev.heartbeat())
    forged[-1] ^= 1
    assert receiver.ingest([other.heartbeat()]).cmds == []
    assert receiver.ingest([bytes(forged)]).cmds == []              # a forgery in SOTTO-42's name
    assert receiver.ingest([other.heartbeat(), dev.heartbeat()]).cmds == []   # mixed: no device to name
    assert _states(alert)[0][2] == "queued"
    assert len(receiver.ingest([dev.heartbeat()]).cmds) == 1


def test_at_most_eight_commands_per_answer_oldest_first(alert: sqlite3.Connection, receiver: Receiver,
                                                       dev: ff.DeviceSim) -> None:
    ids = [commands.queue(alert, 1, "locate", operator="Bob").command_id for _ in range(10)]
    assert [c["id"] for c in receiver.ingest([dev.heartbeat()]).cmds] == ids[:8]


def test_ack_queues_listening_and_closed_alerts_take_none(alert: sqlite3.Connection, receiver: Receiver,
                                                         dev: ff.DeviceSim) -> None:
    acknowledge(alert, 1, operator="Bob")
    assert _states(alert) == [(1, "listening", "queued", None)]
    assert receiver.ingest([dev.location(LOC)]).cmds == [{"id": 1, "op": "listening", "sid": 1}]
    close(alert, 1, operator="Bob", outcome="officer safe")
    with pytest.raises(AlertStateError, match="closed"):
        commands.queue(alert, 1, "locate", operator="Bob")
    actions = [(e.action, e.detail) for e in audit.entries(alert, alert_id=1)]
    assert ("command", "command 1: listening") in actions


@pytest.mark.parametrize(("op", "kw", "message"), [
    ("more-audio", {}, "--seconds"), ("more-audio", {"seconds": 601}, "--seconds"),
    ("ask", {}, "--question"), ("ask", {"question": "are-you-bored"}, "no question"),
    ("ask", {"question": 9}, "1..8"), ("sing", {}, "no command"),
])
def test_bad_commands_are_refused_before_anything_is_queued(alert: sqlite3.Connection, op: str, kw: dict,
                                                            message: str) -> None:
    with pytest.raises(UsageError, match=message):
        commands.queue(alert, 1, op, operator="Bob", **kw)
    assert _states(alert) == []


def test_show_lists_each_command_with_its_state_and_answer(alert: sqlite3.Connection, receiver: Receiver,
                                                           dev: ff.DeviceSim, clock: Clock) -> None:
    acknowledge(alert, 1, operator="Bob")
    ask = commands.queue(alert, 1, "ask", operator="Bob", question=2)
    locate = commands.queue(alert, 1, "locate", operator="Ann")
    receiver.ingest([dev.location(LOC)])
    receiver.ingest([dev.reply(1, 1, sid=1), dev.reply(ask.command_id, 5, sid=1)])
    text = "\n".join(format_alert(show_alert(alert, 1, operator="Bob")))
    as_json = show_alert(alert, 1, operator="Bob").to_json()["commands"]
    assert "listening" in text and "done" in text
    assert "ask are-you-safe" in text and "answered: no answer" in text
    assert f"{locate.command_id}" in text and "delivered" in text and "by Ann" in text
    assert [(c["op"], c["state"], c["answer"]) for c in as_json] == [
        ("listening", "done", None), ("ask", "answered", "no answer"), ("locate", "delivered", None)]


def test_commands_over_http_are_in_the_signed_answer(server: RunningServer, db: Path,
                                                     dev: ff.DeviceSim) -> None:
    start = dev.alert_start(loc=LOC)
    post(server.port, start)
    with db_connect(db) as conn:
        c = commands.queue(conn, 1, "ask", operator="Bob", question="can-you-talk")
    request = dev.location(LOC)
    opened = open_answer(server.centre.public_key, request, post(server.port, request)[2])
    assert opened["cmds"] == [{"id": c.command_id, "op": "ask", "q": 1, "sid": 1}]


def test_insecure_tls_is_flagged_on_the_device_and_its_alerts(receiver: Receiver, db: Path, dev: ff.DeviceSim,
                                                              clock: Clock, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    bench = device(b"BENCH-01")
    with Registry(db) as reg:
        reg.add(bench.kid, bench.public_key)
    receiver.ingest([dev.alert_start(loc=LOC)])
    bench.alert_start(loc=LOC)
    bench.flags = 8                                   # the device runs insecure_tls: bit 3 on every frame
    receiver.ingest([bench.frames[-1], bench.location(LOC), bench.status(10, unauth=2, flags=8)])
    with db_connect(db) as conn:
        flagged = {a.code: a.insecure_tls for a in list_alerts(conn)}
        trust = conn.execute("SELECT device_id, insecure_tls, unauth FROM device_trust ORDER BY device_id"
                             ).fetchall()
        text = "\n".join(format_alert(show_alert(conn, 2, operator="Bob")))
    assert flagged == {"A1": False, "A2": True}
    assert [(bytes(d), i, u) for d, i, u in trust] == [(b"BENCH-01", 1, 2), (b"SOTTO-42", 0, None)]
    assert "INSECURE TLS" in text
    with monkeypatch.context() as m:         # the listing judges silence on the receiver's clock, not today's
        m.setattr(time, "time", clock)
        assert main(["devices", "list", "--db", str(db)]) == 0
    listed = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines()[1:]}
    assert listed == {"BENCH-01": "active,INSECURE-TLS", "SOTTO-42": "active"}


def test_holds_are_audited_and_shown(alert: sqlite3.Connection) -> None:
    h = holds.hold(alert, 1, operator="Bob", reason="police investigation 4411")
    with pytest.raises(AlertStateError, match="already on hold"):
        holds.hold(alert, 1, operator="Bob", reason="again")
    a = get_alert(alert, 1)
    assert a.hold == h and a.to_json()["hold"]["reason"] == "police investigation 4411"
    assert holds.release(alert, 1, operator="Ann") == h
    with pytest.raises(AlertStateError, match="not on hold"):
        holds.release(alert, 1, operator="Ann")
    with pytest.raises(UsageError, match="--reason"):
        holds.hold(alert, 1, operator="Bob", reason="  ")
    assert [(e.action, e.operator) for e in audit.entries(alert, alert_id=1)] == [("hold", "Bob"),
                                                                                  ("release", "Ann")]


def test_the_cli_queues_commands_and_holds(alert: sqlite3.Connection, db: Path,
                                           capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOTTO_DB", str(db))
    monkeypatch.setenv("SOTTO_OPERATOR", "Olga")
    assert main(["alerts", "listen", "A1"]) == 0
    assert main(["alerts", "more-audio", "A1", "--seconds", "20", "--operator", "Pat"]) == 0
    assert main(["alerts", "locate", "A1"]) == 0
    text = capsys.readouterr().out
    assert main(["alerts", "ask", "A1", "--question", "can-you-talk", "--json"]) == 0
    asked = json.loads(capsys.readouterr().out)
    assert main(["alerts", "ask", "A1", "--question", "dance"]) == 2
    assert main(["alerts", "more-audio", "A1", "--seconds", "0"]) == 2
    err = capsys.readouterr().err
    assert main(["alerts", "hold", "A1", "--reason", "court case"]) == 0
    assert main(["alerts", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert main(["alerts", "release", "A1", "--json"]) == 0
    released = json.loads(capsys.readouterr().out)
    assert "command 1 (listening) queued by Olga" in text
    assert "command 2 (more-audio 20 s) queued by Pat" in text
    assert asked["op"] == "ask" and asked["args"] == {"q": 1} and asked["state"] == "queued"
    assert "no question 'dance'" in err and "--seconds 1..600" in err
    assert listed["alerts"][0]["hold"]["reason"] == "court case"
    assert released["released_by"] == "Olga"
