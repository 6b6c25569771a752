"""Frames for people (describe_frame, frame_summary) and for tools (frame_to_json)."""

from __future__ import annotations

import datetime
from typing import Any

from host_tools.frames.frame import Frame
from host_tools.frames.reasons import (
    ALG_NAMES,
    CODEC_NAMES,
    END_REASON_NAMES,
    RECEIVER_NAMES,
    REPLY_RESULT_NAMES,
    RESET_CAUSE_NAMES,
    STATUS_NAMES,
    TRIGGER_NAMES,
    FrameType,
)
from host_tools.frames.schema import Location

# --------------------------------------------------------------------------
# For people and for tools.


def _utc_text(frame: Frame) -> str:
    if not frame.time:
        return "unknown (0)"
    when = frame.time_utc
    if when is None:
        return f"{frame.time} (beyond the calendar)"
    return f"{when:%Y-%m-%d %H:%M:%S} UTC (epoch {frame.time})"


def _location_text(loc: Location) -> str:
    acc = f"±{loc.accuracy_m} m" + (" or worse" if loc.accuracy_capped else "")
    age = f"fix {loc.age_s} s old" + (" or older" if loc.age_capped else "")
    return f"{loc.lat_deg:.7f}, {loc.lon_deg:.7f}  {acc}, {age}, source {loc.source_name}"


def describe_frame(frame: Frame, extra: list[tuple[str, str]] | None = None) -> list[str]:
    """Lines that show a frame to a person (labels left, values right);
    `extra` rows (label, value) go at the end."""
    rows: list[tuple[str, str]] = [("type", f"{frame.type_name} ({int(frame.type)})"),
                                   ("device", frame.device_id), ("seq", str(frame.seq))]
    if frame.sid is not None:
        rows.append(("alert", f"session {frame.sid}"))
    rows.append(("time", _utc_text(frame)))
    rows.append(("uptime", f"{frame.uptime_ms / 1000:.3f} s ({frame.uptime_ms} ms)"))
    loc = frame.location
    if loc is not None:
        rows.append(("location", _location_text(loc)))
    elif frame.type in (FrameType.ALERT_START, FrameType.DURESS, FrameType.CHECK_IN):
        rows.append(("location", "none (no position known)"))
    if frame.battery is not None:
        rows.append(("battery", f"{frame.battery} %"))
    if frame.trigger is not None:
        rows.append(("trigger", TRIGGER_NAMES.get(frame.trigger, str(frame.trigger))))
    if frame.status is not None:
        rows.append(("status", f"{frame.status}: {STATUS_NAMES.get(frame.status, '?')}"))
    if frame.dropped is not None:
        rows.append(("dropped", f"{frame.dropped} frames"))
    if frame.end_reason is not None:
        rows.append(("ended", f"{frame.end_reason}: {END_REASON_NAMES.get(frame.end_reason, '?')}"))
    if frame.heartbeat_s is not None:
        rows.append(("heartbeat", f"every {frame.heartbeat_s} s"))
    if frame.command_id is not None:
        rows.append(("command", f"{frame.command_id}: {REPLY_RESULT_NAMES.get(frame.result or 0, '?')} "
                                f"({frame.result})"))
    if frame.unauth is not None:
        rows.append(("unauthenticated", f"{frame.unauth} answers since the device started"))
    rows += health_rows(frame)
    if frame.rx is not None:
        what = "down" if frame.status == 9 else "in use"
        rows.append(("receiver", f"{frame.rx}: {RECEIVER_NAMES.get(frame.rx, '?')} ({what})"))
    if frame.visit is not None:
        rows.append(("visit", _visit_text(frame)))
    rows.append(("flags", ", ".join(frame.flag_names) or "none"))
    if frame.type == FrameType.AUDIO:
        rate = frame.rate_hz or 1
        ns = frame.samples or 0
        state = frame.adpcm_state or (0, 0)
        off = frame.audio_offset or 0
        codec = CODEC_NAMES.get(frame.codec or 0, str(frame.codec))
        rows.append(("audio", f"{codec}, {frame.rate_hz} Hz, {ns} samples ({ns / rate:.3f} s) "
                     f"from sample {off} ({off / rate:.3f} s into the alert's audio)"))
        rows.append(("adpcm state", f"predictor {state[0]}, step index {state[1]}"))
        rows.append(("audio bytes", f"{len(frame.audio or b'')}"))
        rows.append(("adig", (frame.audio_digest or b"").hex()))
    if frame.prev is not None:
        rows.append(("prev", frame.prev.hex()))
    rows.append(("link", f"{frame.link.hex()} (the next frame's prev)"))
    alg_name = ALG_NAMES.get(frame.alg, "unsupported") if isinstance(frame.alg, int) else "unsupported"
    rows.append(("alg", f"{alg_name} ({frame.alg!r})"))
    rows.append(("size", f"{len(frame.wire)} bytes on the wire"))
    rows += extra or []
    width = max(len(label) for label, _ in rows)
    return [f"{label.ljust(width)}  {value}" for label, value in rows]


