# An in-memory HAL for firmware tests (CPython and the MicroPython VM): a
# scripted button, a GNSS UART fed with NMEA text, a silent modem, a
# microphone that produces a tone, a settable battery, a recorded motor.
import struct

from sotto.ticks import ticks_add


class Stream:
    def __init__(self):
        self.rx = bytearray()
        self.tx = bytearray()

    def any(self):
        return len(self.rx)

    def read(self, n=-1):
        if not self.rx:
            return None
        n = len(self.rx) if n is None or n < 0 else n
        out = bytes(self.rx[:n])
        self.rx = self.rx[n:]
        return out

    def write(self, b):
        self.tx += b
        return len(b)


class Mic:
    """32-bit I2S words of a square-ish tone; delivers what time has produced."""

    def __init__(self):
        self.rate_hz = 0
        self.on = False
        self.t = 0  # samples delivered
        self.now_ms = 0
        self.t0_ms = 0
        self.overruns = 0

    def available(self):
        return self.rate_hz * (self.now_ms - self.t0_ms) // 1000 - self.t

    def readinto(self, buf):
        if not self.on:
            return 0
        n = min(self.available(), len(buf) // 4)
        for i in range(n):
            k = self.t + i
            v = ((k * 440 * 2 // self.rate_hz) % 2) * 16000 - 8000 + (k % 7) * 50
            struct.pack_into("<i", buf, 4 * i, v << 16)
        self.t += n
        return 4 * n


class FakeHal:
    def __init__(self, root, board=None):
        self.board = board or {}
        self.storage_root = root
        self.edges = []
        self.gnss_uart = Stream()
        self.modem_uart = Stream()
        self.pwrkey = []
        self.gnss_on = False
        self.mic = Mic()
        self.mv = 4000
        self.motor = []  # (now_ms, on)
        self.now_ms = 0
        self._rng = 1
        self.feeds = 0
        self.accel = []  # (t_ms, kind) accelerometer edges (sotto.motion), like the button's
        self.sleeps = []  # (now_ms, ms) light sleeps asked for (sleep_until)

    def accel_events(self):
        out = [e for e in self.accel if e[0] <= self.now_ms]
        self.accel = [e for e in self.accel if e[0] > self.now_ms]
        return out

    def button_edges(self):
        # like the ISR ring: only edges that have happened by now
        out = [e for e in self.edges if e[0] <= self.now_ms]
        self.edges = [e for e in self.edges if e[0] > self.now_ms]
        return out

    def press(self, t_ms, hold_ms):
        self.edges.append((t_ms, True))
        self.edges.append((ticks_add(t_ms, hold_ms), False))

    def modem_pwrkey(self, level):
        self.pwrkey.append(level)

    def gnss_power(self, on):
        self.gnss_on = on

    def mic_start(self, rate_hz):
        self.mic.rate_hz = rate_hz
        self.mic.on = True
        self.mic.t = 0
        self.mic.t0_ms = self.mic.now_ms

    def mic_readinto(self, buf):
        return self.mic.readinto(buf)

    def mic_stop(self):
        self.mic.on = False

    def battery_mv(self):
        return self.mv

    def haptic(self, on):
        self.motor.append((self.now_ms, on))

    def random_bytes(self, n):
        out = bytearray(n)
        for i in range(n):
            self._rng = (self._rng * 1103515245 + 12345) & 0x7FFFFFFF
            out[i] = (self._rng >> 16) & 0xFF
        return bytes(out)

    def wdt_feed(self):
        self.feeds += 1

    def reset(self):
        pass

    def ticks_ms(self):
        return self.now_ms

    def sleep_until(self, ms):
        # as the device's: not while an edge waits to be taken; the rig moves the clock
        for e in self.edges + self.accel:
            if e[0] <= self.now_ms:
                return False
        self.sleeps.append((self.now_ms, ms))
        return True

    def set_time(self, now_ms):
        self.now_ms = now_ms
        self.mic.now_ms = now_ms


def nmea(body):
    """A sentence with its checksum and CRLF, from the text between $ and *."""
    x = 0
    for c in body.encode():
        x ^= c
    return ("$%s*%02X\r\n" % (body, x)).encode()


def config(**over):
    cfg = {"device_id": "00000000000000a7", "receiver": "https://receiver.sotto.test",
           "apn": "internet", "sms_number": "+447700900999"}
    cfg.update(over)
    return cfg
