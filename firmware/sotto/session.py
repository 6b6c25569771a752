# The alert session: which frames, when.
#
# On the alert pattern the officer's intent goes to flash first (one small
# record, sotto.alertrec), then the alert-start frame, with the best known
# location, is signed and queued at once. Then, while the alert lives: audio
# chunks up to the clip length and a location frame every location_every_s.
# A cancel within the cancel window ends the alert (cancel frame); a duress
# cancel gets the same haptic answer but keeps the alert live and flags every
# later frame. The alert ends with an end frame when the centre closes it or
# it reaches alert_max_s. Every frame after alert-start carries the chain link
# of the one before it.
#
# Power cuts: the "accepted" pulse comes only once the alert (or the cancel,
# or the duress) is durable: its record is on flash, or else its frame is.
# resume() at boot carries on from the record and from what reached the
# queue after it: it raises an alert whose alert-start never got queued (same
# trigger, the pattern's time), makes a cancel or duress frame that was asked
# for and not queued, and takes the chain link from the newest queued frame.
from micropython import const

from sotto import alertrec, frames, trigger
from sotto.log import Logger
from sotto.ticks import ticks_add, ticks_diff

STATE = alertrec.NAME  # the live alert's record, so that it survives a power cut or a reset
_CLOSING = (frames.CANCEL, frames.END)
IDLE_MS = const(60000)
AUDIO_POLL_MS = const(20)

_log = Logger("session")


