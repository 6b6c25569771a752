"""Flags on an alert: things about its frames an operator (and a court) should know,
though the frames were accepted.

- `time-behind` / `time-ahead`: a frame's device time (`time`) was more than the
  centre's window behind or ahead of when the receiver got it (defaults 900 s
  behind, 60 s ahead; `sotto centre time-window` changes them, audited). A time of
  0 (the device never had a clock) counts as behind. Frames more than
  MAX_FUTURE_S ahead are rejected (`time-in-future`) as before. Alerts are listed
  by when the receiver first heard of them, never by the device's clock, so a
  device whose clock went back (a GNSS week roll-over, a flat RTC battery) cannot
  sort its SOS below the others.
- `signed-before-revocation`: the frame is signed by a key that is now revoked,
  and its device time is before the revocation; it is accepted so that an alert a
  unit held undelivered when it was replaced still arrives (see keybook.py and
  the trade-off in docs/operator-guide.md).

One row per (alert, flag): how many frames, the first and last receipt, the worst
offset seen (s, signed: negative = device behind).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from host_tools.errors import UsageError
from host_tools.receiver import audit
from host_tools.receiver.format import iso_utc
from host_tools.registry import write_transaction

TIME_BEHIND, TIME_AHEAD, BEFORE_REVOCATION = "time-behind", "time-ahead", "signed-before-revocation"
FLAG_NAMES = (TIME_BEHIND, TIME_AHEAD, BEFORE_REVOCATION)
DEFAULT_TIME_BEHIND_S = 900
DEFAULT_TIME_AHEAD_S = 60
MAX_WINDOW_S = 7 * 86400
SETTING_TIME_BEHIND = "time_behind_s"
SETTING_TIME_AHEAD = "time_ahead_s"

# (alert_id, flag, frames, first_at, last_at, worst_s): add to what is there
UPSERT = ("INSERT INTO alert_flags(alert_id, flag, frames, first_at, last_at, worst_s) "
          "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(alert_id, flag) DO UPDATE SET "
          "frames = alert_flags.frames + excluded.frames, "
          "last_at = CASE WHEN excluded.last_at > alert_flags.last_at "
          "THEN excluded.last_at ELSE alert_flags.last_at END, "
          "worst_s = CASE WHEN abs(coalesce(excluded.worst_s, 0)) > abs(coalesce(alert_flags.worst_s, 0)) "
          "THEN excluded.worst_s ELSE alert_flags.worst_s END")


@dataclass(frozen=True)
class AlertFlag:
    flag: str
    frames: int
    first_at: float
    last_at: float
    worst_s: int | None

    @property
    def text(self) -> str:
        n = f"{self.frames} frame{'s' if self.frames != 1 else ''}"
        if self.flag == BEFORE_REVOCATION:
            return f"signed before revocation: {n} signed by a since-revoked key, dated before it was revoked"
        w = abs(self.worst_s or 0)
        if self.flag == TIME_BEHIND:
            return f"device clock behind: {n} dated up to {_span(w)} before receipt (or no clock)"
        return f"device clock ahead: {n} dated up to {_span(w)} after receipt"

    def to_json(self) -> dict[str, Any]:
        return {"flag": self.flag, "frames": self.frames, "first_received": iso_utc(self.first_at),
                "last_received": iso_utc(self.last_at), "worst_offset_s": self.worst_s, "text": self.text}


def _span(s: int) -> str:
    if s >= 2 * 86400:
        return f"{s / 86400:.0f} days"
    if s >= 7200:
        return f"{s / 3600:.0f} h"
    return f"{s} s" if s < 120 else f"{s / 60:.0f} min"


def flags_of(conn: sqlite3.Connection, alert_id: int) -> tuple[AlertFlag, ...]:
    """The alert's flags, in FLAG_NAMES order."""
    rows = conn.execute("SELECT flag, frames, first_at, last_at, worst_s FROM alert_flags WHERE alert_id = ?",
                        (alert_id,)).fetchall()
    found = {r[0]: AlertFlag(*r) for r in rows}
    return tuple(found[name] for name in FLAG_NAMES if name in found)


def time_window(conn: sqlite3.Connection) -> tuple[int, int]:
    """(behind_s, ahead_s): how far a frame's time may be from its receipt unflagged."""
    values = dict(conn.execute("SELECT name, value FROM centre_settings WHERE name IN (?, ?)",
                               (SETTING_TIME_BEHIND, SETTING_TIME_AHEAD)).fetchall())
    return (int(values.get(SETTING_TIME_BEHIND, DEFAULT_TIME_BEHIND_S)),
            int(values.get(SETTING_TIME_AHEAD, DEFAULT_TIME_AHEAD_S)))


def set_time_window(conn: sqlite3.Connection, *, behind_s: int | None, ahead_s: int | None, operator: str,
                    now: float | None = None, role: str = audit.CLI_ROLE) -> tuple[int, int]:
    """Change the window (whole seconds, 1 .. 7 days; audited); returns the new one."""
    for name, value in (("--behind-s", behind_s), ("--ahead-s", ahead_s)):
        if value is not None and (type(value) is not int or not 1 <= value <= MAX_WINDOW_S):
            raise UsageError(f"{name} must be whole seconds, 1..{MAX_WINDOW_S} (got {value!r})")
    operator = audit.check_operator(operator)
    with write_transaction(conn):
        old = time_window(conn)
        new = (behind_s if behind_s is not None else old[0], ahead_s if ahead_s is not None else old[1])
        for name, value in ((SETTING_TIME_BEHIND, new[0]), (SETTING_TIME_AHEAD, new[1])):
            conn.execute("INSERT INTO centre_settings(name, value) VALUES (?, ?) "
                         "ON CONFLICT(name) DO UPDATE SET value = excluded.value", (name, str(value)))
        audit.record(conn, operator, "setting", at=now, in_transaction=True, role=role,
                     detail=f"device time window {old[0]} s behind / {old[1]} s ahead -> "
                            f"{new[0]} s behind / {new[1]} s ahead")
    return new


def time_flag(device_time: int, received_at: float, behind_s: int, ahead_s: int) -> tuple[str, int] | None:
    """(flag, offset s) when a frame's time is outside the window, else None."""
    offset = int(device_time - received_at)
    if device_time == 0 or offset < -behind_s:
        return TIME_BEHIND, offset
    if offset > ahead_s:
        return TIME_AHEAD, offset
    return None
