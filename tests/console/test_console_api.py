"""The console's API on the server side: 401 without a session, 403 for each role
outside its rights, CSRF, lock-out, session expiry, audited views, OpenAPI."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from console_support import PASSWORD, ROLE_ACCOUNTS, login

from host_tools.errors import UsageError
from host_tools.receiver import accounts, audit
from host_tools.receiver.console import ConsoleConfig
from host_tools.receiver.console.app import OPENAPI, route_table
from host_tools.receiver.roles import CLI, Actor
from host_tools.receiver.store import open_db
from host_tools.registry import connect as db_connect  # noqa: E402

ARGS = {"alert": "A1", "name": "olga", "device": "SOTTO-42"}


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: ARGS[m.group(1)], path)


@pytest.mark.parametrize(("method", "path"), [r for r in route_table() if r[1] != "/api/login"])
def test_every_api_route_needs_a_session(client: Any, method: str, path: str) -> None:
    r = client.request(method, concrete(path), json={})
    assert r.status_code == 401, (method, path, r.text)
    assert r.json()["reason"] == "no-session"
    assert r.headers["cache-control"] == "no-store"


def test_unknown_api_path_without_session_is_not_the_page(client: Any) -> None:
    assert client.get("/api/nothing-here").status_code == 404
    assert client.get("/").headers["content-type"].startswith("text/html")


def test_login_sets_a_strict_httponly_cookie_and_answers_name_and_role(client: Any) -> None:
    r = client.post("/api/login", json={"name": "olga", "password": PASSWORD})
    assert r.status_code == 200
    body = r.json()
    assert (body["name"], body["role"]) == ("olga", "operator") and len(body["csrf_token"]) >= 32
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie
    assert "content-security-policy" in r.headers and r.headers["x-frame-options"] == "DENY"
    assert client.get("/api/session").json()["name"] == "olga"


def test_the_cookie_is_secure_with_tls(centre: dict[str, Any]) -> None:
    from starlette.testclient import TestClient

    from host_tools.receiver.console.app import create_app

    cfg = ConsoleConfig(tls_cert="centre.crt", tls_key="centre.key", clock=centre["clock"])
    with TestClient(create_app(centre["db"], cfg), base_url="https://127.0.0.1") as c:
        r = c.post("/api/login", json={"name": "olga", "password": PASSWORD})
        assert "; secure" in r.headers["set-cookie"].lower()


def test_wrong_password_and_unknown_name_look_alike(client: Any) -> None:
    for name in ("olga", "nobody"):
        r = client.post("/api/login", json={"name": name, "password": "wrong password!"})
        assert (r.status_code, r.json()["reason"]) == (401, "bad-credentials")
    assert (
        client.post("/api/login", content=b"name=olga", headers={"Content-Type": "text/plain"}).status_code
        == 415
    )


# (method, path, body, roles allowed). Allowed means "not 403": the call may still be 404/409/400.
MATRIX: list[tuple[str, str, dict[str, Any] | None, set[str]]] = [
    ("GET", "/api/alerts", None, {"operator", "supervisor"}),
    ("GET", "/api/alerts?closed=1", None, {"supervisor"}),
    ("GET", "/api/alerts/A1", None, {"operator", "supervisor"}),
    ("GET", "/api/alerts/A1/audio.wav", None, {"operator", "supervisor"}),
    ("POST", "/api/alerts/A1/ack", {}, {"operator", "supervisor"}),
    ("POST", "/api/alerts/A1/commands", {"op": "locate"}, {"operator", "supervisor"}),
    ("POST", "/api/alerts/A1/close", {"outcome": "officer safe"}, {"supervisor"}),
    ("POST", "/api/alerts/A1/export", {}, {"supervisor"}),
    ("POST", "/api/alerts/A1/hold", {"reason": "complaint"}, {"auditor"}),
    ("GET", "/api/stats?month=2026-09", None, {"supervisor"}),
    ("GET", "/api/audit", None, {"auditor"}),
    ("GET", "/api/audit/verify", None, {"auditor"}),
    ("GET", "/api/ledger/SOTTO-42", None, {"auditor"}),
    ("POST", "/api/purge", {"older_than_days": 3650, "dry_run": True}, {"auditor"}),
    ("GET", "/api/devices", None, {"admin"}),
    ("GET", "/api/operators", None, {"admin"}),
    ("POST", "/api/operators", {"name": "newbie", "role": "operator", "password": PASSWORD}, {"admin"}),
    ("POST", "/api/operators/sam/password", {"password": PASSWORD + "!"}, {"admin"}),
    ("POST", "/api/operators/sam/disable", {}, {"admin"}),
]


@pytest.mark.parametrize("name", sorted(ROLE_ACCOUNTS))
def test_each_role_gets_403_outside_its_rights(client: Any, name: str) -> None:
    role = ROLE_ACCOUNTS[name]
    csrf = login(client, name)
    for method, path, body, allowed in MATRIX:
        if name == "adam" and path.startswith("/api/operators/sam"):
            pass  # the admin's own changes to sam come last and are allowed
        r = client.request(
            method, path, json=body, headers={"X-CSRF-Token": csrf} if method == "POST" else {}
        )
        if role in allowed:
            assert r.status_code != 403, (role, method, path, r.text)
            assert r.status_code < 500, (role, method, path, r.text)
        else:
            assert (r.status_code, r.json()["reason"]) == (403, "forbidden"), (role, method, path, r.text)


def test_the_matrix_names_every_route(client: Any) -> None:
    named = {(m, re.sub(r"A1|sam|SOTTO-42", "X", p.split("?")[0])) for m, p, _, _ in MATRIX}
    routes = {(m, re.sub(r"\{\w+\}", "X", p)) for m, p in route_table()}
    assert routes - named == {
        ("POST", "/api/login"),
        ("POST", "/api/logout"),
        ("GET", "/api/session"),
        ("GET", "/api/events"),
    }


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
    client: Any, centre: dict[str, Any]
) -> None:
    csrf = login(client, "olga")
    for headers in ({}, {"X-CSRF-Token": "forged" + csrf[6:]}):
        r = client.post("/api/alerts/A1/ack", json={}, headers=headers)
        assert (r.status_code, r.json()["reason"]) == (403, "csrf")
    assert client.get("/api/alerts").json()["alerts"][0]["state"] == "open"
    r = client.post("/api/alerts/A1/ack", json={}, headers={"X-CSRF-Token": csrf})
    assert r.json() == {"id": "A1", "state": "acknowledged", "acknowledged_by": "olga"}
    assert client.post("/api/logout", json={}).status_code == 403  # logout needs it too


def test_lock_out_after_repeated_failures(client: Any, centre: dict[str, Any]) -> None:
    for _ in range(accounts.MAX_FAILED_LOGINS):
        assert (
            client.post("/api/login", json={"name": "olga", "password": "not it at all"}).status_code == 401
        )
    r = client.post("/api/login", json={"name": "olga", "password": PASSWORD})
    assert (r.status_code, r.json()["reason"]) == (423, "account-locked")
    centre["clock"].t += accounts.LOCKOUT_S + 1  # the lock runs out
    assert client.post("/api/login", json={"name": "olga", "password": PASSWORD}).status_code == 200
    conn = open_db(centre["db"])
    actions = [e.action for e in audit.entries(conn) if e.operator == "olga"]
    assert actions.count("login-failed") == accounts.MAX_FAILED_LOGINS and "locked" in actions
    conn.close()


def test_a_new_password_unlocks_at_once(client: Any, centre: dict[str, Any]) -> None:
    for _ in range(accounts.MAX_FAILED_LOGINS):
        client.post("/api/login", json={"name": "olga", "password": "not it at all"})
    conn = open_db(centre["db"])
    accounts.set_password(conn, "olga", "a brand new password", by=Actor("root", CLI))
    conn.close()
    assert (
        client.post("/api/login", json={"name": "olga", "password": "a brand new password"}).status_code
        == 200
    )


def test_an_idle_session_expires(client: Any, centre: dict[str, Any]) -> None:
    login(client, "olga")
    centre["clock"].t += client.config.idle_timeout_s - 10
    assert client.get("/api/alerts").status_code == 200  # activity keeps it alive
    centre["clock"].t += client.config.idle_timeout_s - 10
    assert client.get("/api/alerts").status_code == 200
    centre["clock"].t += client.config.idle_timeout_s + 1
    assert client.get("/api/alerts").status_code == 401
    login(client, "olga")
    assert client.get("/api/alerts").status_code == 200


def test_logout_and_disabling_end_the_session(client: Any, centre: dict[str, Any]) -> None:
    csrf = login(client, "olga")
    assert client.post("/api/logout", json={}, headers={"X-CSRF-Token": csrf}).status_code == 200
    assert client.get("/api/alerts").status_code == 401
    login(client, "olga")
    conn = open_db(centre["db"])
    accounts.disable_operator(conn, "olga", by=Actor("root", CLI))
    conn.close()
    assert client.get("/api/alerts").status_code == 401
    r = client.post("/api/login", json={"name": "olga", "password": PASSWORD})
    assert (r.status_code, r.json()["reason"]) == (401, "account-disabled")


def test_views_of_location_and_audio_are_audited_with_name_and_role(
    client: Any, centre: dict[str, Any]
) -> None:
    login(client, "olga")
    queue = client.get("/api/alerts").json()
    assert "lat" not in json.dumps(queue) and queue["alerts"][0]["location_accuracy_m"] == 9
    conn = open_db(centre["db"])
    before = len(audit.entries(conn))
    detail = client.get("/api/alerts/A1").json()
    assert detail["location"]["lat_e7"] == 515007292 + 300 and len(detail["track"]) == 3
    wav = client.get("/api/alerts/A1/audio.wav")
    assert wav.headers["content-type"] == "audio/wav" and wav.content[:4] == b"RIFF"
    assert wav.headers["x-audio-seconds"] == "1.50"
    new = audit.entries(conn)[before:]
    assert [(e.operator, e.role, e.action, e.alert_id) for e in new] == [
        ("olga", "operator", "view", 1),
        ("olga", "operator", "listen", 1),
    ]
    assert "track (3 positions)" in (new[0].detail or "") and "1.5 s" in (new[1].detail or "")
    conn.close()


def test_a_closed_alert_is_for_supervisors(client: Any) -> None:
    csrf = login(client, "sam")
    r = client.post("/api/alerts/A1/close", json={"outcome": "officer safe"}, headers={"X-CSRF-Token": csrf})
    assert r.json()["state"] == "closed"
    assert client.get("/api/alerts/A1").status_code == 200
    assert client.get("/api/alerts?closed=1").json()["alerts"][0]["closed_by"] == "sam"
    login(client, "olga")
    assert client.get("/api/alerts/A1").status_code == 403
    assert client.get("/api/alerts/A1/audio.wav").status_code == 403
    assert client.get("/api/alerts").json()["alerts"] == []


def test_acting_twice_and_bad_input_are_clear(client: Any) -> None:
    csrf = login(client, "sam")
    h = {"X-CSRF-Token": csrf}
    assert client.post("/api/alerts/A1/ack", json={}, headers=h).status_code == 200
    r = client.post("/api/alerts/A1/ack", json={}, headers=h)
    assert (r.status_code, r.json()["reason"]) == (409, "conflict") and "sam" in r.json()["detail"]
    assert client.get("/api/alerts/A99").status_code == 404
    assert client.post("/api/alerts/A1/close", json={"outcome": ""}, headers=h).status_code == 400
    assert client.get("/api/stats?month=last-month").status_code == 400


def test_export_writes_a_bundle_on_the_centres_host(client: Any, centre: dict[str, Any]) -> None:
    csrf = login(client, "sam")
    r = client.post("/api/alerts/A1/export", json={}, headers={"X-CSRF-Token": csrf})
    out = Path(r.json()["path"])
    assert out.parent == centre["dir"] / "exports" and (out / "manifest.json").is_file()


def test_hold_keeps_an_alert_from_purging(client: Any, centre: dict[str, Any]) -> None:
    csrf = login(client, "aud")
    h = {"X-CSRF-Token": csrf}
    assert client.post("/api/alerts/A1/hold", json={"reason": "complaint"}, headers=h).json()["held"] is True
    r = client.post("/api/purge", json={"older_than_days": 30}, headers=h).json()  # A1 is months old
    assert r["alerts"] == [] and {"alert": "A1", "why": "on hold"} in r["kept"]
    assert client.post("/api/alerts/A1/hold", json={"release": True}, headers=h).json()["held"] is False
    conn = open_db(centre["db"])
    actions = [e.action for e in audit.entries(conn) if e.operator == "aud"]
    assert {"hold", "release", "purge"} <= set(actions)
    conn.close()


def test_admin_manages_accounts(client: Any) -> None:
    csrf = login(client, "adam")
    h = {"X-CSRF-Token": csrf}
    r = client.post(
        "/api/operators", json={"name": "newbie", "role": "operator", "password": "short"}, headers=h
    )
    assert r.status_code == 400 and "at least" in r.json()["detail"]
    r = client.post(
        "/api/operators", json={"name": "newbie", "role": "operator", "password": PASSWORD}, headers=h
    )
    assert r.status_code == 201 and "password" not in json.dumps(r.json()).replace("password_changed", "")
    names = [o["name"] for o in client.get("/api/operators").json()["operators"]]
    assert "newbie" in names
    assert client.get("/api/devices").json()["devices"][0]["officer"] == "J. Smith"


def test_openapi_describes_exactly_the_routes(client: Any) -> None:
    spec = json.loads(OPENAPI.read_text())
    described = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops if m != "parameters"}
    assert described == set(route_table())
    assert client.get("/openapi.json").json()["openapi"].startswith("3.")


def test_plain_http_is_refused_off_loopback() -> None:
    with pytest.raises(UsageError) as e:
        ConsoleConfig(host="0.0.0.0").check()
    assert "TLS" in str(e.value)
    ConsoleConfig(host="::1").check()
    ConsoleConfig(host="0.0.0.0", tls_cert="c", tls_key="k").check()


def test_the_console_reads_alert_content_only_through_access() -> None:
    """STYLE rule 19: routers never query the database or the alert readers themselves."""
    pkg = Path(__file__).resolve().parents[2] / "host_tools" / "receiver" / "console"
    for path in pkg.rglob("*.py"):
        text = path.read_text()
        assert ".execute(" not in text, path
        assert not re.search(r"import .*\b(track|show_alert|build_audio|export_alert)\b", text), path


def test_cli_actions_are_logged_as_cli(
    centre: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sotto_cli.cli import main

    monkeypatch.setenv("SOTTO_OPERATOR", "night-admin")
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("another good password\n"))
    assert (
        main(
            ["operators", "add", "zoe", "--role", "supervisor", "--password-stdin", "--db", str(centre["db"])]
        )
        == 0
    )
    assert main(["alerts", "show", "A1", "--db", str(centre["db"])]) == 0
    e = audit.entries(db_connect(centre["db"]))
    assert [(x.operator, x.role, x.action) for x in e[-2:]] == [
        ("night-admin", "cli", "operator-add"),
        ("night-admin", "cli", "view"),
    ]
