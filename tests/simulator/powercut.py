"""Power cut at every storage operation of a whole alert, against a real receiver.

One run: a virtual device raises an alert (SOS), records a short audio clip,
sends locations, and the alert ends (the centre closes it: an end frame, or
the officer cancels it: a cancel frame). The power dies during the N-th flash
write, rename or remove counted from the SOS (just before it takes effect, or
just after), comes back 5 s later, and the run goes on until everything is
delivered. Then, for that cut point:

- lost: a frame that was durably queued (the receiver acknowledged it, or it
  was on flash) is not at the receiver;
- duplicated: a seq stored twice with different bytes, or an alert with two
  alert-starts or two closing frames;
- alerts: the receiver holds exactly one alert of this device (the officer
  raised one: no phantom second alert, none missing). The one exception: a cut
  that tears the very first storage operation after the pattern (nothing of
  it reached the flash) may lose it, and then the officer felt no pulse;
- a cancel the officer felt the accepted pulse for is at the receiver;
- chain: recomputed from the stored frames with the host verifier
  (host_tools.frames: signature, schema, link) — one unbroken chain from the
  alert-start to the closing frame — and the receiver's own chain verdict
  (alerts.chain_status) says "complete";
- left behind: a frame still in the device's queue (or RAM) at the end.

`sweep(rx, workdir, plan)` runs N = 1, 2, ... until the cut no longer
happens (the alert is over before the N-th operation): every cut point,
bounded by count and deterministic (virtual clock, seeded device).

    python tests/simulator/powercut.py [--plan end|cancel] [--every K] [-v]
prints the outcomes of a whole sweep (both cut kinds) as a table; the tests
are tests/simulator/test_powercut_sweep.py (`make powercut` runs them all).
"""

from __future__ import annotations

import itertools
import random
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sotto import frames as ff
from sotto import identity
from sotto.storage import Storage

from host_tools import frames as hf
from host_tools.receiver import alerts, store
from simulator.clock import VirtualClock
from simulator.device import DeviceSpec, VirtualDevice
from simulator.run import Runner
from simulator.scenario import Event
from simulator.track import load_track

REPO = Path(__file__).resolve().parents[2]
SOS_MS = 20_000  # the officer starts the pattern
PATTERN_MS = 3_000  # the default alert pattern: a 3 s hold
OFF_MS = 5_000  # how long the power stays off
SETTLE_MS = 80_000  # after the last possible cut: boot, register, deliver everything
CUT_LIMIT = 1000  # more flash operations than this in one alert is itself a failure


@dataclass(frozen=True)
class Plan:
    """A whole alert: how it ends and how long the run lasts."""

    name: str
    ending: str  # "close_alert" (the centre closes it: end frame) or "cancel" (the officer)
    end_ms: int  # when the ending happens
    window_ms: int  # the alert is over and acknowledged by then: cut points end here
    clip_s: int = 5
    location_every_s: int = 15


PLANS = {
    "end": Plan("end", "close_alert", 65_000, 100_000),
    "cancel": Plan("cancel", "cancel", 42_000, 75_000),
}


@dataclass
class Outcome:
    cut: int  # 0: no cut
    done: bool | None
    happened: bool  # the power really died (False: the alert was over before op N)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what is allowed, and happened
    kinds: set[str] = field(default_factory=set)  # chain, alerts, lost, duplicated, left

    @property
    def clean(self) -> bool:
        return not self.kinds

    def fail(self, kind: str, text: str) -> None:
        self.kinds.add(kind)
        self.problems.append(f"{kind}: {text}")

    def label(self) -> str:
        when = {None: "", False: " before", True: " after"}[self.done]
        return f"cut at op {self.cut}{when}"


