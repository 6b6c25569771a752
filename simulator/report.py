"""What a scenario run shows a person: a readable timeline (text), the same
timeline as a picture (SVG), the frames, and the receiver's view."""

from __future__ import annotations

import bisect
import html
import json
from pathlib import Path
from typing import Any

from sotto import frames as ff

from host_tools.ids import format_device_id
from host_tools.receiver import alerts, store
from simulator.device import TYPE_NAMES

LANES = ("scenario", "trigger", "frames", "delivery", "sms", "faults")
# one colour per kind of mark: the frames by type, then everything else (all distinct)
COLOURS = {ff.ALERT_START: "#d62728", ff.LOCATION: "#1f77b4", ff.AUDIO: "#9467bd", ff.CANCEL: "#98df8a",
           ff.DURESS: "#ff7f0e", ff.END: "#006d2c", ff.HEARTBEAT: "#7f7f7f", ff.STATUS: "#8c564b",
           ff.CHECK_IN: "#17becf"}
EVENT_COLOURS = {"scenario": "#000000", "fault": "#e377c2", "haptic": "#bcbd22", "acknowledged": "#2ca02c",
                 "sms sent": "#ffbb78", "sms delivered": "#aec7e8"}
FONT_W = 0.62   # a sans-serif character's width, in font sizes (enough for the widest lower case)


# what the officer feels (sotto.feedback, sotto.haptic) and what it tells them
WRIST = {"confirm": "pattern accepted", "received": "the centre has the alert",
         "listening": "an operator is listening", "not-through": "not through yet: try another way",
         "visit-started": "visit started", "visit-extended": "visit extended", "visit-ended": "visit ended",
         "visit-reminder": "the visit ends soon: extend or end it",
         "pre-alarm": "pre-alarm: cancel now or the alert goes out"}


