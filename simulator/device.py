"""A virtual device: the firmware's Device, unchanged, on the simulated HAL,
with the virtual modem carrying its frames to a real receiver.

    dev = VirtualDevice(spec, clock, receiver)
    dev.provision()          # key made by the device's own code and RNG, registered
    dev.boot()
    dev.run_until(t_ms)      # event to event on the virtual clock

Everything that happens is recorded in dev.timeline (t_ms, kind, text) and
everything that left the device in dev.modem.air (and the SMS centre).

The loop is firmware/main.py's: boot, then step / feed the watchdog / rest
(Device.rest: a light sleep through the HAL when nothing is pending, up to
half the watchdog's timeout; the next pass is then at the sleep's end or at
the first wake event before it), with the watchdog armed after the board's
watchdog_arm_ms; an exception out of
Device.step() resets the device 2 s later (main.py's crash path), and so does
a reset the firmware asks the HAL for. The virtual device is the Device's
observer (sotto.app: frames made, frames acknowledged, time set, haptic
patterns), so the firmware runs unchanged and is watched through its own hooks.

Flash is a directory. Power loss is on demand: at once (RAM lost, flash as
last written), or during the N-th flash operation from now (a write leaves
half its bytes in its .tmp file, a rename or remove is cut just after it took
effect; power_cut(done=False / True) cuts every kind just before / just after
it takes effect), which is where a power cut hurts (simulator/flashcut.py). The
host's fsync is off: the simulated flash survives simulated power cuts by
construction, and fsync would only measure the host's disk.

Two runtimes run the firmware: "cpython" (the firmware package imported here)
and "vm" (the MicroPython VM in a Node process, simulator/vmruntime.py), with
the same parts, clock, flash folder and observer records; same seed, same
clock, same inputs give the same frames, byte for byte. `device` is the
booted firmware Device, or in the VM runtime a stand-in with the members the
simulator reads (boot, step, error, queue.seqs/dropped/batch, pending,
session.live).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sotto import bootsel, frames, identity, log
from sotto.app import Device
from sotto.storage import Storage

from host_tools import frames as host_frames
from host_tools.errors import UsageError
from simulator import ota as sim_ota
from simulator.accel import VirtualAccelerometer
from simulator.clock import VirtualClock
from simulator.flashcut import FlashCut, PowerLoss
from simulator.hal import BOARDS_DIR, SimHal, load_board
from simulator.peripherals import Battery, Button, GnssReceiver, Microphone, synthetic_voice
from simulator.power import meter_for
from simulator.smsc import VirtualSmsc
from simulator.track import Track, standing
from simulator.vmodem import Faults, Timing, VirtualModem
from simulator.vmruntime import VmBridgeError, VmRuntime

REPO = Path(__file__).resolve().parent.parent
BOARDS = BOARDS_DIR
CA_FILE = "sotto_ca.pem"  # the CA certificate's file under /data (config ca_cert)
CA2_FILE = "sotto_ca2.pem"  # the secondary receiver's (config secondary_ca_cert)
CRASH_RESET_MS = 2000  # main.py: a fatal error, 2 s to interrupt from the REPL, then reset
RUNTIMES = ("cpython", "vm")
TYPE_NAMES = {frames.ALERT_START: "alert-start", frames.LOCATION: "location", frames.AUDIO: "audio",
              frames.CANCEL: "cancel", frames.DURESS: "duress", frames.END: "end",
              frames.HEARTBEAT: "heartbeat", frames.CHECK_IN: "check-in", frames.STATUS: "status",
              frames.REPLY: "reply"}


@dataclass
class DeviceSpec:
    device_id: bytes
    officer: str | None = None
    config: dict[str, Any] = field(default_factory=dict)  # overrides of the firmware defaults
    board: str = "sotto-ref-s3"
    track: Track = field(default_factory=lambda: standing(51.4545, -2.5879))
    audio: Any = None  # array('h') of 8 kHz samples; None: a synthetic voice
    ttff_s: float = 10.0
    hot_ttff_s: float = 2.0
    hdop: float = 0.9
    battery_pct: float = 90.0
    seed: int = 1
    msisdn: str = "+447700900001"
    monitoring_number: str = "+447700900999"
    timing: Timing = field(default_factory=Timing)
    runtime: str = "cpython"  # RUNTIMES: where the firmware runs (see the module docstring)


class CPythonRuntime:
    """The firmware package imported into this process (the default runtime)."""

    name = "cpython"

    def __init__(self, vdev: VirtualDevice) -> None:
        self.vdev = vdev
        self.cut = FlashCut(vdev.note)

    def new_device(self) -> Device:
        return Device(self.vdev.hal)

    def watch(self, dev: Device) -> None:
        """Watch the booted Device through its observer hooks; arm the power-cut seam."""
        self.cut.install(dev.storage)
        dev.observer = self.vdev

    def arm_cut(self, ops: int, done: bool | None) -> None:
        self.cut.arm(ops, done)

    def cancel_cut(self) -> None:
        self.cut.cancel()

    @property
    def cut_left(self) -> int:
        return self.cut.left

    def close(self) -> None:
        pass


def make_runtime(vdev: VirtualDevice, name: str) -> Any:
    if name == "cpython":
        return CPythonRuntime(vdev)
    if name == "vm":
        return VmRuntime(vdev.hal, vdev.clock, vdev.flash_dir, vdev)
    raise UsageError(f"no runtime {name!r}: choose one of {', '.join(RUNTIMES)}")


class _Sink:
    """Routes firmware log lines to the device being stepped (log's sink is global)."""

    current: VirtualDevice | None = None

    @classmethod
    def line(cls, text: str) -> None:
        if cls.current is not None:
            cls.current.note("log", text)


class VirtualDevice:
    def __init__(self, spec: DeviceSpec, clock: VirtualClock, receiver: Any, flash_dir: str | Path,
                 secondary: Any = None) -> None:
        self.spec = spec
        self.clock = clock
        self.receiver = receiver
        self.secondary = secondary  # the second path's receiver (another centre), or None
        self.flash_dir = Path(flash_dir)
        self.flash_dir.mkdir(parents=True, exist_ok=True)
        self.ota_posts: list[tuple[int, bool]] = []   # release-chunk requests: (t_ms, alert live)
        self.ota_air_bytes = 0                         # release bytes received in chunk answers
        self.ota_seen: dict[int, int] = {}
        self.ota_running: dict[str, int] = {}          # version -> when it first ran good (t_ms)
        self.timeline: list[tuple[int, str, str]] = []
        self.made: list[tuple[int, int, int, bytes]] = []  # (t, seq, type, wire) as queued
        self.acked: list[tuple[int, int]] = []  # (t, seq)
        ca = receiver.pki.ca_pem if receiver.pki else None
        self.smsc = VirtualSmsc(receiver.sms_url, delay_ms=3000, epoch_s=clock.epoch_s, ca_pem=ca,
                                secret=getattr(receiver, "sms_secret", None))
        # the module starts without the CA: the firmware downloads it from /data (AT+CCERTDOWN)
        address = getattr(receiver, "address", "127.0.0.1")   # an outside receiver's own address
        self.modem = VirtualModem(timing=spec.timing, faults=Faults(), seed=spec.seed,
                                  hosts={receiver.host: address}, smsc=self.smsc, msisdn=spec.msisdn,
                                  powered=False)
        self.gnss = GnssReceiver(spec.track, clock.epoch_s, ttff_s=spec.ttff_s, hdop=spec.hdop,
                                 hot_ttff_s=spec.hot_ttff_s)
        self.mic = Microphone(spec.audio if spec.audio is not None else synthetic_voice())
        self.battery = Battery(spec.battery_pct)
        self.button = Button()
        self.accel = VirtualAccelerometer(spec.seed)  # fed by the scenario's `motion` actions
        board = load_board(spec.board)
        self.hal = SimHal(board, str(self.flash_dir), clock, self.modem, self.gnss, self.mic,
                          self.battery, self.button, seed=spec.seed, accel=self.accel)
        self.device: Any = None  # the booted firmware Device (a VmDevice in the VM runtime)
        self.runtime = make_runtime(self, spec.runtime)
        self.public_key = b""
        self.boots = 0
        self.crashes = 0
        self.power_cuts = 0
        self._boot_ms = clock.now_ms
        self._reboot_at: int | None = None
        self.on_power_lost: Callable[[int], None] | None = None  # called once when the power dies
        self.triggers: list[tuple[str, int]] = []  # (pattern, t_ms the officer completed it)
        self.haptic_patterns: list[tuple[int, str]] = []  # (t_ms, pattern) the firmware played
        self._last_ms = clock.now_ms
        self.meter = meter_for(self, board)  # the charge drawn (simulator/power.py), None without figures

    # -- setting up -------------------------------------------------------------------
    def config_json(self) -> dict[str, Any]:
        """The configuration `sotto provision` would write: the receiver, and its trust
        anchors (the CA certificate's file under /data, the centre's public key)."""
        r = self.receiver
        scheme = "https" if r.pki else "http"
        cfg: dict[str, Any] = {"device_id": self.spec.device_id.hex(), "receiver": f"{scheme}://{r.host}:{r.port}",
                               "apn": "internet", "sms_number": self.spec.monitoring_number,
                               "officer": self.spec.officer, "board": self.spec.board,
                               "ca_cert": CA_FILE if r.pki else None,
                               "centre_key": r.centre_public_key.hex()}
        s = self.secondary
        if s is not None:  # as `sotto provision --secondary-server ... --secondary-ca-cert ...`
            cfg.update({"secondary_receiver": f"{'https' if s.pki else 'http'}://{s.host}:{s.port}",
                        "secondary_ca_cert": CA2_FILE if s.pki else None,
                        "secondary_centre_key": s.centre_public_key.hex()})
        cfg.update(self.spec.config)
        return cfg

    def write_config(self, st: Storage) -> None:
        """The CA certificate (when the receiver has TLS) and the configuration, on flash."""
        if self.receiver.pki is not None:
            st.write_atomic(CA_FILE, self.receiver.pki.ca_pem.encode())
        if self.secondary is not None and self.secondary.pki is not None:
            st.write_atomic(CA2_FILE, self.secondary.pki.ca_pem.encode())
        st.write_atomic("config.json", json.dumps(self.config_json()).encode())

    def provision(self) -> bytes:
        """Write the configuration and the CA certificate, let the device make its
        key, register it."""
        st = Storage(self.hal.storage_root)
        self.write_config(st)
        self.public_key = identity.create(st, self.hal.random_bytes, force=True)
        self.receiver.register(self.spec.device_id, self.public_key, self.spec.officer)
        if self.secondary is not None:  # the other centre registers the same key
            self.secondary.register(self.spec.device_id, self.public_key, self.spec.officer)
        return self.public_key

    def boot(self) -> None:
        """Power on: a fresh Device over the same flash (what main.py does)."""
        _Sink.current = self
        log.set_sink(_Sink.line)
        self.device = None
        self._reboot_at = None
        self.hal.reset_requested = False
        self.hal.watchdog_armed_ms = None
        self._boot_ms = self.clock.now_ms
        if self.spec.runtime == "cpython":
            # boot.py's boot selector (docs/ota.md): the switch to a staged release, or its rollback
            bootsel.switch(Storage(self.hal.storage_root))
        dev = self.runtime.new_device()
        self.boots += 1
        self.note("device", f"boot {self.boots}")
        try:
            ok = dev.boot(self.clock.ticks())
        except PowerLoss:
            self._power_lost()
            return
        if not ok:
            raise RuntimeError(f"the firmware refused to boot: {dev.error}")
        self.runtime.watch(dev)
        known = {m[1] for m in self.made}
        for seq, wire in dev.queue.batch(1 << 20, 1 << 40):  # made during boot (status)
            if seq not in known:
                ftype = int(host_frames.decode_frame(wire).type)
                self.made.append((self.clock.now_ms, seq, ftype, wire))
        for wire, ftype, seq in getattr(dev, "pending", []):  # made during boot, not yet on flash
            if seq not in known:
                self.made.append((self.clock.now_ms, seq, ftype, wire))
        self.device = dev

    # -- what the firmware tells its observer (sotto.app.Device.observer) ----------------
    def frame_made(self, seq: int, ftype: int, wire: bytes | memoryview) -> None:
        # wire is a view of the firmware's one frame buffer, overwritten by the next frame
        self.made.append((self.clock.now_ms, seq, ftype, bytes(wire)))
        if ftype != frames.AUDIO:
            self.note("frame", f"{TYPE_NAMES.get(ftype, ftype)} #{seq} queued")

    def frames_acked(self, seqs: list[int]) -> None:
        for s in seqs:
            self.acked.append((self.clock.now_ms, s))

    def time_set(self, epoch_s: int, source: str) -> None:
        # the receiver answers with the wall clock; in the simulation the
        # world's time is the virtual clock's
        if self.device is not None:
            self.device.clock.reanchor(int(self.clock.utc()), self.clock.ticks())

    def haptic_played(self, pattern: str) -> None:
        self.haptic_patterns.append((self.clock.now_ms, pattern))

    def note(self, kind: str, text: str) -> None:
        self.timeline.append((self.clock.now_ms, kind, text))

    # -- faults ------------------------------------------------------------------------
    def power_cut(self, during_flash_op: int = 0, done: bool | None = None) -> None:
        """All power gone: RAM lost, the modem and the GNSS off (the GNSS loses its
        ephemeris too). during_flash_op = N > 0: not now, but during the N-th
        flash write, rename or remove from now (see the module docstring).
        done=False: that operation does not take effect (a write leaves half its
        bytes, a rename or remove is not done); True: it takes effect wholly,
        then the power dies; None: a write is torn, a rename or remove done."""
        if during_flash_op > 0 and self.device is not None:
            self.runtime.arm_cut(during_flash_op, done)
            self.note("fault", f"power will die during flash operation {during_flash_op} from now")
            return
        self._power_lost()

    def cancel_power_cut(self) -> None:
        """Forget a power cut armed with power_cut(during_flash_op=N) that has not happened yet."""
        if self.runtime.cut_left:
            self.runtime.cancel_cut()
            self.note("fault", "the armed power cut is called off")

    def _power_lost(self) -> None:
        self.device = None
        self.runtime.cancel_cut()
        self._reboot_at = None
        self.power_cuts += 1
        self.modem.cut_power()
        self.gnss.power(False, self.clock.now_ms)
        self.gnss.cold_start()
        self.mic.stop()
        self.note("fault", "power cut")
        hook, self.on_power_lost = self.on_power_lost, None
        if hook is not None:
            hook(self.clock.now_ms)

    def wipe_flash(self) -> None:
        shutil.rmtree(self.flash_dir / "data", ignore_errors=True)

    def close(self) -> None:
        """Hang up the modem's connections and stop the runtime (the VM's process)."""
        self.modem.close()
        self.runtime.close()

    # -- running -------------------------------------------------------------------------
    def next_event_ms(self, wait_ms: int) -> int:
        now = self.clock.now_ms
        t = now + max(1, wait_ms)
        for cand in (self.modem.next_event_ms(), self.gnss.next_event_ms(), self.button.next_edge_ms(),
                     self._reboot_at, self.accel.next_edge_ms()):
            if cand is not None and now < cand < t:
                t = int(cand)
        return t

    def step(self) -> int:
        """One pass of main.py's loop at the clock's time; returns when the next one is due."""
        now = self.clock.now_ms
        self.battery.busy = bool(self.device and self.device.session.live)
        self.battery.drain(now - self._last_ms)
        self._last_ms = now
        self.modem.advance(now)
        self.gnss.advance(now)
        self.mic.now_ms = now
        if self.meter is not None:
            self.meter.sample(now)
        if self._reboot_at is not None and now >= self._reboot_at:
            self.note("device", "reset")
            self.boot()
        if self.device is None:
            return self.next_event_ms(60_000)
        _Sink.current = self
        log.set_sink(_Sink.line)
        posts = sim_ota.posts_of(self)
        try:
            wait = self.device.step(self.clock.ticks())
            sim_ota.watch(self, posts)
        except PowerLoss:
            self._power_lost()
            return self.next_event_ms(60_000)
        except VmBridgeError:
            raise  # the simulator's own failure, not the firmware's
        except Exception as e:  # noqa: BLE001 - main.py's crash path: log, wait 2 s, reset
            self.crashes += 1
            self.note("fault", f"firmware crashed: {e!r}; reset in {CRASH_RESET_MS // 1000} s")
            self.device = None
            self._reboot_at = now + CRASH_RESET_MS
            return self.next_event_ms(CRASH_RESET_MS)
        arm_ms = self.hal.board.get("watchdog_arm_ms", 20000)
        if self.hal.watchdog_armed_ms is None and now - self._boot_ms >= arm_ms:
            self.hal.arm_watchdog()
        self.hal.wdt_feed()
        if self.hal.reset_requested:
            self.hal.reset_requested = False
            self.device = None
            self._reboot_at = now
            return self.next_event_ms(1)
        try:
            slept = self.device.rest(self.clock.ticks(), self.hal.board.get("watchdog_ms", 8000) // 2)
        except PowerLoss:
            self._power_lost()
            return self.next_event_ms(60_000)
        return self.next_event_ms(slept or wait)
