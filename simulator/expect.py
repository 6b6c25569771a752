"""Expectations of a scenario, checked against what really happened: the
frames the device made, the acknowledgements it got, the receiver's database,
and every byte that left the device over the air or by SMS."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sotto import frames as ff

from host_tools import frames as hf
from host_tools.receiver import alerts, store


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'PASS' if self.ok else 'FAIL'}  {self.name}: {self.detail}"


def frames_on_air(dev: Any) -> list[tuple[int, str, bytes]]:
    """(t_ms, "data"/"sms", frame bytes) of every frame that left the device.
    HTTP bodies are cut out of the plaintext the modem sent; a body cut short
    by a dropped connection still counts for whatever frames it carried."""
    out: list[tuple[int, str, bytes]] = []
    stream = b"".join(r.payload for r in dev.modem.air if r.direction == "up" and r.kind == "data")
    t_of = [r.t_ms for r in dev.modem.air if r.direction == "up" and r.kind == "data"]
    t0 = t_of[0] if t_of else 0
    for m in re.finditer(rb"POST /v1/frames HTTP/1\.1\r\n(.*?)\r\n\r\n", stream, re.S):
        length = re.search(rb"(?i)content-length:\s*(\d+)", m.group(1))
        body = stream[m.end():m.end() + int(length.group(1))] if length else b""
        try:
            items = hf.split_sequence(body)
        except hf.FrameError:
            items = []
        for item in items:
            out.append((t0, "data", item))
    for rec in dev.smsc.records:
        out.append((rec.submitted_ms, "sms", rec.payload))
    return out


def privacy_leaks(dev: Any) -> list[str]:
    """Frames that left the device carrying location or audio outside an alert
    or check-in session, and frames that could not be read (not provably harmless)."""
    leaks = []
    for _t, via, wire in frames_on_air(dev):
        try:
            f = hf.decode_frame(wire)
        except hf.FrameError as e:
            leaks.append(f"an unreadable frame by {via} ({e.reason.value})")
            continue
        in_session = f.sid is not None or f.type == hf.FrameType.CHECK_IN
        if (f.location is not None or f.audio is not None) and not in_session:
            leaks.append(f"seq {f.seq} ({f.type.label}) by {via}")
    return leaks


def evaluate(expect: dict[str, Any], dev: Any, rx: Any) -> list[Check]:
    conn = store.open_db(rx.db)
    try:
        return _evaluate(expect, dev, conn)
    finally:
        conn.close()


def _evaluate(expect: dict[str, Any], dev: Any, conn: Any) -> list[Check]:
    did = dev.spec.device_id
    checks: list[Check] = []
    stored = {seq: (t, alert_id) for seq, t, alert_id in conn.execute(
        "SELECT seq, type, alert_id FROM frames WHERE device_id = ?", (did,))}
    rejected = conn.execute("SELECT count(*), group_concat(DISTINCT reason) FROM rejections "
                            "WHERE device_id = ?", (did,)).fetchone()
    mine = [a for a in alerts.list_alerts(conn, include_closed=True) if a.device_id == did]
    made = {seq: (t, ftype, wire) for t, seq, ftype, wire in dev.made}
    acked = {seq: t for t, seq in dev.acked}
    queued = set(dev.device.queue.seqs()) if dev.device else set()
    dropped = dev.device.queue.dropped if dev.device else 0

    def add(name: str, ok: bool, detail: str) -> None:
        checks.append(Check(name, ok, detail))

    for name, want in expect.items():
        if name == "alert_within_s":
            starts = sorted((t, seq) for seq, (t, ftype, _) in made.items() if ftype == ff.ALERT_START)
            raised = [t for t, kind, text in dev.timeline if kind == "log" and "raised" in text]
            if not starts or not raised:
                add(name, False, "no alert was raised")
                continue
            seq = starts[0][1]
            seen = [acked[seq]] if seq in acked else []
            wire = made[seq][2]
            seen += [r.delivered_ms for r in dev.smsc.records if r.payload == wire and r.delivered_ms]
            if not seen:
                add(name, False, f"the alert-start frame (seq {seq}) never reached the receiver")
                continue
            took = (min(seen) - raised[0]) / 1000
            add(name, took <= want, f"alert-start visible {took:.2f} s after the pattern (limit {want} s)")
        elif name == "all_frames_verified":
            missing = sorted(s for s in acked if s not in stored)
            ok = rejected[0] == 0 and not missing
            why = f" ({rejected[1]})" if rejected[0] else ""
            absent = f", acked but absent {missing}" if missing else ""
            add(name, ok == want, f"{len(stored)} frames stored, {rejected[0]} rejected{why}{absent}")
        elif name in ("every_frame_delivered", "nothing_lost"):
            strict = name == "every_frame_delivered"
            lost = sorted(s for s in made if s not in stored and (strict or s not in queued))
            lost_acked = sorted(s for s in acked if s not in stored)
            ok = not lost and not lost_acked and (name == "nothing_lost" or dropped == 0)
            add(name, ok == want, f"{len(made)} frames made, {len(stored)} at the receiver, "
                f"{len(queued)} still queued, {dropped} dropped" + (f"; missing {lost[:10]}" if lost else ""))
        elif name == "chain_complete":
            states = [f"{a.code}: {a.chain.summary}" for a in mine]
            ok = bool(mine) and all(a.chain.state in (alerts.COMPLETE, alerts.OPEN) for a in mine)
            add(name, ok == want, "; ".join(states) or "no alert at the receiver")
        elif name == "privacy":
            leaks = privacy_leaks(dev)
            add(name, (not leaks) == want, "no location or audio outside alerts and check-ins"
                if not leaks else "location or audio outside a session: " + ", ".join(leaks[:5]))
        elif name in ("sms_sent", "sms_sent_min"):
            n = len(dev.smsc.records)
            ok = n == want if name == "sms_sent" else n >= want
            add(name, ok, f"{n} SMS sent (expected {'' if name == 'sms_sent' else 'at least '}{want})")
        elif name == "alerts":
            add(name, len(mine) == want, f"{len(mine)} alert(s) at the receiver (expected {want})")
        elif name == "duress":
            got = any(a.duress for a in mine)
            add(name, got == want, "duress flagged" if got else "no duress flag")
        elif name == "cancelled":
            got = any(a.end_type == hf.FrameType.CANCEL for a in mine)
            add(name, got == want, "cancelled by the officer" if got else "not cancelled")
        elif name == "closed_by_centre":
            got = any(a.end_type == hf.FrameType.END and a.end_why == ff.WHY_CENTRE for a in mine)
            add(name, got == want,
                "device ended the alert the centre closed" if got else "no end frame for a close")
        elif name == "audio_seconds_min":
            secs = max((a.audio_seconds for a in mine), default=0.0)
            add(name, secs >= want, f"{secs:.1f} s of audio received (at least {want})")
        elif name == "location_source":
            srcs = []
            for a in mine:
                pts = alerts.track(conn, a.alert_id)
                srcs += [p.source_name for p in pts[:1]]
            add(name, bool(srcs) and srcs[0] == want, f"first position from {srcs[0] if srcs else 'nowhere'}")
        elif name == "heartbeats_min":
            n = sum(1 for t, _ in stored.values() if t == hf.FrameType.HEARTBEAT)
            add(name, n >= want, f"{n} heartbeats at the receiver (at least {want})")
        elif name == "statuses":
            names = {1: "battery-low", 2: "battery-critical", 3: "battery-reserve", 4: "boot-loop",
                     5: "queue-full", 6: "started"}
            got = _statuses(dev, stored, names)
            missing = [s for s in want if s not in got]
            add(name, not missing, f"status frames at the receiver: {', '.join(got) or 'none'}"
                + (f"; missing {', '.join(missing)}" if missing else ""))
        elif name == "max_frames_dropped":
            add(name, dropped <= want, f"{dropped} frames dropped by a full queue (at most {want})")
    return checks


def _statuses(dev: Any, stored: dict[int, Any], names: dict[int, str]) -> list[str]:
    """Status codes of the status frames the receiver stored, in order."""
    out = []
    for _t, seq, ftype, wire in dev.made:
        if ftype == ff.STATUS and seq in stored:
            st = hf.decode_frame(wire).payload.get(ff.K_ST)
            out.append(names.get(st, str(st)))
    return out
