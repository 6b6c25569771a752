"""Alerts as operators see them: list, show, acknowledge, close; silent devices.

    alerts = list_alerts(conn)                       # open and acknowledged (include_closed for all)
    detail = show_alert(conn, 12, operator="Bob")    # audited: it shows location and track
    acknowledge(conn, 12, operator="Bob")
    close(conn, 12, operator="Bob", outcome="officer safe, police attended")
    silent_devices(conn)                             # heartbeat overdue (interval + grace)

Chain status, from the counters ingest keeps and a few indexed queries:
- `complete`: one unbroken line of frames from the alert-start to a cancel or end frame;
- `open`: unbroken from the alert-start so far, the device has not ended the alert;
- `gap`: frames are missing (the alert-start, or frames before the ones listed);
  they may still arrive (out of order, by SMS, after coverage returns);
- `broken`: two frames claim the same predecessor, more than one alert-start, or
  frames after the end frame: the chain cannot be one line.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from host_tools.errors import UsageError
from host_tools.frames import FLAG_INSECURE_TLS, FrameType
from host_tools.receiver import audit, commands, devcfg, holds, paths
from host_tools.receiver.alert_records import (
    BROKEN,
    COMPLETE,
    DEFAULT_GRACE_S,
    DEFAULT_HEARTBEAT,
    FROM_HEARTBEAT,
    GAP,
    MAX_OUTCOME_CHARS,
    OPEN,
    PROVISIONED_HEARTBEAT_S,
    AlertDetail,
    AlertNotFoundError,
    AlertStateError,
    AlertSummary,
    ChainStatus,
    ExpectedHeartbeat,
    SilentDevice,
    TrackPoint,
)
from host_tools.receiver.flags import flags_of
from host_tools.receiver.format import duration_text, iso_utc, utc_text
from host_tools.receiver.store import alert_code
from host_tools.registry import write_transaction

# --------------------------------------------------------------------------
# Reading.

_ALERT_COLUMNS = ("alert_id, device_id, key_id, sid, officer, state, started_at, first_received_at, "
                  "last_received_at, trigger, duress, duress_at, frames, audio_frames, audio_samples, "
                  "audio_rate, "
                  "battery, end_type, end_why, ended_at, acked_by, acked_at, closed_by, closed_at, outcome, "
                  "seq_reused, purged_at, starts, dangling, forks")


def chain_status(conn: sqlite3.Connection, alert_id: int, starts: int, dangling: int, forks: int,
                 frames: int) -> ChainStatus:
    """The chain state of one alert (see module doc)."""
    broken: list[str] = []
    gaps: list[str] = []
    gap_before: list[int] = []
    if starts > 1:
        broken.append(f"{starts} alert-start frames in one alert")
    if forks:
        claims: dict[bytes, list[int]] = {}
        for prev, seq in conn.execute(
                "SELECT prev, seq FROM frames WHERE alert_id = ? AND prev IN (SELECT prev FROM frames "
                "WHERE alert_id = ? AND prev IS NOT NULL GROUP BY prev HAVING count(*) > 1) ORDER BY seq",
                (alert_id, alert_id)):
            claims.setdefault(bytes(prev), []).append(seq)
        for seqs in sorted(claims.values()):
            broken.append(f"frames seq {', '.join(map(str, seqs))} all claim the same previous frame")
    after_end = conn.execute(
        "SELECT f.seq FROM frames e JOIN frames f ON f.alert_id = e.alert_id AND f.prev = e.link "
        "WHERE e.alert_id = ? AND e.type = ? ORDER BY f.seq", (alert_id, int(FrameType.END))).fetchall()
    if after_end:
        broken.append(f"frame seq {', '.join(str(r[0]) for r in after_end)} came after the end frame")
    if starts == 0:
        gaps.append("the alert-start frame has not arrived")
    if dangling > 0:
        for (seq,) in conn.execute(
                "SELECT f.seq FROM frames f WHERE f.alert_id = ? AND f.prev IS NOT NULL AND NOT EXISTS "
                "(SELECT 1 FROM frames g WHERE g.alert_id = f.alert_id AND g.link = f.prev) ORDER BY f.seq",
                (alert_id,)):
            gap_before.append(int(seq))
            before = conn.execute("SELECT max(seq) FROM frames WHERE alert_id = ? AND seq < ?",
                                  (alert_id, seq)).fetchone()[0]
            held = f" (the frame before it that arrived is seq {before})" if before is not None else ""
            gaps.append(f"frames missing before seq {seq}{held}")
    if broken:
        return ChainStatus(BROKEN, "broken: " + "; ".join(broken), tuple(broken + gaps), tuple(gap_before))
    if gaps:
        return ChainStatus(GAP, "gap: " + "; ".join(gaps), tuple(gaps), tuple(gap_before))
    tails = conn.execute(
        "SELECT f.type, f.seq FROM frames f WHERE f.alert_id = ? AND NOT EXISTS "
        "(SELECT 1 FROM frames g WHERE g.alert_id = f.alert_id AND g.prev = f.link)", (alert_id,)).fetchall()
    if len(tails) == 1 and tails[0][0] in (FrameType.CANCEL, FrameType.END):
        return ChainStatus(COMPLETE, f"complete: {frames} frames, one unbroken chain from alert-start to "
                           f"{FrameType(tails[0][0]).label}")
    return ChainStatus(OPEN, f"unbroken so far: {frames} frames from alert-start, no end frame yet")


def _summary(conn: sqlite3.Connection, row: tuple[Any, ...]) -> AlertSummary:
    *fields, starts, dangling, forks = row
    chain = chain_status(conn, row[0], starts, dangling, forks, row[12])
    values = list(fields)
    values[1] = bytes(values[1])
    values[10] = bool(values[10])
    insecure = conn.execute("SELECT 1 FROM frames WHERE alert_id = ? AND (flags & ?) <> 0 LIMIT 1",
                            (row[0], FLAG_INSECURE_TLS)).fetchone() is not None
    return AlertSummary(*values, chain=chain, insecure_tls=insecure,  # type: ignore[arg-type]
                        hold=holds.held(conn, row[0]), flags=flags_of(conn, row[0]))


def get_alert(conn: sqlite3.Connection, alert_id: int) -> AlertSummary:
    """One alert; AlertNotFoundError when there is none with that id."""
    row = conn.execute(f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE alert_id = ?", (alert_id,)).fetchone()
    if row is None:
        raise AlertNotFoundError(f"no alert {alert_code(alert_id)} "
                                 "(`sotto alerts list --all` shows them all)")
    return _summary(conn, row)


def list_alerts(conn: sqlite3.Connection, *, include_closed: bool = False, limit: int | None = None
                ) -> list[AlertSummary]:
    """Alerts, most urgent first: duress, then open, then acknowledged (newest
    first within each), then (include_closed) closed ones, newest first. "Newest"
    is when the receiver first heard of the alert, never the device's clock (which
    may be years off: flags.py)."""
    where = "" if include_closed else "WHERE state != 'closed'"
    order = ("CASE state WHEN 'closed' THEN 2 ELSE 0 END, duress DESC, "
             "CASE state WHEN 'open' THEN 0 ELSE 1 END, first_received_at DESC, alert_id DESC")
    sql = f"SELECT {_ALERT_COLUMNS} FROM alerts {where} ORDER BY {order}"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [_summary(conn, row) for row in conn.execute(sql).fetchall()]


def track(conn: sqlite3.Connection, alert_id: int) -> list[TrackPoint]:
    """The alert's positions in sequence order (none once purged)."""
    return [TrackPoint(*r) for r in conn.execute(
        "SELECT seq, type, time, received_at, lat_e7, lon_e7, acc_m, age_s, src FROM frames "
        "WHERE alert_id = ? AND lat_e7 IS NOT NULL ORDER BY seq", (alert_id,))]


