# The hidden button: debounce, then recognise the configured patterns.
#
# A pattern is a hold ({"hold_ms": T}) or a burst of presses
# ({"presses": N, "window_ms": W}: N presses, the last starting within W ms of
# the first). The trigger only recognises; the session decides what a pattern
# means now (an ALERT pattern during a live alert is ignored, for instance).
#
# A burst is the run of presses that follow one another closely: it is decided
# only once the widest window since its first press has passed *and* no press
# has started for gap_ms (half that window). A run of presses that goes on past
# the window is no pattern at all, so a slow or nervous tapping never turns
# into a CANCEL by being cut at an arbitrary point.
#
# Debouncing: a level counts once it has been stable for debounce_ms; it takes
# the time of the edge that began it, so hold and window timing are exact. A
# bounce shorter than debounce_ms never reaches the pattern logic.
#
# Everything is driven by edge(t_ms, pressed) and poll(now_ms); no clock is
# read and all time arithmetic goes through sotto.ticks (wrap-safe).
from micropython import const

from sotto.ticks import ticks_diff

NONE = const(0)
ALERT = const(1)
CANCEL = const(2)
DURESS = const(3)
YES = const(4)  # the officer's answers to a question from the centre (sotto.commands)
NO = const(5)
VISIT_START = const(6)  # check-in patterns (sotto.checkin), recognised only when given to Trigger
VISIT_EXTEND = const(7)
VISIT_END = const(8)
NAMES = ("none", "alert", "cancel", "duress", "yes", "no", "visit-start", "visit-extend", "visit-end")

IDLE_MS = const(60000)
_EVENTS = (ALERT, CANCEL, DURESS, YES, NO)
_KEYS = ("alert", "cancel", "duress", "yes", "no")


class Trigger:
    def __init__(self, cfg, extra=()):
        """cfg: the configuration's trigger section; extra: more (pattern,
        event) pairs (the check-in patterns when check-in is enabled)."""
        self.debounce_ms = int(cfg.get("debounce_ms", 20))
        self.hold = []  # [(hold_ms, event)]
        self.bursts = []  # [(presses, window_ms, event)]
        self.window_ms = 0
        pairs = [(cfg.get(key), ev) for key, ev in zip(_KEYS, _EVENTS)]
        pairs.extend(extra)
        for p, ev in pairs:
            if not p:
                continue
            if "hold_ms" in p:
                self.hold.append((int(p["hold_ms"]), ev))
            else:
                w = int(p["window_ms"])
                self.bursts.append((int(p["presses"]), w, ev))
                if w > self.window_ms:
                    self.window_ms = w
        self.hold.sort()
        self.gap_ms = self.window_ms // 2
        self._raw = False  # level of the last raw edge
        self._raw_t = 0
        self._pending = False  # a raw change not yet stable
        self._level = False  # debounced level
        self._press_t = 0  # start of the current debounced press
        self._held = 0  # hold patterns already reported for this press
        self._count = 0  # presses in the open burst
        self._first_t = 0
        self._last_t = 0
        self._out = []  # recognised events not yet returned by poll()
        self.bounces = 0

    # -- input ------------------------------------------------------------------
    def edge(self, t_ms, pressed):
        """One raw edge from the button (ISR-recorded, in order)."""
        pressed = bool(pressed)
        self._settle(t_ms)
        if pressed == self._raw:
            return
        if self._pending:
            self.bounces += 1  # changed back before it settled
        self._raw = pressed
        self._raw_t = t_ms
        self._pending = pressed != self._level
        if self._pending:
            return
        # back to the debounced level within debounce_ms: it was a bounce

    def _settle(self, now_ms):
        if self._pending and ticks_diff(now_ms, self._raw_t) >= self.debounce_ms:
            self._pending = False
            self._stable(self._raw, self._raw_t)

    def _stable(self, pressed, t):
        self._level = pressed
        if pressed:
            self._close_burst(t)
            self._press_t = t
            self._held = 0
            return
        self._check_hold(ticks_diff(t, self._press_t))  # a hold seen only at its release
        if self._held:
            return  # the release of a hold pattern is not a press
        if self._count == 0:
            self._first_t = self._press_t
        self._count += 1
        self._last_t = self._press_t

    def _burst_over(self, now_ms):
        return (ticks_diff(now_ms, self._first_t) > self.window_ms
                and ticks_diff(now_ms, self._last_t) > self.gap_ms)

    def _close_burst(self, now_ms):
        """A press starts: it ends the open burst only after a pause; otherwise
        it joins it (and a burst longer than every window matches nothing)."""
        if self._count and self._burst_over(now_ms):
            self._resolve()

    def _resolve(self):
        span = ticks_diff(self._last_t, self._first_t)
        for presses, window_ms, ev in self.bursts:
            if presses == self._count and span <= window_ms:
                self._out.append(ev)
                break
        self._count = 0

    def _check_hold(self, held_ms):
        while self._held < len(self.hold) and held_ms >= self.hold[self._held][0]:
            self._out.append(self.hold[self._held][1])
            self._held += 1
            self._count = 0  # a hold ends any burst in progress

    # -- output -----------------------------------------------------------------
    def poll(self, now_ms):
        """The next recognised pattern (ALERT, CANCEL, DURESS, YES, NO) or NONE."""
        self._settle(now_ms)
        if self._level and not self._pending:
            self._check_hold(ticks_diff(now_ms, self._press_t))
        if self._count and not self._level and not self._pending and self._burst_over(now_ms):
            self._resolve()
        if self._out:
            return self._out.pop(0)
        return NONE

    def next_ms(self, now_ms):
        """How long poll() may wait before something can be recognised."""
        wait = IDLE_MS
        if self._pending:
            wait = self.debounce_ms - ticks_diff(now_ms, self._raw_t)
        if self._level and self._held < len(self.hold):
            wait = min(wait, self.hold[self._held][0] - ticks_diff(now_ms, self._press_t))
        if self._count and not self._level and not self._pending:
            wait = min(wait, max(self.window_ms + 1 - ticks_diff(now_ms, self._first_t),
                                 self.gap_ms + 1 - ticks_diff(now_ms, self._last_t)))
        if self._out:
            wait = 0
        return wait if wait > 0 else 0

    @property
    def pressed(self):
        return self._level
