# Man-down and no-motion, from the accelerometer's interrupt edges.
#
# The HAL gives edges, in order, as (ticks_ms, kind), recorded by the pin
# interrupts of a low-power accelerometer (sotto/hal/lis2dh12.py; the
# simulator's virtual one feeds the same):
#   FALL      free-fall: all axes near 0 g for the chip's free-fall time
#   IMPACT    a shock over the impact threshold
#   ACTIVE    moving again after being still
#   STILL     still: stamped at the moment the stillness began (the HAL takes
#             the chip's inactivity delay off)
# Nothing is sampled by the firmware: the chip does the watching, the main
# CPU sleeps.
#
# no-motion   still for motion.no_motion_s                       -> pre-alarm
# man-down    FALL, an IMPACT within IMPACT_MS of it, a stillness beginning
#             within SETTLE_MS of the impact and lasting
#             motion.man_down_still_s                             -> pre-alarm
# pre-alarm   its own haptic pattern (motion.pre_alarm, again every
#             pre_alarm_every_s) for motion.pre_alarm_s; the officer cancels
#             it with the normal cancel pattern (cancel(), answered with the
#             accepted pulse); otherwise the alert is raised with trig 4
#             (no-motion) or 5 (man-down): raise_alert(now_ms, trig), the Device's.
#
# Why these false alarms stay quiet: sitting down, putting the device on a
# table, walking and driving have no free-fall, so no man-down; a dropped
# device has free-fall and impact, but the officer picks it up (ACTIVE) before
# man_down_still_s. No-motion is about stillness alone: a device left on a
# table does raise it (that is what it is for), so it is off by default and
# enabled per device. After a cancel the stillness is counted again from the
# cancel; after an alert, only a new stillness (after moving) counts.
from micropython import const

from sotto import frames
from sotto.log import Logger
from sotto.ticks import ticks_add, ticks_diff

FALL = const(1)
IMPACT = const(2)
ACTIVE = const(3)
STILL = const(4)
KINDS = ("", "fall", "impact", "active", "still")
IMPACT_MS = const(1000)  # the impact follows the end of the free-fall within this
SETTLE_MS = const(5000)  # the stillness begins within this after the impact
IDLE_MS = const(60000)
PRE_ALARM = "pre-alarm"  # the haptic pattern's name

_log = Logger("motion")


class Motion:
    def __init__(self, cfg, haptic, raise_alert):
        self.configure(cfg)
        self.haptic = haptic
        self._raise = raise_alert
        self.still = False  # still since _still_t
        self._still_t = 0
        self._fall_t = 0
        self._fell = False  # a free-fall not yet followed by an impact
        self._impact = False  # man-down armed since _impact_t
        self._impact_t = 0
        self._spent = False  # this stillness already gave a pre-alarm (until moving again)
        self.pre = 0  # the pre-alarm's trig (TRIG_NO_MOTION / TRIG_MAN_DOWN), 0: none
        self._pre_end = 0
        self._pre_next = 0
        self.pre_alarms = 0
        self.cancelled = 0
        self.alerts = 0

    def configure(self, cfg):
        """The motion.* settings (at boot, and from the centre's `config` command)."""
        m = cfg["motion"]
        self.no_motion = m["no_motion"]
        self.man_down = m["man_down"]
        self.no_motion_ms = m["no_motion_s"] * 1000
        self.still_ms = m["man_down_still_s"] * 1000
        self.pre_ms = m["pre_alarm_s"] * 1000
        self.every_ms = m["pre_alarm_every_s"] * 1000
        self.pattern = tuple(m["pre_alarm"])

    @property
    def enabled(self):
        return self.no_motion or self.man_down

    def edge(self, t_ms, kind):
        """One accelerometer edge, in order."""
        if kind == FALL:
            self._fell = True
            self._fall_t = t_ms
        elif kind == IMPACT:
            if self._fell and 0 <= ticks_diff(t_ms, self._fall_t) <= IMPACT_MS:
                self._impact = True
                self._impact_t = t_ms
                self._spent = False
            self._fell = False
        elif kind == ACTIVE:
            self.still = False
            self._spent = False
            if self._impact and ticks_diff(t_ms, self._impact_t) > 0:
                self._impact = False  # moving after the impact: the officer is up
        elif kind == STILL:
            self.still = True
            self._still_t = t_ms

    def cancel(self, now_ms):
        """The cancel pattern: True if it cancelled a pre-alarm."""
        if not self.pre:
            return False
        _log.i("pre-alarm %d cancelled", self.pre)
        self.pre = 0
        self.cancelled += 1
        self._impact = False
        self._spent = False
        if self.still:
            self._still_t = now_ms  # counted again from the cancel
        self.haptic.confirm(now_ms)
        return True

    def stop(self):
        """An alert went live some other way: a pre-alarm is moot."""
        self.pre = 0

    def step(self, now_ms):
        if self.pre:
            if ticks_diff(now_ms, self._pre_end) >= 0:
                trig, self.pre = self.pre, 0
                self._impact = False
                self._spent = True
                self.alerts += 1
                _log.w("no cancel: alert %d", trig)
                self._raise(now_ms, trig)
                return IDLE_MS
            if ticks_diff(now_ms, self._pre_next) >= 0:
                self._pre_next = ticks_add(now_ms, self.every_ms)
                self.haptic.play(PRE_ALARM, self.pattern, now_ms)
            return min(ticks_diff(self._pre_end, now_ms), ticks_diff(self._pre_next, now_ms))
        wait = IDLE_MS
        if self._impact and self.man_down:
            if self.still and 0 <= ticks_diff(self._still_t, self._impact_t) <= SETTLE_MS:
                left = self.still_ms - ticks_diff(now_ms, self._still_t)
                if left <= 0:
                    return self._pre_alarm(now_ms, frames.TRIG_MAN_DOWN)
                wait = left
            elif ticks_diff(now_ms, self._impact_t) > SETTLE_MS + IDLE_MS:
                self._impact = False  # never settled: the officer is up and about
        if self.no_motion and self.still and not self._spent:
            left = self.no_motion_ms - ticks_diff(now_ms, self._still_t)
            if left <= 0:
                return self._pre_alarm(now_ms, frames.TRIG_NO_MOTION)
            wait = min(wait, left)
        return wait

    def _pre_alarm(self, now_ms, trig):
        self.pre = trig
        self.pre_alarms += 1
        self._spent = True
        self._pre_end = ticks_add(now_ms, self.pre_ms)
        self._pre_next = ticks_add(now_ms, self.every_ms)
        self.haptic.play(PRE_ALARM, self.pattern, now_ms)
        _log.w("pre-alarm %d: cancel within %d s", trig, self.pre_ms // 1000)
        return 0
