"""Run a scenario: a receiver, a virtual device, the timeline of events.

    result = run_scenario(load("scenarios/covert_sos.toml"), workdir)
    result.failures     # expectations that did not hold, named

The receiver is a real `sotto receive` process on loopback (TLS with a
throwaway CA); pass one in to share it (fleets, the demo).
"""

from __future__ import annotations

import heapq
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sotto import config as fw_config
from sotto.storage import Storage

from host_tools.receiver import alerts, commands, devcfg, store
from simulator import ota as sim_ota
from simulator.clock import VirtualClock
from simulator.device import DeviceSpec, VirtualDevice
from simulator.expect import Check, evaluate
from simulator.receiver import ReceiverProcess
from simulator.scenario import Event, Scenario


@dataclass
class RunResult:
    scenario: Scenario
    device: VirtualDevice
    receiver: Any
    checks: list[Check] = field(default_factory=list)
    wall_s: float = 0.0
    sim_s: float = 0.0

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    @property
    def ok(self) -> bool:
        return not self.failures


def pattern_presses(device: VirtualDevice, at_ms: int, pattern: dict[str, int]) -> int:
    """Press the button the way a configured pattern wants it; returns the time
    the pattern is complete (the moment the officer has done their part)."""
    if "hold_ms" in pattern:
        device.button.press(at_ms, pattern["hold_ms"] + 300)
        return at_ms + pattern["hold_ms"]
    n = pattern["presses"]
    gap = min(350, pattern["window_ms"] // n)
    hold = min(150, gap // 2)
    device.button.presses(at_ms, n, gap_ms=gap, hold_ms=hold)
    return at_ms + (n - 1) * gap + hold


class Runner:
    """Steps devices and scenario events on one virtual clock, event to event.
    Events due at a time are applied before the devices due then step; devices
    due at the same time step in the order they were added."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.devices: list[VirtualDevice] = []
        self.due: dict[int, int] = {}  # device index -> when its next pass is due
        self._heap: list[tuple[int, int]] = []  # (due, device index); stale entries skipped
        self.events: list[tuple[int, int, VirtualDevice, Event]] = []  # a heap
        self._n = 0
        self.steps = 0
        self.on_iteration: Any = None  # called after each device pass (optional)

    def add(self, device: VirtualDevice) -> None:
        self.devices.append(device)
        self.set_due(device, self.clock.now_ms)

    def set_due(self, device: VirtualDevice, t_ms: int) -> None:
        i = self._index(device)
        self.due[i] = t_ms
        heapq.heappush(self._heap, (t_ms, i))

    def _index(self, device: VirtualDevice) -> int:
        i = getattr(device, "_runner_index", None)
        if i is None or i >= len(self.devices) or self.devices[i] is not device:
            i = self.devices.index(device)
            device._runner_index = i  # type: ignore[attr-defined]
        return i

    def schedule(self, device: VirtualDevice, event: Event) -> None:
        self._n += 1
        heapq.heappush(self.events, (event.at_ms, self._n, device, event))

    def _next_device(self) -> int | None:
        h = self._heap
        while h and h[0][0] != self.due.get(h[0][1]):
            heapq.heappop(h)  # superseded
        return h[0][0] if h else None

    def run_until(self, end_ms: int) -> None:
        while True:
            cands = [t for t in (self._next_device(), self.events[0][0] if self.events else None)
                     if t is not None]
            t_next = min(cands) if cands else end_ms + 1
            if t_next > end_ms:
                self.clock.advance_to(max(end_ms, self.clock.now_ms))
                return
            now = max(t_next, self.clock.now_ms)
            self.clock.advance_to(now)
            while self.events and self.events[0][0] <= now:
                _, _, dev, ev = heapq.heappop(self.events)
                self.apply(dev, ev)
                # like an interrupt, an event wakes the device's loop now
                self.set_due(dev, min(self.due[self._index(dev)], now))
            due_now = []
            while (t := self._next_device()) is not None and t <= now:
                due_now.append(heapq.heappop(self._heap)[1])
            for i in sorted(due_now):
                d = self.devices[i]
                nxt = d.step()
                self.steps += 1
                self.set_due(d, max(nxt, now + 1))
                if self.on_iteration is not None:
                    self.on_iteration()

    def apply(self, dev: VirtualDevice, ev: Event) -> None:
        now = self.clock.now_ms
        a = ev.args
        dev.note("scenario", ev.describe())
        trig = self._config(dev)["trigger"]
        if ev.action == "sos":
            dev.triggers.append(("sos", pattern_presses(dev, now, trig["alert"])))
        elif ev.action in ("cancel", "duress"):
            dev.triggers.append((ev.action, pattern_presses(dev, now, trig[ev.action])))
        elif ev.action == "press":
            dev.button.press(now, a.get("hold_ms", 150))
        elif ev.action == "presses":
            dev.button.presses(now, a.get("count", 3), a.get("gap_ms", 300), a.get("hold_ms", 120))
        elif ev.action == "coverage":
            dev.modem.set_fault("no_coverage", not a.get("on", True))
        elif ev.action == "data":
            dev.modem.set_fault("data_down", not a.get("on", True))
        elif ev.action == "modem":
            dev.modem.set_fault(a["fault"], a.get("value", True))
        elif ev.action == "gnss_signal":
            dev.gnss.signal = bool(a.get("on", True))
        elif ev.action == "gnss_accuracy":
            dev.gnss.hdop = float(a["hdop"])
        elif ev.action == "gnss_cold_start":
            dev.gnss.cold_start()
        elif ev.action == "battery":
            dev.battery.pct = float(a["pct"])
        elif ev.action == "power_cut":
            dev.power_cut(during_flash_op=int(a.get("flash_op", 0)))
            if a.get("flash_op"):  # power back off_s after it really died
                dev.on_power_lost = lambda t: self.schedule(
                    dev, Event(t + int(a.get("off_s", 5) * 1000), "_power_on", {}))
            else:
                self.schedule(dev, Event(now + int(a.get("off_s", 5) * 1000), "_power_on", {}))
        elif ev.action in ("_power_on", "reboot"):
            dev.boot()
            self.set_due(dev, now)
        elif ev.action == "answer":
            dev.triggers.append((ev.action, pattern_presses(dev, now, trig[a["reply"]])))
        elif ev.action in ("ack_alert", "close_alert", "listen", "more_audio", "locate", "ask"):
            for rx in (dev.receiver, getattr(dev, "secondary", None)):
                if rx is not None and getattr(rx, "alive", True):   # a killed centre does nothing
                    self._operator(dev, ev.action, a, rx)
        elif ev.action == "kill_receiver":
            rx = dev.receiver if a["which"] == "primary" else dev.secondary
            rx.kill()
            dev.note("centre", f"the {a['which']} receiver was killed (SIGKILL)")
        elif ev.action == "motion":
            dev.accel.play(now, a["profile"], float(a["for_s"]))
        elif ev.action.startswith("check_in"):
            ci = self._config(dev)["checkin"]
            key = {"check_in": "start", "check_in_extend": "extend", "check_in_end": "end"}[ev.action]
            dev.triggers.append((ev.action, pattern_presses(dev, now, ci[key])))
        elif ev.action in ("configure", "release") and dev.receiver.db is None:
            # an outside receiver whose database is elsewhere: the centre's side is not here
            dev.note("centre", f"{ev.action} skipped: the receiver's database is not here (--db)")
        elif ev.action == "configure":
            conn = store.open_db(dev.receiver.db)
            try:
                v = devcfg.set_config(conn, dev.spec.device_id, a["set"],
                                      operator=a.get("operator", "qa-operator"))
            finally:
                conn.close()
            dev.note("centre", f"configuration version {v.version} queued: {v.settings}")
        elif ev.action == "corrupt_config":
            corrupt_config(dev, a.get("how", "torn"))
        elif ev.action == "release":
            d = sim_ota.build(dev.flash_dir.parent, a["version"], a.get("changed", 1),
                              wrong_key=a.get("wrong_key", False),
                              min_version=a.get("min_version", "0.0.0"),
                              allow_downgrade=a.get("allow_downgrade", False))
            v = sim_ota.publish_and_assign(dev.receiver.db, d, dev.spec.device_id,
                                           tamper=a.get("tamper", False))
            dev.note("centre", f"release {v} published and assigned")

    @staticmethod
    def _config(dev: VirtualDevice) -> dict[str, Any]:
        """The configuration the device runs: as provisioned, with every remote
        version the centre saw applied (the officer presses the patterns in force)."""
        obj: dict[str, Any] = dev.config_json()
        cfg = fw_config.validate(obj)
        if dev.receiver.db is None:   # an outside receiver: no remote versions are known here
            return cfg
        conn = store.open_db(dev.receiver.db)
        try:
            versions = devcfg.config_view(conn, dev.spec.device_id).versions
        finally:
            conn.close()
        for v in reversed(versions):
            if v.state == devcfg.APPLIED:
                cfg, obj = fw_config.change(obj, v.settings, v.version)
        return cfg

    def _operator(self, dev: VirtualDevice, action: str, a: dict[str, Any], rx: Any) -> None:
        """What a monitoring-centre operator does, through the receiver's own functions
        (with two centres: at each one that is up and holds the alert)."""
        operator = a.get("operator", "qa-operator")
        if rx.db is None:   # an outside receiver whose database is elsewhere
            dev.note("centre", f"{action} skipped: the receiver's database is not here (--db)")
            return
        now = self.clock.utc()   # one clock: the operator acts at the simulation's time
        conn = store.open_db(rx.db)
        try:
            for al in alerts.list_alerts(conn):
                if al.device_id != dev.spec.device_id:
                    continue
                if action == "ack_alert":
                    alerts.acknowledge(conn, al.alert_id, operator=operator, now=now)
                    dev.note("centre", f"{al.code} acknowledged by {operator} (listening queued)")
                elif action == "close_alert":
                    outcome = a.get("outcome", "officer safe; closed by the scenario")
                    alerts.close(conn, al.alert_id, operator=operator, outcome=outcome, now=now)
                    dev.note("centre", f"{al.code} closed by {operator}: {outcome}")
                else:
                    op = {"listen": commands.LISTENING, "more_audio": commands.MORE_AUDIO}.get(action, action)
                    c = commands.queue(conn, al.alert_id, op, operator=operator, seconds=a.get("seconds"),
                                       question=a.get("question"), now=now)
                    dev.note("centre", f"{al.code}: command {c.command_id} ({c.what}) queued by {operator}")
        finally:
            conn.close()


def corrupt_config(dev: VirtualDevice, how: str) -> None:
    """Damage config.json on the device's flash as a bad write or a bad edit would
    (torn: cut short; garbage: not text; missing: gone; bad-value: valid JSON whose
    trigger patterns the firmware refuses). The firmware reads it at its next boot."""
    st = Storage(dev.hal.storage_root)
    raw = st.read("config.json") or b""
    if how == "torn":
        st.write_atomic("config.json", raw[: len(raw) // 2])
    elif how == "garbage":
        st.write_atomic("config.json", bytes(range(256)))
    elif how == "missing":
        st.remove("config.json")
    else:
        obj = json.loads(raw)
        obj["trigger"] = {"alert": {"hold_ms": 1}}
        st.write_atomic("config.json", json.dumps(obj).encode())
    dev.note("scenario", f"config.json on flash damaged ({how})")


def device_spec(sc: Scenario, runtime: str | None = None) -> DeviceSpec:
    return DeviceSpec(device_id=sc.device_id, officer=sc.officer, config=sc.config, board=sc.board,
                      track=sc.track, audio=sc.audio, ttff_s=sc.ttff_s, hdop=sc.hdop,
                      hot_ttff_s=sc.hot_ttff_s, battery_pct=sc.battery_pct, seed=sc.seed,
                      runtime=runtime or sc.runtime)


def run_scenario(sc: Scenario, workdir: str | Path | None = None, receiver: Any = None,
                 on_progress: Any = None, runtime: str | None = None, shared_db: Any = None) -> RunResult:
    """runtime: "cpython" or "vm" (simulator/device.py), else the scenario's own.
    shared_db: a database (a PostgreSQL URL) both receivers of a second-path scenario
    store into: two sites of one centre (one centre key, one record) instead of two
    independent centres; by default each receiver has its own."""
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="sotto-sim-"))
    own = receiver is None
    rx = receiver or ReceiverProcess(work / "receiver", db=shared_db)
    rx2 = None
    try:
        if sc.secondary:   # the second path: another centre (its own PKI, key, database), or another site
            rx2 = ReceiverProcess(work / "receiver2", db=shared_db)
        wall0 = time.monotonic()
        clock = VirtualClock(epoch_s=sc.epoch_s)
        for r in (rx, rx2):   # each receiver stamps receipts with this clock
            if r is not None and hasattr(r, "attach_clock"):
                r.attach_clock(clock)
        spec = device_spec(sc, runtime)
        updates = any(ev.action == "release" for ev in sc.events)
        if updates:   # the release key's public half, as `sotto provision --release-key-pub` writes it
            spec.config = dict(spec.config, release_key=sim_ota.release_key(work)[1].hex())
        dev = VirtualDevice(spec, clock, rx, work / "flash", secondary=rx2)
        try:
            dev.provision()
            if updates:
                sim_ota.flash_base(dev.flash_dir)   # what `sotto flash` put there
            dev.boot()
            runner = Runner(clock)
            runner.add(dev)
            for ev in sc.events:
                runner.schedule(dev, ev)
            step_ms = 10_000
            t = 0
            while t < sc.duration_ms:
                t = min(sc.duration_ms, t + step_ms)
                runner.run_until(t)
                if on_progress is not None:
                    on_progress(t, sc.duration_ms)
            result = RunResult(sc, dev, rx, wall_s=time.monotonic() - wall0, sim_s=sc.duration_ms / 1000)
            result.checks = evaluate(sc.expect, dev, rx, rx2)
        finally:
            dev.close()  # hang up, so the receiver need not wait for idle connections; stop the VM
        return result
    finally:
        if rx2 is not None:
            rx2.stop()
        if own:
            rx.stop()
