"""The access ledger: for one device, who saw its officer's location or audio, and when.

Read from the audit log (views, listens, exports of the device's alerts), so it
is exactly as complete as the log, which verify_chain() checks.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from host_tools.receiver import audit
from host_tools.receiver.format import iso_utc
from host_tools.receiver.store import alert_code

ACCESS_ACTIONS = ("view", "listen", "export")


def device_ledger(conn: sqlite3.Connection, device_id: bytes) -> list[dict[str, Any]]:
    """Every access to the device's location or audio, oldest first."""
    return [
        {
            "id": e.audit_id,
            "at": iso_utc(e.at),
            "at_epoch": e.at,
            "operator": e.operator,
            "role": e.role,
            "action": e.action,
            "alert": alert_code(e.alert_id) if e.alert_id else None,
            "detail": e.detail,
        }
        for e in audit.entries(conn, device_id=device_id, actions=ACCESS_ACTIONS)
    ]
