# Time for frames: wall-clock UTC and uptime.
#
# UTC: GNSS time when the receiver has it, else the monitoring centre's time
# (from delivery answers), else 0 ("unknown", as docs/frames.md says). Neither
# may be earlier than the firmware's build date (sotto.build; GNSS dates have
# their week roll-over undone in sotto.gnss first). When both are known and
# disagree by more than GNSS_NET_BOUND_S the centre's time wins: it comes over
# TLS from a clock the centre keeps right, while a receiver can be wrong by
# whole roll-over periods or report a stale date after a cold start.
# Once the device has a network time, an answer may move it by at most
# NET_STEP_MAX_S (a bounded step per answer, towards the answer's time): a
# centre clock that jumps, or one bad answer, cannot throw the frames' dates
# years off; a real correction arrives over a few answers. Until the first
# network time since boot (unset), any time from the build date on is taken.
# The network time is anchored to a tick and carried forward by the ticks since.
# Tick differences are only valid within half the tick period (2^29 ms, about
# 6 days), so every reading moves the anchor forward by whole seconds; the
# device reads the clock at least every few minutes (heartbeats, housekeeping).
#
# Uptime: ms since boot, accumulated from tick differences so that it keeps
# counting past the tick wrap (frames carry it modulo 2^32).
from micropython import const

from sotto.build import BUILD_UTC_S
from sotto.ticks import ticks_add, ticks_diff

MIN_EPOCH_S = BUILD_UTC_S  # a time before the build date is a fault, not a time
# GNSS and network time further apart than this: the network's wins. Well above
# the centre's clock error, an answer's latency and a day of crystal drift
# (50 ppm: 4 s), well below any date fault.
GNSS_NET_BOUND_S = const(60)
# How far one answer may move a network time the device already has: above a
# day of crystal drift (50 ppm: 4 s) and an answer's latency, far below a date fault.
NET_STEP_MAX_S = const(300)
_REANCHOR_MS = const(3600000)  # move the network anchor forward after an hour


class Clock:
    net_step_max_s = NET_STEP_MAX_S  # tunable (tests, a board that needs another bound)

    def __init__(self, gnss=None, now_ms=0):
        self.gnss = gnss
        self._net_s = 0  # network epoch seconds at tick _net_tick (0: none yet)
        self._net_tick = 0
        self._up_s = 0  # uptime in whole seconds plus _up_rem ms: small ints for 34 years
        self._up_rem = 0
        self._up_tick = now_ms
        self.rejected = 0  # implausible network times ignored
        self.net_clamped = 0  # answers whose time was further off than one step allows
        self.gnss_rejected = 0  # readings where GNSS time lost to the network's
        self.gnss_too_early = 0  # GNSS times before the build date, ignored

    def set_network(self, epoch_s, now_ms):
        """The centre's clock (epoch seconds) as of now_ms: taken whole when the
        device has no network time yet, else moved at most net_step_max_s."""
        epoch_s = int(epoch_s)
        if epoch_s < MIN_EPOCH_S:
            self.rejected += 1
            return
        if self._net_s:
            now_s = self.network_s(now_ms)
            limit = self.net_step_max_s
            if epoch_s > now_s + limit:
                epoch_s = now_s + limit
                self.net_clamped += 1
            elif epoch_s < now_s - limit:
                epoch_s = now_s - limit
                self.net_clamped += 1
        self._net_s = epoch_s
        self._net_tick = now_ms

    def reanchor(self, epoch_s, now_ms):
        """Replace the network time, unbounded. Not on the device's path: the
        simulator uses it to make its virtual clock the world's time."""
        self._net_s = 0
        self.set_network(epoch_s, now_ms)

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
        net = self.network_s(now_ms)
        t = self.gnss.utc_s(now_ms) if self.gnss is not None else None
        if t is not None and t < MIN_EPOCH_S:
            self.gnss_too_early += 1
            t = None
        if t is not None:
            if net is None or -GNSS_NET_BOUND_S <= t - net <= GNSS_NET_BOUND_S:
                return t
            self.gnss_rejected += 1
        return 0 if net is None else net

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