def show_alert(conn: sqlite3.Connection, alert_id: int, *, operator: str,
               now: float | None = None, role: str = audit.CLI_ROLE) -> AlertDetail:
    """Everything about one alert, including its location and track. The access
    is written to the audit log first; without that record nothing is shown."""
    now = time.time() if now is None else now
    summary = get_alert(conn, alert_id)
    audit_id = audit.record(conn, operator, "view", alert_id=alert_id, device_id=summary.device_id,
                            detail="alerts show: location, track, audio summary", at=now, role=role)
    points = track(conn, alert_id)
    counts = {FrameType(t).label: n for t, n in conn.execute(
        "SELECT type, count(*) FROM frames WHERE alert_id = ? GROUP BY type ORDER BY type", (alert_id,))}
    sms = conn.execute("SELECT count(*) FROM frames WHERE alert_id = ? AND via = 'sms'",
                       (alert_id,)).fetchone()[0]
    rejected = {r: n for r, n in conn.execute(
        "SELECT reason, count(*) FROM rejections WHERE device_id = ? AND at >= ? "
        "GROUP BY reason ORDER BY reason",
        (summary.device_id, summary.first_received_at))}
    seen = conn.execute("SELECT last_seen_at FROM device_state WHERE device_id = ?",
                        (summary.device_id,)).fetchone()
    pre = conn.execute("SELECT coalesce(sum(audio_ns), 0) FROM frames WHERE alert_id = ? AND type = 3 "
                       "AND (flags & 16) != 0", (alert_id,)).fetchone()[0]   # flag bit 4: pre-trigger audio
    return AlertDetail(summary, points, counts, rejected, seen[0] if seen else None, now, audit_id, sms,
                       commands.for_alert(conn, alert_id), int(pre), paths.delivered_via(conn, alert_id))


