"""Expectations of a scenario with two receivers (the second path, EN 50136 dual path):
two independent centres, each keeping its own record of what it received.

- chain_complete: for each alert (device, sid), the frames of both records together
  form one unbroken chain (host_tools.receiver.evidence.analyse_chain);
- alerts: distinct alerts across the two centres (one alert seen at both counts once);
- records_verify: every frame each centre holds verifies by itself against the
  device's key (each record stands alone as evidence);
- delivered_via_secondary: the secondary centre's alert view says "delivered via
  secondary" (host_tools.receiver.paths);
- receivers_down: the device reported these receivers down (status st 9, rx).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from host_tools import frames as hf
from host_tools.receiver import paths
from host_tools.receiver.evidence import analyse_chain

# expectations checked here, not by simulator.expect's one-receiver rules
OWN = ("chain_complete", "alerts", "records_verify", "delivered_via_secondary", "receivers_down")


def _alert_frames(conns: list[sqlite3.Connection], did: bytes) -> dict[int, list[hf.Frame]]:
    """sid -> the decoded frames of that alert held by any centre (one copy of each)."""
    out: dict[int, dict[bytes, hf.Frame]] = {}
    for c in conns:
        for sid, wire in c.execute("SELECT sid, wire FROM frames WHERE device_id = ? "
                                   "AND alert_id IS NOT NULL AND wire IS NOT NULL", (did,)):
            f = hf.decode_frame(bytes(wire))
            out.setdefault(sid, {})[f.link] = f
    return {sid: list(fs.values()) for sid, fs in out.items()}


def evaluate(expect: dict[str, Any], dev: Any, conns: list[sqlite3.Connection]) -> list[Any]:
    from simulator.expect import Check

    did = dev.spec.device_id
    checks: list[Check] = []
    for name, want in expect.items():
        if name not in OWN:
            continue
        if name == "chain_complete":
            by_sid = _alert_frames(conns, did)
            states = []
            ok = bool(by_sid)
            for sid, fs in sorted(by_sid.items()):
                a = analyse_chain(fs)
                states.append(f"alert {sid} across both centres: {a.summary}")
                ok = ok and a.state in ("complete", "open")
            checks.append(Check(name, ok == want, "; ".join(states) or "no alert at either centre"))
        elif name == "alerts":
            n = len(_alert_frames(conns, did))
            checks.append(Check(name, n == want, f"{n} alert(s) across both centres (expected {want})"))
        elif name == "records_verify":
            bad, counts = [], []
            key = dev.public_key
            for label, c in zip(("primary", "secondary"), conns, strict=True):
                n = 0
                for (wire,) in c.execute("SELECT wire FROM frames WHERE device_id = ? AND wire IS NOT NULL",
                                         (did,)):
                    n += 1
                    v = hf.verify_frame(bytes(wire), key, max_future_s=10**9)
                    if not v.ok:
                        bad.append(f"{label}: {v.reason.value if v.reason else '?'}")
                counts.append(f"{label} {n}")
            checks.append(Check(name, (not bad) == want,
                                f"frames that verify on their own: {', '.join(counts)}"
                                + (f"; failing {bad[:5]}" if bad else "")))
        elif name == "delivered_via_secondary":
            c = conns[1]
            via = [paths.delivered_via(c, aid) for (aid,) in
                   c.execute("SELECT alert_id FROM alerts WHERE device_id = ?", (did,))]
            got = "secondary" in via
            checks.append(Check(name, got == want, "the secondary centre's alert view says "
                                + ("'delivered via secondary'" if got else f"{via or 'no alert'}")))
        elif name == "receivers_down":
            down = []
            for c in conns:
                for (wire,) in c.execute("SELECT wire FROM frames WHERE device_id = ? AND type = ? "
                                         "AND wire IS NOT NULL", (did, int(hf.FrameType.STATUS))):
                    f = hf.decode_frame(bytes(wire))
                    if f.status == paths.ST_RECEIVER_DOWN and f.rx is not None:
                        down.append(paths.PATH_NAMES[f.rx])
            got = sorted(set(down))
            checks.append(Check(name, got == sorted(set(want)),
                                f"receivers reported down: {', '.join(got) or 'none'} "
                                f"(expected {', '.join(want)})"))
    return checks
