"""Expectations of a scenario, checked against what really happened: the
frames the device made, the acknowledgements it got, the receiver's database,
and every byte that left the device over the air or by SMS."""

from __future__ import annotations

import bisect
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sotto import VERSION as fw_version
from sotto import cbor as fw_cbor
from sotto import frames as ff

from host_tools import frames as hf
from host_tools.receiver import alerts, commands, devcfg, store, visits
from simulator import dualpath
from simulator import ota as sim_ota


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'PASS' if self.ok else 'FAIL'}  {self.name}: {self.detail}"


@dataclass(frozen=True)
class Sent:
    """One frame that left the device."""

    t_ms: int  # when its last byte went up
    via: str  # "data" or "sms"
    wire: bytes
    encrypted: bool  # data: carried inside TLS; sms: False


def frames_sent(dev: Any) -> list[Sent]:
    """Every frame that left the device, over the data link or by SMS.
    HTTP bodies are cut out of the plaintext the modem sent (per connection
    direction, in order); a body cut short by a dropped connection still
    counts for whatever whole frames it carried."""
    out: list[Sent] = []
    ups = [r for r in dev.modem.air if r.direction == "up" and r.kind == "data"]
    stream = bytearray()
    ends: list[int] = []  # cumulative end offset of each record in `stream`
    # TLS adds a record header and tag to every record: plaintext on the air is
    # exactly as long as the payload, ciphertext always longer
    clear = []
    for r in ups:
        stream += r.payload
        ends.append(len(stream))
        clear.append(r.air_bytes <= len(r.payload))

    def record_of(offset: int) -> int:
        return min(bisect.bisect_left(ends, offset + 1), len(ups) - 1)

    for m in re.finditer(rb"POST /v1/frames HTTP/1\.1\r\n(.*?)\r\n\r\n", bytes(stream), re.S):
        length = re.search(rb"(?i)content-length:\s*(\d+)", m.group(1))
        body = bytes(stream[m.end():m.end() + int(length.group(1))]) if length else b""
        pos = m.end()
        for item in _whole_items(body):
            last = record_of(pos + len(item) - 1)
            first = record_of(pos)
            out.append(Sent(ups[last].t_ms, "data", item, not any(clear[first:last + 1])))
            pos += len(item)
    for rec in dev.smsc.records:
        out.append(Sent(rec.submitted_ms, "sms", rec.payload, False))
    return out


def _whole_items(body: bytes) -> list[bytes]:
    """The whole CBOR items at the start of body (a cut-off tail is left out)."""
    try:
        return hf.split_sequence(body)
    except hf.FrameError:
        pass
    items: list[bytes] = []
    pos = 0
    while pos < len(body):
        try:
            _obj, end = fw_cbor.decode_item(body, pos)
        except Exception:  # noqa: BLE001 - the firmware decoder's errors: an incomplete tail
            break
        items.append(body[pos:end])
        pos = end
    return items


def frames_on_air(dev: Any) -> list[tuple[int, str, bytes]]:
    """(t_ms, "data"/"sms", frame bytes) of every frame that left the device."""
    return [(s.t_ms, s.via, s.wire) for s in frames_sent(dev)]


