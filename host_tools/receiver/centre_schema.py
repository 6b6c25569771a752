"""The centre's own tables (component `centre`): operator accounts, console sessions,
the audit chain's head and sent notifications; and the audit log's chain columns.
(Alert holds are the receiver's table, store.py, since its schema version 2.)

Kept apart from the receiver's ingest tables (store.py) so that the console can
grow without touching ingest. SQL here and in the modules that use these tables
(accounts, sessions, audit, notify's de-duplication) is written for both
SQLite >= 3.35 and PostgreSQL 15: `?` placeholders, ON CONFLICT, RETURNING, no
SQLite-only functions. The one exception is the append-only trigger of the audit
table, which the chain migration below has to lift for a moment. The tables'
DDL is in host_tools.storage.schema; chain_existing_audit is the centre
migration's hook (host_tools.storage.migrations).

Why an audit_head row: each audit entry carries the hash of the one before, so
a removed, altered or reordered entry shows; removing the *newest* entries would
not, so the head keeps the count and the last hash, and updating it is also what
serialises appends (an UPDATE takes the row's lock on PostgreSQL, the write lock
on SQLite) so that two processes never chain onto the same entry.
"""

from __future__ import annotations

from typing import Any

from host_tools.storage import POSTGRESQL, backend_of
from host_tools.storage.migrations import LATEST

CENTRE_SCHEMA_VERSION = LATEST["centre"]
GENESIS_HASH = "0" * 64  # the `prev_hash` of the first audit entry

_CHAIN_COLUMNS = (("role", "TEXT"), ("prev_hash", "TEXT"), ("entry_hash", "TEXT"))


def _columns(conn: Any, table: str) -> set[str]:
    cur = conn.execute(f"SELECT * FROM {table} LIMIT 0")  # noqa: S608 - a fixed table name
    return {d[0] for d in cur.description}


def chain_existing_audit(conn: Any) -> None:
    """Add the chain columns to the audit table, hash the entries already there
    (oldest first) and start the head. Entries from before the chain get role
    `cli`: only the command line wrote the audit log until the console existed."""
    from host_tools.receiver.audit import entry_hash  # the one definition of the hash

    if conn.execute("SELECT count(*) FROM audit_head").fetchone()[0]:
        return  # another process did it meanwhile
    pg = backend_of(conn) == POSTGRESQL
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
        if pg:
            conn.execute("ALTER TABLE audit DISABLE TRIGGER audit_append_only")
        else:
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
        if pg:
            conn.execute("ALTER TABLE audit ENABLE TRIGGER audit_append_only")
        else:
            conn.execute(
                "CREATE TRIGGER IF NOT EXISTS audit_append_only_update BEFORE UPDATE ON audit BEGIN "
                "SELECT RAISE(ABORT, 'the audit log is append-only'); END"
            )
    conn.execute(
        "INSERT INTO audit_head(id, entries, last_id, last_hash) VALUES (1, ?, ?, ?) "
        "ON CONFLICT(id) DO NOTHING",
        (len(rows), last_id, prev),
    )
