# Time for frames: wall-clock UTC and uptime.
#
# UTC: GNSS time when the receiver has it, else the monitoring centre's time
# (from delivery answers), else 0 ("unknown", as docs/frames.md says). The
# network time is anchored to a tick and carried forward by the ticks since.
# Tick differences are only valid within half the tick period (2^29 ms, about
# 6 days), so every reading moves the anchor forward by whole seconds; the
# device reads the clock at least every few minutes (heartbeats, housekeeping).
#
# Uptime: ms since boot, accumulated from tick differences so that it keeps
# counting past the tick wrap (frames carry it modulo 2^32).
from micropython import const

from sotto.ticks import ticks_add, ticks_diff

MIN_EPOCH_S = const(1577836800)  # 2020-01-01: a network time before this is a fault, not a time
_REANCHOR_MS = const(3600000)  # move the network anchor forward after an hour


class Clock:
    def __init__(self, gnss=None, now_ms=0):
        self.gnss = gnss
        self._net_s = 0  # network epoch seconds at tick _net_tick (0: none yet)
        self._net_tick = 0
        self._up_s = 0  # uptime in whole seconds plus _up_rem ms: small ints for 34 years
        self._up_rem = 0
        self._up_tick = now_ms
        self.rejected = 0  # implausible network times ignored

    def set_network(self, epoch_s, now_ms):
        """The centre's clock (epoch seconds) as of now_ms."""
        epoch_s = int(epoch_s)
        if epoch_s < MIN_EPOCH_S:
            self.rejected += 1
            return
        self._net_s = epoch_s
        self._net_tick = now_ms

    def network_s(self, now_ms):
        """Network time now, or None when the centre has not told us yet."""
        if not self._net_s:
            return None
        elapsed_ms = ticks_diff(now_ms, self._net_tick)
        if elapsed_ms >= _REANCHOR_MS:
            whole_s = elapsed_ms // 1000
            self._net_s += whole_s
            self._net_tick = ticks_add(self._net_tick, whole_s * 1000)
            elapsed_ms -= whole_s * 1000
        return self._net_s + elapsed_ms // 1000

    def utc_s(self, now_ms):
        """Epoch seconds now, or 0 when no source has told us yet."""
        if self.gnss is not None:
            t = self.gnss.utc_s(now_ms)
            if t is not None:
                return t
        t = self.network_s(now_ms)
        return 0 if t is None else t

    def tick(self, now_ms):
        """Account the time since the last call (at least every few days)."""
        d = ticks_diff(now_ms, self._up_tick)
        if d > 0:
            self._up_tick = now_ms
            r = self._up_rem + d
            self._up_s += r // 1000
            self._up_rem = r % 1000

    def uptime_ms(self, now_ms):
        """ms since boot; keeps counting past the tick wrap."""
        self.tick(now_ms)
        return self._up_s * 1000 + self._up_rem