class Session:
    def __init__(self, cfg, emit, gnss, audio, haptic, gnss_power=None, flags=0, minimal=False,
                 storage=None, queue=None, seq_mark=None):
        """emit(now_ms, ftype, fields, audio=None) -> wire: signs and queues a
        frame (seq, time and uptime are added there; a time given is kept).
        storage: where the alert's record is kept (None: RAM only); queue: read
        by resume(); seq_mark() -> the last sequence number handed out."""
        self.rate_hz = cfg["audio"]["rate_hz"]
        self.configure(cfg)
        self.clip_samples = self._clip_default
        self._audio_base = 0  # samples of this alert's audio before the capture now running
        self.pre = None  # sotto.prering.PreRing (set by the device when audio.pre_trigger)
        self._pre_left = 0  # pre-trigger chunks of the live alert still to send
        self._pre_k = 0
        self._pre_off = 0
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
        self.storage = storage  # where the live alert's record is kept (None: RAM only)
        self.queue = queue
        self._seq_mark = seq_mark
        # () -> False while the newest frame is held in RAM (the flash refused it); None: always on flash
        self.frame_on_flash = None
        self.resumed = False
        self._trig = self.trig_kind  # how the live alert was raised (a re-raised one keeps its own)
        self._utc0 = 0  # UTC of the alert pattern, 0 when unknown
        self._seq = 0  # seq of the alert's newest frame
        self._dirty = False  # the record waits for the newest frame to reach the flash
        self._confirm_due = False  # the accepted pulse waits for the same
        self._battery = None  # battery_pct() for alert-start and closing frames
        self.utc_s = None  # clock.utc_s, to date a last-known position

    def configure(self, cfg):
        """Take the settings of a (new) configuration; a live alert keeps its
        clip (the device changes nothing while one is live)."""
        trig = cfg["trigger"]
        self.cancel_window_ms = trig["cancel_window_s"] * 1000
        self.trig_kind = frames.TRIG_HOLD if "hold_ms" in trig["alert"] else frames.TRIG_PRESSES
        self.location_ms = cfg["location_every_s"] * 1000
        self.keep_gnss_ms = cfg["gnss_keep_on_s"] * 1000
        self.max_ms = cfg["alert_max_s"] * 1000
        self._clip_default = cfg["audio"]["clip_s"] * self.rate_hz
        self._max_clip = cfg["audio"].get("max_clip_s", 0) * self.rate_hz  # more-audio's limit

    def set_battery(self, fn):
        self._battery = fn

    # -- events --------------------------------------------------------------------
    def event(self, ev, now_ms, next_sid):
        """A recognised pattern. next_sid() gives a fresh alert id."""
        if ev == trigger.ALERT:
            if self.live:
                self.ignored += 1
                if not self._confirm_due:
                    self.haptic.confirm(now_ms)  # accepted: there is a durable alert
                return
            self._raise(now_ms, next_sid)
        elif ev in (trigger.CANCEL, trigger.DURESS):
            if not self.live or ticks_diff(now_ms, self._t0) > self.cancel_window_ms or self.duress:
                self.ignored += 1
                if self.live and self.duress:
                    self.haptic.confirm(now_ms)  # same answer as before: nothing to see
                return
            want = frames.CANCEL if ev == trigger.CANCEL else frames.DURESS
            if want == frames.DURESS:
                self.duress = True
            durable = self._write(self._record(now_ms, want))  # the officer's intent first
            if durable:
                self.haptic.confirm(now_ms)
            self._carry_out(now_ms, want, confirm=not durable)

    def _carry_out(self, now_ms, want, confirm=False):
        if want == frames.CANCEL:
            self._frame(now_ms, frames.CANCEL, {frames.K_BATT: self._batt()}, confirm=confirm)
            self._finish(now_ms)
        else:
            f = {frames.K_BATT: self._batt()}
            self._add_location(f, now_ms)
            self._frame(now_ms, frames.DURESS, f, confirm=confirm)

    def closed_by_centre(self, sids, now_ms):
        if self.live and self.sid in sids:
            self.end(now_ms, frames.WHY_CENTRE)

    def end(self, now_ms, why):
        if self.live:
            self._frame(now_ms, frames.END, {frames.K_WHY: why, frames.K_BATT: self._batt()})
            self._finish(now_ms)

    def raise_alert(self, now_ms, next_sid, trig):
        """An alert the device raises on its own (trig: frames.TRIG_CHECKIN,
        TRIG_NO_MOTION, TRIG_MAN_DOWN), as the alert pattern would; False when
        an alert is live already (it covers the officer)."""
        if self.live:
            self.ignored += 1
            return False
        self._raise(now_ms, next_sid, trig)
        return True

    def _raise(self, now_ms, next_sid, trig=0):
        """The alert pattern: the intent on flash before anything else (no alert
        id reserved, nothing signed yet), then the alert-start."""
        self._trig = trig or self.trig_kind
        self._utc0 = self.utc_s(now_ms) if self.utc_s is not None else 0
        mark = self._seq_mark() if self._seq_mark is not None else 0
        durable = self._write(alertrec.Record(frames.ALERT_START, self._trig, False, 0, self._utc0, mark))
        if durable:
            self.haptic.confirm(now_ms)  # accepted: from now on the alert survives a power cut
        self._start(now_ms, next_sid(), confirm=not durable)

    def _start(self, now_ms, sid, utc_s=0, confirm=False):
        self.sid = sid
        self.live = True
        self.duress = False
        self.alerts += 1
        self._t0 = now_ms
        self._prev = b""
        self.clip_samples = self._clip_default
        self._audio_base = 0
        self.resumed = False  # a new (or re-raised) alert records its clip from the start
        f = {frames.K_BATT: self._batt(), frames.K_TRIG: self._trig}
        if utc_s:
            f[frames.K_TIME] = utc_s  # raised again after a restart: the time of the pattern
        self._add_location(f, now_ms)
        self._frame(now_ms, frames.ALERT_START, f, confirm=confirm)  # first, at once
        self._power_gnss(True)
        self._gnss_until = ticks_add(now_ms, self.keep_gnss_ms)
        self._next_loc = ticks_add(now_ms, self.location_ms)
        self._pre_left = 0
        if self.clip_samples and not self.minimal and self.audio is not None:
            pre = self.pre
            if pre is not None and pre.count and self.audio.running and not utc_s:
                # the ring's chunks go first (flag pre-trigger, offsets from 0),
                # one per pass; the live clip carries on the same stream after them
                self._pre_left = pre.count
                self._pre_k = 0
                self._pre_off = 0
                self._audio_base = pre.samples - self.audio.total_samples
                self.clip_samples += pre.samples
            else:
                self.audio.start(now_ms)
            self._audio_on = True
        elif self.audio is not None and self.audio.running:
            self.audio.stop()  # the pre-trigger capture, when this alert takes no audio
        _log.i("alert %d raised", sid)

    def _finish(self, now_ms):
        self._stop_audio(now_ms, send=False)
        self.live = False
        self._sync_record(now_ms)
        _log.i("alert %d over", self.sid)

    # -- time ----------------------------------------------------------------------
    def step(self, now_ms):
        """Run due work; returns ms until the session needs to run again."""
        if self._dirty or self._confirm_due:
            self._caught_up(now_ms)
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
        pre = self.pre
        if self._pre_left and pre is not None:
            data, samples, predictor, index = pre.get(self._pre_k)
            f = {frames.K_CODEC: frames.CODEC_IMA_ADPCM, frames.K_RATE: self.rate_hz,
                 frames.K_OFF: self._pre_off, frames.K_AST: [predictor, index], frames.K_NS: samples,
                 frames.K_FLAGS: frames.FLAG_PRE_TRIGGER}
            self._frame(now_ms, frames.AUDIO, f, data)
            self._pre_k += 1
            self._pre_off += samples
            self._pre_left -= 1
            self.audio.service()  # the live stream goes on meanwhile
            return
        chunk = self.audio.poll(now_ms)
        if chunk is None:
            return
        self._audio_frame(now_ms, chunk)
        self.audio.release()  # signed and queued: its buffer may fill again
        if self._audio_base + self.audio.total_samples >= self.clip_samples:
            self._stop_audio(now_ms, send=False)

    def _stop_audio(self, now_ms, send=True):
        self._pre_left = 0  # a cancel before they went: the ring's chunks stay on the device
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
    def _frame(self, now_ms, ftype, fields, audio=None, confirm=False):
        """Sign and queue one frame of the alert, then bring its record up to
        date (once the frame is on flash: the record never runs ahead of the
        queue). confirm: the accepted pulse once the frame is on flash."""
        fields[frames.K_SID] = self.sid
        flags = fields.get(frames.K_FLAGS, 0) | self.base_flags | (frames.FLAG_DURESS if self.duress else 0)
        if flags:
            fields[frames.K_FLAGS] = flags
        if self._prev:
            fields[frames.K_PREV] = self._prev
        wire = self._emit(now_ms, ftype, fields, audio)
        self._prev = frames.chain_link(wire)
        self._seq = fields.get(frames.K_SEQ, self._seq)
        if confirm:
            self._confirm_due = True
        if ftype not in _CLOSING:  # a closing frame: _finish() forgets the record instead
            self._sync_record(now_ms)
        return wire

    def _on_flash(self):
        return self.frame_on_flash is None or self.frame_on_flash()

    def _sync_record(self, now_ms):
        """The record follows the alert: rewritten while it lives, removed when
        it is over; deferred while the newest frame waits in RAM."""
        self._dirty = True
        self._caught_up(now_ms)

    def _caught_up(self, now_ms):
        if not self._on_flash():
            return
        if self._dirty and self.storage is not None:
            if self.live:
                self._write(self._record(now_ms, 0))
            else:
                try:
                    alertrec.remove(self.storage)
                except OSError as e:
                    _log.e("cannot remove the alert's record: %s", e)
        self._dirty = False
        if self._confirm_due:
            self._confirm_due = False
            self.haptic.confirm(now_ms)

    def _record(self, now_ms, want):
        return alertrec.Record(want, self._trig, self.duress, self.sid, self._utc0, self._seq,
                               ticks_diff(now_ms, self._t0), self._prev)

    def _write(self, rec):
        """Put the record on flash; False when the flash refused it (logged)."""
        if self.storage is None:
            return False
        try:
            alertrec.write(self.storage, rec)
            return True
        except OSError as e:
            _log.e("cannot keep the alert's record: %s", e)
            return False

    def resume(self, now_ms, next_sid=None):
        """At boot: carry on with the alert the record on flash describes.
        An alert whose alert-start never reached the queue is raised now (same
        trigger, the time of the pattern; next_sid gives it an id). A live alert
        keeps its id and its chain, whose link comes from the newest frame of it
        queued after the record (else from the record); a cancel or duress the
        officer asked for and that is not queued is made now. Locations resume
        (audio does not: the clip belongs to the moment of the trigger).
        Returns True if an alert is live."""
        if self.storage is None:
            return False
        rec = alertrec.read(self.storage)
        if rec is None:
            return False
        got = alertrec.find(rec, self.queue) if self.queue is not None else alertrec.Found()
        if self.queue is None:
            got.sid = rec.sid
        if got.ftype in _CLOSING:
            self._dirty = True  # the alert was over; only its record was left behind
            self._caught_up(now_ms)
            return False
        self.resumed = True
        self._trig = rec.trig or self.trig_kind
        self._utc0 = rec.utc_s
        if got.sid == 0:
            if next_sid is None:
                return False
            self._start(now_ms, next_sid(), utc_s=rec.utc_s)
            _log.i("alert %d raised again after a restart", self.sid)
            return True
        self.sid = got.sid
        self.duress = rec.duress or bool(got.types & (1 << frames.DURESS))
        self._prev = got.link if got.seq else rec.link
        self._seq = got.seq if got.seq else rec.seq
        self.live = True
        self._t0 = ticks_add(now_ms, -rec.elapsed_ms)
        self._power_gnss(True)
        self._gnss_until = ticks_add(now_ms, self.keep_gnss_ms)
        self._next_loc = now_ms  # a position at once: where is the officer now?
        _log.i("alert %d resumed after a restart", self.sid)
        if rec.want in (frames.CANCEL, frames.DURESS) and not got.types & (1 << rec.want):
            self._carry_out(now_ms, rec.want)  # asked for, and cut short
        elif got.seq:
            self._sync_record(now_ms)  # the queue is ahead of the record: catch up before acks
        return self.live

    def gnss_for(self, now_ms, ms):
        """Keep the GNSS on for at least ms from now (a check-in's position);
        step() turns it off again when no alert needs it."""
        until = ticks_add(now_ms, ms)
        if self._gnss_until is None or ticks_diff(until, self._gnss_until) > 0:
            self._gnss_until = until
        self._power_gnss(True)

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
