"""Retention: remove location and audio older than the retention period.

    result = purge(conn, older_than_days=30, operator="dpo")          # whole days
    set_min_retention(conn, 60, operator="dpo"); min_retention_days(conn) -> 60

Only closed alerts are purged: an open or acknowledged alert (someone may still
be in danger, or an operator is on it) and an alert on hold
(host_tools.receiver.holds) are never touched, however old; the result lists
them as kept. A closed alert whose last frame arrived, and whose closure
happened, before the cutoff, and check-ins before it, lose their location and
audio: the frame bytes of every frame that carried a position or audio are
erased together with the decoded position columns. What
stays is what proves the alert existed and keeps retries harmless: each frame's
type, seq, time, SHA-256, chain link, and the alert's summary and operator
actions. Rejection records older than the cutoff are deleted. Each purged alert
gets an audit entry saying what was removed.

Erased bytes are overwritten (SQLite secure_delete) and the write-ahead log is
checkpointed and truncated afterwards, so the old content does not linger in
free pages or in the WAL; if a reader keeps the WAL busy, the result says so.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field

from host_tools.errors import UsageError
from host_tools.receiver import audit
from host_tools.receiver.store import alert_code
from host_tools.registry import write_transaction
from host_tools.storage import SQLITE, backend_of

DEFAULT_MIN_RETENTION_DAYS = 30
SETTING_MIN_RETENTION = "min_retention_days"

_HAS_PERSONAL = "(lat_e7 IS NOT NULL OR audio_ns IS NOT NULL) AND wire IS NOT NULL"
_ERASE = ("UPDATE frames SET wire = NULL, lat_e7 = NULL, lon_e7 = NULL, acc_m = NULL, age_s = NULL, "
          "src = NULL, purged_at = ? WHERE ")


@dataclass
class PurgedAlert:
    alert_id: int
    locations: int
    audio_chunks: int
    audio_seconds: float


@dataclass
class KeptAlert:
    """An alert older than the cutoff that purge left whole, and why."""

    alert_id: int
    why: str                          # "open", "acknowledged", "on hold"


@dataclass
class PurgeResult:
    """What purge removed (or, with dry_run, would remove)."""

    cutoff: float
    dry_run: bool
    older_than_days: int = 0
    alerts: list[PurgedAlert] = field(default_factory=list)
    kept: list[KeptAlert] = field(default_factory=list)
    other_locations: int = 0          # check-ins
    rejections: int = 0
    wal_truncated: bool = True

    def to_json(self) -> dict[str, object]:
        return {"dry_run": self.dry_run, "older_than_days": self.older_than_days,
                "cutoff": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.cutoff)),
                "alerts": [{"alert": alert_code(a.alert_id), "locations": a.locations,
                            "audio_chunks": a.audio_chunks, "audio_seconds": round(a.audio_seconds, 3)}
                           for a in self.alerts],
                "kept": [{"alert": alert_code(k.alert_id), "why": k.why} for k in self.kept],
                "locations": self.locations, "check_in_locations": self.other_locations,
                "audio_chunks": self.audio_chunks, "audio_seconds": round(self.audio_seconds, 3),
                "rejections": self.rejections, "wal_truncated": self.wal_truncated}

    @property
    def locations(self) -> int:
        return sum(a.locations for a in self.alerts) + self.other_locations

    @property
    def audio_chunks(self) -> int:
        return sum(a.audio_chunks for a in self.alerts)

    @property
    def audio_seconds(self) -> float:
        return sum(a.audio_seconds for a in self.alerts)


def min_retention_days(conn: sqlite3.Connection) -> int:
    """The configured minimum retention (DEFAULT_MIN_RETENTION_DAYS unless set)."""
    row = conn.execute("SELECT value FROM centre_settings WHERE name = ?",
                       (SETTING_MIN_RETENTION,)).fetchone()
    return int(row[0]) if row is not None else DEFAULT_MIN_RETENTION_DAYS


def set_min_retention(conn: sqlite3.Connection, days: int, *, operator: str, now: float | None = None,
                      role: str = audit.CLI_ROLE) -> int:
    """Set the minimum retention in whole days (audited); returns the old one."""
    if type(days) is not int or days < 1:
        raise UsageError(f"the minimum retention must be a whole number of days, at least 1 (got {days!r})")
    operator = audit.check_operator(operator)
    with write_transaction(conn):
        old = min_retention_days(conn)
        conn.execute("INSERT INTO centre_settings(name, value) VALUES (?, ?) "
                     "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                     (SETTING_MIN_RETENTION, str(days)))
        audit.record(conn, operator, "setting", at=now, in_transaction=True, role=role,
                     detail=f"minimum retention {old} -> {days} days")
    return old


def purge(conn: sqlite3.Connection, older_than_days: int, *, operator: str, now: float | None = None,
          dry_run: bool = False, role: str = audit.CLI_ROLE) -> PurgeResult:
    """Remove location and audio of closed alerts (not on hold) and check-ins
    older than older_than_days whole days (see module doc); UsageError below
    the configured minimum retention."""
    if type(older_than_days) is not int:
        raise UsageError(f"--older-than {older_than_days!r}: the retention is a whole number of days")
    minimum = min_retention_days(conn)
    if older_than_days < minimum:
        raise UsageError(f"--older-than {older_than_days}: the centre keeps data at least {minimum} days "
                         "(`sotto purge --set-min-retention-days N` changes that, audited)")
    now = time.time() if now is None else now
    operator = audit.check_operator(operator)
    cutoff = now - older_than_days * 86400
    result = PurgeResult(cutoff, dry_run, older_than_days)
    sqlite = backend_of(conn) == SQLITE
    if not dry_run and sqlite:
        conn.execute("PRAGMA secure_delete = ON")
    with write_transaction(conn):
        old = conn.execute(
            "SELECT a.alert_id, a.device_id, a.state, h.alert_id IS NOT NULL FROM alerts a "
            "LEFT JOIN alert_holds h ON h.alert_id = a.alert_id WHERE a.last_received_at < ? "
            "AND (a.closed_at IS NULL OR a.closed_at < ?) AND a.purged_at IS NULL ORDER BY a.alert_id",
            (cutoff, cutoff)).fetchall()
        alerts = []
        for alert_id, device_id, state, on_hold in old:
            if state != "closed" or on_hold:
                result.kept.append(KeptAlert(alert_id, "on hold" if on_hold else state))
            else:
                alerts.append((alert_id, device_id))
        for alert_id, device_id in alerts:
            locs, chunks, seconds = conn.execute(
                "SELECT count(lat_e7), count(audio_ns), coalesce(sum(1.0 * audio_ns / audio_rate), 0) "
                f"FROM frames WHERE alert_id = ? AND {_HAS_PERSONAL}", (alert_id,)).fetchone()
            result.alerts.append(PurgedAlert(alert_id, locs, chunks, seconds))
            if dry_run:
                continue
            conn.execute(_ERASE + f"alert_id = ? AND {_HAS_PERSONAL}", (now, alert_id))
            conn.execute("UPDATE alerts SET purged_at = ? WHERE alert_id = ?", (now, alert_id))
            audit.record(conn, operator, "purge", alert_id=alert_id, device_id=bytes(device_id), at=now,
                         detail=f"retention {older_than_days} days: removed {locs} locations and "
                                f"{chunks} audio chunks ({seconds:.1f} s)", in_transaction=True, role=role)
        result.other_locations = conn.execute(
            f"SELECT count(*) FROM frames WHERE alert_id IS NULL AND received_at < ? AND {_HAS_PERSONAL}",
            (cutoff,)).fetchone()[0]
        result.rejections = conn.execute("SELECT count(*) FROM rejections WHERE at < ?",
                                         (cutoff,)).fetchone()[0]
        if not dry_run:
            conn.execute(_ERASE + f"alert_id IS NULL AND received_at < ? AND {_HAS_PERSONAL}", (now, cutoff))
            conn.execute("DELETE FROM rejections WHERE at < ?", (cutoff,))
            audit.record(conn, operator, "purge", at=now, in_transaction=True, role=role,
                         detail=f"retention {older_than_days} days (before "
                                f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(cutoff))}): "
                                f"{len(result.alerts)} alerts, {result.locations} locations, "
                                f"{result.audio_chunks} audio chunks ({result.audio_seconds:.1f} s), "
                                f"{result.rejections} rejection records; {len(result.kept)} older alerts "
                                f"kept (open, acknowledged or on hold)")
    if not dry_run and sqlite:
        busy, _log_pages, _done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        result.wal_truncated = busy == 0
    return result
