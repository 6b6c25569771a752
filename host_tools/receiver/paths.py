"""The second path, as one centre sees it (EN 50136 dual path, docs/operator-guide.md).

A device provisioned with a primary and a secondary receiver puts `rx` (key 34)
on its alert-start, heartbeat and status frames: the receiver it was delivering
to when it made them (0 primary, 1 secondary); a status frame with st 9
(receiver-down) names the receiver that stopped answering. Two independent
centres each keep what they received, verifiable on its own; the frames of an
alert that moved between them link across the two records (the hash chain goes
on where the other centre's part ends).

    delivered_via(conn, alert_id)   # "secondary", "primary" or None (a one-path device)
"""

from __future__ import annotations

import sqlite3
from typing import Any

import cbor2

from host_tools.frames import FrameType

RX_KEY = 34
ST_RECEIVER_DOWN = 9
PATH_NAMES = {0: "primary", 1: "secondary"}
# a receiver-down report this close to an alert's frames here explains them (s)
REPORT_WINDOW_S = 3600


def payload_of(wire: bytes) -> dict[int, Any]:
    """The payload map of a stored frame (already verified at ingest)."""
    item = cbor2.loads(wire[1:] if wire[:1] == b"\x82" else wire)
    if isinstance(item, list):   # an audio frame: [COSE_Sign1, audio]
        item = item[0]
    payload = cbor2.loads(item.value[2])
    return payload if isinstance(payload, dict) else {}


def delivered_via(conn: sqlite3.Connection, alert_id: int) -> str | None:
    """How this alert reached this centre: "secondary" when its alert-start came
    with rx 1, or when its alert-start is not here and the device reported its
    primary receiver down (st 9, rx 0) to this centre around the alert's frames;
    "primary" when its alert-start came with rx 0; None for a device without a
    second path (no rx)."""
    row = conn.execute("SELECT device_id, first_received_at, last_received_at FROM alerts WHERE alert_id = ?",
                       (alert_id,)).fetchone()
    if row is None:
        return None
    device_id, first_at, last_at = row
    start = conn.execute("SELECT wire FROM frames WHERE alert_id = ? AND type = ? ORDER BY seq LIMIT 1",
                         (alert_id, int(FrameType.ALERT_START))).fetchone()
    if start is not None and start[0] is None:
        return None   # purged (retention): the frame's bytes are gone
    if start is not None:
        rx = payload_of(bytes(start[0])).get(RX_KEY)
        if rx in PATH_NAMES:
            return PATH_NAMES[rx]
        return None
    for (wire,) in conn.execute(
            "SELECT wire FROM frames WHERE device_id = ? AND type = ? AND received_at BETWEEN ? AND ?",
            (device_id, int(FrameType.STATUS), (first_at or 0) - REPORT_WINDOW_S,
             (last_at or first_at or 0) + REPORT_WINDOW_S)):
        if wire is None:
            continue
        p = payload_of(bytes(wire))
        if p.get(18) == ST_RECEIVER_DOWN and p.get(RX_KEY) == 0:
            return "secondary"
    return None
