# Device: every part of the firmware wired to a HAL.
#
# boot() loads the configuration and the key, recovers the queue and the
# counters, counts boots and builds the parts (sotto.startup); step(now_ms)
# runs one pass of everything and returns how long the caller may sleep.
# main.py calls it in a loop on the device; the simulator calls it with its
# virtual clock; tests call it directly.
#
# Robustness: a part that raises is logged and counted in faults and the
# pass goes on (the parts are state machines, so the next pass simply
# retries); the delivery task is restarted by the scheduler. A frame the
# flash refuses stays in RAM and is pushed again every pass, so an alert-start
# made while the flash is full or failing is not lost while the power lasts.
# A boot counter that reaches startup.BOOT_LOOP_LIMIT without STABLE_MS of
# uptime in between puts the device in minimal mode: alerts and locations
# only (no audio, no heartbeats), frames flagged.
#
# Observer: `device.observer = obj` (None by default, and then it costs one
# `is not None` test at each place below) is told what the firmware did:
#   obj.frame_made(seq, ftype, wire)    a frame was signed and queued (or held in RAM);
#                                       wire is a memoryview of the device's one frame
#                                       buffer, overwritten by the next frame: an
#                                       observer that keeps it must copy it (bytes(wire))
#   obj.frames_acked(seqs)              the receiver's signed answer acknowledged these
#   obj.time_set(epoch_s, source)       the clock was given a time ("network": the centre's)
#   obj.haptic_played(pattern)          a haptic pattern started ("confirm", "received",
#                                       "listening", "not-through", "q1"...)
# The hooks change nothing themselves; the simulator and tests watch the
# device through them (the simulator also re-anchors the clock to its virtual
# time from time_set, through the public Clock.set_network).
#
# The loop back (sotto.loopback): delivery hands over only what an
# authenticated answer said (sotto.answer): alert-starts the centre stored
# (the "received" pattern on the wrist, sotto.feedback), `closed`, the
# centre's time and its commands (sotto.commands). A configuration that may not deliver over the network
# (config.network_refusal: no centre key, TLS without a CA, http to another
# machine) is a fault the device reports and survives: alerts are still
# queued and go by SMS.
#
# Configuration trouble is survived too (a fallback configuration, flagged
# config-invalid), the centre's `config` command changes settings in place,
# and health rides in every status and heartbeat: sotto.remote. Over-the-air
# updates (the release on trial, staging, the restart): sotto.updates.
# Pre-trigger audio (audio.pre_trigger): sotto.prering, fed while idle.
#
# Light sleep: after each pass main.py calls rest(cap_ms). When nothing is
# pending (no alert session, no audio or GNSS on, no haptic pattern, no
# pre-alarm, no frame held in RAM, no release on trial, the delivery task only
# waiting) the CPU light-sleeps through hal.sleep_until until the next timer
# the parts know (step()'s wait without the delivery task's 50 ms idle poll,
# and the delivery's own backoff or probe); the button, the accelerometer's
# interrupts and the modem's RI line wake it early, and the HAL records the
# edges that woke it with their time. A press while no alert is live wakes
# the modem from PSM at once (Delivery.wake_modem), so that its wake-up
# overlaps the rest of the pattern; nothing is sent before a pattern completes.
import sys

from micropython import const

from sotto import VERSION, frames, prering, remote, trigger, updates
from sotto.checkin import CheckIn
from sotto.clock import Clock
from sotto.commands import Commands
from sotto.counters import Counters
from sotto.feedback import Feedback
from sotto.gnss import Gnss
from sotto.haptic import Haptic
from sotto.log import Logger
from sotto.motion import Motion
from sotto.power import Power
from sotto.queue import FrameQueue
from sotto.sched import Scheduler
from sotto.session import Session
from sotto.storage import Storage
from sotto.ticks import ticks_add, ticks_diff
from sotto.trigger import Trigger

STABLE_MS = const(120000)
SAVE_FIX_MS = const(60000)
GNSS_READ = const(128)
RETRY_MS = const(1000)  # how often a refused frame is offered to the flash again
SLEEP_MIN_MS = const(20)  # a shorter wait is not worth a light sleep's wake-up
PENDING_MAX = const(8)  # frames of other kinds held in RAM while the flash refuses them
_MUST_KEEP = (frames.ALERT_START, frames.CANCEL, frames.DURESS, frames.END)

