"""Database roles on PostgreSQL (`sotto db roles`, host_tools.storage.roles): each
part of the centre logs in as a member of its group role and can do its work;
the console/API role cannot delete or rewrite audit entries or frames, nor lift
the triggers that guard them; purge may empty a frame's personal columns and
nothing else; ingest cannot touch the audit log."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import storage_support as rs

from host_tools.receiver import accounts, audit, devcfg, flags
from host_tools.receiver.alerts import acknowledge, close
from host_tools.receiver.purge import purge
from host_tools.receiver.roles import CLI, Actor
from host_tools.receiver.server import ServerConfig, start_in_thread
from host_tools.receiver.store import open_db
from host_tools.registry import Registry
from host_tools.storage import roles
from host_tools.storage.pgserver import TempPostgres
from sotto_cli.cli import main

NOW = 1_790_000_500


@pytest.fixture(scope="module")
def centre(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("roles")
    with TempPostgres() as pg:
        owner = pg.create_database("centre")
        assert main(["db", "migrate", "--db", owner]) == 0
        assert main(["db", "roles", "--db", owner]) == 0
        with pg.admin("centre") as conn:
            for user, group in (("node1", roles.INGEST), ("desk1", roles.CONSOLE), ("dpo1", roles.PURGE),
                                ("tech1", roles.REGISTRY)):
                conn.execute(f"CREATE ROLE {user} LOGIN IN ROLE {group}")
        yield {"pg": pg, "url": {u: pg.url("centre", user=u) for u in ("node1", "desk1", "dpo1", "tech1")},
               "owner": owner, "tmp": tmp}


def _denied(conn: Any, sql: str) -> None:
    with pytest.raises(psycopg.Error) as e:
        conn.execute(sql)
    refused = (psycopg.errors.InsufficientPrivilege, psycopg.errors.IntegrityConstraintViolation)
    assert isinstance(e.value, refused) or "must be owner" in str(e.value), (sql, e.value)


def test_every_role_does_its_work_and_no_more(centre: Any, tmp_path: Path) -> None:
    url = centre["url"]
    d = rs.device(b"ROLES-01")
    with Registry(url["tech1"]) as reg:                                 # registry: devices and keys
        reg.add(d.kid, d.public_key, officer="J. Smith")
    running = start_in_thread(url["node1"], ServerConfig(port=0, centre_key=str(tmp_path / "centre.key")))
    try:                                                                # ingest: frames, alerts
        frames = [d.alert_start(loc=rs.loc(0)), d.location(rs.loc(1)), d.end()]
        status, answer = rs.post(running.port, frames)
    finally:
        running.stop()
    assert status == 200 and [r["status"] for r in answer["results"]] == ["accepted"] * 3

    desk = open_db(url["desk1"])                                        # console: handle, accounts, audit
    accounts.add_operator(desk, "olga", "operator", "correct horse battery", by=Actor("root", CLI))
    acknowledge(desk, 1, operator="olga", now=NOW, role="operator")
    close(desk, 1, operator="olga", outcome="false alarm", now=NOW + 60, role="operator")
    entries = len(audit.entries(desk))
    for sql in ("DELETE FROM audit", "UPDATE audit SET detail = 'x'", "TRUNCATE audit",
                "DELETE FROM frames", "UPDATE frames SET wire = NULL", "UPDATE frames SET seq = seq + 1",
                "TRUNCATE frames", "ALTER TABLE audit DISABLE TRIGGER audit_append_only",
                "ALTER TABLE frames DISABLE TRIGGER frames_write_once", "DROP TABLE audit",
                "INSERT INTO frames(device_id, key_id, seq, digest, type, time, up_ms, flags, link, "
                "received_at, via, size) VALUES ('\\x00', 1, 1, '\\x00', 1, 0, 0, 0, '\\x00', 0, 'x', 0)"):
        _denied(desk, sql)
    assert len(audit.entries(desk)) == entries and audit.verify_chain(desk).ok
    desk.close()

    node = open_db(url["node1"])                                        # ingest: no audit, no rewriting
    for sql in ("INSERT INTO audit(at, operator, action) VALUES (0, 'x', 'view')", "DELETE FROM audit",
                "UPDATE frames SET wire = NULL", "DELETE FROM frames", "UPDATE operators SET role = 'admin'"):
        _denied(node, sql)
    node.close()

    dpo = open_db(url["dpo1"])                                          # purge: personal columns only
    result = purge(dpo, 30, operator="dpo", now=time.time() + 40 * 86400)
    assert [a.alert_id for a in result.alerts] == [1] and result.locations == 2
    assert dpo.execute("SELECT count(*) FROM frames WHERE wire IS NULL").fetchone()[0] == 2
    for sql in ("UPDATE frames SET digest = '\\x00'", "UPDATE frames SET seq = 7", "DELETE FROM frames",
                "DELETE FROM audit", "UPDATE alerts SET state = 'open'",
                "UPDATE operators SET role = 'admin'"):
        _denied(dpo, sql)
    assert audit.verify_chain(dpo).ok
    dpo.close()

    tech = open_db(url["tech1"])
    devcfg.record_provisioned(tech, d.kid, {"heartbeat_every_s": 300}, by="tech1")   # provision --set
    assert devcfg.expected_heartbeats(tech)[d.kid].seconds == 300
    for sql in ("DELETE FROM frames", "UPDATE alerts SET state = 'open'", "DELETE FROM audit"):
        _denied(tech, sql)
    tech.close()


def test_even_the_owner_cannot_rewrite_audit_or_frames_without_lifting_the_triggers(centre: Any) -> None:
    conn = open_db(centre["owner"])
    for sql in ("UPDATE audit SET detail = 'x'", "DELETE FROM audit", "DELETE FROM frames",
                "UPDATE frames SET seq = seq + 1", "TRUNCATE audit", "TRUNCATE frames"):
        with pytest.raises(psycopg.Error, match="append-only|write-once"):
            conn.execute(sql)
    conn.close()


def test_roles_are_postgresql_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "roles", "--db", str(tmp_path / "x.db")]) == 2
    assert "PostgreSQL" in capsys.readouterr().err


def test_the_console_role_sets_the_time_window_and_no_other_setting(centre: Any) -> None:
    # `sotto centre time-window` is an operator command: it runs as the console role
    assert roles.CONSOLE_SETTINGS == (flags.SETTING_TIME_BEHIND, flags.SETTING_TIME_AHEAD)
    desk = centre["url"]["desk1"]
    assert main(["centre", "time-window", "--db", desk, "--behind-s", "1900", "--operator", "dpo"]) == 0
    assert main(["centre", "time-window", "--db", desk, "--ahead-s", "90", "--operator", "dpo"]) == 0
    conn = open_db(desk)
    try:
        assert flags.time_window(conn) == (1900, 90)
        assert audit.verify_chain(conn).ok
        for sql in ("INSERT INTO centre_settings(name, value) VALUES ('min_retention_days', '1')",
                    "UPDATE centre_settings SET value = '1' WHERE name = 'min_retention_days'",
                    "UPDATE centre_settings SET value = '00' WHERE name = 'centre_public_key'"):
            before = conn.execute("SELECT name, value FROM centre_settings ORDER BY name").fetchall()
            try:
                conn.execute(sql)
            except psycopg.Error:
                pass  # refused outright (a row the policy does not allow), or...
            # ...not refused but touching no row: either way nothing else changes
            assert conn.execute("SELECT name, value FROM centre_settings ORDER BY name").fetchall() == before
    finally:
        conn.close()
    node = open_db(centre["url"]["node1"])  # the other roles keep what they had
    try:
        assert flags.time_window(node) == (1900, 90)
    finally:
        node.close()


def _cli(url: str, *argv: str, stdin: str = "") -> tuple[int, str, str]:
    """`sotto ARGV` as another process with $SOTTO_DB = that login's URL."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, SOTTO_DB=url, SOTTO_OPERATOR="Olga")
    p = subprocess.run([sys.executable, "-m", "sotto_cli", *argv], env=env, input=stdin, capture_output=True,
                       text=True, timeout=120, cwd=Path(__file__).resolve().parents[2])
    return p.returncode, p.stdout, p.stderr


