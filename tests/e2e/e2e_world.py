# The world around the device in the end-to-end lane: one clock and the timed
# events of every part outside the firmware (modem, GNSS, microphone, button,
# network). Plain Python that runs in the MicroPython VM and under CPython.
#
# Time is kept in microseconds since the world began (`now_us`), never
# wrapped; the device's own tick counter is `ticks_ms()`: it starts at
# `offset_ms` and wraps at 2**30 like an ESP32's time.ticks_ms(), so a boot
# can be placed anywhere on the tick circle.
#
# How device time passes (see docs/architecture.md, "The end-to-end lane"):
#   virtual mode (factor 0): a pass of the firmware's loop costs PASS_FLOOR_US,
#     whatever the VM took: runs are repeatable and independent of the machine.
#   device-speed mode (factor F): a pass costs F x the VM CPU time it took
#     (measured by the host around the pass), so work the ESP32 would take long
#     over shows up as late microphone reads and late watchdog feeds.
# In both, a UART write that does not fit the driver's TX buffer blocks the
# pass for as long as the line needs to drain (115 200 baud: 87 us a byte).
import heapq

TICKS_PERIOD = 1 << 30
TICKS_MASK = TICKS_PERIOD - 1
PASS_FLOOR_US = 1000  # virtual mode: every pass of the main loop costs 1 ms
SLOWEST_KEPT = 12


