"""Timed check-in visits, as the centre sees them (`sotto visits list`, and the
open ones in `sotto alerts list` and the console).

A visit is the check-in frames of one device that carry the same `visit`
(docs/frames.md, "Timed check-in"). Nothing new is stored: visits are read
from the check-in frames the receiver keeps (`frames`, type 8), so they are
as durable as the frames and need no schema change.

The centre keeps its own timer: a visit is due at **the receipt time of its
newest check-in + its `dur`**, whatever the device's clock says (`due`, the
device's own end, is shown beside it). States, most urgent first:

- `overdue`    past its end at the centre, no end frame, no alert about it:
               the device has gone quiet past the end (no battery, no
               coverage, destroyed...). Shown whether or not the device is
               ever heard again.
- `alerted`    the device raised the check-in-overdue alert (`trig` 3) after
               the visit's newest check-in: the alert is the thing to handle.
- `open`       running; `left_s` to its end.
- `ended`      the officer ended it (`dur` 0).

Frames purged past retention lose their bytes: their visits are no longer
listed (an open visit is never that old).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from host_tools import frames as hf
from host_tools.ids import format_device_id
from host_tools.receiver.format import duration_text, iso_utc, utc_text
from host_tools.receiver.store import alert_code

OVERDUE, ALERTED, OPEN, ENDED = "overdue", "alerted", "open", "ended"
_ORDER = {OVERDUE: 0, ALERTED: 1, OPEN: 2, ENDED: 3}
TRIG_CHECKIN = 3


@dataclass
class Visit:
    device_id: bytes
    officer: str | None
    visit: int
    state: str
    started_at: float       # receipt of its first check-in
    updated_at: float       # receipt of its newest check-in
    due_at: float           # the centre's end: updated_at + dur
    device_due: int         # the device's `due` (0: its time was unknown)
    checkins: int
    ended_at: float | None = None
    alert_id: int | None = None
    now: float = 0.0

    @property
    def device(self) -> str:
        return format_device_id(self.device_id)

    @property
    def left_s(self) -> float:
        """Seconds to the end at the centre (negative: past it)."""
        return self.due_at - self.now

    def to_json(self) -> dict[str, Any]:
        return {"device": self.device, "officer": self.officer, "visit": self.visit, "state": self.state,
                "started": iso_utc(self.started_at), "updated": iso_utc(self.updated_at),
                "due": iso_utc(self.due_at), "left_s": round(self.left_s, 1),
                "device_due": iso_utc(self.device_due) if self.device_due else None,
                "checkins": self.checkins, "ended": iso_utc(self.ended_at),
                "alert": alert_code(self.alert_id) if self.alert_id is not None else None}


def list_visits(conn: sqlite3.Connection, *, include_ended: bool = False, now: float | None = None,
                device_id: bytes | None = None) -> list[Visit]:
    """The visits at the centre, most urgent first: overdue, alerted, open
    (soonest end first), then, with include_ended, ended ones (newest first).
    `alerted` visits are listed while their alert is not closed (and always
    with include_ended)."""
    now = time.time() if now is None else now
    where, args = "f.type = 8 AND f.wire IS NOT NULL AND length(f.wire) > 0", []
    if device_id is not None:
        where += " AND f.device_id = ?"
        args.append(device_id)
    rows = conn.execute(
        "SELECT f.device_id, f.seq, f.received_at, f.wire, d.officer FROM frames f "
        f"LEFT JOIN devices d ON d.device_id = f.device_id WHERE {where} ORDER BY f.device_id, f.seq",
        args).fetchall()
    visits: dict[tuple[bytes, int], Visit] = {}
    last_seq: dict[tuple[bytes, int], int] = {}
    for dev, seq, received_at, wire, officer in rows:
        try:
            frame = hf.decode_frame(bytes(wire))
        except hf.FrameError:
            continue  # stored frames were verified on the way in; a damaged row is not a visit
        if frame.visit is None:
            continue
        key = (bytes(dev), frame.visit)
        dur = frame.duration_s or 0
        v = visits.get(key)
        if v is None:
            v = visits[key] = Visit(bytes(dev), officer, frame.visit, OPEN, received_at, received_at,
                                    received_at + dur, frame.due or 0, 0, now=now)
        v.checkins += 1
        v.updated_at = received_at
        last_seq[key] = seq
        if dur == 0:
            v.state, v.ended_at, v.due_at = ENDED, received_at, received_at
        else:
            v.state, v.ended_at, v.due_at, v.device_due = OPEN, None, received_at + dur, frame.due or 0
    alerts = _checkin_alerts(conn)
    out = []
    for key, v in visits.items():
        if v.state == OPEN:
            alert = next(((a, st) for a, seq, st in alerts.get(key[0], ()) if seq > last_seq[key]), None)
            if alert is not None:
                v.state, v.alert_id = ALERTED, alert[0]
                if alert[1] == "closed" and not include_ended:
                    continue
            elif v.due_at <= now:
                v.state = OVERDUE
        if v.state == ENDED and not include_ended:
            continue
        out.append(v)
    out.sort(key=lambda v: (_ORDER[v.state], v.due_at if v.state != ENDED else -v.updated_at))
    return out


def _checkin_alerts(conn: sqlite3.Connection) -> dict[bytes, list[tuple[int, int, str]]]:
    """device -> [(alert id, seq of its alert-start, state)] of check-in-overdue alerts."""
    out: dict[bytes, list[tuple[int, int, str]]] = {}
    for dev, alert_id, seq, state in conn.execute(
            "SELECT device_id, alert_id, start_seq, state FROM alerts "
            "WHERE trigger = ? AND start_seq IS NOT NULL ORDER BY start_seq", (TRIG_CHECKIN,)):
        out.setdefault(bytes(dev), []).append((alert_id, seq, state))
    return out


def visit_line(v: Visit) -> str:
    """One line for people: who, which visit, its state and end at the centre."""
    if v.state == OPEN:
        when = f"ends {utc_text(v.due_at)} (in {duration_text(v.left_s)})"
    elif v.state == OVERDUE:
        when = f"was due {utc_text(v.due_at)} ({duration_text(-v.left_s)} ago), no end, no alert"
    elif v.state == ALERTED:
        when = f"was due {utc_text(v.due_at)}: alert {alert_code(v.alert_id or 0)} raised by the device"
    else:
        when = f"ended {utc_text(v.ended_at)}"
    return f"{v.device}  {v.officer or '-'}  visit {v.visit}  {v.state.upper()}  {when}"
