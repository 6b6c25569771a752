# Battery and the frames that keep the centre informed without revealing
# where the officer is: heartbeats (no location, ever), low-battery status
# frames at low_pct and critical_pct, and reserve mode at or below
# reserve_pct, in which everything but alerts is suspended (no heartbeats, no
# status frames but the one that says so).
from micropython import const

from sotto import frames
from sotto.ticks import ticks_add, ticks_diff

# LiPo open-circuit voltage (mV) to state of charge (%), piecewise linear
CURVE = ((3300, 0), (3500, 5), (3600, 10), (3700, 20), (3750, 30), (3790, 40),
         (3830, 50), (3870, 60), (3920, 70), (3980, 80), (4060, 90), (4150, 100))
_HYST = const(3)  # % above a threshold before it can fire again (after a charge)
SAMPLE_MS = const(5000)
# The modem's transmit bursts (up to 2 A) pull the cell down for a moment;
# the charge is read as the best of the last two samples, so one sample taken
# during a burst does not announce an empty battery.
_WINDOW = const(2)

LEVEL_NONE = const(0)
LEVEL_LOW = const(1)
LEVEL_CRITICAL = const(2)
LEVEL_RESERVE = const(3)
_STATUS = (0, frames.ST_BATT_LOW, frames.ST_BATT_CRITICAL, frames.ST_BATT_RESERVE)


def percent(mv):
    """State of charge (0..100) of a LiPo cell at mv millivolts."""
    if mv <= CURVE[0][0]:
        return 0
    for i in range(1, len(CURVE)):
        v1, p1 = CURVE[i]
        if mv <= v1:
            v0, p0 = CURVE[i - 1]
            return p0 + (mv - v0) * (p1 - p0) // (v1 - v0)
    return 100


class Power:
    def __init__(self, cfg, battery_mv, emit, now_ms=0):
        """emit(now_ms, ftype, fields) signs and queues a frame."""
        self.configure(cfg)
        self._battery_mv = battery_mv
        self._emit = emit
        self._samples = [percent(battery_mv())] * _WINDOW
        self.pct = self._samples[0]
        self._sent = LEVEL_NONE  # deepest level reported
        self._next_sample = now_ms
        self._next_hb = ticks_add(now_ms, self.heartbeat_s * 1000)
        self.heartbeats = 0
        self.enabled = True  # False in minimal (boot-loop) mode: no heartbeats

    def configure(self, cfg, now_ms=None):
        """Take the thresholds and heartbeat interval of a (new) configuration;
        with now_ms, the next heartbeat is due one new interval from now."""
        b = cfg["battery"]
        self.low_pct = b["low_pct"]
        self.critical_pct = b["critical_pct"]
        self.reserve_pct = b["reserve_pct"]
        self.heartbeat_s = cfg["heartbeat_every_s"]
        if now_ms is not None:
            self._next_hb = ticks_add(now_ms, self.heartbeat_s * 1000)

    @property
    def reserve(self):
        return self.pct <= self.reserve_pct

    def level(self):
        pct = self.pct
        if pct <= self.reserve_pct:
            return LEVEL_RESERVE
        if pct <= self.critical_pct:
            return LEVEL_CRITICAL
        if pct <= self.low_pct:
            return LEVEL_LOW
        return LEVEL_NONE

    def step(self, now_ms):
        """Sample the battery and send what is due; ms until the next call."""
        if ticks_diff(now_ms, self._next_sample) >= 0:
            self._next_sample = ticks_add(now_ms, SAMPLE_MS)
            self._sample(now_ms)
        if ticks_diff(now_ms, self._next_hb) >= 0:
            self._next_hb = ticks_add(now_ms, self.heartbeat_s * 1000)
            if self.enabled and not self.reserve:
                self.heartbeats += 1
                self._emit(now_ms, frames.HEARTBEAT, {frames.K_BATT: self.pct,
                                                      frames.K_HB: self.heartbeat_s})
        return min(ticks_diff(self._next_sample, now_ms), ticks_diff(self._next_hb, now_ms))

    def _sample(self, now_ms):
        s = self._samples
        for i in range(_WINDOW - 1):
            s[i] = s[i + 1]
        s[_WINDOW - 1] = percent(self._battery_mv())
        self.pct = pct = max(s)
        level = self.level()
        if level > self._sent:
            self._sent = level  # the deepest only: a jump from 30 % to 4 % says "reserve"
            self._emit(now_ms, frames.STATUS, {frames.K_BATT: pct, frames.K_ST: _STATUS[level]})
        elif level < self._sent:
            # charged again: re-arm a threshold once clearly above it
            limits = (100, self.low_pct, self.critical_pct, self.reserve_pct)
            while self._sent > level and pct >= limits[self._sent] + _HYST:
                self._sent -= 1
