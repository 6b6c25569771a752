"""What changed in the database since last time: the source of the console's live
events and of notifications. Read from the tables themselves, so it sees what
every ingest process and every command wrote, not just this process.

    marks = high_water(conn)                 # where "now" is
    events, marks = changes_since(conn, marks)

Each table's id only grows (frames, alerts and audit rows are never deleted;
rejections are trimmed from the oldest end). With several writers (PostgreSQL)
ids are handed out before commit, so a transaction holding a lower id can
commit after a higher one was read: each poll therefore looks LOOKBACK_IDS ids
back and skips the ids it has already reported.

An event is a small dict without location or audio: {"kind": "alert" | "frame" |
"duress" | "device" | "command" | "rejected" | "audit", ...ids and labels}. A
device's reply frame (it ran, refused or answered an operator's command) is a
`command` event naming the alert, the command and its new state.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from host_tools.frames import FrameType
from host_tools.ids import format_device_id
from host_tools.receiver.store import alert_code

LOOKBACK_IDS = 64
STATE_ACTIONS = frozenset({"acknowledge", "close", "hold", "release", "export", "command", "purge"})
_DURESS = int(FrameType.DURESS)
_REPLY = int(FrameType.REPLY)
_SEEN_KEPT = 4 * LOOKBACK_IDS


@dataclass
class _Cursor:
    top: int = 0  # the highest id reported
    floor: int = 0  # ids up to here existed before the marks were taken: never reported
    seen: deque[int] = field(default_factory=lambda: deque(maxlen=_SEEN_KEPT))


@dataclass
class Marks:
    """How far each table has been read."""

    alerts: _Cursor = field(default_factory=_Cursor)
    frames: _Cursor = field(default_factory=_Cursor)
    rejections: _Cursor = field(default_factory=_Cursor)
    audit: _Cursor = field(default_factory=_Cursor)


_QUERIES = {
    "alerts": "SELECT alert_id, alert_id, device_id, officer, duress FROM alerts WHERE alert_id > ? "
    "ORDER BY alert_id LIMIT 500",
    "frames": "SELECT frame_id, alert_id, device_id, type, seq FROM frames WHERE frame_id > ? "
    "ORDER BY frame_id LIMIT 2000",
    "rejections": "SELECT rejection_id, device_id, reason, via FROM rejections WHERE rejection_id > ? "
    "ORDER BY rejection_id LIMIT 500",
    "audit": "SELECT audit_id, action, alert_id, operator, role FROM audit WHERE audit_id > ? "
    "ORDER BY audit_id LIMIT 500",
}
_TOPS = {
    "alerts": "SELECT max(alert_id) FROM alerts",
    "frames": "SELECT max(frame_id) FROM frames",
    "rejections": "SELECT max(rejection_id) FROM rejections",
    "audit": "SELECT max(audit_id) FROM audit",
}


def high_water(conn: sqlite3.Connection) -> Marks:
    """Marks at the current end of every table (nothing before now is reported)."""
    marks = Marks()
    for name, sql in _TOPS.items():
        cur = getattr(marks, name)
        cur.top = cur.floor = int(conn.execute(sql).fetchone()[0] or 0)
    return marks


def _device(value: Any) -> str | None:
    return format_device_id(bytes(value)) if value is not None else None


def _command_event(conn: sqlite3.Connection, r: tuple[Any, ...]) -> dict[str, Any] | None:
    """The command a reply frame (device r[2], seq r[4]) closed, or None (a reply
    for a command the centre does not have, or one already closed)."""
    c = conn.execute(
        "SELECT command_id, alert_id, op, state FROM commands WHERE device_id = ? AND reply_seq = ?",
        (r[2], r[4]),
    ).fetchone()
    if c is None or c[1] is None:
        return None
    return {"kind": "command", "alert": alert_code(c[1]), "device": _device(r[2]), "command": c[0],
            "op": c[2], "state": c[3]}


def _event(conn: sqlite3.Connection, table: str, r: tuple[Any, ...]) -> dict[str, Any] | None:
    if table == "alerts":
        return {
            "kind": "alert",
            "alert": alert_code(r[1]),
            "device": _device(r[2]),
            "officer": r[3],
            "duress": bool(r[4]),
        }
    if table == "frames":
        if r[1] is None:
            if r[3] == _REPLY and (ev := _command_event(conn, r)) is not None:
                return ev
            return {"kind": "device", "device": _device(r[2]), "type": FrameType(r[3]).label}
        return {
            "kind": "duress" if r[3] == _DURESS else "frame",
            "alert": alert_code(r[1]),
            "device": _device(r[2]),
            "type": FrameType(r[3]).label,
            "seq": r[4],
        }
    if table == "rejections":
        return {"kind": "rejected", "device": _device(r[1]), "reason": r[2], "via": r[3]}
    return {
        "kind": "audit",
        "id": r[0],
        "action": r[1],
        "alert": alert_code(r[2]) if r[2] else None,
        "operator": r[3],
        "role": r[4],
        "state": r[1] in STATE_ACTIONS,
    }


def changes_since(conn: sqlite3.Connection, marks: Marks) -> list[dict[str, Any]]:
    """New rows since `marks` (which move on), oldest first per table; alerts before their frames."""
    out: list[dict[str, Any]] = []
    for table, sql in _QUERIES.items():
        cur: _Cursor = getattr(marks, table)
        for r in conn.execute(sql, (max(cur.floor, cur.top - LOOKBACK_IDS),)):
            row_id = int(r[0])
            if row_id in cur.seen:
                continue
            cur.seen.append(row_id)
            cur.top = max(cur.top, row_id)
            ev = _event(conn, table, r)
            if ev is not None:
                out.append(ev)
    return out


def claim_notification(conn: sqlite3.Connection, kind: str, subject: str, now: float) -> bool:
    """True for the one process that first claims (kind, subject): with several
    console processes on one database, each notification still goes out once."""
    from host_tools.registry import write_transaction

    with write_transaction(conn):
        return bool(
            conn.execute(
                "INSERT INTO notifications(kind, subject, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT(kind, subject) DO NOTHING RETURNING kind",
                (kind, subject, now),
            ).fetchall()
        )
