"""Device commands from the console: an operator queues listen / more-audio /
locate / ask through POST /api/alerts/{id}/commands; the alert's detail shows
each command's state and answer as the device's requests and reply frames
arrive, the event feed says when a reply closed one, and the audit log names
the authenticated operator and role."""

from __future__ import annotations

from typing import Any

from console_support import login

from host_tools.receiver import audit
from host_tools.receiver.changes import changes_since, high_water
from host_tools.receiver.ingest import Receiver
from host_tools.receiver.store import open_db


def device_after_a1(centre: dict[str, Any]) -> Any:
    """The fixture's device, carrying on after A1's five frames (session 1)."""
    dev = centre["dev"]
    dev.sid, dev.seq = 1, 5
    return dev


def test_an_operators_commands_reach_the_device_and_its_replies_show(client: Any, centre: dict[str, Any]
                                                                      ) -> None:
    csrf = login(client, "olga")
    h = {"X-CSRF-Token": csrf}
    ask = client.post("/api/alerts/A1/commands", json={"op": "ask", "question": "can-you-talk"}, headers=h)
    assert ask.status_code == 200, ask.text
    assert (ask.json()["op"], ask.json()["args"], ask.json()["state"]) == ("ask", {"q": 1}, "queued")
    more = client.post("/api/alerts/A1/commands", json={"op": "more-audio", "seconds": 30}, headers=h).json()
    listen = client.post("/api/alerts/A1/commands", json={"op": "listen"}, headers=h).json()
    assert listen["op"] == "listening" and more["args"] == {"s": 30}
    shown = client.get("/api/alerts/A1").json()["commands"]
    assert [(c["id"], c["state"], c["operator"]) for c in shown] == [
        (ask.json()["id"], "queued", "olga"), (more["id"], "queued", "olga"),
        (listen["id"], "queued", "olga")]

    dev = device_after_a1(centre)
    conn = open_db(centre["db"])
    marks = high_water(conn)
    with Receiver(centre["db"], clock=centre["clock"]) as rx:
        answer = rx.ingest([dev.heartbeat()])              # the device's next request carries them
        assert [c["id"] for c in answer.cmds] == [ask.json()["id"], more["id"], listen["id"]]
        assert {c["state"] for c in client.get("/api/alerts/A1").json()["commands"]} == {"delivered"}
        rx.ingest([dev.reply(ask.json()["id"], 3, sid=1), dev.reply(more["id"], 1, sid=1),
                   dev.reply(listen["id"], 6, sid=1)])    # yes; done; unknown command
    got = {c["id"]: c for c in client.get("/api/alerts/A1").json()["commands"]}
    assert (got[ask.json()["id"]]["state"], got[ask.json()["id"]]["answer"]) == ("answered", "yes")
    assert got[more["id"]]["state"] == "done" and got[more["id"]]["replied"]
    assert (got[listen["id"]]["state"], got[listen["id"]]["result_name"]) == ("refused", "unknown command")
    events = [e for e in changes_since(conn, marks) if e["kind"] == "command"]
    assert [(e["alert"], e["command"], e["state"]) for e in events] == [
        ("A1", ask.json()["id"], "answered"), ("A1", more["id"], "done"), ("A1", listen["id"], "refused")]
    mine = [e for e in audit.entries(conn) if e.action == "command"]
    conn.close()
    assert [(e.operator, e.role) for e in mine] == [("olga", "operator")] * 3
    assert [e.detail for e in mine] == [f"command {ask.json()['id']}: ask can-you-talk",
                                        f"command {more['id']}: more-audio 30 s",
                                        f"command {listen['id']}: listening"]


def test_bad_commands_are_refused_and_queue_nothing(client: Any, centre: dict[str, Any]) -> None:
    csrf = login(client, "sam")
    h = {"X-CSRF-Token": csrf}
    for body, reason in (({"op": "selfdestruct"}, "bad-request"), ({"op": "more-audio"}, "bad-request"),
                         ({"op": "more-audio", "seconds": 601}, "bad-request"),
                         ({"op": "more-audio", "seconds": "30"}, "bad-request"),
                         ({"op": "ask"}, "bad-request"),
                         ({"op": "ask", "question": "is-it-raining"}, "bad-request"),
                         ({}, "bad-request")):
        r = client.post("/api/alerts/A1/commands", json=body, headers=h)
        assert (r.status_code, r.json()["reason"]) == (400, reason), (body, r.text)
    r = client.post("/api/alerts/A1/commands", json={"op": "locate"})        # no CSRF token
    assert (r.status_code, r.json()["reason"]) == (403, "csrf")
    assert client.post("/api/alerts/A9/commands", json={"op": "locate"}, headers=h).status_code == 404
    assert client.get("/api/alerts/A1").json()["commands"] == []
    client.post("/api/alerts/A1/close", json={"outcome": "officer safe"}, headers=h)
    r = client.post("/api/alerts/A1/commands", json={"op": "locate"}, headers=h)
    assert (r.status_code, r.json()["reason"]) == (409, "conflict")        # nothing left to act on


def test_queue_detail_and_devices_show_hold_and_trust_flags(client: Any, centre: dict[str, Any]) -> None:
    dev = device_after_a1(centre)
    dev.flags = 8                                             # bit 3: TLS without server authentication
    with Receiver(centre["db"], clock=centre["clock"]) as rx:
        rx.ingest([dev.status(1, unauth=4)])
    h = {"X-CSRF-Token": login(client, "aud")}
    client.post("/api/alerts/A1/hold", json={"reason": "complaint 77"}, headers=h)
    login(client, "olga")
    row = client.get("/api/alerts").json()["alerts"][0]
    assert (row["held"], row["insecure_tls"], row["unauthenticated_answers"]) == (True, True, 4)
    d = client.get("/api/alerts/A1").json()
    assert d["held"]["reason"] == "complaint 77" and d["held"]["by"] == "aud"
    assert d["device_trust"] == {"insecure_tls": True, "unauthenticated_answers": 4}
    login(client, "adam")
    (device,) = client.get("/api/devices").json()["devices"]
    assert (device["insecure_tls"], device["unauthenticated_answers"]) == (True, 4)


def test_the_devices_page_shows_each_devices_software_and_a_failed_update(client: Any, centre: dict[str, Any]
                                                                             ) -> None:
    # issue 18: the running version, the staged one and the last update's result, per device
    dev = device_after_a1(centre)
    login(client, "adam")
    (before,) = client.get("/api/devices").json()["devices"]
    assert (before["firmware"], before["pending"], before["update"]) == (None, None, None)
    with Receiver(centre["db"], clock=centre["clock"]) as rx:
        # st 11 (update): running 0.1.0, 0.2.0 was staged and rolled back (upd 2) with its reason
        rx.ingest([dev.status(11, extra={24: "0.1.0", 35: "0.2.0", 36: 2, 37: "health check: no answer"})])
    (after,) = client.get("/api/devices").json()["devices"]
    assert (after["firmware"], after["pending"]) == ("0.1.0", "0.2.0")
    assert (after["update"], after["update_error"]) == ("rolled back", "health check: no answer")
