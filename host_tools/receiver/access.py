"""The console's only way to alert content and to state changes: each function here
checks the acting person's right, and every read of a location or of audio goes
through `audited_access`, which writes the audit entry first (no record, no
access), so that no route can forget it (STYLE rule 19).

    detail = alert_page(conn, actor, 12)          # track, latest fix, timeline (audited "view")
    wav, audio = alert_audio(conn, actor, 12)     # the audio received so far (audited "listen")
    acknowledge(conn, actor, 12); close(conn, actor, 12, "officer safe")
    send_command(conn, actor, 12, "ask", question="can-you-talk")   # audited "command"
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from host_tools.adpcm import wav_bytes
from host_tools.errors import UsageError
from host_tools.frames import FrameType, decode_frame
from host_tools.receiver import alerts, audit, commands, holds, paths
from host_tools.receiver.alert_records import AlertSummary
from host_tools.receiver.evidence import AudioBuild, ExportResult, build_audio, export_alert
from host_tools.receiver.format import iso_utc
from host_tools.receiver.purge import PurgeResult, purge
from host_tools.receiver.queue import queue_row
from host_tools.receiver.roles import CLOSE, CLOSED_ALERTS, EXPORT, LIVE_ALERTS, RETENTION, Actor, require

_AUDIO = int(FrameType.AUDIO)


def content_right(alert: AlertSummary) -> str:
    """The right that opens this alert's content: live alerts for anyone who works
    the queue, closed ones for supervisors."""
    return CLOSED_ALERTS if alert.state == "closed" else LIVE_ALERTS


def audited_access(
    conn: sqlite3.Connection, actor: Actor, action: str, alert: AlertSummary, what: str, now: float
) -> int:
    """THE gate to an alert's location and audio: the right is checked, then the
    entry (who, role, when, what was seen) is committed; only then may the caller read."""
    require(actor, content_right(alert))
    return audit.record(
        conn,
        actor.name,
        action,
        role=actor.role,
        alert_id=alert.alert_id,
        device_id=alert.device_id,
        detail=what,
        at=now,
    )


def alert_for(conn: sqlite3.Connection, actor: Actor, alert_id: int) -> AlertSummary:
    """The alert's summary (no content), if the actor may work with it."""
    a = alerts.get_alert(conn, alert_id)
    require(actor, content_right(a))
    return a


def _timeline(conn: sqlite3.Connection, alert_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT seq, type, time, received_at, via, size, lat_e7 IS NOT NULL, audio_ns, "
        "audio_rate, flags FROM frames WHERE alert_id = ? ORDER BY seq",
        (alert_id,),
    ).fetchall()
    return [
        {
            "seq": r[0],
            "type": FrameType(r[1]).label,
            "time": iso_utc(r[2]),
            "received": iso_utc(r[3]),
            "received_epoch": r[3],
            "via": r[4],
            "bytes": r[5],
            "location": bool(r[6]),
            "audio_s": round(r[7] / r[8], 2) if r[7] and r[8] else None,
            "duress": bool((r[9] or 0) & 1),
            "pre_trigger": bool((r[9] or 0) & 16),   # flag bit 4: audio from the device's RAM ring
        }
        for r in rows
    ]


def alert_page(
    conn: sqlite3.Connection, actor: Actor, alert_id: int, *, now: float | None = None
) -> dict[str, Any]:
    """Everything the alert page shows: the queue row, the track with accuracy,
    the frame timeline, the chain, the audio summary (audited as a view)."""
    now = time.time() if now is None else now
    a = alerts.get_alert(conn, alert_id)
    points = alerts.track(conn, alert_id)
    audited_access(
        conn,
        actor,
        "view",
        a,
        f"console alert page: location, track ({len(points)} positions), frame timeline",
        now,
    )
    out = queue_row(conn, a, now)
    out.update(
        {
            "session": a.sid,
            "trigger": a.trigger_name,
            "battery": a.battery,
            "chain": a.chain.to_json(),
            "track": [p.to_json(now) for p in points],
            "location": points[-1].to_json(now) if points else None,
            "timeline": (timeline := _timeline(conn, alert_id)),
            "audio": {
                "seconds": round(a.audio_seconds, 2),
                "chunks": a.audio_frames,
                "rate_hz": a.audio_rate,
                # recorded before the alarm was raised (pre-trigger, flag bit 4): said as such
                "pre_trigger_seconds": round(sum(f["audio_s"] or 0 for f in timeline if f["pre_trigger"]), 2),
            },
            "held": (h.to_json() if (h := holds.held(conn, alert_id)) else None),
            "commands": [c.to_json() for c in commands.for_alert(conn, alert_id)],
            "device_trust": device_trust(conn, a.device_id),
            "delivered_via": paths.delivered_via(conn, alert_id),   # the second path: primary / secondary
            "purged": iso_utc(a.purged_at),
            "closed": iso_utc(a.closed_at),
            "acknowledged": iso_utc(a.acked_at),
        }
    )
    return out


