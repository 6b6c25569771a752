# Wall-clock time for frames: GNSS time when the receiver has it, else the
# monitoring centre's time (from delivery answers), else 0 ("unknown", as
# docs/frames.md says). Both are anchored to a tick and carried forward by
# the ticks since, so no clock is read here.
from sotto.ticks import ticks_diff


class Clock:
    def __init__(self, gnss=None):
        self.gnss = gnss
        self._net = None  # (epoch_s, tick)

    def set_network(self, epoch_s, now_ms):
        self._net = (int(epoch_s), now_ms)

    def utc_s(self, now_ms):
        """Epoch seconds now, or 0 when no source has told us yet."""
        if self.gnss is not None:
            t = self.gnss.utc_s(now_ms)
            if t is not None:
                return t
        if self._net is not None:
            return self._net[0] + ticks_diff(now_ms, self._net[1]) // 1000
        return 0
