"""The audit log is tamper-evident: a removed, altered or reordered entry, or entries
cut off the end, are found by verify_chain and `sotto audit verify` (exit 1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pg_support
import pytest

from host_tools import storage  # noqa: E402
from host_tools.receiver import audit
from host_tools.receiver.store import open_db
from host_tools.registry import connect as db_connect  # noqa: E402
from sotto_cli.cli import main


@pytest.fixture
def logged(tmp_path: Path) -> Path:
    """A database whose audit log holds six entries by two people."""
    db = pg_support.new_db(tmp_path)
    conn = open_db(db, create=True)
    for i in range(6):
        audit.record(
            conn,
            "alice" if i % 2 else "bob",
            "view",
            role="operator",
            alert_id=i + 1,
            device_id=b"SOTTO-42",
            detail=f"entry {i}",
            at=1_790_000_000 + i,
        )
    conn.close()
    return db


def tamper(db: Path, *sql: str) -> None:
    """What someone with write access to the file (or the tables' owner) could do: triggers off."""
    conn = db_connect(db)
    pg_support.lift_audit_guard(conn)
    for statement in sql:
        conn.execute(statement)
    conn.commit()
    conn.close()


def verify(db: Path, *anchors: str) -> audit.ChainCheck:
    conn = open_db(db)
    try:
        return audit.verify_chain(conn, anchors)
    finally:
        conn.close()


def test_an_untouched_log_verifies_and_each_entry_names_who_and_role(
    logged: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    check = verify(logged)
    assert check.ok and check.entries == 6 and len(check.head_hash) == 64
    assert main(["audit", "verify", "--db", str(logged)]) == 0
    assert f"6 entries, head {check.head_hash}" in capsys.readouterr().out
    e = audit.entries(db_connect(logged))
    assert [(x.operator, x.role) for x in e[:2]] == [("bob", "operator"), ("alice", "operator")]
    assert all(x.prev_hash == y.entry_hash for x, y in zip(e[1:], e[:-1], strict=True))


def test_the_triggers_still_refuse_plain_changes(logged: Path) -> None:
    conn = db_connect(logged)
    with pytest.raises(storage.Error, match="append-only"):
        conn.execute("DELETE FROM audit WHERE audit_id = 3")
    with pytest.raises(storage.Error, match="append-only"):
        conn.execute("UPDATE audit SET operator = 'mallory'")


@pytest.mark.parametrize(
    ("name", "sql", "reason", "entry"),
    [
        ("removed", ["DELETE FROM audit WHERE audit_id = 3"], audit.REMOVED_OR_REORDERED, 4),
        ("altered", ["UPDATE audit SET operator = 'mallory' WHERE audit_id = 2"], audit.ALTERED, 2),
        (
            "altered detail",
            ["UPDATE audit SET detail = 'nothing to see' WHERE audit_id = 5"],
            audit.ALTERED,
            5,
        ),
        (
            "reordered",
            [
                "UPDATE audit SET audit_id = 100 WHERE audit_id = 2",
                "UPDATE audit SET audit_id = 2 WHERE audit_id = 3",
                "UPDATE audit SET audit_id = 3 WHERE audit_id = 100",
            ],
            audit.ALTERED,
            2,
        ),
        ("cut off the end", ["DELETE FROM audit WHERE audit_id >= 5"], audit.CUT, None),
    ],
)
def test_tampering_is_detected(
    logged: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    sql: list[str],
    reason: str,
    entry: int | None,
) -> None:
    tamper(logged, *sql)
    check = verify(logged)
    assert not check.ok, name
    assert (entry, reason) in [(i, c) for i, c, _ in check.problems], check.problems
    assert main(["audit", "verify", "--db", str(logged)]) == 1
    out = capsys.readouterr().out
    assert "TAMPERED" in out and reason in out


def test_rehashing_an_altered_entry_breaks_the_link_after_it(logged: Path) -> None:
    e = audit.entries(db_connect(logged))[2]
    forged = audit.entry_hash(
        e.prev_hash or "", e.audit_id, e.at, "mallory", e.role, e.action, e.alert_id, e.device_id, e.detail
    )
    tamper(logged, f"UPDATE audit SET operator = 'mallory', entry_hash = '{forged}' WHERE audit_id = 3")
    assert [(i, c) for i, c, _ in verify(logged).problems] == [(4, audit.REMOVED_OR_REORDERED)]


def test_an_anchor_noted_earlier_catches_a_rewritten_tail(logged: Path) -> None:
    anchor = verify(logged).head_hash
    conn = open_db(logged)
    audit.record(conn, "bob", "view", role="operator", alert_id=9)
    conn.close()
    assert verify(logged, anchor).ok  # appending keeps old anchors
    tamper(
        logged,
        "DELETE FROM audit WHERE audit_id >= 6",
        "UPDATE audit_head SET entries = 5, last_id = 5, "
        "last_hash = (SELECT entry_hash FROM audit WHERE audit_id = 5)",
    )
    check = verify(logged, anchor)
    assert [c for _, c, _ in check.problems] == [audit.ANCHOR_MISSING]


def test_a_log_from_before_the_chain_is_chained_on_opening(tmp_path: Path) -> None:
    """Databases written by an older sotto: their rows are hashed in order (role cli)."""
    db = tmp_path / "old.db"
    conn = db_connect(db)
    conn.execute(
        "CREATE TABLE audit (audit_id INTEGER PRIMARY KEY, at REAL NOT NULL, operator TEXT NOT NULL, "
        "action TEXT NOT NULL, alert_id INTEGER, device_id BLOB, detail TEXT)"
    )
    conn.execute(
        "CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit BEGIN "
        "SELECT RAISE(ABORT, 'the audit log is append-only'); END"
    )
    conn.executemany(
        "INSERT INTO audit(at, operator, action, detail) VALUES (?, ?, ?, ?)",
        [(1_700_000_000.5, "dpo", "purge", "old"), (1_700_000_100.25, "bob", "view", None)],
    )
    conn.commit()
    conn.close()
    check = verify(db)
    assert check.ok and check.entries == 2
    conn = open_db(db)
    audit.record(conn, "carol", "view", role="supervisor")
    rows = audit.entries(conn)
    conn.close()
    assert [(r.audit_id, r.operator, r.role) for r in rows] == [
        (1, "dpo", "cli"),
        (2, "bob", "cli"),
        (3, "carol", "supervisor"),
    ]
    assert verify(db).ok
    with pytest.raises(storage.Error, match="append-only"):
        db_connect(db).execute("UPDATE audit SET detail = 'x'")


def test_json_output(logged: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    tamper(logged, "DELETE FROM audit WHERE audit_id = 2")
    assert main(["audit", "verify", "--json", "--db", str(logged)]) == 1
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and out["problems"][0] == {
        "id": 3,
        "reason": audit.REMOVED_OR_REORDERED,
        "detail": out["problems"][0]["detail"],
    }