def test_each_part_of_the_centre_works_from_the_cli_as_its_own_login(centre: Any, tmp_path: Path) -> None:
    """The CLI through $SOTTO_DB as each role's login (docs/operator-guide.md 1a): the technician
    manages devices, operators handle alerts (in the console's API too), the DPO purges; what a
    role may not do is a clear error (exit 1, no traceback), and a console node answers devices
    503, storing nothing."""
    pg = centre["pg"]
    own = pg.create_database("cli")   # a database of its own (its own centre key), same logins
    assert main(["db", "migrate", "--db", own]) == 0 and main(["db", "roles", "--db", own]) == 0
    url = {u: pg.url("cli", user=u) for u in ("node1", "desk1", "dpo1", "tech1")}
    key = str(tmp_path / "centre.key")
    code, _, err = _cli(url["tech1"], "centre", "init", "--centre-key", key)   # the owner's
    assert code == 1 and "permission denied" in err and not Path(key).exists(), err
    assert main(["centre", "init", "--db", own, "--centre-key", key]) == 0
    d = rs.device(b"ROLES-02")
    assert _cli(url["tech1"], "devices", "add", "ROLES-02", "--pubkey", d.public_key.hex(), "--json")[0] == 0
    running = start_in_thread(url["node1"], ServerConfig(port=0, centre_key=key))
    try:
        status, _ = rs.post(running.port, [d.alert_start(loc=rs.loc(0)), d.location(rs.loc(1))])
    finally:
        running.stop()
    assert status == 200
    for argv in (["devices", "list"], ["devices", "show", "ROLES-02"]):                       # technician
        code, out, err = _cli(url["tech1"], *argv, "--json")
        assert code == 0 and "ROLES-02" in out, err
    alert = "A1"
    code, _, err = _cli(url["desk1"], "operators", "add", "olga", "--role", "operator", "--password-stdin",
                        stdin="a long enough password 1\n")
    assert code == 0, err
    from starlette.testclient import TestClient  # the console and its API, as the console's login

    from host_tools.receiver.console import ConsoleConfig
    from host_tools.receiver.console.app import create_app

    with TestClient(create_app(url["desk1"], ConsoleConfig(export_dir=str(tmp_path / "exports"))),
                    base_url="http://127.0.0.1") as client:
        r = client.post("/api/login", json={"name": "olga", "password": "a long enough password 1"})
        assert r.status_code == 200, r.text
        r = client.post(f"/api/alerts/{alert}/ack", json={}, headers={"X-CSRF-Token": r.json()["csrf_token"]})
        assert r.status_code == 200 and r.json()["state"] == "acknowledged", r.text
    for argv in (["alerts", "list"], ["alerts", "show", alert],                               # operators
                 ["alerts", "close", alert, "--outcome", "safe"], ["audit", "verify"]):
        code, out, err = _cli(url["desk1"], *argv, "--json")
        assert code == 0, (argv, err)
    code, out, err = _cli(url["dpo1"], "purge", "--older-than", "30", "--dry-run", "--json")     # DPO
    assert code == 0, err
    other = rs.device(b"ROLES-03").public_key.hex()
    for who, argv in (("desk1", ["devices", "add", "ROLES-03", "--pubkey", other]),
                      ("tech1", ["alerts", "ack", alert]), ("dpo1", ["operators", "add", "mallory", "--role",
                                                                   "admin", "--password-stdin"])):
        code, out, err = _cli(url[who], *argv, stdin="a long enough password 1\n")
        assert code == 1 and "the database refused this login: permission denied" in err, (who, argv, err)
        assert "Traceback" not in err
    # a console node (`sotto receive` as a console login) refuses frames: 503, nothing stored
    import subprocess
    import sys

    node = subprocess.Popen([sys.executable, "-m", "sotto_cli", "receive", "--db", url["desk1"],
                             "--port", "0", "-q", "--centre-key", key], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        line = node.stdout.readline() if node.stdout else ""
        assert line.startswith("listening on "), line
        port = int(line.split("://")[1].split()[0].rsplit(":", 1)[1])
        late = d.location(rs.loc(2))
        assert rs.post(port, [late])[0] == 503
    finally:
        node.terminate()
        node.wait(30)
    owner = open_db(own)
    try:
        assert owner.execute("SELECT count(*) FROM frames WHERE wire = ?", (late,)).fetchone()[0] == 0
    finally:
        owner.close()