def health_rows(frame: Frame) -> list[tuple[str, str]]:
    """(label, value) rows of the health keys a status or heartbeat carries."""
    rows: list[tuple[str, str]] = []
    if frame.firmware is not None:
        rows.append(("firmware", frame.firmware))
    if frame.config_version is not None:
        rows.append(("config version", str(frame.config_version)))
    if frame.reset_cause is not None:
        rows.append(("reset cause", f"{frame.reset_cause}: "
                     f"{RESET_CAUSE_NAMES.get(frame.reset_cause, '?')}"))
    if frame.boots is not None:
        rows.append(("boots", str(frame.boots)))
    if frame.faults is not None:
        rows.append(("faults", f"{frame.faults} since boot"))
    if frame.queue_depth is not None:
        rows.append(("queued", f"{frame.queue_depth} frames"))
    if frame.signal is not None:
        rows.append(("signal", "unknown (99)" if frame.signal == 99 else f"{frame.signal} (0..31)"))
    if frame.error_text is not None:
        rows.append(("error", frame.error_text))
    return rows


def _visit_text(frame: Frame) -> str:
    dur = frame.duration_s or 0
    if not dur:
        return f"{frame.visit}: ended"
    due = frame.due or 0
    when = (datetime.datetime.fromtimestamp(due, datetime.timezone.utc).isoformat().replace("+00:00", "Z")
            if due else "device time unknown")
    return f"{frame.visit}: ends in {dur} s (at {when})"


def frame_summary(frame: Frame) -> str:
    """One line: type, device, seq, alert session."""
    sid = f" sid {frame.sid}" if frame.sid is not None else ""
    return f"{frame.type_name} device {frame.device_id} seq {frame.seq}{sid}"


def frame_to_json(frame: Frame) -> dict[str, Any]:
    """A JSON-ready dict of the frame: names as in docs/frames.md, bytes as hex."""
    out: dict[str, Any] = {
        "type": frame.type_name, "t": int(frame.type), "v": frame.version,
        "device": frame.device_id, "kid": frame.kid.hex(), "alg": frame.alg,
        "seq": frame.seq, "sid": frame.sid, "time": frame.time,
        "time_utc": frame.time_utc.isoformat().replace("+00:00", "Z") if frame.time_utc else None,
        "up_ms": frame.uptime_ms, "flags": frame.flags, "flag_names": frame.flag_names,
        "prev": frame.prev.hex() if frame.prev is not None else None, "link": frame.link.hex(),
        "size": len(frame.wire),
    }
    loc = frame.location
    if loc is not None:
        out["location"] = {"lat_e7": loc.lat_e7, "lon_e7": loc.lon_e7, "lat": loc.lat_deg, "lon": loc.lon_deg,
                           "accuracy_m": loc.accuracy_m, "age_s": loc.age_s, "source": loc.source,
                           "source_name": loc.source_name}
    for key, name in ((7, "battery"), (9, "trigger"), (17, "heartbeat_s"), (18, "status"),
                      (19, "dropped"), (20, "why"), (21, "cmd"), (22, "res"), (23, "unauth"),
                      (24, "fw"), (25, "cfgv"), (26, "rst"), (27, "boots"), (28, "faults"), (29, "qd"),
                      (30, "csq"), (31, "visit"), (32, "due"), (33, "dur"), (34, "rx"),
                      (35, "pend"), (36, "upd"), (37, "err")):
        if key in frame.payload:
            out[name] = frame.payload[key]
    if frame.type == FrameType.AUDIO:
        out["audio"] = {"codec": frame.codec, "rate_hz": frame.rate_hz, "offset": frame.audio_offset,
                        "samples": frame.samples, "adpcm_state": list(frame.adpcm_state or ()),
                        "adig": (frame.audio_digest or b"").hex(), "bytes": len(frame.audio or b"")}
    out["signature"] = frame.signature.hex()
    return out
