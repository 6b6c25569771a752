"""A virtual device: the firmware's Device, unchanged, on the simulated HAL,
with the virtual modem carrying its frames to a real receiver.

    dev = VirtualDevice(spec, clock, receiver)
    dev.provision()          # key made by the device's own code and RNG, registered
    dev.boot()
    dev.run_until(t_ms)      # event to event on the virtual clock

Everything that happens is recorded in dev.timeline (t_ms, kind, text) and
everything that left the device in dev.modem.air (and the SMS centre).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sotto import frames, identity, log
from sotto.app import Device
from sotto.storage import Storage

from simulator.clock import VirtualClock
from simulator.hal import SimHal
from simulator.peripherals import Battery, Button, GnssReceiver, Microphone, synthetic_voice
from simulator.smsc import VirtualSmsc
from simulator.track import Track, standing
from simulator.vmodem import Faults, Timing, VirtualModem

REPO = Path(__file__).resolve().parent.parent
BOARDS = REPO / "hardware" / "boards"
TYPE_NAMES = {frames.ALERT_START: "alert-start", frames.LOCATION: "location", frames.AUDIO: "audio",
              frames.CANCEL: "cancel", frames.DURESS: "duress", frames.END: "end",
              frames.HEARTBEAT: "heartbeat", frames.CHECK_IN: "check-in", frames.STATUS: "status"}


@dataclass
class DeviceSpec:
    device_id: bytes
    officer: str | None = None
    config: dict[str, Any] = field(default_factory=dict)  # overrides of the firmware defaults
    board: str = "sotto-ref-s3"
    track: Track = field(default_factory=lambda: standing(51.4545, -2.5879))
    audio: Any = None  # array('h') of 8 kHz samples; None: a synthetic voice
    ttff_s: float = 10.0
    hdop: float = 0.9
    battery_pct: float = 90.0
    seed: int = 1
    msisdn: str = "+447700900001"
    monitoring_number: str = "+447700900999"
    timing: Timing = field(default_factory=Timing)


class _Sink:
    """Routes firmware log lines to the device being stepped (log's sink is global)."""

    current: VirtualDevice | None = None

    @classmethod
    def line(cls, text: str) -> None:
        if cls.current is not None:
            cls.current.note("log", text)


class VirtualDevice:
    def __init__(self, spec: DeviceSpec, clock: VirtualClock, receiver: Any, flash_dir: str | Path) -> None:
        self.spec = spec
        self.clock = clock
        self.receiver = receiver
        self.flash_dir = Path(flash_dir)
        self.flash_dir.mkdir(parents=True, exist_ok=True)
        self.timeline: list[tuple[int, str, str]] = []
        self.made: list[tuple[int, int, int, bytes]] = []  # (t, seq, type, wire) as queued
        self.acked: list[tuple[int, int]] = []  # (t, seq)
        ca = receiver.pki.ca_pem if receiver.pki else None
        self.smsc = VirtualSmsc(receiver.sms_url, delay_ms=3000, epoch_s=clock.epoch_s, ca_pem=ca)
        self.modem = VirtualModem(timing=spec.timing, faults=Faults(), seed=spec.seed,
                                  hosts={receiver.host: "127.0.0.1"}, smsc=self.smsc,
                                  certs={"sotto_ca.pem": ca} if ca else {}, msisdn=spec.msisdn,
                                  powered=False)
        self.gnss = GnssReceiver(spec.track, clock.epoch_s, ttff_s=spec.ttff_s, hdop=spec.hdop)
        self.mic = Microphone(spec.audio if spec.audio is not None else synthetic_voice())
        self.battery = Battery(spec.battery_pct)
        self.button = Button()
        with open(BOARDS / f"{spec.board}.json") as f:
            board = json.load(f)
        self.hal = SimHal(board, str(self.flash_dir), clock, self.modem, self.gnss, self.mic,
                          self.battery, self.button, seed=spec.seed)
        self.device: Device | None = None
        self.public_key = b""
        self.boots = 0
        self._last_ms = clock.now_ms

    # -- setting up -------------------------------------------------------------------
    def config_json(self) -> dict[str, Any]:
        r = self.receiver
        scheme = "https" if r.pki else "http"
        cfg: dict[str, Any] = {"device_id": self.spec.device_id.hex(), "receiver": f"{scheme}://{r.host}:{r.port}",
                               "apn": "internet", "sms_number": self.spec.monitoring_number,
                               "officer": self.spec.officer, "board": self.spec.board,
                               "ca_cert": "sotto_ca.pem" if r.pki else None}
        cfg.update(self.spec.config)
        return cfg

    def provision(self) -> bytes:
        """Write the configuration, let the device make its key, register it."""
        st = Storage(self.hal.storage_root)
        st.write_atomic("config.json", json.dumps(self.config_json()).encode())
        self.public_key = identity.create(st, self.hal.random_bytes, force=True)
        self.receiver.register(self.spec.device_id, self.public_key, self.spec.officer)
        return self.public_key

    def boot(self) -> None:
        _Sink.current = self
        log.set_sink(_Sink.line)
        dev = Device(self.hal)
        self.boots += 1
        if not dev.boot(self.clock.ticks()):
            raise RuntimeError(f"the firmware refused to boot: {dev.error}")
        self._wrap(dev)
        known = {m[1] for m in self.made}
        for seq, wire in dev.queue.batch(1 << 20, 1 << 40):  # made during boot (status)
            if seq not in known:
                ftype = next(e[1] for e in dev.queue._index if e[0] == seq)
                self.made.append((self.clock.now_ms, seq, ftype, wire))
        self.device = dev
        self.note("device", f"boot {self.boots}")

    def _wrap(self, dev: Device) -> None:
        emit = dev._emit
        ack = dev.queue.ack

        def recording_emit(now_ms: int, ftype: int, fields: dict, audio: bytes | None = None) -> bytes:
            wire = emit(now_ms, ftype, fields, audio)
            self.made.append((self.clock.now_ms, fields[frames.K_SEQ], ftype, wire))
            if ftype != frames.AUDIO:
                self.note("frame", f"{TYPE_NAMES.get(ftype, ftype)} #{fields[frames.K_SEQ]} queued")
            return wire

        def recording_ack(seqs: list[int]) -> None:
            ack(seqs)
            for s in seqs:
                self.acked.append((self.clock.now_ms, s))

        set_network = dev.clock.set_network

        def network_time(epoch_s: int, now_ms: int) -> None:
            # the receiver answers with the wall clock; in the simulation the
            # world's time is the virtual clock's
            set_network(int(self.clock.utc()), now_ms)

        dev.clock.set_network = network_time  # type: ignore[method-assign]
        dev._emit = recording_emit  # type: ignore[method-assign]
        dev.session._emit = recording_emit
        dev.power._emit = recording_emit
        dev.queue.ack = recording_ack  # type: ignore[method-assign]

    def note(self, kind: str, text: str) -> None:
        self.timeline.append((self.clock.now_ms, kind, text))

    # -- faults ------------------------------------------------------------------------
    def power_cut(self) -> None:
        """All power gone at once: RAM lost, the modem off, the GNSS off."""
        self.device = None
        self.modem.cut_power()
        self.gnss.power(False, self.clock.now_ms)
        self.mic.stop()
        self.note("fault", "power cut")

    def wipe_flash(self) -> None:
        shutil.rmtree(self.flash_dir / "data", ignore_errors=True)

    # -- running -------------------------------------------------------------------------
    def next_event_ms(self, wait_ms: int) -> int:
        now = self.clock.now_ms
        t = now + max(1, wait_ms)
        for cand in (self.modem.next_event_ms(), self.gnss.next_event_ms(), self.button.next_edge_ms()):
            if cand is not None and now < cand < t:
                t = int(cand)
        return t

    def step(self) -> int:
        """One firmware pass at the clock's time; returns when the next one is due."""
        now = self.clock.now_ms
        self.battery.busy = bool(self.device and self.device.session.live)
        self.battery.drain(now - self._last_ms)
        self._last_ms = now
        self.modem.advance(now)
        self.gnss.advance(now)
        self.mic.now_ms = now
        if self.device is None:
            return self.next_event_ms(60_000)
        _Sink.current = self
        log.set_sink(_Sink.line)
        wait = self.device.step(self.clock.ticks())
        self.hal.wdt_feed()
        return self.next_event_ms(wait)
