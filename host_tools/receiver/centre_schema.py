"""The centre's own tables (component `centre`): operator accounts, console sessions,
the audit chain's head and sent notifications; and the audit log's chain columns.
(Alert holds are the receiver's table, store.py, since its schema version 2.)

Kept apart from the receiver's ingest tables (store.py) so that the console can
grow without touching ingest. SQL here and in the modules that use these tables
(accounts, sessions, audit, notify's de-duplication) is written for both
SQLite >= 3.35 and PostgreSQL 15: `?` placeholders, ON CONFLICT, RETURNING, no
SQLite-only functions. The one exception is the append-only trigger of the audit
table (store.py's DDL), which the chain migration below has to lift for a moment.

Why an audit_head row: each audit entry carries the hash of the one before, so
a removed, altered or reordered entry shows; removing the *newest* entries would
not, so the head keeps the count and the last hash, and updating it is also what
serialises appends (an UPDATE takes the row's lock on PostgreSQL, the write lock
on SQLite) so that two processes never chain onto the same entry.
"""

from __future__ import annotations

import sqlite3

from host_tools.registry import check_schema, write_transaction

CENTRE_SCHEMA_VERSION = 1
GENESIS_HASH = "0" * 64  # the `prev_hash` of the first audit entry

_DDL = """
CREATE TABLE IF NOT EXISTS operators (
    name           TEXT PRIMARY KEY,
    role           TEXT NOT NULL CHECK (role IN ('operator', 'supervisor', 'auditor', 'admin')),
    password_hash  TEXT NOT NULL,
    created_at     REAL NOT NULL,
    created_by     TEXT NOT NULL,
    password_at    REAL NOT NULL,
    disabled_at    REAL,
    disabled_by    TEXT,
    failed_logins  INTEGER NOT NULL DEFAULT 0,
    locked_until   REAL,
    last_login_at  REAL
);
CREATE TABLE IF NOT EXISTS console_sessions (
    token_hash    TEXT PRIMARY KEY,
    operator      TEXT NOT NULL REFERENCES operators(name),
    csrf_token    TEXT NOT NULL,
    created_at    REAL NOT NULL,
    last_seen_at  REAL NOT NULL,
    ended_at      REAL,
    peer          TEXT
);
CREATE INDEX IF NOT EXISTS console_sessions_operator ON console_sessions(operator);
CREATE TABLE IF NOT EXISTS audit_head (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    entries    INTEGER NOT NULL,
    last_id    INTEGER NOT NULL,
    last_hash  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS notifications (
    kind        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    created_at  REAL NOT NULL,
    PRIMARY KEY (kind, subject)
);
"""

_CHAIN_COLUMNS = (("role", "TEXT"), ("prev_hash", "TEXT"), ("entry_hash", "TEXT"))


def ensure_centre_schema(conn: sqlite3.Connection) -> None:
    """Create the centre's tables and chain the audit log (once, idempotent)."""
    check_schema(conn, "centre", CENTRE_SCHEMA_VERSION, _DDL)
    if conn.execute("SELECT count(*) FROM audit_head").fetchone()[0] == 0:
        _chain_existing_audit(conn)


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    cur = conn.execute(f"SELECT * FROM {table} LIMIT 0")  # noqa: S608 - a fixed table name
    return {d[0] for d in cur.description}


def _chain_existing_audit(conn: sqlite3.Connection) -> None:
    """Add the chain columns to the audit table, hash the entries already there
    (oldest first) and start the head. Entries from before the chain get role
    `cli`: only the command line wrote the audit log until the console existed."""
    from host_tools.receiver.audit import entry_hash  # the one definition of the hash

    with write_transaction(conn):
        if conn.execute("SELECT count(*) FROM audit_head").fetchone()[0]:
            return  # another process did it meanwhile
        have = _columns(conn, "audit")
        missing = [(n, t) for n, t in _CHAIN_COLUMNS if n not in have]
        for name, sql_type in missing:
            conn.execute(f"ALTER TABLE audit ADD COLUMN {name} {sql_type}")
        rows = conn.execute(
            "SELECT audit_id, at, operator, role, action, alert_id, device_id, detail "
            "FROM audit ORDER BY audit_id"
        ).fetchall()
        prev = GENESIS_HASH
        last_id = 0
        if rows:
            # the append-only trigger refuses UPDATE: lifted for this one migration, then restored
            conn.execute("DROP TRIGGER IF EXISTS audit_append_only_update")
            for audit_id, at, operator, role, action, alert_id, device_id, detail in rows:
                role = role or "cli"
                h = entry_hash(
                    prev,
                    audit_id,
                    at,
                    operator,
                    role,
                    action,
                    alert_id,
                    bytes(device_id) if device_id is not None else None,
                    detail,
                )
                conn.execute(
                    "UPDATE audit SET role = ?, prev_hash = ?, entry_hash = ? WHERE audit_id = ?",
                    (role, prev, h, audit_id),
                )
                prev, last_id = h, audit_id
            conn.execute(
                "CREATE TRIGGER IF NOT EXISTS audit_append_only_update BEFORE UPDATE ON audit BEGIN "
                "SELECT RAISE(ABORT, 'the audit log is append-only'); END"
            )
        conn.execute(
            "INSERT INTO audit_head(id, entries, last_id, last_hash) VALUES (1, ?, ?, ?) "
            "ON CONFLICT(id) DO NOTHING",
            (len(rows), last_id, prev),
        )
