# Stand-ins for what MicroPython on an ESP32 gives main.py and the ESP32 HAL:
# the `machine` module (this module is registered as sys.modules["machine"]),
# `time` (ticks from the world's clock, wrapping at 2**30), `asyncio` (a loop
# that runs main.py's coroutine one pass at a time and lets the world's time
# pass between) and `os` (the VM's, plus urandom as the hardware RNG).
#
# Only what main.py and sotto/hal/esp32.py use is here; anything else raises
# AttributeError, so a firmware change that needs more fails loudly.
import os as _vm_os
import sys

_hw = None  # the Board (install() sets it)


class DeviceReset(BaseException):
    """machine.reset(): the device restarts (the run ends; the report says why).
    A BaseException, so main.py's `except Exception` does not catch it."""


# -- machine ---------------------------------------------------------------------------
class Pin:
    IN = 1
    OUT = 3
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_RISING = 1
    IRQ_FALLING = 2
    WAKE_LOW = 4  # light-sleep wake on a level (ESP32 port: GPIO_INTR_LOW_LEVEL / HIGH_LEVEL)
    WAKE_HIGH = 5

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        self._part = _hw.pins.get(id)
        if value is not None:
            self.value(value)

    def value(self, v=None):
        part = self._part
        if v is None:
            return part.level if part is not None else 1  # unwired inputs read their pull-up
        if part is not None and hasattr(part, "set"):
            part.set(1 if v else 0)
        return None

    def irq(self, handler=None, trigger=3, wake=None):
        part = self._part
        if part is None:  # a pin nothing in this world drives (the modem's RI): stays high
            return
        part.handler = handler
        part.trigger = trigger  # WAKE_LOW / WAKE_HIGH: no edge handler runs (light sleep)
        part.pin = self


class I2C:
    """The I2C bus with nothing answering on it: this world fits no accelerometer
    (the board's LIS2DH12 is not modelled here), so the driver finds none, as
    it would on a board where the part is missing (no ACK: OSError ENODEV)."""

    def __init__(self, id, scl=None, sda=None, freq=400000):
        self.id = id

    def readfrom_mem_into(self, addr, reg, buf):
        raise OSError(19)

    def writeto_mem(self, addr, reg, buf):
        raise OSError(19)


class UART:
    def __init__(self, id, baudrate=9600, tx=None, rx=None, rxbuf=256, txbuf=256, timeout=0, **kw):
        part = _hw.uarts[id]
        self._line = part.uart(baudrate, rxbuf=rxbuf, txbuf=txbuf)

    def any(self):
        return self._line.any()

    def read(self, n=-1):
        return self._line.read(n)

    def write(self, data):
        return self._line.write(data)


class ADC:
    ATTN_11DB = 3

    def __init__(self, pin):
        self._pin = pin

    def atten(self, a):
        pass

    def read_uv(self):
        return _hw.battery_uv


class I2S:
    RX = 0
    MONO = 0
    STEREO = 1

    def __init__(self, id, sck=None, ws=None, sd=None, mode=0, bits=32, format=0, rate=8000,
                 ibuf=8192):
        if bits != 32 or mode != I2S.RX:
            raise ValueError("the INMP441 gives 32-bit words to an RX channel")
        self._mic = _hw.mic
        self._mic.start(rate)

    def irq(self, handler):
        self._mic.handler = handler

    def readinto(self, buf):
        return self._mic.readinto(buf)

    def deinit(self):
        self._mic.stop()


class WDT:
    def __init__(self, timeout=5000):
        _hw.wdt_arm(timeout)

    def feed(self):
        _hw.wdt_fed = True


def reset():
    _hw.resets += 1
    raise DeviceReset()


SLEEP = 2


def lightsleep(ms):
    """The world's time passes up to ms, or until a pin armed to wake (Pin.irq with
    WAKE_LOW / WAKE_HIGH) reaches its level. The world's own work meanwhile is not
    the device's CPU time; the time slept is told to the loop (Board.slept_us), which
    does not count it against the pass-margin check of the watchdog."""
    w = _hw.world
    t0 = w.now_us
    end = t0 + ms * 1000
    cpu0 = w.cpu_us() if w.factor else 0
    armed = [(p, 0 if p.trigger == Pin.WAKE_LOW else 1) for p in _hw.pins.values()
             if getattr(p, "trigger", 0) in (Pin.WAKE_LOW, Pin.WAKE_HIGH)]
    while True:
        nxt = w.next_event_us()
        if nxt is None or nxt > end:
            w.advance_to(end)
            break
        w.advance_to(nxt)
        if any(p.level == level for p, level in armed):
            break
    if w.factor:
        w._excluded_us += w.cpu_us() - cpu0
    _hw.slept_us += w.now_us - t0


# -- time, asyncio, os ---------------------------------------------------------------
class _Module:
    def __init__(self, name):
        self.__name__ = name


def _ticks_diff(a, b):
    d = (a - b) & 0x3FFFFFFF
    return d - 0x40000000 if d & 0x20000000 else d


def _make_time():
    t = _Module("time")
    t.ticks_ms = lambda: _hw.world.ticks_ms()
    t.ticks_add = lambda a, d: (a + d) & 0x3FFFFFFF
    t.ticks_diff = _ticks_diff
    t.sleep_ms = lambda ms: _hw.world.sleep_ms(ms)
    t.sleep = lambda s: _hw.world.sleep_ms(int(s * 1000))
    t.time = lambda: _hw.epoch_s + _hw.world.now_us // 1000000
    return t


def _sleep_ms(ms):
    yield ms  # what main.py's loop awaits: the loop lets this much time pass


def _asyncio_run(coro):
    try:
        _hw.loop(coro)
    finally:
        coro.close()


def _make_asyncio():
    a = _Module("asyncio")
    a.run = _asyncio_run
    a.sleep_ms = _sleep_ms
    a.sleep = lambda s: _sleep_ms(int(s * 1000))
    return a


def _make_os(random_bytes):
    o = _Module("os")
    for name in dir(_vm_os):
        if not name.startswith("__"):
            setattr(o, name, getattr(_vm_os, name))
    o.urandom = random_bytes
    return o


def install(board):
    """Make `import machine / time / asyncio / os` give these stand-ins."""
    global _hw
    _hw = board
    sys.modules["machine"] = sys.modules[__name__]
    sys.modules["time"] = _make_time()
    sys.modules["asyncio"] = _make_asyncio()
    sys.modules["os"] = _make_os(board.random_bytes)
