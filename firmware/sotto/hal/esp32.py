# The HAL on the ESP32 (MicroPython's machine / esp32 modules), pins from the
# board definition. Constructing Esp32Hal claims the hardware; importing this
# module does not.
import array
import os
import time

import machine
from micropython import const

_RING = const(64)  # button edges the ISR can hold between two main-loop passes


class Esp32Hal:
    def __init__(self, board, storage_root="/data"):
        self.board = board
        self.storage_root = storage_root
        b = board["button"]
        self._active_low = b.get("active_low", True)
        pull = machine.Pin.PULL_UP if b.get("pull", "up") == "up" else machine.Pin.PULL_DOWN
        self._button = machine.Pin(b["pin"], machine.Pin.IN, pull)
        # ISR ring of (tick, level): pre-allocated, no allocation in the handler
        self._t = array.array("i", [0] * _RING)
        self._v = bytearray(_RING)
        self._head = 0
        self._tail = 0
        self.edges_lost = 0
        self._button.irq(self._isr, machine.Pin.IRQ_RISING | machine.Pin.IRQ_FALLING)

        g = board["gnss"]
        self.gnss_uart = machine.UART(g["uart"], baudrate=g["baud"], tx=g["tx"], rx=g["rx"],
                                      rxbuf=1024, timeout=0)
        self._gnss_power = machine.Pin(g["power_pin"], machine.Pin.OUT, value=0)
        self._gnss_on_level = 1 if g.get("power_active_high", True) else 0

        m = board["modem"]
        self.modem_uart = machine.UART(m["uart"], baudrate=m["baud"], tx=m["tx"], rx=m["rx"],
                                       rxbuf=4096, timeout=0)
        self._pwrkey = machine.Pin(m["pwrkey_pin"], machine.Pin.OUT, value=0)
        self._pwrkey_low = m.get("pwrkey_active_low", True)

        self._mic_cfg = board["mic"]
        self._i2s = None

        bat = board["battery"]
        self._adc = machine.ADC(machine.Pin(bat["adc_pin"]))
        self._adc.atten(machine.ADC.ATTN_11DB)
        self._divider = bat.get("divider", 2.0)

        h = board["haptic"]
        self._haptic = machine.Pin(h["pin"], machine.Pin.OUT, value=0)
        self._haptic_on = 1 if h.get("active_high", True) else 0

        self._wdt = machine.WDT(timeout=board.get("watchdog_ms", 8000))

    # -- button ------------------------------------------------------------------
    def _isr(self, pin):
        nxt = (self._head + 1) % _RING
        if nxt == self._tail:
            self.edges_lost += 1
            return
        self._t[self._head] = time.ticks_ms()
        self._v[self._head] = pin.value()
        self._head = nxt

    def button_edges(self):
        out = []
        while self._tail != self._head:
            i = self._tail
            level = self._v[i]
            out.append((self._t[i], (level == 0) if self._active_low else (level == 1)))
            self._tail = (i + 1) % _RING
        return out

    # -- power lines -----------------------------------------------------------
    def modem_pwrkey(self, level):
        # level 1 = key pressed; the board drives PWRKEY low through a transistor
        self._pwrkey.value(1 if level else 0)

    def gnss_power(self, on):
        self._gnss_power.value(self._gnss_on_level if on else 1 - self._gnss_on_level)

    def haptic(self, on):
        self._haptic.value(self._haptic_on if on else 1 - self._haptic_on)

    # -- microphone ----------------------------------------------------------------
    def mic_start(self, rate_hz):
        c = self._mic_cfg
        self._i2s = machine.I2S(c["i2s"], sck=machine.Pin(c["sck"]), ws=machine.Pin(c["ws"]),
                                sd=machine.Pin(c["sd"]), mode=machine.I2S.RX, bits=32,
                                format=machine.I2S.MONO, rate=rate_hz, ibuf=c.get("ibuf_bytes", 8192))
        # non-blocking: readinto returns what the DMA buffers hold
        self._i2s.irq(lambda i2s: None)

    def mic_readinto(self, buf):
        if self._i2s is None:
            return 0
        return self._i2s.readinto(buf) or 0

    def mic_stop(self):
        if self._i2s is not None:
            self._i2s.deinit()
            self._i2s = None

    # -- the rest --------------------------------------------------------------------
    def battery_mv(self):
        return int(self._adc.read_uv() * self._divider) // 1000

    def random_bytes(self, n):
        return os.urandom(n)

    def wdt_feed(self):
        self._wdt.feed()

    def reset(self):
        machine.reset()

    def ticks_ms(self):
        return time.ticks_ms()
