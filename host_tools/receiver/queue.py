"""The alarm queue as the console shows it: alerts with their ages, silent devices
(also those never heard since provisioning) and frames rejected from registered
devices, so that nothing fails unseen.

No position and no audio here (only how old and how accurate the latest fix is,
and how many seconds of audio arrived), so reading the queue is not audited.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from host_tools.ids import format_device_id
from host_tools.receiver.alert_records import DEFAULT_GRACE_S, DEFAULT_HEARTBEAT, AlertSummary
from host_tools.receiver.alerts import list_alerts, silent_devices
from host_tools.receiver.devcfg import expected_heartbeats
from host_tools.receiver.format import iso_utc
from host_tools.receiver.releases import device_view
from host_tools.receiver.visits import list_visits

REJECTIONS_WINDOW_S = 24 * 3600  # rejected frames shown for this long


def _latest_fix(conn: sqlite3.Connection, alert_id: int) -> tuple[Any, ...] | None:
    return conn.execute(
        "SELECT acc_m, age_s, time, received_at FROM frames WHERE alert_id = ? "
        "AND lat_e7 IS NOT NULL ORDER BY seq DESC LIMIT 1",
        (alert_id,),
    ).fetchone()


def queue_row(conn: sqlite3.Connection, a: AlertSummary, now: float) -> dict[str, Any]:
    """One alert of the queue: who, how old, how long since last heard, how long
    unacknowledged, how old and accurate the latest fix is, audio, chain; whether
    it is on hold, and what its device says of its trust setup (insecure-tls: it
    does not authenticate the centre; answers it could not authenticate)."""
    arrived = (
        conn.execute("SELECT start_received_at FROM alerts WHERE alert_id = ?", (a.alert_id,)).fetchone()[0]
        or a.first_received_at
    )
    fix = _latest_fix(conn, a.alert_id)
    heard = conn.execute(
        "SELECT last_seen_at FROM device_state WHERE device_id = ?", (a.device_id,)
    ).fetchone()
    last_heard = max(a.last_received_at, heard[0]) if heard else a.last_received_at
    trust = conn.execute("SELECT insecure_tls, unauth FROM device_trust WHERE device_id = ?",
                         (a.device_id,)).fetchone()
    held = conn.execute("SELECT 1 FROM alert_holds WHERE alert_id = ?", (a.alert_id,)).fetchone()
    flags = [f.flag for f in a.flags]
    # a device clock far off (flags.py) would make the age nonsense: count from receipt then
    began = a.first_received_at if {"time-behind", "time-ahead"} & set(flags) else a.start_time
    return {
        "id": a.code,
        "number": a.alert_id,
        "officer": a.officer,
        "device": a.device,
        "state": a.state,
        "duress": a.duress,
        "started": iso_utc(a.start_time),
        "arrived": iso_utc(arrived),
        "arrived_epoch": arrived,
        "age_s": round(now - began, 1),
        "last_heard_s": round(now - last_heard, 1),
        "unacknowledged_s": None if a.acked_at else round(now - arrived, 1),
        "time_to_ack_s": round(a.acked_at - arrived, 1) if a.acked_at else None,
        "acknowledged_by": a.acked_by,
        "closed_by": a.closed_by,
        "outcome": a.outcome,
        "location_age_s": round(now - ((fix[2] or fix[3]) - fix[1])) if fix else None,
        "location_accuracy_m": fix[0] if fix else None,
        "audio_seconds": round(a.audio_seconds, 1),
        "chain": a.chain.state,
        "chain_summary": a.chain.summary,
        "ended_on_device": a.ended_text,
        "frames": a.frames,
        "held": held is not None,
        "insecure_tls": bool(trust and trust[0]),
        "unauthenticated_answers": trust[1] if trust else None,
        "flags": flags,        # time-behind, time-ahead, signed-before-revocation
    }


def never_heard(conn: sqlite3.Connection, now: float) -> list[dict[str, Any]]:
    """Devices with an active key from which nothing has ever arrived, with the
    heartbeat interval the centre expects of them and where it comes from
    (devcfg.expected_heartbeats: configured, provisioned or the default)."""
    expected = expected_heartbeats(conn)
    rows = conn.execute(
        "SELECT d.device_id, d.officer, k.added_at FROM devices d JOIN device_keys k "
        "ON k.device_id = d.device_id AND k.revoked_at IS NULL "
        "WHERE NOT EXISTS (SELECT 1 FROM device_state s WHERE s.device_id = d.device_id) "
        "ORDER BY k.added_at"
    ).fetchall()
    return [
        {
            "device": format_device_id(bytes(r[0])),
            "officer": r[1],
            "registered": iso_utc(r[2]),
            "silent_s": round(now - r[2]),
            "heartbeat_s": e.seconds,
            "heartbeat_from": e.source,
            "config_version": e.version,
        }
        for r in rows
        for e in [expected.get(bytes(r[0]), DEFAULT_HEARTBEAT)]
    ]


def recent_rejections(
    conn: sqlite3.Connection, now: float, window_s: float = REJECTIONS_WINDOW_S
) -> list[dict[str, Any]]:
    """Frames rejected from registered devices within the window, by device and reason."""
    rows = conn.execute(
        "SELECT r.device_id, d.officer, r.reason, count(*), max(r.at) FROM rejections r "
        "JOIN devices d ON d.device_id = r.device_id WHERE r.at >= ? "
        "GROUP BY r.device_id, d.officer, r.reason ORDER BY max(r.at) DESC",
        (now - window_s,),
    ).fetchall()
    return [
        {
            "device": format_device_id(bytes(r[0])),
            "officer": r[1],
            "reason": r[2],
            "count": r[3],
            "last": iso_utc(r[4]),
            "last_s": round(now - r[4]),
        }
        for r in rows
    ]


def live_queue(
    conn: sqlite3.Connection,
    *,
    include_closed: bool = False,
    now: float | None = None,
    grace_s: float = DEFAULT_GRACE_S,
) -> dict[str, Any]:
    """The whole queue: alerts (duress first, then open, then acknowledged), silent
    and never-heard devices, recent rejections, open check-in visits."""
    now = time.time() if now is None else now
    alerts = list_alerts(conn, include_closed=include_closed)
    return {
        "time": iso_utc(now),
        "time_epoch": now,
        "alerts": [queue_row(conn, a, now) for a in alerts],
        "silent_devices": [s.to_json() for s in silent_devices(conn, now=now, grace_s=grace_s)
                           if not s.never_heard],   # those are in never_heard
        "never_heard": never_heard(conn, now),
        "rejections": recent_rejections(conn, now),
        # open timed check-in visits, overdue first (host_tools.receiver.visits; no location)
        "visits": [v.to_json() for v in list_visits(conn, now=now)],
    }


def device_list(conn: sqlite3.Connection, *, now: float | None = None) -> list[dict[str, Any]]:
    """Every registered device as administrators see it: officer, key state, last
    contact, battery, heartbeat interval, its trust flags, and its software: the running
    and staged release, the last update's result and why, its cohort and assigned release
    (no alert content)."""
    now = time.time() if now is None else now
    versions = device_view(conn)
    rows = conn.execute(
        "SELECT d.device_id, d.officer, d.created_at, "
        "(SELECT count(*) FROM device_keys k WHERE k.device_id = d.device_id AND k.revoked_at IS NULL), "
        "s.last_seen_at, s.battery, s.heartbeat_s, s.last_via, s.frames, t.insecure_tls, t.unauth "
        "FROM devices d LEFT JOIN device_state s ON s.device_id = d.device_id "
        "LEFT JOIN device_trust t ON t.device_id = d.device_id ORDER BY d.device_id"
    ).fetchall()
    return [
        {
            "device": format_device_id(bytes(r[0])),
            "officer": r[1],
            "registered": iso_utc(r[2]),
            "status": "active" if r[3] else "revoked",
            "last_seen": iso_utc(r[4]),
            "last_seen_s": round(now - r[4]) if r[4] else None,
            "battery": r[5],
            "heartbeat_s": r[6],
            "last_via": r[7],
            "frames": r[8] or 0,
            "insecure_tls": bool(r[9]),
            "unauthenticated_answers": r[10],
            **_software(versions.get(bytes(r[0]))),
        }
        for r in rows
    ]


def _software(v: dict[str, Any] | None) -> dict[str, Any]:
    v = v or {}
    return {"firmware": v.get("fw"), "pending": v.get("pending"), "update": v.get("update_name"),
            "update_error": v.get("update_error"), "cohort": v.get("cohort"),
            "assigned_release": v.get("assigned_release")}
