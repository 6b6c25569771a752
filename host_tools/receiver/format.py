"""Alerts written for people: times and durations (and ISO 8601 for JSON), and one
alert as operators read it (format_alert: `sotto alerts show`, the demo)."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from host_tools.frames import SOURCE_NAMES

if TYPE_CHECKING:
    from host_tools.receiver.alert_records import AlertDetail, AlertSummary

# --------------------------------------------------------------------------
# Formatting for people.


def utc_text(epoch: float | None) -> str:
    """`2026-09-21 14:03:05 UTC`, or `unknown`."""
    if not epoch:
        return "unknown"
    try:
        when = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
    except (OverflowError, ValueError, OSError):
        return f"epoch {epoch}"
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


def iso_utc(epoch: float | None) -> str | None:
    """ISO 8601 in UTC (`2026-09-21T14:03:05Z`) for JSON, or None."""
    if not epoch:
        return None
    try:
        return (datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
                .isoformat(timespec="seconds").replace("+00:00", "Z"))
    except (OverflowError, ValueError, OSError):
        return None


def duration_text(seconds: float) -> str:
    """`45 s`, `3 min 20 s`, `2 h 5 min`, `3 d 4 h`."""
    s = int(round(max(seconds, 0)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s" if s % 60 else f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


# --------------------------------------------------------------------------
# One alert, as `sotto alerts show` prints it and the demo shows it.

TRACK_ROWS = 10  # positions shown unless the whole track is asked for


def state_text(a: AlertSummary) -> str:
    """`OPEN`, `ACKNOWLEDGED`, `CLOSED`; `DURESS ` in front when the cancel was a duress cancel."""
    text = a.state.upper()
    return "DURESS " + text if a.duress else text


def flags_text(a: AlertSummary) -> str:
    """`insecure-tls`, `held` (what `alerts list` notes beside the state), or `-`."""
    notes = [n for n, on in (("insecure-tls", a.insecure_tls), ("held", a.hold is not None)) if on]
    notes += [f.flag for f in a.flags]        # time-behind, time-ahead, signed-before-revocation
    return ",".join(notes) or "-"


def format_alert(d: AlertDetail, full_track: bool = False, track_rows: int = TRACK_ROWS) -> list[str]:
    """The lines an operator reads for one alert: labels left, values right, then
    the last `track_rows` positions of the track (all of them with full_track)."""
    a = d.alert
    rows: list[tuple[str, str]] = [
        ("alert", f"{a.code}  {state_text(a)}"),
        ("officer", a.officer or "(none registered)"),
        ("device", f"{a.device}, alert session {a.sid}"),
        ("started", f"{utc_text(a.start_time)} ({duration_text(d.now - a.start_time)} ago, "
                    f"{'device clock' if a.started_at else 'first received; device time unknown'})"),
        ("received", f"{utc_text(a.first_received_at)} (first frame at the centre; the queue's order)"),
        ("trigger", a.trigger_name),
        ("duress", f"YES: the officer made a duress cancel ({utc_text(a.duress_at)}); the alert stays live"
         if a.duress else "no"),
    ]
    loc = d.location
    if loc is not None:
        rows.append(("location", f"{loc.lat:.7f}, {loc.lon:.7f}  ±{loc.accuracy_m} m"
                                 f"{' or worse' if loc.accuracy_m == 0xFFFF else ''}, "
                                 f"fix {duration_text(d.now - loc.fix_time)} old, "
                                 f"{SOURCE_NAMES.get(loc.source, '?')} (seq {loc.seq})"))
    else:
        rows.append(("location", "none received" + (" (purged)" if a.purged_at else "")))
    pre_s = d.pre_trigger_samples / a.audio_rate if a.audio_rate else 0.0
    rows.append(("audio", f"{a.audio_seconds:.1f} s received in {a.audio_frames} chunks"
                 + (f", of which the first {pre_s:.1f} s are PRE-TRIGGER (recorded before the alarm was "
                    "raised)" if d.pre_trigger_samples else "")
                 + (" (purged)" if a.purged_at else "")))
    rows.append(("chain", a.chain.summary))
    rows.append(("frames", f"{a.frames} ("
                 + ", ".join(f"{n} {t}" for t, n in d.frame_counts.items())
                 + (f"; {d.sms_frames} by SMS" if d.sms_frames else "") + ")"))
    if d.delivered_via == "secondary":
        rows.append(("path", "delivered via secondary: the device's primary receiver was not answering "
                             "(frames the primary took are in that centre's own record)"))
    elif d.delivered_via == "primary":
        rows.append(("path", "delivered via primary"))
    if a.battery is not None:
        rows.append(("battery", f"{a.battery} %"))
    if a.insecure_tls:
        rows.append(("INSECURE TLS", "the device ran without authenticating the centre (insecure_tls, "
                                     "bench setting): provision it with the CA"))
    if a.hold is not None:
        rows.append(("on hold", a.hold.text))
    for flag in a.flags:
        rows.append(("FLAGGED", flag.text))
    if a.ended_text:
        rows.append(("on the device", a.ended_text))
    if a.acked_by:
        rows.append(("acknowledged", f"by {a.acked_by}, {utc_text(a.acked_at)}"))
    if a.closed_by:
        rows.append(("closed", f"by {a.closed_by}, {utc_text(a.closed_at)}: {a.outcome}"))
    if d.last_seen_at:
        rows.append(("last heard",
                     f"{utc_text(d.last_seen_at)} ({duration_text(d.now - d.last_seen_at)} ago)"))
    if d.rejected_since_start:
        rows.append(("rejected", ", ".join(f"{n} {r}" for r, n in d.rejected_since_start.items())
                     + " (frames from this device since the alert began)"))
    if a.seq_reused:
        rows.append(("warning",
                     f"{a.seq_reused} frames reuse a sequence number (device counters went back?)"))
    width = max(len(k) for k, _ in rows)
    lines = [f"{k.ljust(width)}  {v}" for k, v in rows]
    if d.commands:
        lines.append("")
        lines.append(f"commands to the device ({len(d.commands)}):")
        for c in d.commands:
            lines.append(f"  {c.command_id:<6} {c.what:<24} {c.outcome:<22} by {c.operator}, "
                         f"{utc_text(c.queued_at)[11:19]}")
    if d.track:
        shown = d.track if full_track else d.track[-track_rows:]
        lines.append("")
        more = f", last {len(shown)}; --full-track for all" if len(shown) < len(d.track) else ""
        lines.append(f"track ({len(d.track)} positions{more}):")
        for p in shown:
            lines.append(f"  seq {p.seq:<6} {utc_text(p.fix_time)[:19]}  {p.lat:.7f}, {p.lon:.7f}  "
                         f"±{p.accuracy_m} m  {p.source_name}")
    return lines