def run_cut(rx, workdir: Path, plan: Plan, n: int, done: bool | None, device_no: int) -> Outcome:
    """One whole alert with the power cut at its n-th flash operation (0: none)."""
    clock = VirtualClock(epoch_s=1_795_000_000)
    spec = DeviceSpec(device_id=(0x5070_0000_0000 + device_no).to_bytes(8, "big"), officer="QA",
                      config={"audio": {"clip_s": plan.clip_s},
                              "location_every_s": plan.location_every_s},
                      track=load_track(REPO / "scenarios/tracks/bristol-walk.geojson"), seed=7)
    dev = VirtualDevice(spec, clock, rx, workdir / f"flash-{device_no}")
    provision(dev, rx, device_no)
    dev.boot()
    runner = Runner(clock)
    runner.add(dev)
    runner.schedule(dev, Event(SOS_MS, "sos", {}))
    runner.schedule(dev, Event(plan.end_ms, plan.ending, {}))
    # a cancel the power cut off (no pulse: the officer knows it did not take) leaves the
    # alert open; the operator then closes it, so that every run ends with a closed chain
    runner.schedule(dev, Event(plan.window_ms, "close_alert", {}))
    # the cut points start where the alert does: when the pattern is complete
    runner.run_until(SOS_MS + PATTERN_MS - 1)
    if n:
        dev.power_cut(during_flash_op=n, done=done)
        dev.on_power_lost = lambda t: runner.schedule(dev, Event(t + OFF_MS, "_power_on", {}))
    runner.run_until(plan.window_ms)
    dev.cancel_power_cut()  # the alert is over: later housekeeping is not part of it
    runner.run_until(plan.window_ms + SETTLE_MS)
    out = Outcome(n, done, dev.power_cuts > 0)
    check(dev, rx, out, plan)
    dev.modem.close()
    return out


def provision(dev: VirtualDevice, rx, device_no: int) -> None:
    """VirtualDevice.provision with a key of this run's own: every run of a sweep
    shares one seed (same timing, same cut points) and one receiver, which
    refuses a public key it has seen before."""
    rng = random.Random(device_no)
    st = Storage(dev.hal.storage_root)
    dev.write_config(st)
    dev.public_key = identity.create(st, lambda n: bytes(rng.getrandbits(8) for _ in range(n)), force=True)
    rx.register(dev.spec.device_id, dev.public_key, dev.spec.officer)


def confirmed(dev: VirtualDevice, pattern: str) -> bool | None:
    """Did the officer feel the "accepted" pulse for this pattern (None: not made)?"""
    done = sorted(t for kind, t in dev.triggers)
    mine = [t for kind, t in dev.triggers if kind == pattern]
    if not mine:
        return None
    start = mine[0]
    later = [t for t in done if t > start]
    end = later[0] if later else None
    return any(on and start <= t and (end is None or t < end) for t, on in dev.hal.haptic_log)


def check(dev: VirtualDevice, rx, out: Outcome, plan: Plan) -> None:
    did = dev.spec.device_id
    conn = store.open_db(rx.db)
    try:
        rows = conn.execute("SELECT seq, type, alert_id, wire FROM frames WHERE device_id = ? ORDER BY seq",
                            (did,)).fetchall()
        mine = [a for a in alerts.list_alerts(conn, include_closed=True) if a.device_id == did]
    finally:
        conn.close()
    stored: dict[int, bytes] = {}
    for seq, _t, _a, wire in rows:
        if seq in stored and stored[seq] != wire:
            out.fail("duplicated", f"seq {seq} stored twice with different bytes")
        stored[seq] = wire
    # lost: durably queued (acknowledged, or on flash when the power died / at a boot) but not stored
    made = {seq: wire for _t, seq, _f, wire in dev.made}
    acked = {seq for _t, seq in dev.acked}
    lost = sorted(s for s in made if s not in stored)
    lost_acked = sorted(s for s in acked if s not in stored)
    if lost or lost_acked:
        out.fail("lost", f"frames {lost or lost_acked} never reached the receiver")
    d = dev.device
    left = (list(d.queue.seqs()) + [p[2] for p in d.pending]) if d else ["the device is off"]
    if left:
        out.fail("left", f"frames {left} still on the device at the end")
    # The officer raised one alert when the pattern was recognised. Only a cut that tears the
    # very first storage operation after it (nothing at all reached the flash) may lose it,
    # and then the officer must not have felt the accepted pulse.
    sos_ok = confirmed(dev, "sos")
    may_lose = out.cut == 1 and out.done is False
    if len(mine) != 1 and not (may_lose and not mine and not sos_ok):
        out.fail("alerts", f"{len(mine)} alerts at the receiver (the officer raised 1"
                 + ("" if sos_ok else "; no accepted pulse") + ")")
    if not sos_ok:
        out.notes.append(f"no accepted pulse for the SOS; {len(mine)} alert(s)")
    cancel_ok = confirmed(dev, "cancel")
    if cancel_ok is False:
        out.notes.append("no accepted pulse for the cancel")
    for a in mine:
        if cancel_ok and a.end_type != hf.FrameType.CANCEL:
            out.fail("lost", f"{a.code}: the officer's confirmed cancel is not at the receiver")
        if a.chain.state != alerts.COMPLETE:
            out.fail("chain", f"receiver: {a.code} {a.chain.summary}")
        problem = chain_problem([w for _s, _t, aid, w in rows if aid == a.alert_id], dev.public_key)
        if problem:
            out.fail("chain", f"host verifier: {a.code} {problem}")