def privacy_leaks(dev: Any) -> list[str]:
    """Frames that left the device carrying location or audio outside an alert
    or check-in session, location or audio sent over the data link without
    TLS, and frames that could not be read (not provably harmless).

    In a session means: the frame names an alert (sid) whose alert-start this
    device made before it (by sequence number), and that alert had not ended
    (end or cancel frame) before it. SMS carries only what the fallback needs
    (the design sends the alert by SMS when data is down), so TLS is required
    of the data link only."""
    made: list[tuple[int, int, int, bytes]] = list(getattr(dev, "made", []))
    starts: dict[int, int] = {}  # sid -> seq of its first alert-start
    ends: dict[int, int] = {}  # sid -> seq of its first end / cancel
    for _t, seq, ftype, wire in sorted(made, key=lambda m: m[1]):
        if ftype in (ff.ALERT_START, ff.END, ff.CANCEL):
            try:
                sid = hf.decode_frame(wire).sid
            except hf.FrameError:
                continue
            book = starts if ftype == ff.ALERT_START else ends
            if sid is not None:
                book.setdefault(sid, seq)
    leaks = []
    for sent in frames_sent(dev):
        try:
            f = hf.decode_frame(sent.wire)
        except hf.FrameError as e:
            leaks.append(f"an unreadable frame by {sent.via} ({e.reason.value})")
            continue
        if f.location is None and f.audio is None:
            continue
        what = f"seq {f.seq} ({f.type.label}) by {sent.via}"
        if f.type == hf.FrameType.CHECK_IN:
            in_session = True
        elif f.sid is None:
            in_session = False
        elif made:
            start, end = starts.get(f.sid), ends.get(f.sid)
            in_session = (start is not None and f.seq >= start
                          and (end is None or f.seq <= end or f.type == hf.FrameType.ALERT_START))
        else:  # nothing known of what the device made: the sid alone
            in_session = True
        if not in_session:
            leaks.append(what + " outside an alert")
        elif sent.via == "data" and not sent.encrypted:
            leaks.append(what + " without TLS")
    return leaks


# what can be checked from the device's side alone (an outside receiver without --db)
DEVICE_SIDE = frozenset({"alert_within_s", "received_within_s", "haptic_order", "not_through", "privacy",
                         "sms_sent", "sms_sent_min", "max_frames_dropped"})


def evaluate(expect: dict[str, Any], dev: Any, rx: Any, rx2: Any = None) -> list[Check]:
    """rx2: the second path's receiver (another centre), or None. With two, what a
    frame-level expectation asks of "the receiver" holds for the two together (a
    frame at either centre is delivered), and the alert's chain is checked across
    both records (simulator.dualpath)."""
    if rx.db is None:   # an outside receiver whose database is elsewhere: the device's side only
        with tempfile.TemporaryDirectory(prefix="sotto-expect-") as tmp:
            conn = store.open_db(Path(tmp) / "empty.db", create=True)
            try:
                checks = _evaluate({k: v for k, v in expect.items() if k in DEVICE_SIDE}, dev, conn)
            finally:
                conn.close()
        return checks + [Check(k, False, "needs the receiver's database (give --db)")
                         for k in expect if k not in DEVICE_SIDE]
    conn = store.open_db(rx.db)
    conn2 = store.open_db(rx2.db) if rx2 is not None else None
    try:
        one_record = rx2 is not None and rx2.db == rx.db   # two sites of one centre (shared_db)
        checks = _evaluate(expect, dev, conn, None if one_record else conn2)
        if conn2 is not None:
            checks += dualpath.evaluate(expect, dev, [conn, conn2])
            order = list(expect)
            checks.sort(key=lambda c: order.index(c.name))   # in the scenario's order, as with one
        return checks
    finally:
        conn.close()
        if conn2 is not None:
            conn2.close()


