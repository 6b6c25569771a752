"""Alerts on hold: kept whole, whatever the retention, until released (an auditor's
or operator's tool: a complaint, an investigation, a court case).

    hold(conn, 12, operator="aud", reason="police investigation 4411", role="auditor")   # audited
    release(conn, 12, operator="aud", role="auditor")                                   # audited
    held(conn, 12) -> Hold | None;  held_ids(conn) -> {alert_id, ...}

`sotto purge` never touches an alert on hold (host_tools.receiver.purge). The
audit log keeps every hold and release; the alert_holds table only what holds now.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from host_tools.errors import UsageError
from host_tools.receiver import audit
from host_tools.receiver.alert_records import AlertNotFoundError, AlertStateError
from host_tools.receiver.format import iso_utc, utc_text
from host_tools.receiver.store import alert_code
from host_tools.registry import write_transaction

MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class Hold:
    alert_id: int
    reason: str
    held_by: str
    held_at: float

    def to_json(self) -> dict[str, Any]:
        return {"alert": alert_code(self.alert_id), "reason": self.reason, "by": self.held_by,
                "since": iso_utc(self.held_at)}

    @property
    def text(self) -> str:
        return f"by {self.held_by}, {utc_text(self.held_at)}: {self.reason}"


def _reason(text: str) -> str:
    reason = " ".join(str(text).split())
    if not reason:
        raise UsageError("say why the alert is held: --reason TEXT (e.g. 'police investigation 4411')")
    if len(reason) > MAX_REASON_CHARS:
        raise UsageError(f"the reason is {len(reason)} characters; at most {MAX_REASON_CHARS}")
    return reason


def held(conn: sqlite3.Connection, alert_id: int) -> Hold | None:
    row = conn.execute("SELECT reason, held_by, held_at FROM alert_holds WHERE alert_id = ?",
                       (alert_id,)).fetchone()
    return Hold(alert_id, row[0], row[1], row[2]) if row is not None else None


def held_ids(conn: sqlite3.Connection) -> set[int]:
    return {int(r[0]) for r in conn.execute("SELECT alert_id FROM alert_holds")}


def _device_of(conn: sqlite3.Connection, alert_id: int) -> bytes:
    row = conn.execute("SELECT device_id FROM alerts WHERE alert_id = ?", (alert_id,)).fetchone()
    if row is None:
        raise AlertNotFoundError(f"no alert {alert_code(alert_id)} "
                                 "(`sotto alerts list --all` shows them all)")
    return bytes(row[0])


def hold(conn: sqlite3.Connection, alert_id: int, *, operator: str, reason: str, now: float | None = None,
         role: str = audit.CLI_ROLE) -> Hold:
    """Place the alert on hold (audited); AlertStateError if it already is."""
    now = time.time() if now is None else now
    operator = audit.check_operator(operator)
    text = _reason(reason)
    with write_transaction(conn):
        device_id = _device_of(conn, alert_id)
        was = held(conn, alert_id)
        if was is not None:
            raise AlertStateError(f"{alert_code(alert_id)} is already on hold ({was.text})")
        conn.execute("INSERT INTO alert_holds(alert_id, reason, held_by, held_at) VALUES (?, ?, ?, ?)",
                     (alert_id, text, operator, now))
        audit.record(conn, operator, "hold", alert_id=alert_id, device_id=device_id, at=now,
                     detail=f"reason: {text}", in_transaction=True, role=role)
    return Hold(alert_id, text, operator, now)


def release(conn: sqlite3.Connection, alert_id: int, *, operator: str, now: float | None = None,
            role: str = audit.CLI_ROLE) -> Hold:
    """Release the alert's hold (audited); returns the hold that ended."""
    now = time.time() if now is None else now
    operator = audit.check_operator(operator)
    with write_transaction(conn):
        device_id = _device_of(conn, alert_id)
        was = held(conn, alert_id)
        if was is None:
            raise AlertStateError(f"{alert_code(alert_id)} is not on hold")
        conn.execute("DELETE FROM alert_holds WHERE alert_id = ?", (alert_id,))
        audit.record(conn, operator, "release", alert_id=alert_id, device_id=device_id, at=now,
                     detail=f"hold released ({was.text})", in_transaction=True, role=role)
    return was
