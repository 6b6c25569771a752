"""The audit log: who looked at or did what, and when.

Every operator access to an alert's location or audio (`alerts show`, `alerts
export`), every acknowledgement, closure and purge is one row in the `audit`
table, committed before the access happens (no record, no access). The table is
append-only: triggers refuse UPDATE and DELETE, and purging never touches it.
Audit rows hold no location or audio, only what was accessed.
"""

from __future__ import annotations

import datetime
import getpass
import os
import sqlite3
import time
from dataclasses import dataclass

from host_tools.errors import UsageError
from host_tools.ids import format_device_id
from host_tools.registry import write_transaction

ENV_OPERATOR = "SOTTO_OPERATOR"
MAX_OPERATOR_CHARS = 100


def operator_name(cli_value: str | None = None) -> str:
    """The operator to record: --operator, else $SOTTO_OPERATOR, else the login name."""
    for candidate in (cli_value, os.environ.get(ENV_OPERATOR)):
        if candidate is not None and candidate.strip():
            return check_operator(candidate)
    try:
        return check_operator(getpass.getuser())
    except (OSError, KeyError, UsageError):
        raise UsageError(f"who is the operator? give --operator NAME or set {ENV_OPERATOR}") from None


def check_operator(name: str) -> str:
    """An operator name, whitespace tidied; UsageError when empty or unprintable."""
    text = " ".join(str(name).split())
    if not text:
        raise UsageError("the operator name is empty; give --operator NAME")
    if len(text) > MAX_OPERATOR_CHARS:
        raise UsageError(f"the operator name is {len(text)} characters; at most {MAX_OPERATOR_CHARS}")
    if not text.isprintable():
        raise UsageError("the operator name holds control characters")
    return text


@dataclass(frozen=True)
class AuditEntry:
    """One row of the audit log."""

    audit_id: int
    at: float
    operator: str
    action: str
    alert_id: int | None
    device_id: bytes | None
    detail: str | None

    def to_json(self) -> dict[str, object]:
        return {"id": self.audit_id, "at": self.at,
                "at_utc": datetime.datetime.fromtimestamp(self.at, datetime.timezone.utc)
                .isoformat(timespec="seconds").replace("+00:00", "Z"),
                "operator": self.operator, "action": self.action,
                "alert": f"A{self.alert_id}" if self.alert_id else None,
                "device": format_device_id(self.device_id) if self.device_id else None,
                "detail": self.detail}


def record(conn: sqlite3.Connection, operator: str, action: str, *, alert_id: int | None = None,
           device_id: bytes | None = None, detail: str | None = None, at: float | None = None,
           in_transaction: bool = False) -> int:
    """Append one entry; durable when it returns (unless in_transaction: the
    caller's transaction commits it together with what it records)."""
    row = (time.time() if at is None else at, check_operator(operator), action, alert_id, device_id, detail)
    sql = "INSERT INTO audit(at, operator, action, alert_id, device_id, detail) VALUES (?, ?, ?, ?, ?, ?)"
    if in_transaction:
        return int(conn.execute(sql, row).lastrowid or 0)
    with write_transaction(conn):
        return int(conn.execute(sql, row).lastrowid or 0)


def entries(conn: sqlite3.Connection, *, alert_id: int | None = None,
            limit: int | None = None) -> list[AuditEntry]:
    """Audit entries, oldest first (the newest `limit` ones when given)."""
    where = "WHERE alert_id = ?" if alert_id is not None else ""
    args: tuple[object, ...] = (alert_id,) if alert_id is not None else ()
    sql = (f"SELECT audit_id, at, operator, action, alert_id, device_id, detail FROM audit {where} "
           "ORDER BY audit_id")
    if limit is not None:
        sql = f"SELECT * FROM ({sql} DESC LIMIT {int(limit)}) ORDER BY audit_id"
    return [AuditEntry(r[0], r[1], r[2], r[3], r[4], bytes(r[5]) if r[5] is not None else None, r[6])
            for r in conn.execute(sql, args)]
