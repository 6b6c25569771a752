"""Retention: remove location and audio older than the retention period.

    result = purge(conn, older_than_days=30, operator="dpo")

Alerts whose last frame arrived before the cutoff, and check-ins before it,
lose their location and audio: the frame bytes of every frame that carried a
position or audio are erased together with the decoded position columns. What
stays is what proves the alert existed and keeps retries harmless: each frame's
type, seq, time, SHA-256, chain link, and the alert's summary and operator
actions. Alerts an auditor holds (holds.py) are kept whatever their age.
Rejection records older than the cutoff are deleted. Each purged alert
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
from host_tools.registry import write_transaction

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
class PurgeResult:
    """What purge removed (or, with dry_run, would remove)."""

    cutoff: float
    dry_run: bool
    alerts: list[PurgedAlert] = field(default_factory=list)
    other_locations: int = 0          # check-ins
    rejections: int = 0
    held: int = 0                     # alerts past retention kept because an auditor holds them
    wal_truncated: bool = True

    @property
    def locations(self) -> int:
        return sum(a.locations for a in self.alerts) + self.other_locations

    @property
    def audio_chunks(self) -> int:
        return sum(a.audio_chunks for a in self.alerts)

    @property
    def audio_seconds(self) -> float:
        return sum(a.audio_seconds for a in self.alerts)


def purge(conn: sqlite3.Connection, older_than_days: float, *, operator: str, now: float | None = None,
          dry_run: bool = False, role: str = audit.CLI_ROLE) -> PurgeResult:
    """Remove location and audio last received more than older_than_days ago (see module doc)."""
    if not older_than_days > 0:
        raise UsageError(f"--older-than {older_than_days}: the retention must be more than 0 days")
    now = time.time() if now is None else now
    operator = audit.check_operator(operator)
    cutoff = now - older_than_days * 86400
    result = PurgeResult(cutoff, dry_run)
    if not dry_run:
        conn.execute("PRAGMA secure_delete = ON")
    with write_transaction(conn):
        alerts = conn.execute("SELECT alert_id, device_id FROM alerts WHERE last_received_at < ? "
                              "AND purged_at IS NULL AND alert_id NOT IN (SELECT alert_id FROM alert_holds) "
                              "ORDER BY alert_id", (cutoff,)).fetchall()
        result.held = conn.execute("SELECT count(*) FROM alerts WHERE last_received_at < ? "
                                   "AND purged_at IS NULL AND alert_id IN (SELECT alert_id FROM alert_holds)",
                                   (cutoff,)).fetchone()[0]
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
                         detail=f"retention {older_than_days:g} days: removed {locs} locations and "
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
                         detail=f"retention {older_than_days:g} days (before "
                                f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(cutoff))}): "
                                f"{len(result.alerts)} alerts, {result.locations} locations, "
                                f"{result.audio_chunks} audio chunks ({result.audio_seconds:.1f} s), "
                                f"{result.rejections} rejection records")
    if not dry_run:
        busy, _log_pages, _done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        result.wal_truncated = busy == 0
    return result