def _evaluate(expect: dict[str, Any], dev: Any, conn: Any, conn2: Any = None) -> list[Check]:
    did = dev.spec.device_id
    checks: list[Check] = []
    conns = [conn] if conn2 is None else [conn, conn2]
    stored: dict[int, Any] = {}
    rejected = (0, None)
    for c in conns:
        for seq, t, alert_id in c.execute("SELECT seq, type, alert_id FROM frames WHERE device_id = ?",
                                          (did,)):
            stored.setdefault(seq, (t, alert_id))
        reasons = [r for (r,) in c.execute("SELECT reason FROM rejections WHERE device_id = ?", (did,))]
        why = ",".join(sorted(set(reasons))) or None   # (SQL of both backends: no group_concat)
        rejected = (rejected[0] + len(reasons), rejected[1] or why)
    mine = [a for c in conns for a in alerts.list_alerts(c, include_closed=True) if a.device_id == did]
    made = {seq: (t, ftype, wire) for t, seq, ftype, wire in dev.made}
    acked = {seq: t for t, seq in dev.acked}
    queued = set(dev.device.queue.seqs()) if dev.device else set()
    dropped = dev.device.queue.dropped if dev.device else 0

    def add(name: str, ok: bool, detail: str) -> None:
        checks.append(Check(name, ok, detail))

    for name, want in expect.items():
        if conn2 is not None and name in dualpath.OWN:
            continue   # checked across both centres (simulator.dualpath)
        if name == "alert_within_s":
            starts = sorted((t, seq) for seq, (t, ftype, _) in made.items() if ftype == ff.ALERT_START)
            limits = _per_alert(want, len(starts))
            if not starts:
                add(name, False, "no alert was raised")
                continue
            if len(starts) < len(limits):
                add(name, False, f"{len(starts)} alert(s) raised, {len(limits)} limits given")
                continue
            results = [_alert_delay(dev, made, acked, t, seq) for t, seq in starts[:len(limits)]]
            parts = []
            for i, ((took, what), limit) in enumerate(zip(results, limits, strict=True)):
                label = f"alert {i + 1}: " if len(limits) > 1 else ""
                parts.append(label + (what if took is None else
                                      f"alert-start stored at the receiver {took:.2f} s after the {what} "
                                      f"(limit {limit} s)"))
            ok = all(took is not None and took <= limit
                     for (took, _), limit in zip(results, limits, strict=True))
            add(name, ok, "; ".join(parts))
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
            plain = getattr(dev.receiver, "pki", True) is None   # a plain-HTTP loopback receiver (fleets)
            if plain:
                leaks = [x for x in leaks if not x.endswith(" without TLS")]
            note = " (plain-HTTP receiver on loopback: TLS not checked)" if plain else ""
            add(name, (not leaks) == want, "no location or audio outside alerts and check-ins" + note
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
            firsts = []   # each alert's first position's source, "none" for an alert without one
            for a in sorted(mine, key=lambda a: a.alert_id):
                pts = alerts.track(conn, a.alert_id)
                firsts.append(pts[0].source_name if pts else "none")
            if isinstance(want, list):
                add(name, firsts == want, "first position per alert: " + (", ".join(firsts) or "no alert")
                    + ("" if firsts == want else f" (expected {', '.join(want)})"))
            else:   # the first position of any alert
                src = next((f for f in firsts if f != "none"), None)
                add(name, src == want, f"first position from {src or 'nowhere'}")
        elif name == "heartbeats":
            n = sum(1 for t, _ in stored.values() if t == hf.FrameType.HEARTBEAT)
            add(name, n == want, f"{n} heartbeats at the receiver (expected {want})")
        elif name == "alert_flags":
            firsts = [w for _t, seq, ftype, w in sorted(dev.made, key=lambda m: m[1])
                      if ftype == ff.ALERT_START and seq in stored]
            if not firsts:
                add(name, False, "no alert-start at the receiver")
                continue
            got = hf.decode_frame(firsts[0]).flag_names
            missing = [f for f in want if f not in got]
            add(name, not missing, f"alert-start flags: {', '.join(got) or 'none'}"
                + (f"; missing {', '.join(missing)}" if missing else ""))
        elif name == "trigger_kind":
            kinds = [hf.TRIGGER_NAMES.get(hf.decode_frame(w).trigger or 0, "?")
                     for _t, seq, ftype, w in sorted(dev.made, key=lambda m: m[1])
                     if ftype == ff.ALERT_START and seq in stored]
            add(name, kinds == list(want), f"alerts at the receiver raised by: {', '.join(kinds) or 'none'}"
                + ("" if kinds == list(want) else f" (expected {', '.join(want)})"))
        elif name == "visit_states":
            got = _visit_states(dev, conn, did)
            add(name, got == list(want), f"visits at the centre, by visit id: {', '.join(got) or 'none'}"
                + ("" if got == list(want) else f" (expected {', '.join(want)})"))
        elif name == "heartbeats_min":
            n = sum(1 for t, _ in stored.values() if t == hf.FrameType.HEARTBEAT)
            add(name, n >= want, f"{n} heartbeats at the receiver (at least {want})")
        elif name == "statuses":
            names = {1: "battery-low", 2: "battery-critical", 3: "battery-reserve", 4: "boot-loop",
                     5: "queue-full", 6: "started", 7: "health", 8: "config-invalid", 9: "receiver-down"}
            got = _statuses(dev, stored, names)
            missing = [s for s in want if s not in got]
            add(name, not missing, f"status frames at the receiver: {', '.join(got) or 'none'}"
                + (f"; missing {', '.join(missing)}" if missing else ""))
        elif name == "max_frames_dropped":
            add(name, dropped <= want, f"{dropped} frames dropped by a full queue (at most {want})")
        elif name in ("haptic_order", "received_within_s", "not_through"):
            _wrist(name, want, dev, add)
        elif name == "config_versions":
            view = devcfg.config_view(conn, did)
            got = [f"{v.version} {v.state}" for v in reversed(view.versions)]
            why = "; ".join(f"{v.version}: {v.err}" for v in reversed(view.versions) if v.err)
            add(name, got == list(want), f"configuration versions: {', '.join(got) or 'none'}"
                + (f" (refused: {why})" if why else "")
                + f"; the device reports version {view.reported}"
                + ("" if got == list(want) else f" (expected {', '.join(want)})"))
        elif name == "config_invalid":
            h = devcfg.health_of(conn).get(did)
            got = h is not None and h.config_invalid is not None
            add(name, got == want, f"the centre shows the device config-invalid: {h.config_invalid}"
                if got and h is not None else "the centre shows the device's configuration as valid")
        elif name in ("pre_trigger_seconds_min", "pre_trigger_seconds"):
            row = conn.execute("SELECT coalesce(sum(audio_ns), 0), max(audio_rate) FROM frames "
                               "WHERE device_id = ? AND type = 3 AND (flags & 16) != 0", (did,)).fetchone()
            secs = row[0] / row[1] if row[1] else 0.0
            ok = secs >= want if name == "pre_trigger_seconds_min" else abs(secs - want) < 1e-6
            add(name, ok, f"{secs:.1f} s of pre-trigger audio at the receiver "
                f"({'at least ' if name == 'pre_trigger_seconds_min' else ''}{want})")
        elif name in ("running_version", "update_result", "no_release_chunks_during_alert",
                      "release_chunks_min"):
            _update(name, want, dev, add)
        elif name == "commands":
            got = [_command_text(c) for a in mine for c in commands.for_alert(conn, a.alert_id)]
            add(name, got == list(want), f"commands and their outcomes: {', '.join(got) or 'none'}"
                + ("" if got == list(want) else f" (expected {', '.join(want)})"))
    return checks


def _per_alert(want: Any, alerts_seen: int) -> list[Any]:
    """An expectation's per-alert form: a list holds one value per alert, in order;
    a single value is about the first alert."""
    return list(want) if isinstance(want, list) else [want]


def _alert_delay(dev: Any, made: dict[int, Any], acked: dict[int, int], t_made: int,
                 seq: int) -> tuple[float | None, str]:
    """(seconds from the officer's pattern, else the frame's making, to the alert-start's
    arrival at the receiver; what it was measured from), or (None, why not)."""
    pressed = [t for kind, t in getattr(dev, "triggers", []) if kind == "sos" and t <= t_made]
    since = pressed[-1] if pressed else t_made
    seen = [acked[seq]] if seq in acked else []
    wire = made[seq][2]
    seen += [r.delivered_ms for r in dev.smsc.records if r.payload == wire and r.delivered_ms]
    if not seen:
        return None, f"the alert-start frame (seq {seq}) never reached the receiver"
    return (min(seen) - since) / 1000, "pattern was complete" if pressed else "frame was made"


def _update(name: str, want: Any, dev: Any, add: Any) -> None:
    """Over-the-air updates (docs/ota.md): what the device reported to the centre,
    the boot selector on its flash, its release-chunk requests."""
    rep = sim_ota.reported(dev.receiver.db, dev.spec.device_id)
    sel = sim_ota.selector(dev.flash_dir)
    if name == "running_version":
        on_flash = sel["ver"] if sel["run"] else fw_version
        ok = rep.get("fw") == want and on_flash == want and sel["state"] == "good"
        add(name, ok, f"the device reports {rep.get('fw')}; its selector runs {on_flash} ({sel['state']})")
    elif name == "update_result":
        got = rep.get("update_name")
        add(name, got == want, f"last update result reported: {got or 'none'}"
            + (f" ({rep['update_error']})" if rep.get("update_error") else ""))
    elif name == "no_release_chunks_during_alert":
        during = sum(1 for _t, live in dev.ota_posts if live)
        add(name, (during == 0) == want, f"{during} of {len(dev.ota_posts)} release-chunk requests "
            "made while an alert was live")
    else:
        n = len(dev.ota_posts)
        add(name, n >= want, f"{n} release-chunk requests (at least {want})")


def _visit_states(dev: Any, conn: Any, did: bytes) -> list[str]:
    """The centre's view of the device's visits at the end of the scenario. The
    receiver stamps frames with the wall clock, which runs faster than the
    scenario's virtual one: the centre's `now` is mapped onto the scenario's
    end from the newest stored frame (its wall receipt, its virtual making)."""
    made_at = {seq: t for t, seq, _ftype, _w in dev.made}
    rows = conn.execute("SELECT seq, received_at FROM frames WHERE device_id = ? ORDER BY received_at DESC "
                        "LIMIT 1", (did,)).fetchall()
    if not rows or rows[0][0] not in made_at:
        return []
    seq, received_at = rows[0]
    now = received_at + (dev.clock.now_ms - made_at[seq]) / 1000
    got = visits.list_visits(conn, include_ended=True, now=now, device_id=did)
    return [v.state for v in sorted(got, key=lambda v: v.visit)]


def _command_text(c: Any) -> str:
    """`listening done`, `ask yes`, `locate queued`: a command as expectations name it."""
    if c.state == commands.ANSWERED:
        return f"{c.op} {(c.answer or '').replace(' ', '-')}"
    return f"{c.op} {c.state}"


def _wrist(name: str, want: Any, dev: Any, add: Any) -> None:
    """What the officer felt: the firmware's haptic patterns, in order, with their times."""
    felt = list(getattr(dev, "haptic_patterns", []))
    names = [p for _, p in felt]
    if name == "haptic_order":
        it = iter(names)
        ok = all(any(p == w for p in it) for w in want)   # a subsequence, in this order
        add(name, ok, f"the officer felt: {', '.join(names) or 'nothing'}"
            + ("" if ok else f" (expected in order: {', '.join(want)})"))
    elif name == "not_through":
        got = "not-through" in names
        add(name, got == want, "felt not-through" if got else "never felt not-through")
    else:
        pressed = [t for kind, t in getattr(dev, "triggers", []) if kind == "sos"]
        received = [t for t, p in felt if p == "received"]
        if not pressed or not received:
            add(name, False, "no sos pattern" if not pressed else "the officer never felt `received`")
            return
        took = (received[0] - pressed[0]) / 1000
        add(name, took <= want, f"`received` on the wrist {took:.2f} s after the pattern was complete "
                                f"(limit {want} s)")


def _statuses(dev: Any, stored: dict[int, Any], names: dict[int, str]) -> list[str]:
    """Status codes of the status frames the receiver stored, in order."""
    out = []
    for _t, seq, ftype, wire in dev.made:
        if ftype == ff.STATUS and seq in stored:
            st = hf.decode_frame(wire).payload.get(ff.K_ST)
            out.append(names.get(st, str(st)))
    return out
