# One end-to-end run of the unchanged firmware (boot.py, main.py) in the
# MicroPython VM: a provisioned device on the reference board, booted with its
# tick counter at `offset_ms`; the officer raises an alert with the button,
# cancels it a minute later; the run ends once everything reached the
# receiver (or at a time limit). tools/vm/e2e.mjs drives it:
#
#   prepare(params)   provision /data, build the world, install the stand-ins
#   (the runner executes /boot.py and /main.py as the device's firmware would)
#   report()          what happened and what failed, as one JSON line
#
# params: offset_ms, factor (0: virtual time; F: device-speed mode, device
# time = VM CPU time x F), cancel_after_ms, limit_ms; mic_once_a_pass (the
# benchmark's baseline: the firmware reads the microphone only once a pass,
# not between the steps of making a frame, as it did before).
import json
import os

import e2e_machine
from e2e_a7670 import A7670, Network
from e2e_peripherals import Button, Gnss, Mic, Recorder
from e2e_receiver import CA_PEM, Receiver, centre_key_hex
from e2e_world import World
from sotto import frames, identity
from sotto.storage import Storage

EPOCH_S = 1795444200  # 2026-11-22 14:30:00 UTC, when the world begins
HOST = "receiver.sotto.test"
DEVICE_ID = "534f54544f2d3432"  # SOTTO-42
BOOT_TO_ALERT_MS = 25000  # the officer presses 25 s after the boot (modem up, watchdog armed)
ALERT_HOLD_MS = 3500  # held past the 3 s alert pattern
ACK_WITHIN_MS = 5000  # modem up and registered: the device has the acknowledgement this soon
WDT_GAP_LIMIT_MS = 2000  # device speed: a quarter of the watchdog's 8 s, so a slow board still has margin
CHECK_EVERY_US = 500000
MAX_PASSES = 3000000  # a bound by count: a run that loops without time passing stops
REPORT_MARK = "E2E-REPORT "

_run = None


class _Out:
    """An output pin driving something: fn(level) on every change."""

    def __init__(self, fn):
        self.fn = fn
        self.level = 0

    def set(self, level):
        if level != self.level:
            self.level = level
            self.fn(level)