_log = Logger("app")
BOOT_ONLY = ("config", "identity")  # sotto modules only Device.boot() uses


def forget_boot_modules():
    """Drop the modules only Device.boot() needs from sys.modules and from the
    package, so that their code (about 13 KB of bytecode in RAM on a device
    without ROMFS) and tables can be collected; main.py calls it once boot()
    is done. A module someone still holds stays (e.g. a configuration
    refused: network_error keeps sotto.config's ConfigError); an import after
    this loads it again."""
    pkg = sys.modules.get("sotto")
    for name in BOOT_ONLY:
        sys.modules.pop("sotto." + name, None)
        if pkg is not None and name in pkg.__dict__:
            delattr(pkg, name)


class Device:
    # made once by boot() (sotto.startup); annotations only: no value before boot
    storage: Storage
    queue: FrameQueue
    counters: Counters
    signer: frames.FrameSigner
    gnss: Gnss
    clock: Clock
    haptic: Haptic
    motion: Motion
    power: Power
    session: Session
    checkin: CheckIn
    trigger: Trigger
    feedback: Feedback
    commands: Commands
    sched: Scheduler
    t_boot: int
    boots: int  # boots since the last stable run
    _frame_buf: bytearray  # every frame is made here
    _next_save: int
    _stable: bool

    def __init__(self, hal, config=None):
        self.hal = hal
        self._config = config
        self.cfg = None
        self.ready = False
        self.error = None  # why the device cannot run (ConfigError, IdentityError)
        self.minimal = False
        self.faults = {}  # part name -> exceptions caught
        self.frames_made = 0
        self._now = 0
        self._drops_reported = 0
        self.pending = []  # [(wire, ftype, seq)] signed but not yet on flash
        self.lost = 0  # frames given up because the flash refused them and RAM was full
        self._retry_at = 0
        self.delivery = None
        self.network_error = None  # ConfigError: why nothing goes over the network
        self._flags = 0  # set on every frame (insecure TLS)
        self._alerts_seen = 0
        self.audio = None
        self.observer = None  # see the header
        self.config_invalid = None  # why config.json was not used (text), or None
        self.boots_total = 0  # boots since provisioning (health: boots)
        self.reset_cause = 0  # frames.RST_*
        self.prering = None  # sotto.prering.PreRing when audio.pre_trigger
        self._cfg_obj = None  # the configuration object as on flash (for remote changes)
        self.cfg_version = 0  # health: cfgv
        self.fetcher = None  # sotto.otafetch: releases the centre assigns (docs/ota.md)
        self.health = None  # sotto.bootsel.Health of a release on trial
        self.fw = VERSION  # the version running (sotto.updates)
        self.sel = None  # sotto.bootsel's selector record, read at boot
        self._reset_asked = False
        self.gnss_on = False  # the receiver's power as last set (no light sleep while on)
        self._sleep = None  # hal.sleep_until (a HAL without it: the loop never light-sleeps)
        self._rest_ms = 0  # step()'s wait without the delivery task's idle poll
        self.sleeps = 0  # light sleeps asked of the HAL
        self._accel = None  # hal.accel_events (None: a board without an accelerometer)

    # -- boot (sotto.startup) -------------------------------------------------------------
    def boot(self, now_ms):
        """Load the configuration and the key, recover the queue and the
        counters, build and wire the parts: True when the device runs, False
        when it cannot (self.error says why)."""
        from sotto import startup  # imported here, not at the top: it imports this module

        return startup.boot(self, now_ms)

    # -- frames -----------------------------------------------------------------------------
    def _emit(self, now_ms, ftype, fields, audio=None):
        """Sign a frame and queue it (durable when this returns)."""
        fields[frames.K_T] = ftype
        fields[frames.K_SEQ] = seq = self.counters.next_seq()
        if frames.K_TIME not in fields:  # an alert raised again after a cut keeps its pattern's time
            fields[frames.K_TIME] = self.clock.utc_s(now_ms)
        fields[frames.K_UP] = self.clock.uptime_ms(now_ms) & 0xFFFFFFFF
        flags = fields.get(frames.K_FLAGS, 0) | self._flags
        if ftype == frames.STATUS or ftype == frames.HEARTBEAT or ftype == frames.ALERT_START:
            flags |= remote.stamp(self, ftype, fields)  # unauth, health, rx (the second path)
        if self.minimal:
            flags |= frames.FLAG_MINIMAL
        if self.power.reserve:
            flags |= frames.FLAG_RESERVE
        if flags:
            fields[frames.K_FLAGS] = flags
        # into the one frame buffer (no allocation of an audio frame's size); the
        # signer services the microphone between its steps
        wire = self.signer.sign_into(self._frame_buf, fields, audio)
        self.frames_made += 1
        self._service_mic()  # and before and after the flash write
        if self.pending:
            self._hold(wire, ftype, seq)  # keep the order: older refused frames go first
        else:
            try:
                self.queue.push(wire, ftype, seq)
            except OSError as e:  # flash full or failing: keep it in RAM and retry
                self._fault("queue", e)
                self._hold(wire, ftype, seq)
                self._retry_at = ticks_add(now_ms, RETRY_MS)
        self._service_mic()
        if self.observer is not None:
            self.observer.frame_made(seq, ftype, wire)
        return wire

    def _service_mic(self):
        # Making a frame (a signature, a flash write) takes a large share of
        # what the microphone's I2S ring holds on the device (224-256 ms):
        # drain it between the steps. A fault here must not cost the frame being made.
        if self.audio is not None:
            try:
                self.audio.service()
            except Exception as e:  # noqa: BLE001
                self._fault("audio", e)

    def _hold(self, wire, ftype, seq):
        # the one copy of a frame the device makes: it must outlive the frame buffer
        p = self.pending
        p.append((bytes(wire), ftype, seq))
        if len(p) > PENDING_MAX:
            for i in range(len(p)):
                if p[i][1] not in _MUST_KEEP:
                    p.pop(i)
                    self.lost += 1
                    break

    def _flush_pending(self, now_ms):
        if ticks_diff(now_ms, self._retry_at) < 0:
            return
        self._retry_at = ticks_add(now_ms, RETRY_MS)
        p = self.pending
        while p:
            wire, ftype, seq = p[0]
            try:
                self.queue.push(wire, ftype, seq)
            except OSError as e:
                self._fault("queue", e)
                return
            p.pop(0)

    # -- what the observer hears (see the header) ------------------------------------------
    def _played(self, pattern):
        if self.observer is not None:
            self.observer.haptic_played(pattern)

    # -- one pass ------------------------------------------------------------------------
    def step(self, now_ms):
        if not self.ready:
            return 1000
        self._now = now_ms
        self.clock.tick(now_ms)
        hal = self.hal
        wait = 60000
        try:
            pressed_now = False
            for t, pressed in hal.button_edges():
                self.trigger.edge(t, pressed)
                pressed_now = pressed_now or pressed
            if pressed_now and not self.session.live and self.delivery is not None:
                self.delivery.wake_modem()  # a pattern may be starting: PSM wake-up overlaps it
            if self._accel is not None:
                for t, kind in self._accel():
                    self.motion.edge(t, kind)
            while True:
                ev = self.trigger.poll(now_ms)
                if ev == trigger.NONE:
                    break
                if ev == trigger.YES or ev == trigger.NO:
                    self.commands.answer(ev, now_ms)
                elif ev >= trigger.VISIT_START:
                    self.checkin.event(ev, now_ms)
                elif ev == trigger.CANCEL and self.motion.cancel(now_ms):
                    pass  # it cancelled a pre-alarm (no alert is live during one)
                else:
                    self.session.event(ev, now_ms, self.counters.next_sid)
                    self._watch_alert(now_ms)
            wait = min(wait, self.trigger.next_ms(now_ms))
        except Exception as e:  # noqa: BLE001 - keep the device alive, count it
            self._fault("trigger", e)
        try:
            uart = hal.gnss_uart
            while uart.any():
                data = uart.read(GNSS_READ)
                if not data:
                    break
                self.gnss.feed(data, now_ms)
        except Exception as e:  # noqa: BLE001
            self._fault("gnss", e)
        for name, part in (("session", self.session), ("power", self.power), ("feedback", self.feedback),
                           ("commands", self.commands), ("checkin", self.checkin), ("motion", self.motion),
                           ("haptic", self.haptic)):
            try:
                wait = min(wait, part.step(now_ms))
            except Exception as e:  # noqa: BLE001
                self._fault(name, e)
                wait = min(wait, 100)
        if not self.session.live:
            self.feedback.alert_over()
        if self.prering is not None and not self.session.live:
            try:
                wait = min(wait, prering.capture(self.prering, self.audio, self.power.reserve, now_ms))
            except Exception as e:  # noqa: BLE001
                self._fault("pre-trigger", e)
        sched_wait = self.sched.step(now_ms)
        if self.health is not None:
            try:
                wait = min(wait, updates.step(self, now_ms))
            except Exception as e:  # noqa: BLE001 - an update never stops the device
                self._fault("ota", e)
        self._housekeeping(now_ms)
        if self.pending:
            wait = min(wait, ticks_diff(self._retry_at, now_ms))
        self._rest_ms = wait
        wait = min(wait, sched_wait)
        return wait if wait > 0 else 0

    # -- light sleep (see the header) -------------------------------------------------------
    def _gnss_power(self, on):
        self.gnss_on = bool(on)
        self.hal.gnss_power(on)

    def sleep_ms(self, now_ms):
        """How long the CPU may light-sleep after the pass at now_ms (0: not at all)."""
        d = self.delivery
        if (not self.ready or self._sleep is None or self.session.live or self.pending or self.gnss_on
                or self.haptic.busy or self.motion.pre or self.prering is not None
                or (self.health is not None and self.health.on_trial)
                or (self.audio is not None and self.audio.running) or d is None or not d.quiet):
            return 0
        ms = self._rest_ms
        if d.quiet_until is not None:
            ms = min(ms, ticks_diff(d.quiet_until, now_ms))
        return ms if ms > 0 else 0

    def rest(self, now_ms, cap_ms):
        """After a pass: light-sleep (hal.sleep_until) up to cap_ms when sleep_ms()
        allows at least SLEEP_MIN_MS. Returns the ms asked (0: did not sleep; the
        caller then waits with the CPU clocked)."""
        ms = self.sleep_ms(now_ms)
        if ms > cap_ms:
            ms = cap_ms
        sleep = self._sleep
        if ms < SLEEP_MIN_MS or sleep is None or not sleep(ms):  # False: an edge was waiting
            return 0
        self.sleeps += 1
        return ms

    def _watch_alert(self, now_ms):
        s = self.session
        if s.alerts != self._alerts_seen:
            self._alerts_seen = s.alerts
            if s.live:
                self.feedback.alert_started(s.sid, now_ms)
                self.motion.stop()  # an alert is live: a pre-alarm is moot

    def _raise_alert(self, now_ms, trig):
        """An alert the device raises on its own (check-in overrun, no-motion,
        man-down): the usual alert session, trig says why."""
        raised = self.session.raise_alert(now_ms, self.counters.next_sid, trig)
        self._watch_alert(now_ms)
        return raised

    def _housekeeping(self, now_ms):
        if self.pending:
            self._flush_pending(now_ms)
        q = self.queue
        if q.dropped > self._drops_reported:
            self._drops_reported = q.dropped
            try:
                self._emit(now_ms, frames.STATUS, {frames.K_BATT: self.power.pct,
                                                   frames.K_ST: frames.ST_QUEUE_FULL,
                                                   frames.K_DROP: q.dropped})
            except OSError as e:
                self._fault("status", e)
        if not self._stable and ticks_diff(now_ms, self.t_boot) >= STABLE_MS:
            self._stable = True
            try:
                remote.stable(self)
            except OSError as e:
                self._fault("boots", e)
        if ticks_diff(now_ms, self._next_save) >= 0:
            self._next_save = ticks_add(now_ms, SAVE_FIX_MS)
            try:
                self.gnss.save(now_ms, self.clock.utc_s(now_ms))
                if not self.session.live:
                    self.counters.top_up()
            except Exception as e:  # noqa: BLE001
                self._fault("save", e)

    def _fault(self, name, e):
        self.faults[name] = self.faults.get(name, 0) + 1
        _log.e("%s failed: %r", name, e)
