# The covert answer: short vibration patterns the officer feels and nobody
# else notices. Cancel and duress get the very same answer, so an onlooker who
# forces a cancel cannot tell which one was given. No light, no sound, ever.
#
# Patterns queue: one that is asked for while another plays starts after it
# (and a pause the wearer can feel), so "received" is never cut short by
# "listening". The queue is bounded; when it is full the newest request is
# dropped and counted (dropped), never one that is playing.
from micropython import const

from sotto.ticks import ticks_add, ticks_diff

IDLE_MS = const(60000)
# on, off, on, ... in ms: two short pulses
CONFIRM_MS = (70, 130, 70)
CONFIRM = "confirm"
PAUSE_MS = const(600)  # between two queued patterns
QUEUE_MAX = const(4)  # patterns waiting behind the one that plays
HISTORY_MAX = const(8)


class Haptic:
    def __init__(self, motor_fn, pattern_ms=CONFIRM_MS, enabled=True):
        """enabled: the "pattern accepted" pulse (config trigger.haptic);
        play() is not affected by it."""
        self._motor = motor_fn
        self.pattern_ms = pattern_ms
        self.enabled = enabled
        self._start = 0
        self._step = -1  # -1: idle; else playing self._pattern
        self._pattern = pattern_ms
        self._name = None
        self._on = False
        self._waiting = []  # [(name, pattern)] behind the one that plays
        self._not_before = None  # the pause after the last pattern ends here
        self.pulses = 0
        self.dropped = 0
        self.history = []  # names of the last HISTORY_MAX patterns started (diagnostics, tests)
        self.on_play = None  # fn(pattern name) when a pattern starts: the Device's observer hook

    def confirm(self, now_ms):
        """The "pattern accepted" pulse: next, right after what plays now (the
        officer waits for it)."""
        if self.enabled:
            self.play(CONFIRM, self.pattern_ms, now_ms, first=True)

    def play(self, name, pattern_ms, now_ms, first=False):
        """Queue a pattern (on, off, on, ... ms); it starts at once when the
        motor is free. Returns False when the queue was full (dropped)."""
        if self._step >= 0 or self._waiting or not self._rested(now_ms):
            if len(self._waiting) >= QUEUE_MAX:
                self.dropped += 1
                return False
            if first:
                self._waiting.insert(0, (name, pattern_ms))
            else:
                self._waiting.append((name, pattern_ms))
            return True
        self._begin(name, pattern_ms, now_ms)
        return True

    def _rested(self, now_ms):
        return self._not_before is None or ticks_diff(now_ms, self._not_before) >= 0

    def _begin(self, name, pattern_ms, now_ms):
        self._name = name
        self._pattern = pattern_ms
        self._start = now_ms
        self._step = 0
        h = self.history
        if len(h) >= HISTORY_MAX:
            h.pop(0)
        h.append(name)
        self._set(True)
        if self.on_play is not None:
            self.on_play(name)

    def _set(self, on):
        if on != self._on:
            self._on = on
            if on:
                self.pulses += 1
            self._motor(on)

    def step(self, now_ms):
        """Drive the motor; returns ms until the next change."""
        if self._step < 0:
            if not self._waiting:
                return IDLE_MS
            if not self._rested(now_ms):
                return ticks_diff(self._not_before, now_ms)
            name, pattern = self._waiting.pop(0)
            self._begin(name, pattern, now_ms)
        elapsed = ticks_diff(now_ms, self._start)
        pattern = self._pattern
        at = 0
        for i in range(len(pattern)):
            at += pattern[i]
            if elapsed < at:
                self._set(i % 2 == 0)
                return at - elapsed
        self._set(False)
        self._step = -1
        self._not_before = ticks_add(now_ms, PAUSE_MS)
        return PAUSE_MS if self._waiting else IDLE_MS

    @property
    def busy(self):
        return self._step >= 0 or bool(self._waiting)

    @property
    def playing(self):
        """The name of the pattern on the motor now, or None."""
        return self._name if self._step >= 0 else None
