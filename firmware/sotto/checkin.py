# Timed check-in ("amber"): the officer tells the centre a visit starts, how
# long it should take, and that it ended; if it is neither extended nor ended
# in time, the device raises an alert on its own (trig 3, check-in-overdue).
#
#   start pattern   opens a visit of checkin.minutes (a start during an open
#                   visit sets it to checkin.minutes from now, same visit id)
#   extend pattern  the open visit ends checkin.extend_minutes from now
#   end pattern     the visit is over
#
# Each one sends a check-in frame (docs/frames.md: visit, due, dur, with a
# location: a check-in is one of the two times location leaves the device)
# and answers on the wrist at once. The GNSS is turned on for the frame: it
# goes when a position is known, or after FIX_WAIT_MS with the best there is
# (last known, or none), with `dur` as it is then. A later pattern sends the
# frame waiting first (a start is never lost to an end that follows it).
# The answer with its own pattern (checkin.started /
# extended / ended). Extend or end with no visit open gets no answer at all:
# the officer feels that nothing happened. A reminder pattern comes
# checkin.remind_min before the end. At the end the visit is over for the
# device and the alert is raised (raise_alert(now_ms, trig) -> bool, the
# Device's; False when an alert is live already: that alert covers the officer).
#
# The visit lives in RAM: a restart forgets it on the device (the centre keeps
# its own timer from the frames and shows the visit overdue, sotto visits).
# The visit id is a counter on flash, so ids do not repeat across restarts.
import struct

from micropython import const

from sotto import frames, trigger
from sotto.log import Logger
from sotto.ticks import ticks_add, ticks_diff

IDLE_MS = const(60000)
FIX_WAIT_MS = const(30000)  # how long a check-in frame waits for a position
VISIT = "visit"  # the last visit id handed out, on flash
STARTED = "visit-started"  # haptic pattern names (the observer hears them)
EXTENDED = "visit-extended"
ENDED = "visit-ended"
REMINDER = "visit-reminder"

_log = Logger("checkin")