def silent_devices(conn: sqlite3.Connection, *, now: float | None = None, grace_s: float = DEFAULT_GRACE_S,
                   expected: dict[bytes, ExpectedHeartbeat] | None = None) -> list[SilentDevice]:
    """Devices with an active key from which nothing has arrived for longer than
    their heartbeat interval plus grace_s: the interval the centre expects of the
    device (devcfg.expected_heartbeats): the one its heartbeats carry, unless a
    configuration version changing it was applied (or sent, unconfirmed: the
    longer of old and new) since its last heartbeat, counted from the later of the
    last contact and that change; for a device heard but whose first heartbeat
    never came (e.g. one that sent its `started` status and died: no_heartbeat_yet)
    and for one registered (provisioned) from which nothing has ever arrived
    (never_heard), the configured, provisioned, else the firmware's default
    interval, so that a short one is not waited out on the default. `expected`: the
    caller's devcfg.expected_heartbeats(conn), when it has it already."""
    now = time.time() if now is None else now
    if expected is None:
        expected = devcfg.expected_heartbeats(conn)
    # the SQL keeps only what could be overdue (on the interval its heartbeats carry, or on
    # the shortest expected otherwise); the expected interval decides
    least = min([PROVISIONED_HEARTBEAT_S] + [e.seconds for e in expected.values()
                                             if e.source != FROM_HEARTBEAT])
    out: list[SilentDevice] = []
    for dev, officer, seen, hb, battery in conn.execute(
            "SELECT s.device_id, d.officer, s.last_seen_at, s.heartbeat_s, s.battery "
            "FROM device_state s JOIN devices d ON d.device_id = s.device_id "
            "WHERE s.last_seen_at + CASE WHEN s.heartbeat_s < ? THEN s.heartbeat_s ELSE ? END + ? < ? "
            "AND EXISTS (SELECT 1 FROM device_keys k WHERE k.device_id = s.device_id "
            "AND k.revoked_at IS NULL) ORDER BY s.last_seen_at", (least, least, grace_s, now)).fetchall():
        e = expected.get(bytes(dev), DEFAULT_HEARTBEAT)
        overdue = e.overdue_s(seen, now)
        if overdue > grace_s:
            out.append(SilentDevice(bytes(dev), officer, seen, e.seconds, overdue, battery,
                                    no_heartbeat_yet=hb is None, heartbeat_from=e.source,
                                    config_version=e.version))
    for dev, officer, added in conn.execute(
            "SELECT d.device_id, d.officer, k.added_at FROM devices d JOIN device_keys k "
            "ON k.device_id = d.device_id AND k.revoked_at IS NULL "
            "WHERE NOT EXISTS (SELECT 1 FROM device_state s WHERE s.device_id = d.device_id) "
            "AND k.added_at + ? + ? < ? ORDER BY k.added_at", (least, grace_s, now)).fetchall():
        e = expected.get(bytes(dev), DEFAULT_HEARTBEAT)
        overdue = e.overdue_s(added, now)
        if overdue > grace_s:
            out.append(SilentDevice(bytes(dev), officer, added, e.seconds, overdue, None,
                                    never_heard=True, heartbeat_from=e.source, config_version=e.version))
    return out


def trust_states(conn: sqlite3.Connection) -> dict[bytes, tuple[bool, int | None]]:
    """device id -> (its newest frame carried insecure-tls, answers it could not
    authenticate as it last reported): what devices say of their trust setup."""
    return {bytes(d): (bool(i), u) for d, i, u in conn.execute(
        "SELECT device_id, insecure_tls, unauth FROM device_trust")}


# --------------------------------------------------------------------------
# Acting.


def _check_outcome(outcome: str) -> str:
    text = " ".join(str(outcome).split())
    if not text:
        raise UsageError("say how the alert ended: --outcome TEXT (e.g. 'officer safe, false alarm')")
    if len(text) > MAX_OUTCOME_CHARS:
        raise UsageError(f"the outcome is {len(text)} characters; at most {MAX_OUTCOME_CHARS}")
    return text