def clock(t_ms: int) -> str:
    s = t_ms // 1000
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}.{t_ms % 1000 // 100}"


def ack_bursts(acked: list[tuple[int, int]], gap_ms: int = 20_000) -> list[tuple[int, int, list[int]]]:
    """Acknowledgements grouped into bursts separated by more than gap_ms of
    silence: (first t, last t, seqs). A gap in the list is a time the data
    link did not deliver."""
    out: list[tuple[int, int, list[int]]] = []
    for t, seq in sorted(acked):
        if out and t - out[-1][1] <= gap_ms:
            out[-1] = (out[-1][0], t, out[-1][2] + [seq])
        else:
            out.append((t, t, [seq]))
    return out


def _ranges(seqs: list[int]) -> str:
    """[1, 2, 3, 7] -> "1-3, 7"."""
    parts: list[str] = []
    s = sorted(set(seqs))
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[j] + 1:
            j += 1
        parts.append(str(s[i]) if i == j else f"{s[i]}-{s[j]}")
        i = j + 1
    return ", ".join(parts)


def timeline_lines(result: Any, verbose: bool = False) -> list[str]:
    """The run as lines of text, in time order."""
    dev = result.device
    rows: list[tuple[int, int, str]] = []
    for t, kind, text in dev.timeline:
        keep = any(k in text for k in (" E: ", "raised", "over", "SMS", "MINIMAL"))
        if kind == "log" and not verbose and not keep:
            continue
        if kind == "frame" and not verbose and "heartbeat" in text:
            continue
        rows.append((t, 0, f"{kind:<8} {text}"))
    # alerts apart: a heading where each starts (when there are several), each its own audio summary
    starts = sorted(t for t, _, ftype, _ in dev.made if ftype == ff.ALERT_START)
    for k, t in enumerate(starts if len(starts) > 1 else []):
        rows.append((t, -1, f"{'alert':<8} ---- alert {k + 1} of {len(starts)} ----"))
    audio: dict[int, list[int]] = {}
    for t, _, ftype, _ in dev.made:
        if ftype == ff.AUDIO:
            audio.setdefault(bisect.bisect_right(starts, t), []).append(t)
    for k, ts in sorted(audio.items()):
        which = f" of alert {k}" if len(starts) > 1 and k else ""
        rows.append((ts[0], 1, f"{'frame':<8} audio chunks{which}: {len(ts)} queued from {clock(ts[0])} "
                     f"to {clock(ts[-1])}"))
    for rec in dev.smsc.records:
        fate = f", delivered at {clock(rec.delivered_ms)}" if rec.delivered_ms else ", not delivered"
        rows.append((rec.submitted_ms, 2, f"{'sms':<8} {len(rec.payload)}-byte frame to {rec.number}{fate}"))
    for t0, t1, seqs in ack_bursts(dev.acked):
        span = f" until {clock(t1)}" if t1 > t0 else ""
        rows.append((t0, 3, f"{'receiver':<8} acknowledged {len(seqs)} frame{'s' if len(seqs) > 1 else ''} "
                     f"(seq {_ranges(seqs)}){span}"))
    for t, pattern in getattr(dev, "haptic_patterns", []):
        meaning = WRIST.get(pattern, "a question: the officer answers yes or no")
        rows.append((t, 4, f"{'wrist':<8} {pattern}: {meaning}"))
    for t, on in dev.hal.haptic_log:
        if on and verbose:
            rows.append((t, 4, f"{'haptic':<8} pulse"))
    rows.sort(key=lambda r: (r[0], r[1]))  # stable: same-time entries keep their order
    return [f"{clock(t)}  {text}" for t, _, text in rows]


NO_EXPECTATIONS = "no expectations: the scenario has no [expect] table, so nothing was checked"


def check_lines(result: Any) -> list[str]:
    """Every expectation with PASS or FAIL; or that there were none."""
    if not result.scenario.expect:
        return [NO_EXPECTATIONS]
    return [c.line() for c in result.checks]


def receiver_view(db: Path, device_id: bytes) -> list[dict[str, Any]]:
    conn = store.open_db(db)
    try:
        out = []
        for a in alerts.list_alerts(conn, include_closed=True):
            if a.device_id != device_id:
                continue
            d = a.to_json()
            pts = alerts.track(conn, a.alert_id)
            d["track"] = [{"seq": p.seq, "lat": p.lat, "lon": p.lon, "accuracy_m": p.accuracy_m,
                           "fix_age_s": p.age_s, "source": p.source_name} for p in pts]
            out.append(d)
        return out
    finally:
        conn.close()


def _text(x: float, y: float, text: str, width: float, size: int = 11, **attrs: str) -> str:
    """A label that stays inside the picture: anchored at its end when it would run
    past the right edge, shortened when it is wider than the picture."""
    room = int((width - 10) / (size * FONT_W))
    if len(text) > room:
        text = text[:room - 1] + "…"
    anchor = "start"
    if x + len(text) * size * FONT_W > width - 5:
        x, anchor = max(x - 6, len(text) * size * FONT_W + 5), "end"
    extra = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in attrs.items())
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{extra}>'
            f'{html.escape(text)}</text>')