class CheckIn:
    def __init__(self, cfg, emit, haptic, locate, utc_s, battery, raise_alert, storage=None, gnss_on=None,
                 fresh=None):
        """emit(now_ms, ftype, fields) queues a frame; locate(fields, now_ms)
        adds `loc` when a position is known (True); utc_s(now_ms) -> epoch s
        or 0; battery() -> %; gnss_on(now_ms, ms) keeps the GNSS on that long;
        fresh(now_ms) -> True when the GNSS has a current fix (None: never wait)."""
        self.configure(cfg)
        self._emit = emit
        self.haptic = haptic
        self._locate = locate
        self._utc_s = utc_s
        self._battery = battery
        self._raise = raise_alert
        self.storage = storage
        self._gnss_on = gnss_on
        self._fresh = fresh
        self._wait = None  # (visit, ended, fix deadline) of the check-in frame waiting for a position
        self.visit = 0  # the open visit's id, 0: none
        self._due = 0  # ticks of its end
        self._reminded = False
        self.overruns = 0
        self.ignored = 0

    def configure(self, cfg):
        """The checkin.* settings (at boot, and from the centre's `config`
        command: an open visit keeps its end)."""
        c = cfg["checkin"]
        self.enabled = c["enabled"]
        self._press = ((c["start"], trigger.VISIT_START), (c["extend"], trigger.VISIT_EXTEND),
                       (c["end"], trigger.VISIT_END)) if self.enabled else ()
        self.visit_ms = c["minutes"] * 60000
        self.extend_ms = c["extend_minutes"] * 60000
        self.remind_ms = c["remind_min"] * 60000
        self.patterns = {STARTED: tuple(c["started"]), EXTENDED: tuple(c["extended"]),
                         ENDED: tuple(c["ended"]), REMINDER: tuple(c["reminder"])}

    def patterns_for_trigger(self):
        """(pattern, event) pairs for sotto.trigger.Trigger (none when disabled)."""
        return self._press

    @property
    def open(self):
        return self.visit != 0

    def event(self, ev, now_ms):
        """A check-in pattern was recognised (trigger.VISIT_*)."""
        if ev == trigger.VISIT_START:
            if not self.visit:
                self.visit = self._next_id()
                self._set_end(now_ms, self.visit_ms)
                self._send(now_ms, self.visit_ms)
                self._play(STARTED, now_ms)
                _log.i("visit %d started", self.visit)
                return
            ev, length = trigger.VISIT_EXTEND, self.visit_ms  # restarts the open visit
        else:
            length = self.extend_ms
        if not self.visit:
            self.ignored += 1  # nothing to extend or end: no answer
            return
        if ev == trigger.VISIT_EXTEND:
            self._set_end(now_ms, length)
            self._send(now_ms, length)
            self._play(EXTENDED, now_ms)
            _log.i("visit %d extended", self.visit)
        elif ev == trigger.VISIT_END:
            self._send(now_ms, 0)
            self._play(ENDED, now_ms)
            _log.i("visit %d ended", self.visit)
            self.visit = 0

    def step(self, now_ms):
        wait = IDLE_MS
        if self._wait is not None:
            wait = self._flush(now_ms, False)
        if not self.visit:
            return wait
        left = ticks_diff(self._due, now_ms)
        if left <= 0:
            v = self.visit
            if self._wait is not None:
                self._flush(now_ms, True)
            self.visit = 0
            self.overruns += 1
            _log.w("visit %d overran", v)
            self._raise(now_ms, frames.TRIG_CHECKIN)
            return IDLE_MS
        if not self._reminded and self.remind_ms and left <= self.remind_ms:
            self._reminded = True
            self._play(REMINDER, now_ms)
        due = left - self.remind_ms if not self._reminded else left
        return due if due < wait else wait

    def _set_end(self, now_ms, length_ms):
        self._due = ticks_add(now_ms, length_ms)
        self._reminded = length_ms <= self.remind_ms  # no reminder for what is already that short

    def _send(self, now_ms, dur_ms):
        """A check-in frame for the open visit (dur_ms 0: it ended), once a
        position is known or FIX_WAIT_MS has passed."""
        if self._wait is not None:
            self._flush(now_ms, True)  # the one before goes first, as it is
        self._wait = (self.visit, dur_ms == 0, ticks_add(now_ms, FIX_WAIT_MS))
        if self._gnss_on is not None:
            self._gnss_on(now_ms, FIX_WAIT_MS)
        self._flush(now_ms, False)

    def _flush(self, now_ms, force):
        """Send the waiting frame if it may go now; ms until it must."""
        w = self._wait
        if w is None:
            return IDLE_MS
        visit, ended, deadline = w
        f = {frames.K_BATT: self._battery(), frames.K_VISIT: visit}
        fresh = self._fresh is None or self._fresh(now_ms)
        if not (fresh or force or ticks_diff(now_ms, deadline) >= 0):
            return min(ticks_diff(deadline, now_ms), 1000)  # look for a position every second
        self._locate(f, now_ms)  # the fix, or the last known position, or none
        dur = 0 if ended or visit != self.visit else max(0, ticks_diff(self._due, now_ms)) // 1000
        utc = self._utc_s(now_ms)
        f[frames.K_DUE] = (utc + dur) if utc else 0
        f[frames.K_DUR] = dur
        self._wait = None
        self._emit(now_ms, frames.CHECK_IN, f)
        return IDLE_MS

    def _play(self, name, now_ms):
        self.haptic.play(name, self.patterns[name], now_ms)

    def _next_id(self):
        n = 0
        st = self.storage
        if st is not None:
            raw = st.read(VISIT)
            n = struct.unpack(">I", raw)[0] if raw is not None and len(raw) == 4 else 0
        n = n + 1 if n < 0xFFFFFFF else 1
        if st is not None:
            try:
                st.write_atomic(VISIT, struct.pack(">I", n))
            except OSError as e:  # the visit still runs; an id may repeat after a restart
                _log.e("cannot save the visit id: %s", e)
        return n
