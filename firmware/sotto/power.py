# Battery and the frames that keep the centre informed without revealing
# where the officer is: heartbeats (no location, ever), low-battery status
# frames at low_pct and critical_pct, and reserve mode below reserve_pct, in
# which everything but alerts is suspended.
from micropython import const

from sotto import frames
from sotto.ticks import ticks_add, ticks_diff

# LiPo open-circuit voltage (mV) to state of charge (%), piecewise linear
CURVE = ((3300, 0), (3500, 5), (3600, 10), (3700, 20), (3750, 30), (3790, 40),
         (3830, 50), (3870, 60), (3920, 70), (3980, 80), (4060, 90), (4150, 100))
_HYST = const(3)  # % above a threshold before it can fire again
SAMPLE_MS = const(10000)


def percent(mv):
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
        b = cfg["battery"]
        self.low_pct = b["low_pct"]
        self.critical_pct = b["critical_pct"]
        self.reserve_pct = b["reserve_pct"]
        self.heartbeat_s = cfg["heartbeat_every_s"]
        self._battery_mv = battery_mv
        self._emit = emit  # emit(now_ms, ftype, fields)
        self.pct = percent(battery_mv())
        self._sent = 0  # deepest threshold reported: 0, 1 low, 2 critical, 3 reserve
        self._next_sample = now_ms
        self._next_hb = ticks_add(now_ms, self.heartbeat_s * 1000)
        self.heartbeats = 0
        self.enabled = True  # False in minimal (boot-loop) mode: no heartbeats

    @property
    def reserve(self):
        return self.pct <= self.reserve_pct

    def step(self, now_ms):
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
        self.pct = pct = percent(self._battery_mv())
        level = 0
        if pct <= self.reserve_pct:
            level = 3
        elif pct <= self.critical_pct:
            level = 2
        elif pct <= self.low_pct:
            level = 1
        if level > self._sent:
            self._sent = level
            st = (0, frames.ST_BATT_LOW, frames.ST_BATT_CRITICAL, frames.ST_BATT_RESERVE)[level]
            self._emit(now_ms, frames.STATUS, {frames.K_BATT: pct, frames.K_ST: st})
        elif level < self._sent:
            # charged again: re-arm once clearly above the threshold
            limits = (100, self.low_pct, self.critical_pct, self.reserve_pct)
            while self._sent > level and pct >= limits[self._sent] + _HYST:
                self._sent -= 1