class World:
    def __init__(self, offset_ms=0, factor=0, cpu_us=None):
        self.offset_ms = offset_ms
        self.factor = factor  # device time per unit of VM CPU time (0: virtual mode)
        self.cpu_us = cpu_us  # host's CPU clock (device-speed mode only)
        self.now_us = 0
        self._events = []  # heap of (t_us, n, fn, args)
        self._n = 0
        # the pass in progress (see pass_begin / pass_end)
        self._cpu0 = 0
        self._start_us = 0
        self._excluded_us = 0
        self._in_pass = False
        self.block_us = 0  # UART writes that blocked during this pass
        self.cpu_overhead_us = 0  # cost of reading the CPU clock, subtracted
        self.passes = 0
        self.pass_max_us = 0
        self.pass_total_us = 0
        self.cpu_total_us = 0
        self.slowest = []  # the SLOWEST_KEPT slowest passes: (cost_us, started at world ms)

    # -- the clock ---------------------------------------------------------
    def ms(self):
        return self.now_us // 1000

    def ticks_ms(self):
        return (self.offset_ms + self.now_us // 1000) & TICKS_MASK

    def ticks_at(self, t_us):
        return (self.offset_ms + t_us // 1000) & TICKS_MASK

    # -- events -------------------------------------------------------------
    def at(self, t_us, fn, *args):
        """Call fn(*args) when the clock reaches t_us (at once if already past)."""
        if t_us < self.now_us:
            t_us = self.now_us
        self._n += 1
        heapq.heappush(self._events, (t_us, self._n, fn, args))

    def after_ms(self, ms, fn, *args):
        self.at(self.device_now_us() + int(ms * 1000), fn, *args)

    def next_event_us(self):
        return self._events[0][0] if self._events else None

    def advance_to(self, t_us):
        """Run every event due up to t_us, in order, each at its own time."""
        ev = self._events
        while ev and ev[0][0] <= t_us:
            t, _, fn, args = heapq.heappop(ev)
            if t > self.now_us:
                self.now_us = t
            fn(*args)
        if t_us > self.now_us:
            self.now_us = t_us

    def sleep_ms(self, ms):
        self.advance_to(self.now_us + ms * 1000)

    # -- passes of the firmware's main loop ---------------------------------
    def pass_begin(self):
        self.block_us = 0
        self._start_us = self.now_us
        self._excluded_us = 0
        self._in_pass = True
        if self.factor:
            self._cpu0 = self.cpu_us()

    def _cost_us(self, final=False):
        # what the pass has cost the device so far (virtual mode: the floor, at its end)
        if not self.factor:
            return (PASS_FLOOR_US if final else 0) + self.block_us
        cpu = self.cpu_us() - self._cpu0 - self._excluded_us - self.cpu_overhead_us
        return int((cpu if cpu > 0 else 0) * self.factor) + self.block_us

    def device_now_us(self):
        """The device's time now: inside a pass, its start plus what it has cost so far."""
        if not self._in_pass:
            return self.now_us
        t = self._start_us + self._cost_us()
        return t if t > self.now_us else self.now_us

    def catch_up(self):
        """Inside a pass: let the world's events happen up to the device's time
        now (an interrupt or a DMA completion does not wait for the pass to
        end). The VM time the world takes meanwhile is not the device's."""
        if not self._in_pass:
            return
        t0 = self.cpu_us() if self.factor else 0
        self.advance_to(self.device_now_us())
        if self.factor:
            self._excluded_us += self.cpu_us() - t0

    def pass_end(self):
        """Advance the clock by what the pass cost the device; returns that (us)."""
        cost = self._cost_us(True)
        self._in_pass = False
        if self.factor:
            self.cpu_total_us += (cost - self.block_us) // self.factor
        self.passes += 1
        self.pass_total_us += cost
        if cost > self.pass_max_us:
            self.pass_max_us = cost
        if len(self.slowest) < SLOWEST_KEPT or cost > self.slowest[-1][0]:
            self.slowest.append((cost, self._start_us // 1000))
            self.slowest.sort(key=lambda x: -x[0])
            del self.slowest[SLOWEST_KEPT:]
        self.advance_to(self._start_us + cost)
        return cost

    def calibrate(self, n=200):
        """Measure the cost of reading the CPU clock twice (subtracted per pass)."""
        if not self.factor:
            return
        best = None
        for _ in range(n):
            a = self.cpu_us()
            b = self.cpu_us()
            if best is None or b - a < best:
                best = b - a
        self.cpu_overhead_us = best or 0


class Line:
    """One UART: the device's side (any/read/write, as machine.UART) and the
    peripheral's side (send; `peer.received(data)` for what the device wrote).

    Bytes take 10 bits each at `baud`. The device's RX buffer holds `rxbuf`
    bytes (more are lost and counted in `rx_lost`); its TX side holds `txbuf`
    bytes plus the 128-byte hardware FIFO, and a write that does not fit
    blocks the pass until the line has drained enough (`world.block_us`)."""

    HW_FIFO = 128

    def __init__(self, world, baud, rxbuf=256, txbuf=256, peer=None):
        self.world = world
        self.byte_us = 10 * 1000000 // baud
        self.rxbuf = rxbuf
        self.txbuf = txbuf
        self.peer = peer
        self._rx = bytearray()
        self.rx_lost = 0
        self._down_free = 0  # us: when the line towards the device is free
        self._up_free = 0  # us: when the device's TX buffer has drained
        self.bytes_up = 0
        self.bytes_down = 0

    # -- device side ---------------------------------------------------------
    def any(self):
        return len(self._rx)

    def read(self, n=-1):
        if not self._rx:
            return None
        if n is None or n < 0 or n > len(self._rx):
            n = len(self._rx)
        out = bytes(self._rx[:n])
        self._rx = self._rx[n:]
        return out

    def write(self, data):
        data = bytes(data)
        w = self.world
        now = w.device_now_us()
        start = self._up_free if self._up_free > now else now
        done = start + len(data) * self.byte_us
        # bytes not yet on the wire must fit the TX buffer and the FIFO
        room_us = (self.txbuf + self.HW_FIFO) * self.byte_us
        if done - now > room_us:
            w.block_us += done - now - room_us
        self._up_free = done
        self.bytes_up += len(data)
        if self.peer is not None:
            w.at(done, self.peer.received, data)
        return len(data)

    # -- peripheral side -----------------------------------------------------
    def send(self, data):
        """The peripheral transmits data; it reaches the device's RX buffer at line speed."""
        w = self.world
        start = self._down_free if self._down_free > w.now_us else w.now_us
        self._down_free = start + len(data) * self.byte_us
        self.bytes_down += len(data)
        w.at(self._down_free, self._arrive, bytes(data))

    def _arrive(self, data):
        room = self.rxbuf - len(self._rx)
        if len(data) > room:
            self.rx_lost += len(data) - room
            data = data[:room]
        self._rx += data

    def drained_us(self):
        """When everything the peripheral sent so far has reached the device."""
        return self._down_free
