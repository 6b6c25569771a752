"""The human-readable page of an evidence bundle (report.html).

Rendered only from report.json's content, deterministically, so the offline
verifier can render it again and compare. Self-contained: inline CSS and SVG
(the track, scaled to fit, with accuracy circles; a timeline of the frames with
the audio coverage), no scripts, no external resources.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

_TYPE_COLOURS = {"alert-start": "#c0392b", "location": "#2471a3", "audio": "#7d3c98", "cancel": "#117a65",
                 "duress": "#e67e22", "end": "#17202a"}
_STATE_COLOURS = {"complete": "#1e8449", "open": "#2471a3", "gap": "#b9770e", "broken": "#c0392b"}
_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1000px;color:#17202a}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #d5d8dc}
table{border-collapse:collapse;font-size:.85em}
td,th{border:1px solid #d5d8dc;padding:.25em .5em;text-align:left}
th{background:#f4f6f7}code,.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em}
.state{display:inline-block;padding:.2em .6em;border-radius:.3em;color:#fff;font-weight:600}
.duress{color:#fff;background:#e67e22;padding:.1em .4em;border-radius:.3em}
.bad{color:#c0392b;font-weight:600}.muted{color:#5d6d7e}svg{border:1px solid #d5d8dc;background:#fbfcfc}
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _rows(pairs: list[tuple[str, Any]]) -> str:
    return "<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in pairs) + "</table>"


def _track_svg(points: list[dict[str, Any]], width: int = 640, height: int = 400) -> str:
    if not points:
        return '<p class="muted">No position in the frames.</p>'
    lats = [p["lat"] for p in points]
    lons = [p["lon"] for p in points]
    lat0 = (min(lats) + max(lats)) / 2
    kx = math.cos(math.radians(lat0))
    xs = [lon * kx for lon in lons]
    span = max(max(xs) - min(xs), max(lats) - min(lats), 1e-5)   # at least ~1 m
    margin = 30
    scale = (min(width, height) - 2 * margin) / span
    cx, cy = (max(xs) + min(xs)) / 2, (max(lats) + min(lats)) / 2

    def at(x: float, y: float) -> tuple[float, float]:
        return width / 2 + (x - cx) * scale, height / 2 - (y - cy) * scale

    px = [at(x, y) for x, y in zip(xs, lats, strict=True)]
    metres_per_unit = 111_320.0
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="track">']
    for (x, y), p in zip(px, points, strict=True):
        r = min(p["accuracy_m"] / metres_per_unit * scale, width)
        if r >= 2:
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="#2471a3" fill-opacity="0.08" '
                         'stroke="#2471a3" stroke-opacity="0.3"/>')
    if len(px) > 1:
        parts.append('<polyline fill="none" stroke="#2471a3" stroke-width="2" points="'
                     + " ".join(f"{x:.1f},{y:.1f}" for x, y in px) + '"/>')
    for i, ((x, y), p) in enumerate(zip(px, points, strict=True)):
        colour = "#1e8449" if i == 0 else "#c0392b" if i == len(px) - 1 else "#2471a3"
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}"><title>seq {p["seq"]}: '
                     f'{p["lat"]:.7f}, {p["lon"]:.7f} ±{p["accuracy_m"]} m, {_e(p["time"])}</title></circle>')
    bar_m = 10 ** math.floor(math.log10(max(span * metres_per_unit / 4, 1)))
    bar_px = bar_m / metres_per_unit * scale
    parts.append(f'<line x1="10" y1="{height - 12}" x2="{10 + bar_px:.1f}" y2="{height - 12}" '
                 f'stroke="#17202a" '
                 f'stroke-width="2"/><text x="10" y="{height - 16}" font-size="11">{bar_m:g} m</text>')
    parts.append("</svg>")
    return "".join(parts)


def _timeline_svg(frames: list[dict[str, Any]], audio: dict[str, Any], width: int = 900) -> str:
    times = [f["time"] for f in frames if f["time"]]
    if not times:
        return '<p class="muted">The frames carry no time.</p>'
    t0, t1 = min(times), max(times)
    span = max(t1 - t0, 1)
    left, right, height = 90, 20, 150
    scale = (width - left - right) / span
    types = [t for t in _TYPE_COLOURS if any(f["type"] == t for f in frames)]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 20 * len(types)}" '
             'role="img" aria-label="timeline">']
    for row, t in enumerate(types):
        y = 20 + row * 20
        parts.append(f'<text x="4" y="{y + 4}" font-size="11">{t}</text>')
        for f in frames:
            if f["type"] == t and f["time"]:
                x = left + (f["time"] - t0) * scale
                parts.append(f'<rect x="{x - 1:.1f}" y="{y - 7}" width="3" height="14" '
                             f'fill="{_TYPE_COLOURS[t]}">'
                             f'<title>seq {f["seq"]} {t} {_e(f["time_utc"])}</title></rect>')
    y = 30 + 20 * len(types)
    rate = audio.get("rate_hz")
    if rate and audio.get("samples"):
        start = next((f["time"] for f in frames if f["type"] == "audio" and f["time"]), t0)
        length = audio["samples"] / rate
        x0 = left + (start - t0) * scale
        parts.append(f'<text x="4" y="{y + 4}" font-size="11">audio</text>'
                     f'<rect x="{x0:.1f}" y="{y - 6}" width="{max(length * scale, 1):.1f}" height="12" '
                     'fill="#7d3c98" fill-opacity="0.5"/>')
        for gap in audio.get("gaps", []):
            gx = x0 + gap["first_sample"] / rate * scale
            parts.append(f'<rect x="{gx:.1f}" y="{y - 6}" width="{max(gap["seconds"] * scale, 1):.1f}" '
                         'height="12" fill="#c0392b"><title>missing audio</title></rect>')
    axis = y + 24
    parts.append(f'<line x1="{left}" y1="{axis}" x2="{width - right}" y2="{axis}" stroke="#5d6d7e"/>'
                 f'<text x="{left}" y="{axis + 14}" font-size="11">0 s</text>'
                 f'<text x="{width - right - 40}" y="{axis + 14}" font-size="11">{span} s</text>')
    parts.append("</svg>")
    return "".join(parts)


def _audio_text(audio: dict) -> str:
    """The audio row: seconds and chunks, and how much of it is pre-trigger audio (flag bit 4,
    recorded in the device's RAM before the alarm was raised), said in words."""
    text = f"{_e(audio.get('seconds'))} s in {_e(audio.get('chunks'))} chunks"
    pre = (audio.get("pre_trigger") or {}).get("seconds") or 0
    if pre:
        text += (f"; the first {_e(pre)} s are <strong>PRE-TRIGGER</strong> audio, recorded by the "
                 "device before the alarm was raised")
    return text


def render_html(report: dict[str, Any]) -> str:
    """report.html for report.json's content."""
    receiver = report.get("receiver") or {}
    export = report.get("export") or {}
    chain = report.get("chain") or {}
    audio = report.get("audio") or {}
    key = report.get("device_key") or {}
    frames = report.get("frames") or []
    state = chain.get("state", "?")
    duress = any(f.get("duress") for f in frames)
    title = f"Evidence: alert {report.get('alert')} — device {report.get('device')}"
    receipts = {r.get("sha256"): r for r in receiver.get("receipts", [])}
    track = report.get("track") or {}
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>", f"<h1>{_e(title)}</h1>"]
    badge = (f'<span class="state" style="background:{_STATE_COLOURS.get(state, "#5d6d7e")}">'
             f"chain {_e(state)}</span>")
    duress_badge = "<span class=duress>DURESS</span>" if duress else ""
    out.append(f"<p>{badge} {duress_badge} {_e(chain.get('summary'))}</p>")
    out.append("<p>Check this bundle offline with <code>sotto evidence verify FOLDER --centre-key KEY "
               "--device-key KEY</code>, with keys taken from outside the bundle: it checks the centre's "
               "seal (<code>manifest.sig</code>), recomputes "
               "every signature, the chain, the audio and the track from <code>frames.cbor</code>, and "
               "prints "
               "the SHA-256 of <code>manifest.json</code>, which the receiver's audit log recorded "
               "when the bundle was exported.</p>")
    out.append("<h2>Alert</h2>" + _rows([
        ("alert", _e(report.get("alert"))), ("device",
                                             f'<span class="mono">{_e(report.get("device"))}</span>'),
        ("session", _e(report.get("session"))), ("officer", _e(receiver.get("officer"))),
        ("state at export", _e(receiver.get("state"))),
        ("acknowledged", f"{_e(receiver.get('acknowledged'))} by {_e(receiver.get('acknowledged_by'))}"
         if receiver.get("acknowledged") else "no"),
        ("closed",
         f"{_e(receiver.get('closed'))} by {_e(receiver.get('closed_by'))}: {_e(receiver.get('outcome'))}"
         if receiver.get("closed") else "no"),
        ("frames", _e(len(frames))), ("audio", _audio_text(audio)),
        ("positions", _e(track.get("points"))),
        ("exported", f"{_e(export.get('at'))} by {_e(export.get('operator'))} ({_e(export.get('tool'))})"),
    ]))
    out.append("<h2>Device key</h2>" + _rows([
        ("Ed25519 public key", f'<span class="mono">{_e(key.get("ed25519"))}</span>'),
        ("fingerprint", f'<span class="mono">{_e(key.get("fingerprint"))}</span>'),
        ("revoked since", _e(receiver.get("key_revoked")) or "not revoked at export"),
    ]) + f"<pre class=mono>{_e(key.get('pem'))}</pre>")
    if receiver.get("flags"):
        out.append("<h2>Flags</h2><ul>" + "".join(f'<li class="bad">{_e(f.get("text"))}</li>'
                                                  for f in receiver["flags"]) + "</ul>")
    if chain.get("problems"):
        out.append("<h2>Chain problems</h2><ul>" + "".join(f'<li class="bad">{_e(p)}</li>'
                                                          for p in chain["problems"]) + "</ul>")
    out.append("<h2>Track</h2>" + _track_svg(track.get("positions") or []))
    out.append("<h2>Timeline</h2>" + _timeline_svg(frames, audio))
    if audio.get("gaps") or audio.get("notes"):
        out.append("<h2>Audio notes</h2><ul>" + "".join(
            f"<li>missing {_e(g['seconds'])} s from sample {_e(g['first_sample'])}</li>"
            for g in audio.get("gaps", []))
            + "".join(f"<li>{_e(n)}</li>" for n in audio.get("notes", [])) + "</ul>")
    out.append("<h2>Frames</h2><table><tr><th>#</th><th>seq</th><th>type</th><th>device time (UTC)</th>"
               "<th>received (UTC)</th><th>via</th><th>bytes</th><th>SHA-256</th><th>prev</th><th>link</th>"
               "<th>verdict</th><th>chain</th></tr>")
    for f in frames:
        r = receipts.get(f.get("sha256"), {})
        verdict = f.get("verdict")
        cls = "" if verdict == "valid" else ' class="bad"'
        out.append(
            f"<tr><td>{_e(f.get('index'))}</td><td>{_e(f.get('seq'))}</td><td>{_e(f.get('type'))}"
            f"{' <span class=duress>duress</span>' if f.get('duress') else ''}</td>"
            f"<td>{_e(f.get('time_utc'))}</td>"
            f"<td>{_e(r.get('received'))}</td><td>{_e(r.get('via'))}</td><td>{_e(f.get('size'))}</td>"
            f"<td class=mono>{_e(str(f.get('sha256'))[:16])}…</td><td class=mono>{_e(f.get('prev'))}</td>"
            f"<td class=mono>{_e(f.get('link'))}</td><td{cls}>{_e(verdict)}</td>"
            f"<td>{_e(f.get('chain'))}</td></tr>")
    out.append("</table></body></html>\n")
    return "\n".join(out)
