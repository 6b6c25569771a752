"""Holds: an auditor keeps an alert's location and audio past the retention period
(a complaint, an investigation, a court case); purge leaves held alerts alone.
Placing and releasing a hold are audited."""

from __future__ import annotations

import sqlite3
import time

from host_tools.errors import UsageError
from host_tools.receiver import audit
from host_tools.receiver.roles import Actor
from host_tools.registry import write_transaction

MAX_REASON_CHARS = 500


def held(conn: sqlite3.Connection, alert_id: int) -> dict[str, object] | None:
    row = conn.execute(
        "SELECT held_by, held_at, reason FROM holds WHERE alert_id = ?", (alert_id,)
    ).fetchone()
    return {"by": row[0], "at": row[1], "reason": row[2]} if row else None


def hold(
    conn: sqlite3.Connection, alert_id: int, reason: str, *, by: Actor, now: float | None = None
) -> bool:
    """Hold the alert; False if it was held already."""
    now = time.time() if now is None else now
    text = " ".join(str(reason).split())
    if not text or len(text) > MAX_REASON_CHARS:
        raise UsageError(f"say why the alert is held (1-{MAX_REASON_CHARS} characters)")
    with write_transaction(conn):
        added = conn.execute(
            "INSERT INTO holds(alert_id, held_by, held_at, reason) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(alert_id) DO NOTHING RETURNING alert_id",
            (alert_id, by.name, now, text),
        ).fetchall()
        if added:
            audit.record(
                conn,
                by.name,
                "hold",
                role=by.role,
                alert_id=alert_id,
                at=now,
                in_transaction=True,
                detail=f"held against purging: {text}",
            )
    return bool(added)


def release(conn: sqlite3.Connection, alert_id: int, *, by: Actor, now: float | None = None) -> bool:
    """Release the hold; False if there was none."""
    now = time.time() if now is None else now
    with write_transaction(conn):
        gone = conn.execute("DELETE FROM holds WHERE alert_id = ? RETURNING alert_id", (alert_id,)).fetchall()
        if gone:
            audit.record(
                conn,
                by.name,
                "release",
                role=by.role,
                alert_id=alert_id,
                at=now,
                in_transaction=True,
                detail="hold released: retention applies again",
            )
    return bool(gone)
