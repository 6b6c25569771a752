# The covert answer: a short vibration pattern the officer feels and nobody
# else notices. Cancel and duress get the very same answer, so an onlooker who
# forces a cancel cannot tell which one was given. No light, no sound, ever.
from micropython import const

from sotto.ticks import ticks_diff

IDLE_MS = const(60000)
# on, off, on, ... in ms: two short pulses
CONFIRM_MS = (70, 130, 70)


class Haptic:
    def __init__(self, motor_fn, pattern_ms=CONFIRM_MS, enabled=True):
        self._motor = motor_fn
        self.pattern_ms = pattern_ms
        self.enabled = enabled
        self._start = 0
        self._step = -1  # index into pattern_ms; -1: idle
        self._on = False
        self.pulses = 0
        self.on_play = None  # fn(pattern name) when a pattern starts: the Device's observer hook

    def confirm(self, now_ms):
        """Play the confirmation pattern from now (restarts one in progress)."""
        if not self.enabled:
            return
        self._start = now_ms
        self._step = 0
        self._set(True)
        if self.on_play is not None:
            self.on_play("confirm")

    def _set(self, on):
        if on != self._on:
            self._on = on
            if on:
                self.pulses += 1
            self._motor(on)

    def step(self, now_ms):
        """Drive the motor; returns ms until the next change."""
        if self._step < 0:
            return IDLE_MS
        elapsed = ticks_diff(now_ms, self._start)
        at = 0
        for i in range(len(self.pattern_ms)):
            at += self.pattern_ms[i]
            if elapsed < at:
                self._set(i % 2 == 0)
                return at - elapsed
        self._set(False)
        self._step = -1
        return IDLE_MS

    @property
    def busy(self):
        return self._step >= 0