def svg_timeline(result: Any, width: int = 1000) -> str:
    """The run as a picture: one lane each for what the scenario did, the
    button, the frames made (by type), acknowledgements, SMS and faults. Every
    kind of mark has its own colour (`class` names the kind), explained below."""
    dev = result.device
    end = max(result.scenario.duration_ms, 1)
    left, right, lane_h, top = 90, 20, 34, 40
    span = width - left - right
    legend = [(TYPE_NAMES[f], c) for f, c in COLOURS.items()] + list(EVENT_COLOURS.items())
    per_row = max(1, (width - left) // 100)
    legend_rows = (len(legend) + per_row - 1) // per_row
    axis_y = top + lane_h * len(LANES) + 16
    height = axis_y + 14 + 18 * legend_rows + 6

    def x(t: int) -> float:
        return left + span * min(max(t, 0), end) / end

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
             _text(left, 20, result.scenario.name, width, 14, font_weight="bold")]
    for i, lane in enumerate(LANES):
        y = top + i * lane_h
        parts.append(_text(5, y + 20, lane, width))
        parts.append(f'<line x1="{left}" y1="{y + lane_h - 2}" x2="{width - right}" y2="{y + lane_h - 2}" '
                     'stroke="#ddd"/>')
    for k in range(11):
        t = end * k // 10
        label = f"{t // 1000}s"
        tx = min(x(t) - len(label) * 11 * FONT_W / 2, width - 5 - len(label) * 11 * FONT_W)
        parts.append(_text(tx, axis_y, label, width))

    def mark(lane: str, t: int, kind: str, colour: str, label: str = "", w: float = 2) -> None:
        y = top + LANES.index(lane) * lane_h
        parts.append(f'<rect class="{html.escape(kind)}" x="{x(t):.1f}" y="{y + 6}" width="{w}" '
                     f'height="{lane_h - 12}" fill="{colour}">'
                     f'<title>{html.escape(clock(t) + " " + label)}</title></rect>')

    for t, kind, text in dev.timeline:
        if kind == "scenario":
            mark("scenario", t, "scenario", EVENT_COLOURS["scenario"], text)
            parts.append(_text(x(t) + 3, top + 26, text[:24], width, 9))
        elif kind == "fault":
            mark("faults", t, "fault", EVENT_COLOURS["fault"], text, 4)
    for t, on in dev.hal.haptic_log:
        if on:
            mark("trigger", t, "haptic", EVENT_COLOURS["haptic"], "haptic answer")
    for t, seq, ftype, _ in dev.made:
        name = TYPE_NAMES.get(ftype, str(ftype))
        mark("frames", t, name, COLOURS.get(ftype, "#333333"), f"{name} #{seq}")
    for t, seq in dev.acked:
        mark("delivery", t, "acknowledged", EVENT_COLOURS["acknowledged"], f"acknowledged #{seq}", 1.5)
    for rec in dev.smsc.records:
        mark("sms", rec.submitted_ms, "sms sent", EVENT_COLOURS["sms sent"], "SMS sent", 4)
        if rec.delivered_ms:
            mark("sms", rec.delivered_ms, "sms delivered", EVENT_COLOURS["sms delivered"],
                 "SMS delivered to the receiver", 4)
    for i, (name, colour) in enumerate(legend):
        lx = left + 100 * (i % per_row)
        y = axis_y + 14 + 18 * (i // per_row) + 8
        parts.append(f'<rect x="{lx}" y="{y - 8}" width="8" height="8" fill="{colour}"/>')
        parts.append(_text(lx + 11, y, name, width))
    parts.append("</svg>")
    return "\n".join(parts)


def write_report(result: Any, out: str | Path) -> Path:
    """timeline.txt, timeline.svg, frames.jsonl, receiver.json, checks.txt in out/."""
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    dev = result.device
    (d / "timeline.txt").write_text("\n".join(timeline_lines(result, verbose=True)) + "\n")
    (d / "timeline.svg").write_text(svg_timeline(result))
    with open(d / "frames.jsonl", "w") as f:
        acked = {s: t for t, s in dev.acked}
        for t, seq, ftype, wire in dev.made:
            row = {"t_ms": t, "seq": seq, "type": TYPE_NAMES.get(ftype, ftype), "bytes": len(wire),
                   "acknowledged_ms": acked.get(seq), "wire_hex": wire.hex()}
            f.write(json.dumps(row) + "\n")
    db = result.receiver.db
    view = {"device": format_device_id(dev.spec.device_id),
            "alerts": receiver_view(db, dev.spec.device_id) if db is not None else None}
    (d / "receiver.json").write_text(json.dumps(view, indent=2) + "\n")
    (d / "checks.txt").write_text("\n".join(check_lines(result)) + "\n")
    return d
