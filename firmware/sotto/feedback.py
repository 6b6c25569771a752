# What the officer feels of the centre's side of the loop: covert haptic
# patterns (sotto.haptic), no light, no sound.
#
#   received     the first authenticated acknowledgement of the alert-start
#   listening    the centre's `listening` command: an operator has the alert
#   not_through  once per alert, when the alert-start was not acknowledged
#                within not_through_s: the officer knows to try another way
#                (a status frame, st 10, tells the centre when it gets through)
#   questions    the centre's `ask` codes (sotto.commands)
#
# The patterns come from the configuration (feedback.*), which checks that
# each one feels different from the others and from the "pattern accepted"
# pulse (sotto.config.haptic_shape).
from micropython import const

from sotto import frames
from sotto.log import Logger
from sotto.ticks import ticks_add, ticks_diff

IDLE_MS = const(60000)
RECEIVED = "received"
LISTENING = "listening"
NOT_THROUGH = "not-through"

_log = Logger("feedback")


class Feedback:
    def __init__(self, cfg, haptic, emit=None, battery=None):
        """cfg: the device configuration; emit(now_ms, ftype, fields) queues a
        frame (Device._emit); battery() -> % for the status frame."""
        self.haptic = haptic
        self._emit = emit
        self._battery = battery
        self.configure(cfg)
        self.sid = 0  # the alert whose alert-start is watched
        self.got_through = True
        self._deadline = None  # ticks when not-through is due
        self.not_through = 0  # alerts that were not through in time

    def configure(self, cfg):
        """Take the patterns of a (new) configuration."""
        fb = cfg["feedback"]
        self.enabled = fb["enabled"]
        self.patterns = {RECEIVED: tuple(fb["received"]), LISTENING: tuple(fb["listening"]),
                         NOT_THROUGH: tuple(fb["not_through"])}
        self.questions = [tuple(q) for q in fb["questions"]]
        self.not_through_ms = fb["not_through_s"] * 1000

    def alert_started(self, sid, now_ms):
        """A new alert's start frame is queued: watch for its acknowledgement."""
        self.sid = sid
        self.got_through = False
        self._deadline = ticks_add(now_ms, self.not_through_ms)

    def start_acked(self, sid, now_ms):
        """The centre stored an alert-start (an authenticated answer said so)."""
        if sid != self.sid or self.got_through:
            return
        self.got_through = True
        self._deadline = None
        self._play(RECEIVED, self.patterns[RECEIVED], now_ms)

    def alert_over(self):
        """The alert ended on the device: nothing more to tell about it."""
        self._deadline = None

    def listening(self, now_ms):
        self._play(LISTENING, self.patterns[LISTENING], now_ms)

    def question(self, q, now_ms):
        """Play question code q (1..len(questions)); False if there is none."""
        if type(q) is not int or not 1 <= q <= len(self.questions):
            return False
        self._play("q%d" % q, self.questions[q - 1], now_ms)
        return True

    def _play(self, name, pattern, now_ms):
        if self.enabled:
            self.haptic.play(name, pattern, now_ms)
        _log.i("wrist: %s", name)

    def step(self, now_ms):
        if self._deadline is None:
            return IDLE_MS
        wait = ticks_diff(self._deadline, now_ms)
        if wait > 0:
            return wait
        self._deadline = None
        self.not_through += 1
        self._play(NOT_THROUGH, self.patterns[NOT_THROUGH], now_ms)
        _log.w("alert %d not through after %d s", self.sid, self.not_through_ms // 1000)
        if self._emit is not None:
            self._emit(now_ms, frames.STATUS, {frames.K_BATT: self._battery() if self._battery else 0,
                                               frames.K_ST: frames.ST_NOT_THROUGH})
        return IDLE_MS
