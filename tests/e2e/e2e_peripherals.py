# The parts on the board besides the modem, for the end-to-end lane: the
# hidden button, the GNSS receiver (NMEA over its UART), the INMP441
# microphone behind the ESP32's I2S peripheral, the battery divider and the
# vibration motor. Each keeps the world's time; machine.* fakes
# (e2e_machine.py) are thin views onto them.
import struct

from e2e_world import Line

# -- the microphone's test signal -------------------------------------------------
# Two triangle waves with periods of 19 and 83 samples (421 Hz and 96 Hz at
# 8 kHz): the sum repeats every 1577 samples, so a lost 256-sample I2S block
# shifts what follows by a phase the host check (tools/vm/e2e_verify.py) sees.
SIGNAL_PERIOD = 19 * 83


def _tri(k, period, amp):
    ph = k % period
    half = period // 2
    if ph < half:
        return -amp + 2 * amp * ph // half
    return amp - 2 * amp * (ph - half) // (period - half)


def signal(k):
    """The microphone's sample k (16-bit) since the stream started."""
    return _tri(k, 19, 7000) + _tri(k, 83, 5000)


class Mic:
    """The I2S peripheral receiving from the INMP441 in non-blocking mode:
    readinto(buf) arms a buffer; when the DMA has filled it (len/4 samples
    later) the callback runs and must arm the next. Arming again the buffer
    just filled is the HAL's overrun path: that block's audio is lost."""

    def __init__(self, world):
        self.world = world
        self.rate_hz = 0
        self.handler = None
        self.target = None
        self.completed = None
        self.k = 0  # samples produced since the stream started
        self.blocks = 0
        self.overruns = 0
        self.overrun_ms = []  # world ms of the first overruns
        self.max_read_gap_us = 0  # the longest time the HAL left its ring unread while running
        self._last_read_us = None
        self.running = False
        self._gen = 0
        # one period of the signal as 32-bit little-endian words, twice (for slicing)
        pat = bytearray(8 * SIGNAL_PERIOD)
        for i in range(2 * SIGNAL_PERIOD):
            struct.pack_into("<i", pat, 4 * i, signal(i % SIGNAL_PERIOD) << 16)
        self._pattern = memoryview(pat)

    def start(self, rate_hz):
        self._gen += 1
        self.rate_hz = rate_hz
        self.k = 0
        self.running = False
        self.target = None
        self.completed = None

    def stop(self):
        self._gen += 1
        self.running = False
        self.target = None
        self._last_read_us = None

    def read_at(self, t_us):
        """The HAL reads its ring now (the lane's seam in Esp32Hal.mic_readinto)."""
        if not self.running:
            return
        if self._last_read_us is not None and t_us - self._last_read_us > self.max_read_gap_us:
            self.max_read_gap_us = t_us - self._last_read_us
        self._last_read_us = t_us

    def readinto(self, buf):
        if self.running and buf is self.completed:
            self.overruns += 1
            if len(self.overrun_ms) < 20:
                self.overrun_ms.append(self.world.ms())
        self.target = buf
        if not self.running:
            self.running = True
            self._schedule(self.world.device_now_us(), buf)
        return 0  # non-blocking: nothing copied now

    def _schedule(self, start_us, buf):
        us = (len(buf) // 4) * 1000000 // self.rate_hz
        self.world.at(start_us + us, self._filled, self._gen, start_us + us)

    def _filled(self, gen, t_us):
        if gen != self._gen or self.target is None:
            return
        buf = self.target
        n = len(buf) // 4
        off = self.k % SIGNAL_PERIOD
        mv = memoryview(buf)
        mv[:4 * n] = self._pattern[4 * off:4 * (off + n)]
        self.k += n
        self.blocks += 1
        self.completed = buf
        self.target = None
        if self.handler is not None:
            self.handler(self)  # the callback re-arms (MicroPython schedules it at once)
        if self.target is not None:
            self._schedule(t_us, self.target)
        else:
            self.running = False


# -- the hidden button ------------------------------------------------------------
class Button:
    """Active low with the pull-up: idle 1, pressed 0. Edges call the pin's
    interrupt handler at their own time."""

    def __init__(self, world):
        self.world = world
        self.level = 1
        self.handler = None
        self.trigger = 0
        self.pin = None
        self.presses = []  # (t_ms, hold_ms)

    def press(self, t_ms, hold_ms):
        """Press at world time t_ms for hold_ms."""
        self.presses.append((t_ms, hold_ms))
        self.world.at(t_ms * 1000, self._edge, 0)
        self.world.at((t_ms + hold_ms) * 1000, self._edge, 1)

    def presses_of(self, t_ms, n, press_ms=150, gap_ms=350):
        """n short presses starting at t_ms; returns when the last one ends."""
        for i in range(n):
            self.press(t_ms + i * (press_ms + gap_ms), press_ms)
        return t_ms + n * (press_ms + gap_ms)

    def _edge(self, level):
        if level == self.level:
            return
        self.level = level
        want = 1 if level else 2  # IRQ_RISING = 1, IRQ_FALLING = 2 (as on the ESP32)
        if self.handler is not None and self.trigger & want:
            self.handler(self.pin)


# -- the GNSS receiver ------------------------------------------------------------------
def _nmea(body):
    x = 0
    for c in body.encode():
        x ^= c
    return ("$%s*%02X\r\n" % (body, x)).encode()


def _civil(days):
    # days since 1970-01-01 -> (year, month, day) (Howard Hinnant's algorithm)
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (y + 1 if m <= 2 else y), m, d


class Gnss:
    """A u-blox receiver: RMC and GGA once a second while powered, a fix
    `ttff_ms` after power-on, at a fixed position (51.4545 N, 2.5879 W)."""

    def __init__(self, world, epoch_s, ttff_ms=3000):
        self.world = world
        self.epoch_s = epoch_s
        self.ttff_ms = ttff_ms
        self.on = False
        self.line = None
        self._since_us = 0
        self._gen = 0
        self.sentences = 0

    def uart(self, baud, rxbuf=256, txbuf=256):
        self.line = Line(self.world, baud, rxbuf=rxbuf, txbuf=txbuf)
        return self.line

    def power(self, on):
        if on == self.on:
            return
        self.on = on
        self._gen += 1
        if on:
            self._since_us = self.world.now_us
            self.world.after_ms(1000, self._second, self._gen)

    def _second(self, gen):
        if gen != self._gen or self.line is None:
            return
        t = self.epoch_s + self.world.now_us // 1000000
        days, sec = divmod(t, 86400)
        y, mo, d = _civil(days)
        hms = "%02d%02d%02d.00" % (sec // 3600, sec // 60 % 60, sec % 60)
        date = "%02d%02d%02d" % (d, mo, y % 100)
        if (self.world.now_us - self._since_us) // 1000 >= self.ttff_ms:
            rmc = "GNRMC,%s,A,5127.2700,N,00235.2740,W,0.4,45.0,%s,,,A" % (hms, date)
            gga = "GNGGA,%s,5127.2700,N,00235.2740,W,1,09,0.8,12.3,M,49.6,M,," % hms
        else:
            rmc = "GNRMC,%s,V,,,,,,,%s,,,N" % (hms, date)
            gga = "GNGGA,%s,,,,,0,00,99.99,,,,,," % hms
        self.line.send(_nmea(rmc) + _nmea(gga))
        self.sentences += 2
        self.world.after_ms(1000, self._second, gen)


class Recorder:
    """An output line (haptic motor, ...): every change with its time."""

    def __init__(self, world):
        self.world = world
        self.level = 0
        self.changes = []  # (t_ms, level)

    def set(self, level):
        if level != self.level:
            self.level = level
            self.changes.append((self.world.device_now_us() // 1000, level))
