# The alert session: which frames, when.
#
# On the alert pattern the alert-start frame, with the best known location,
# is signed and queued at once, before anything else. Then, while the alert
# lives: audio chunks up to the clip length and a location frame every
# location_every_s. A cancel within the cancel window ends the alert (cancel
# frame); a duress cancel gets the same haptic answer but keeps the alert
# live and flags every later frame. The alert ends with an end frame when the
# centre closes it or it reaches alert_max_s. Every frame after alert-start
# carries the chain link of the one before it.
import struct
from binascii import crc32

from micropython import const

from sotto import frames, trigger
from sotto.log import Logger
from sotto.ticks import ticks_add, ticks_diff

STATE = "alert"  # the live alert, so that it survives a power cut or a reset
_STATE_FMT = ">HB8sI"  # sid, duress, prev link, ms since the alert began
IDLE_MS = const(60000)
AUDIO_POLL_MS = const(20)

_log = Logger("session")


class Session:
    def __init__(self, cfg, emit, gnss, audio, haptic, gnss_power=None, flags=0, minimal=False,
                 storage=None):
        """emit(now_ms, ftype, fields, audio=None) -> wire: signs and queues a
        frame (seq, time and uptime are added there)."""
        trig = cfg["trigger"]
        self.cancel_window_ms = trig["cancel_window_s"] * 1000
        self.trig_kind = frames.TRIG_HOLD if "hold_ms" in trig["alert"] else frames.TRIG_PRESSES
        self.location_ms = cfg["location_every_s"] * 1000
        self.keep_gnss_ms = cfg["gnss_keep_on_s"] * 1000
        self.max_ms = cfg["alert_max_s"] * 1000
        self.clip_samples = cfg["audio"]["clip_s"] * cfg["audio"]["rate_hz"]
        self._clip_default = self.clip_samples
        self._max_clip = cfg["audio"].get("max_clip_s", 0) * cfg["audio"]["rate_hz"]  # more-audio's limit
        self._audio_base = 0  # samples of this alert's audio before the capture now running
        self.rate_hz = cfg["audio"]["rate_hz"]
        self._emit = emit
        self.gnss = gnss
        self.audio = audio
        self.haptic = haptic
        self._gnss_power = gnss_power
        self.base_flags = flags  # FLAG_MINIMAL / FLAG_RESERVE, set by the device
        self.minimal = minimal  # boot-loop mode: alert, location and cancel only
        self.sid = 0
        self.live = False
        self.duress = False
        self.alerts = 0
        self.ignored = 0  # patterns that meant nothing at the time
        self._prev = b""
        self._t0 = 0
        self._next_loc = 0
        self._gnss_until = None
        self._audio_on = False
        self.storage = storage  # where the live alert's state is kept (None: RAM only)
        self.resumed = False
        self._battery = None  # battery_pct() for alert-start and closing frames
        self.utc_s = None  # clock.utc_s, to date a last-known position

    def set_battery(self, fn):
        self._battery = fn

    # -- events --------------------------------------------------------------------
    def event(self, ev, now_ms, next_sid):
        """A recognised pattern. next_sid() gives a fresh alert id."""
        if ev == trigger.ALERT:
            if self.live:
                self.ignored += 1
                return
            self._start(now_ms, next_sid())
        elif ev in (trigger.CANCEL, trigger.DURESS):
            if not self.live or ticks_diff(now_ms, self._t0) > self.cancel_window_ms or self.duress:
                self.ignored += 1
                if self.live and self.duress:
                    self.haptic.confirm(now_ms)  # same answer as before: nothing to see
                return
            self.haptic.confirm(now_ms)
            if ev == trigger.CANCEL:
                self._frame(now_ms, frames.CANCEL, {frames.K_BATT: self._batt()})
                self._finish(now_ms)
            else:
                self.duress = True
                f = {frames.K_BATT: self._batt()}
                self._add_location(f, now_ms)
                self._frame(now_ms, frames.DURESS, f)

    def closed_by_centre(self, sids, now_ms):
        if self.live and self.sid in sids:
            self.end(now_ms, frames.WHY_CENTRE)

    def end(self, now_ms, why):
        if self.live:
            self._frame(now_ms, frames.END, {frames.K_WHY: why, frames.K_BATT: self._batt()})
            self._finish(now_ms)

    def _start(self, now_ms, sid):
        self.sid = sid
        self.live = True
        self.duress = False
        self.alerts += 1
        self._t0 = now_ms
        self._prev = b""
        self.clip_samples = self._clip_default
        self._audio_base = 0
        self.resumed = False
        f = {frames.K_BATT: self._batt(), frames.K_TRIG: self.trig_kind}
        self._add_location(f, now_ms)
        self._frame(now_ms, frames.ALERT_START, f)  # first, at once
        self.haptic.confirm(now_ms)
        self._power_gnss(True)
        self._gnss_until = ticks_add(now_ms, self.keep_gnss_ms)
        self._next_loc = ticks_add(now_ms, self.location_ms)
        if self.clip_samples and not self.minimal and self.audio is not None:
            self.audio.start(now_ms)
            self._audio_on = True
        _log.i("alert %d raised", sid)

    def _finish(self, now_ms):
        self._stop_audio(now_ms, send=False)
        self.live = False
        if self.storage is not None:
            self.storage.remove(STATE)
        _log.i("alert %d over", self.sid)

    # -- time ----------------------------------------------------------------------
    def step(self, now_ms):
        """Run due work; returns ms until the session needs to run again."""
        if not self.live:
            if self._gnss_until is not None and ticks_diff(now_ms, self._gnss_until) >= 0:
                self._gnss_until = None
                self._power_gnss(False)
            return IDLE_MS if self._gnss_until is None else ticks_diff(self._gnss_until, now_ms)
        if ticks_diff(now_ms, self._t0) >= self.max_ms:
            self.end(now_ms, frames.WHY_MAX_DURATION)
            return self.step(now_ms)
        if self._audio_on:
            self._poll_audio(now_ms)
        if ticks_diff(now_ms, self._next_loc) >= 0:
            self._next_loc = ticks_add(self._next_loc, self.location_ms)
            if ticks_diff(now_ms, self._next_loc) >= 0:
                self._next_loc = ticks_add(now_ms, self.location_ms)  # a long stall: no burst
            f = {}  # type: dict
            if self._add_location(f, now_ms):
                self._frame(now_ms, frames.LOCATION, f)
        self._gnss_until = ticks_add(now_ms, self.keep_gnss_ms)  # on while live
        wait = ticks_diff(self._next_loc, now_ms)
        return min(wait, AUDIO_POLL_MS) if self._audio_on else wait

    def _poll_audio(self, now_ms):
        # one audio frame per pass at most: a device that falls behind loses
        # audio (the HAL counts overruns), never the watchdog
        chunk = self.audio.poll(now_ms)
        if chunk is None:
            return
        self._audio_frame(now_ms, chunk)
        if self._audio_base + self.audio.total_samples >= self.clip_samples:
            self._stop_audio(now_ms, send=False)

    def _stop_audio(self, now_ms, send=True):
        if not self._audio_on:
            return
        self._audio_on = False
        if send:
            chunk = self.audio.flush()
            if chunk is not None:
                self._audio_frame(now_ms, chunk)
        self.audio.stop()

    def _audio_frame(self, now_ms, chunk):
        data, samples, predictor, index = chunk
        off = self._audio_base + self.audio.total_samples - samples
        f = {frames.K_CODEC: frames.CODEC_IMA_ADPCM, frames.K_RATE: self.rate_hz,
             frames.K_OFF: off, frames.K_AST: [predictor, index], frames.K_NS: samples}
        self._frame(now_ms, frames.AUDIO, f, data)

    # -- the centre's commands (sotto.commands) ------------------------------------
    def more_audio(self, s, now_ms):
        """Extend the live alert's clip by s seconds, up to audio.max_clip_s;
        capture starts again if the clip had ended (offsets carry on). Returns
        the seconds granted (0: refused: no live alert, no audio in minimal
        mode or after a restart, or the clip is at its maximum)."""
        if not self.live or self.minimal or self.audio is None or self.resumed:
            return 0
        want = self.clip_samples + s * self.rate_hz
        new = want if want < self._max_clip else self._max_clip
        if new <= self.clip_samples:
            return 0
        granted = (new - self.clip_samples) // self.rate_hz
        self.clip_samples = new
        if not self._audio_on:
            self._audio_base += self.audio.total_samples
            self.audio.start(now_ms)
            self._audio_on = True
        return granted

    def locate(self, now_ms):
        """A location frame of the live alert now; False if there is no live
        alert or no position at all."""
        if not self.live:
            return False
        f = {}  # type: dict
        if not self._add_location(f, now_ms):
            return False
        self._frame(now_ms, frames.LOCATION, f)
        return True

    # -- frames --------------------------------------------------------------------
    def _frame(self, now_ms, ftype, fields, audio=None):
        fields[frames.K_SID] = self.sid
        flags = self.base_flags | (frames.FLAG_DURESS if self.duress else 0)
        if flags:
            fields[frames.K_FLAGS] = flags
        if self._prev:
            fields[frames.K_PREV] = self._prev
        wire = self._emit(now_ms, ftype, fields, audio)
        self._prev = frames.chain_link(wire)
        if self.live and self.storage is not None:
            self._persist(now_ms)
        return wire

    def _persist(self, now_ms):
        body = struct.pack(_STATE_FMT, self.sid, 1 if self.duress else 0, self._prev,
                           ticks_diff(now_ms, self._t0) & 0xFFFFFFFF)
        try:
            self.storage.write_atomic(STATE, body + struct.pack(">I", crc32(body) & 0xFFFFFFFF))
        except OSError as e:
            _log.e("cannot keep the alert's state: %s", e)

    def resume(self, now_ms):
        """At boot: carry on with an alert that was live when the power went.
        Same alert id, the chain continues; locations resume (audio does not:
        the clip belongs to the moment of the trigger). Returns True if resumed."""
        if self.storage is None:
            return False
        raw = self.storage.read(STATE)
        size = struct.calcsize(_STATE_FMT)
        if raw is None or len(raw) != size + 4:
            return False
        if struct.unpack(">I", raw[size:])[0] != crc32(raw[:size]) & 0xFFFFFFFF:
            _log.e("alert state damaged; not resumed")
            return False
        sid, duress, prev, elapsed_ms = struct.unpack(_STATE_FMT, raw[:size])
        self.sid = sid
        self.duress = bool(duress)
        self._prev = prev
        self.live = True
        self.resumed = True
        self._t0 = ticks_add(now_ms, -elapsed_ms)
        self._power_gnss(True)
        self._gnss_until = ticks_add(now_ms, self.keep_gnss_ms)
        self._next_loc = now_ms  # a position at once: where is the officer now?
        _log.i("alert %d resumed after a restart", sid)
        return True

    def _add_location(self, fields, now_ms):
        if self.gnss is None:
            return False
        fix = self.gnss.fix(now_ms, self.utc_s(now_ms) if self.utc_s is not None else None)
        if fix is None:
            return False
        fields[frames.K_LOC] = frames.pack_location(*fix)
        return True

    def _batt(self):
        return self._battery() if self._battery is not None else 0

    def _power_gnss(self, on):
        if self._gnss_power is not None:
            self._gnss_power(on)