def acknowledge(conn: sqlite3.Connection, alert_id: int, *, operator: str, now: float | None = None,
                role: str = audit.CLI_ROLE) -> AlertSummary:
    """Mark the alert as being handled by `operator` (audited), and queue the
    `listening` command: the officer feels that an operator has the alert."""
    now = time.time() if now is None else now
    operator = audit.check_operator(operator)
    with write_transaction(conn):
        row = conn.execute("SELECT state, acked_by, acked_at, closed_by, closed_at, device_id FROM alerts "
                           "WHERE alert_id = ?", (alert_id,)).fetchone()
        if row is None:
            raise AlertNotFoundError(f"no alert {alert_code(alert_id)}")
        state, acked_by, acked_at, closed_by, closed_at, device_id = row
        if state == "closed":
            raise AlertStateError(f"{alert_code(alert_id)} is already closed (by {closed_by}, "
                                  f"{utc_text(closed_at)})")
        if state == "acknowledged":
            raise AlertStateError(f"{alert_code(alert_id)} was already acknowledged by {acked_by} "
                                  f"({utc_text(acked_at)})")
        conn.execute("UPDATE alerts SET state = 'acknowledged', acked_by = ?, acked_at = ? "
                     "WHERE alert_id = ?",
                     (operator, now, alert_id))
        audit.record(conn, operator, "acknowledge", alert_id=alert_id, device_id=bytes(device_id), at=now,
                     in_transaction=True, role=role)
        commands.queue(conn, alert_id, commands.LISTENING, operator=operator, now=now, in_transaction=True,
                       role=role)
    return get_alert(conn, alert_id)


def close(conn: sqlite3.Connection, alert_id: int, *, operator: str, outcome: str, now: float | None = None,
          role: str = audit.CLI_ROLE) -> AlertSummary:
    """Close the alert with its outcome (audited). The device learns it from the
    `closed` list of its next answer and sends its end frame."""
    now = time.time() if now is None else now
    operator = audit.check_operator(operator)
    text = _check_outcome(outcome)
    with write_transaction(conn):
        row = conn.execute("SELECT state, closed_by, closed_at, device_id FROM alerts WHERE alert_id = ?",
                           (alert_id,)).fetchone()
        if row is None:
            raise AlertNotFoundError(f"no alert {alert_code(alert_id)}")
        state, closed_by, closed_at, device_id = row
        if state == "closed":
            raise AlertStateError(f"{alert_code(alert_id)} is already closed (by {closed_by}, "
                                  f"{utc_text(closed_at)})")
        conn.execute("UPDATE alerts SET state = 'closed', closed_by = ?, closed_at = ?, outcome = ?, "
                     "acked_by = coalesce(acked_by, ?), acked_at = coalesce(acked_at, ?) WHERE alert_id = ?",
                     (operator, now, text, operator, now, alert_id))
        audit.record(conn, operator, "close", alert_id=alert_id, device_id=bytes(device_id), at=now,
                     detail=f"outcome: {text}", in_transaction=True, role=role)
    return get_alert(conn, alert_id)


@dataclass
class Overview:
    """`sotto alerts list`: the alerts and the silent devices, at one moment."""

    alerts: list[AlertSummary]
    silent: list[SilentDevice]
    now: float
    grace_s: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"time": iso_utc(self.now), "alerts": [a.to_json() for a in self.alerts],
                "silent_devices": [s.to_json() for s in self.silent], "grace_s": self.grace_s}


def overview(conn: sqlite3.Connection, *, include_closed: bool = False, now: float | None = None,
             grace_s: float = DEFAULT_GRACE_S) -> Overview:
    """The alerts (not closed, unless include_closed) and the silent devices."""
    now = time.time() if now is None else now
    return Overview(list_alerts(conn, include_closed=include_closed),
                    silent_devices(conn, now=now, grace_s=grace_s),
                    now, grace_s)

__all__ = ["BROKEN", "COMPLETE", "DEFAULT_GRACE_S", "GAP", "MAX_OUTCOME_CHARS", "OPEN", "AlertDetail",
           "AlertNotFoundError", "AlertStateError", "AlertSummary", "ChainStatus", "Overview", "SilentDevice",
           "TrackPoint", "acknowledge", "chain_status", "close", "duration_text", "get_alert", "iso_utc",
           "list_alerts", "overview", "show_alert", "silent_devices", "track", "trust_states", "utc_text"]