def alert_audio(
    conn: sqlite3.Connection, actor: Actor, alert_id: int, *, now: float | None = None
) -> tuple[bytes, AudioBuild]:
    """The audio received so far as one WAV (missing chunks as silence), audited as `listen`."""
    now = time.time() if now is None else now
    a = alerts.get_alert(conn, alert_id)
    wires = [
        bytes(r[0])
        for r in conn.execute(
            "SELECT wire FROM frames WHERE alert_id = ? AND type = ? AND wire IS NOT NULL ORDER BY seq",
            (alert_id, _AUDIO),
        )
    ]
    audio = build_audio([decode_frame(w) for w in wires])
    audited_access(
        conn, actor, "listen", a, f"console audio: {audio.seconds:.1f} s in {audio.chunks} chunks", now
    )
    if audio.pcm is None or not audio.rate_hz:
        return b"", audio
    return wav_bytes(audio.pcm, audio.rate_hz), audio


def acknowledge(conn: sqlite3.Connection, actor: Actor, alert_id: int) -> AlertSummary:
    require(actor, content_right(alerts.get_alert(conn, alert_id)))
    return alerts.acknowledge(conn, alert_id, operator=actor.name, role=actor.role)


# The console's command names: `listen` (as `sotto alerts listen`) queues `listening`.
COMMAND_OPS = {"listen": commands.LISTENING, "more-audio": commands.MORE_AUDIO, "locate": commands.LOCATE,
               "ask": commands.ASK}


def send_command(conn: sqlite3.Connection, actor: Actor, alert_id: int, op: str, *,
                 seconds: int | None = None, question: int | str | None = None) -> commands.Command:
    """Queue a command for the alert's device (audited `command`, with the actor's
    role); whoever may work the alert may send it. UsageError for an unknown op or
    bad arguments, AlertStateError for a closed alert."""
    require(actor, content_right(alerts.get_alert(conn, alert_id)))
    if op not in COMMAND_OPS:
        raise UsageError(f"no command {op!r}; commands are {', '.join(COMMAND_OPS)}")
    return commands.queue(conn, alert_id, COMMAND_OPS[op], operator=actor.name, role=actor.role,
                          seconds=seconds, question=question)


def device_trust(conn: sqlite3.Connection, device_id: bytes) -> dict[str, Any]:
    """What the device says of its own trust setup: it runs TLS without checking
    the centre (insecure-tls, bench only) and answers it could not authenticate."""
    row = conn.execute("SELECT insecure_tls, unauth FROM device_trust WHERE device_id = ?",
                       (bytes(device_id),)).fetchone()
    return {"insecure_tls": bool(row and row[0]), "unauthenticated_answers": row[1] if row else None}


def close(conn: sqlite3.Connection, actor: Actor, alert_id: int, outcome: str) -> AlertSummary:
    require(actor, CLOSE)
    return alerts.close(conn, alert_id, operator=actor.name, outcome=outcome, role=actor.role)


def export(conn: sqlite3.Connection, actor: Actor, alert_id: int, out_dir: str,
           centre_key_path: str | None = None) -> ExportResult:
    """An evidence bundle sealed by the centre (audited by export_alert, which records
    the manifest digest)."""
    require(actor, EXPORT)
    return export_alert(conn, alert_id, out_dir, operator=actor.name, role=actor.role,
                        centre_key_path=centre_key_path)


def run_purge(conn: sqlite3.Connection, actor: Actor, older_than_days: int, dry_run: bool) -> PurgeResult:
    require(actor, RETENTION)
    return purge(conn, older_than_days, operator=actor.name, role=actor.role, dry_run=dry_run)


def set_hold(conn: sqlite3.Connection, actor: Actor, alert_id: int, reason: str | None) -> holds.Hold:
    """Hold (reason given) or release (None) an alert against purging (audited);
    AlertStateError when it is already held / not held."""
    require(actor, RETENTION)
    if reason is None:
        return holds.release(conn, alert_id, operator=actor.name, role=actor.role)
    return holds.hold(conn, alert_id, operator=actor.name, reason=reason, role=actor.role)