def chain_problem(wires: list[bytes], public_key: bytes) -> str | None:
    """Why these frames (one alert's) are not one unbroken, signed chain from
    an alert-start to one closing frame; None when they are."""
    fs = []
    for w in wires:
        v = hf.verify_frame(w, public_key)
        if not v.ok:
            return f"a frame does not verify ({v.reason})"
        fs.append(v.frame)
    fs.sort(key=lambda f: f.seq)
    starts = [f for f in fs if f.type == hf.FrameType.ALERT_START]
    closing = [f for f in fs if int(f.type) in (ff.CANCEL, ff.END)]
    if len(starts) != 1:
        return f"{len(starts)} alert-starts"
    if len(closing) != 1 or closing[0] is not fs[-1]:
        return f"{len(closing)} closing frames" + ("" if len(closing) != 1 else ", not the last")
    links = {hf.chain_link(f): f for f in fs}
    named = Counter(f.payload.get(ff.K_PREV) for f in fs if f is not starts[0])
    for f in fs:
        if f is starts[0]:
            if ff.K_PREV in f.payload:
                return "the alert-start names a previous frame"
            continue
        prev = f.payload.get(ff.K_PREV)
        if prev not in links:
            return f"frame seq {f.seq} names a frame that is not there (gap)"
        if named[prev] > 1:
            same = sorted(g.seq for g in fs if g.payload.get(ff.K_PREV) == prev)
            return f"frames seq {', '.join(map(str, same))} all claim the same previous frame"
        if links[prev].seq >= f.seq:
            return f"frame seq {f.seq} names a later frame"
    return None


_devices = itertools.count(1)  # one receiver serves many runs: each run is a new device


def sweep(rx, workdir: Path, plan: Plan, done: bool | None, pick=None) -> list[Outcome]:
    """Every cut point n = 1, 2, ... (those pick(n) keeps; default all) until
    the power no longer dies in the alert; the last entry is that run."""
    outs = []
    for n in range(1, CUT_LIMIT + 1):
        if pick is not None and not pick(n):
            continue
        o = run_cut(rx, workdir, plan, n, done, next(_devices))
        outs.append(o)
        if not o.happened:
            return outs
    raise AssertionError(f"more than {CUT_LIMIT} flash operations in one alert")


def tally(outs: list[Outcome]) -> Counter:
    c: Counter = Counter()
    for o in outs:
        if not o.happened:
            continue
        c["cut points"] += 1
        c["clean" if o.clean else "failed"] += 1
        for k in o.kinds:
            c[k] += 1
    return c


def main(argv: list[str]) -> int:
    import argparse
    import tempfile

    from simulator.receiver import ReceiverProcess

    ap = argparse.ArgumentParser(description="power cut at every flash operation of a whole alert")
    ap.add_argument("--plan", choices=sorted(PLANS), action="append", help="which alert (default: both)")
    ap.add_argument("--every", type=int, default=1, help="sweep every K-th cut point (default 1: all)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every failed cut point")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sotto-sweep-") as tmp:
        work = Path(tmp)
        rx = ReceiverProcess(work / "receiver")
        try:
            for name in args.plan or sorted(PLANS):
                for done in (False, True):
                    outs = sweep(rx, work, PLANS[name], done, lambda n: (n - 1) % args.every == 0)
                    t = tally(outs)
                    print(f"{name:6} {'after' if done else 'before':6} " + ", ".join(
                        f"{k} {t[k]}" for k in ("cut points", "clean", "chain", "alerts", "lost",
                                                "duplicated", "left")))
                    if args.verbose:
                        for o in outs:
                            if o.happened and (o.problems or o.notes):
                                print("   ", o.label(), "; ".join(o.problems + o.notes))
        finally:
            rx.stop()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main(sys.argv[1:]))