class Board:
    """Everything outside the firmware, wired as the board definition says."""

    def __init__(self, board, world, seed):
        self.world = world
        self.epoch_s = EPOCH_S
        self.network = Network({})
        self.modem = A7670(world, self.network)
        self.gnss = Gnss(world, EPOCH_S)
        self.mic = Mic(world)
        self.button = Button(world)
        self.haptic = Recorder(world)
        self.battery_uv = 1950000  # 3.9 V through the 1:2 divider
        g_on = 1 if board["gnss"].get("power_active_high", True) else 0
        h_on = 1 if board["haptic"].get("active_high", True) else 0
        self.pins = {
            board["button"]["pin"]: self.button,
            board["gnss"]["power_pin"]: _Out(lambda v: self.gnss.power(v == g_on)),
            board["modem"]["pwrkey_pin"]: _Out(self.modem.pwrkey),
            board["haptic"]["pin"]: _Out(lambda v: self.haptic.set(1 if v == h_on else 0)),
        }
        self.uarts = {board["gnss"]["uart"]: self.gnss, board["modem"]["uart"]: self.modem}
        self._rng = seed or 1
        self.resets = 0
        # the watchdog
        self.wdt_timeout_ms = None
        self.wdt_fed = False
        self.wdt_last_us = None
        self.wdt_max_gap_us = 0
        self.wdt_fired = 0
        self.slept_us = 0  # light sleep in the pass being run (machine.lightsleep)

    def random_bytes(self, n):
        out = bytearray(n)
        x = self._rng
        for i in range(n):
            x ^= (x << 13) & 0xFFFFFFFF
            x ^= x >> 17
            x ^= (x << 5) & 0xFFFFFFFF
            out[i] = x & 0xFF
        self._rng = x
        return bytes(out)

    def wdt_arm(self, timeout_ms):
        self.wdt_timeout_ms = timeout_ms
        self.wdt_last_us = self.world.now_us

    # -- the asyncio loop main.py runs in ----------------------------------------
    def loop(self, coro):
        w = self.world
        run = _run
        for _ in range(MAX_PASSES):
            w.pass_begin()
            self.slept_us = 0
            ms = coro.send(None)  # one pass: Device.step, the watchdog feed, a light sleep or the await
            w.pass_end()
            if self.wdt_fed:
                self.wdt_fed = False
                gap = w.now_us - self.wdt_last_us - self.slept_us  # the pass's own margin
                if gap > self.wdt_max_gap_us:
                    self.wdt_max_gap_us = gap
                self.wdt_last_us = w.now_us
            if self.wdt_timeout_ms is not None and \
                    w.now_us - self.wdt_last_us > self.wdt_timeout_ms * 1000:
                self.wdt_fired += 1
                run.stop("watchdog reset: no feed for %d ms" % ((w.now_us - self.wdt_last_us) // 1000))
                return
            if w.now_us >= run.next_check_us:
                run.check()
                if run.stopped:
                    return
            w.sleep_ms(ms)
        run.stop("pass limit reached (%d passes)" % MAX_PASSES)


class Run:
    def __init__(self, params):
        self.offset_ms = params.get("offset_ms", 0)
        self.factor = params.get("factor", 0)
        self.cancel_after_ms = params.get("cancel_after_ms", 60000)
        self.limit_ms = params.get("limit_ms", 240000)
        self.mic_once_a_pass = params.get("mic_once_a_pass", False)
        self.stopped = False
        self.why = None
        self.next_check_us = 0
        self.cancel_at_ms = None

    def prepare(self, cpu_us=None):
        with open("/boards/sotto-ref-s3.json") as f:
            board = json.load(f)
        self.world = w = World(self.offset_ms, self.factor, cpu_us)
        w.calibrate()
        self.board = b = Board(board, w, 12345)
        st = Storage("/data")
        pub = identity.create(st, b.random_bytes)
        cfg = {"device_id": DEVICE_ID, "receiver": "https://" + HOST, "apn": "internet",
               "ca_cert": "ca.pem", "centre_key": centre_key_hex(), "sms_number": "+447700900999",
               "officer": "e2e"}
        st.write_atomic("config.json", json.dumps(cfg).encode())
        st.write_atomic("ca.pem", CA_PEM)  # the trust anchors, as provisioning writes them
        self.kid = bytes.fromhex(DEVICE_ID)
        self.public_key = pub
        self.receiver = Receiver(w, {self.kid: pub}, EPOCH_S)
        b.network.servers[(HOST, 443)] = self.receiver
        # the officer: the alert pattern, then the cancel pattern a minute later
        t_press = BOOT_TO_ALERT_MS
        b.button.press(t_press, ALERT_HOLD_MS)
        self.alert_ms = t_press + 3000  # the hold pattern completes
        self.cancel_at_ms = self.alert_ms + self.cancel_after_ms
        b.button.presses_of(self.cancel_at_ms, 3)
        e2e_machine.install(b)
        _see_the_ring_as_the_device_would(w, b.mic)
        if self.mic_once_a_pass:
            from sotto.app import Device

            Device._service_mic = lambda device: None

    # -- progress ------------------------------------------------------------------------
    def stop(self, why):
        self.stopped = True
        if why and self.why is None:
            self.why = why

    def check(self):
        w = self.world
        self.next_check_us = w.now_us + CHECK_EVERY_US
        t = w.ms()
        if t > self.limit_ms:
            self.stop("time limit: %d s of device time" % (self.limit_ms // 1000))
            return
        if self.cancel_at_ms is None or t < self.cancel_at_ms + 2000:
            return
        if not self._kinds().get(frames.CANCEL):
            return
        if not os.listdir("/data/q"):
            self.stop(None)  # everything delivered

    def _kinds(self):
        out = {}
        for _, _, _, wire in self.receiver.arrivals:
            t = _fields(wire)[frames.K_T]
            out[t] = out.get(t, 0) + 1
        return out

    # -- the verdict ---------------------------------------------------------------------------
    def report(self, error=None):
        w = self.world
        b = self.board
        r = self.receiver
        fails = []
        if error:
            fails.append("firmware stopped: %s" % error)
        if self.why:
            fails.append(self.why)
        left = os.listdir("/data/q")
        if left:
            fails.append("%d frames never left the device: %s" % (len(left), " ".join(sorted(left))))
        if r.rejected:
            fails.append("receiver rejected %d frames: %r" % (len(r.rejected), r.rejected[:5]))
        alert = self._alert_frames()
        seqs = sorted(s for (_, s) in r.stored)
        if seqs and seqs != list(range(seqs[0], seqs[-1] + 1)):
            fails.append("sequence numbers at the receiver have gaps: %r" % seqs)
        starts = [f for f in alert if f[1][frames.K_T] == frames.ALERT_START]
        trigger_to_ack_ms = None
        if len(starts) != 1:
            fails.append("%d alert-starts at the receiver, not 1" % len(starts))
        else:
            seq = starts[0][1][frames.K_SEQ]
            if seq in r.acked_at:
                trigger_to_ack_ms = r.acked_at[seq] - self.alert_ms
                if trigger_to_ack_ms > ACK_WITHIN_MS:
                    fails.append("alert-start acknowledged %d ms after the trigger (limit %d ms)"
                                 % (trigger_to_ack_ms, ACK_WITHIN_MS))
            else:
                fails.append("the alert-start (seq %d) was never acknowledged to the device" % seq)
        fails += _chain_faults(alert)
        audio = [f for f in alert if f[1][frames.K_T] == frames.AUDIO]
        samples = sum(f[1][frames.K_NS] for f in audio)
        want = 30 * 8000
        if samples != want:
            fails.append("audio: %d samples at the receiver, the clip has %d" % (samples, want))
        off = 0
        for _, fl, _ in audio:
            if fl[frames.K_OFF] != off:
                fails.append("audio chunk at offset %d, expected %d" % (fl[frames.K_OFF], off))
                break
            off += fl[frames.K_NS]
        if not any(f[1][frames.K_T] == frames.CANCEL for f in alert):
            fails.append("no cancel frame at the receiver")
        # At device speed these depend on the host's speed at that moment (device
        # time is its CPU time x F), so they are findings for `make bench` to
        # report, not the lane's failures; in virtual time they are failures.
        timing = [] if self.factor else fails
        if b.mic.overruns:
            timing.append("%d microphone blocks lost (I2S ring overrun)" % b.mic.overruns)
        if b.wdt_fired:
            timing.append("the watchdog fired")
        elif self.factor and b.wdt_max_gap_us > WDT_GAP_LIMIT_MS * 1000:
            timing.append("the watchdog went %d ms without a feed (limit %d ms)"
                          % (b.wdt_max_gap_us // 1000, WDT_GAP_LIMIT_MS))
        if b.modem.unauthenticated_opens:
            fails.append("%d TLS connections without server authentication" % b.modem.unauthenticated_opens)
        rep = {
            "offset_ms": self.offset_ms, "factor": self.factor, "mic_once_a_pass": self.mic_once_a_pass,
            "device_ms": w.ms(), "passes": w.passes,
            "cpu_ms": w.cpu_total_us // 1000, "pass_max_ms": w.pass_max_us / 1000,
            "slowest_passes": [[t, c / 1000] for c, t in w.slowest],
            "frames": len(r.stored), "alert_frames": len(alert), "audio_frames": len(audio),
            "audio_samples": samples, "requests": r.requests, "duplicates": r.duplicates,
            "trigger_to_ack_ms": trigger_to_ack_ms,
            "mic_blocks": b.mic.blocks, "mic_overruns": b.mic.overruns, "mic_overrun_ms": b.mic.overrun_ms,
            "mic_max_read_gap_ms": b.mic.max_read_gap_us / 1000,
            "wdt_max_gap_ms": b.wdt_max_gap_us / 1000, "wdt_armed": b.wdt_timeout_ms is not None,
            "modem_power_ons": b.modem.power_ons, "tls_opens": b.modem.opens, "sms": len(b.modem.sms),
            "haptic_pulses": sum(1 for _, v in b.haptic.changes if v),
            "gnss_sentences": b.gnss.sentences, "uart_rx_lost": _rx_lost(b),
            "public_key": self.public_key.hex(), "kid": self.kid.hex(),
            "alert_ms": self.alert_ms, "epoch_s": EPOCH_S,
            "failures": fails, "timing": timing if self.factor else [],
        }
        with open("/e2e_out/frames.cbor", "wb") as f:
            for _, _, _, wire in r.arrivals:
                f.write(wire)
        print(REPORT_MARK + json.dumps(rep))
        return rep

    def _alert_frames(self):
        out = []
        for _, _, seq, wire in sorted(self.receiver.arrivals, key=lambda a: a[2]):
            fl = _fields(wire)
            if fl[frames.K_T] in frames.ALERT_TYPES:
                out.append((seq, fl, wire))
        return out


def _see_the_ring_as_the_device_would(world, mic):
    # On the ESP32 the I2S callback that publishes a filled block runs as soon
    # as the DMA is done (MicroPython schedules it, also in the middle of a long
    # computation). In the VM nothing runs in the middle of the firmware's code,
    # so before the HAL reads its ring the world catches up to the device's time
    # of that read: the reader sees the ring exactly as it would on the device.
    # The HAL's own code runs unchanged; this is the lane's one seam in it.
    from sotto.hal import esp32

    read = esp32.Esp32Hal.mic_readinto

    def mic_readinto(hal, buf):
        world.catch_up()
        mic.read_at(world.device_now_us())
        return read(hal, buf)

    esp32.Esp32Hal.mic_readinto = mic_readinto


def _fields(wire):
    from sotto import cbor, cose

    item, _, _ = frames.split(wire)
    return cbor.decode(cose.parse(item)[3])


def _chain_faults(alert):
    out = []
    for i, (seq, fl, _) in enumerate(alert):
        prev = fl.get(frames.K_PREV)
        if i == 0:
            if prev is not None:
                out.append("the first alert frame (seq %d) carries a prev" % seq)
        elif prev != frames.chain_link(alert[i - 1][2]):
            out.append("chain broken at seq %d" % seq)
    return out


def _rx_lost(b):
    n = 0
    for part in (b.gnss, b.modem):
        if part.line is not None:
            n += part.line.rx_lost
    return n


def prepare(params, cpu_us=None):
    global _run
    _run = Run(params)
    _run.prepare(cpu_us)
    return _run


def report(error=None):
    return _run.report(error)
