# The HAL on the ESP32 (MicroPython's machine module), pins from the board
# definition. Constructing Esp32Hal claims the hardware; importing this
# module does not. Interrupt handlers only record into pre-allocated rings;
# the main loop takes the records out.
#
# Light sleep (sleep_until): the wake pins are the button, the accelerometer's
# INT1/INT2 and the modem's RI (board modem.ri_pin). Each is armed as a GPIO
# light-sleep wake on the level it does not have now (Pin.WAKE_LOW/WAKE_HIGH,
# wake=machine.SLEEP), so both a press and a release, a rising and a falling
# interrupt, wake the chip. GPIO edge interrupts do not run in light sleep:
# after machine.lightsleep() returns, the edge handlers are put back and any
# pin whose level changed has its handler called at once, so the edge that
# woke the chip is recorded with the wake time (the button pattern decodes as
# if the chip had been awake, to within the wake-up's few ms). Nothing is
# allocated: the pins, their handlers and levels are kept from construction.
#
# Types: parameters and returns are annotated, attributes carry `# type:`
# comments (ignored by MicroPython, read by `make typecheck` against the ESP32
# stubs), so that a typo on an attribute that starts as None, such as
# self._wdt, or a wrong argument type fails the check.
import array
import os
import time

import machine
from micropython import const

EDGES = const(64)  # button edges the interrupt can hold between two main-loop passes
MIC_BLOCK = const(1024)  # bytes per I2S block: 256 32-bit words, 32 ms at 8 kHz
MIC_BLOCKS = const(8)  # ring of blocks: 256 ms (8 KB) of slack for a slow main-loop pass
MODEM_TXBUF = const(2048)  # > SEND_MAX of sotto.modem.cch plus an AT command


class Esp32Hal:
    def __init__(self, board: dict, storage_root: str = "/data") -> None:
        self.board = board  # type: dict
        self.storage_root = storage_root  # type: str
        b = board["button"]
        self._active_low = b.get("active_low", True)  # type: bool
        pull = machine.Pin.PULL_UP if b.get("pull", "up") == "up" else machine.Pin.PULL_DOWN
        self._button = machine.Pin(b["pin"], machine.Pin.IN, pull)  # type: machine.Pin
        # (tick, level) ring: slots tail..head-1 are recorded, written only by the handler
        self._t = array.array("i", [0] * EDGES)  # type: array.array
        self._v = bytearray(EDGES)  # type: bytearray
        self._head = 0  # type: int
        self._tail = 0  # type: int
        self.edges_lost = 0  # type: int
        self._edge_cb = self._on_edge  # bound once: re-armed after each light sleep
        self._button.irq(self._edge_cb, machine.Pin.IRQ_RISING | machine.Pin.IRQ_FALLING)

        g = board["gnss"]
        self.gnss_uart = machine.UART(g["uart"], baudrate=g["baud"], tx=g["tx"], rx=g["rx"],
                                      rxbuf=1024, timeout=0)  # type: machine.UART
        self._gnss_on = 1 if g.get("power_active_high", True) else 0  # type: int
        self._gnss_power = machine.Pin(g["power_pin"], machine.Pin.OUT,
                                       value=1 - self._gnss_on)  # type: machine.Pin

        m = board["modem"]
        # txbuf holds one whole AT+CCHSEND chunk (1 KB): with the default 256
        # bytes, write() would block the main loop ~60 ms per chunk at 115 200 baud
        self.modem_uart = machine.UART(m["uart"], baudrate=m["baud"], tx=m["tx"], rx=m["rx"],
                                       rxbuf=4096, txbuf=MODEM_TXBUF, timeout=0)  # type: machine.UART
        # PWRKEY goes through an open-collector transistor: 1 on the GPIO pulls PWRKEY low
        self._pwrkey = machine.Pin(m["pwrkey_pin"], machine.Pin.OUT, value=0)  # type: machine.Pin

        # microphone: a ring of blocks that the I2S callback fills and re-arms
        self._mic_cfg = board["mic"]  # type: dict
        self._i2s = None  # type: machine.I2S | None
        self._blocks = [bytearray(MIC_BLOCK) for _ in range(MIC_BLOCKS)]  # type: list[bytearray]
        self._views = [memoryview(x) for x in self._blocks]  # type: list[memoryview]
        self._mic_head = 0  # type: int  # block being filled
        self._mic_tail = 0  # type: int  # oldest filled block not yet read
        self._mic_pos = 0  # type: int  # bytes of the tail block already read
        self.mic_overruns = 0  # type: int

        bat = board["battery"]
        self._adc = machine.ADC(machine.Pin(bat["adc_pin"]))  # type: machine.ADC
        self._adc.atten(machine.ADC.ATTN_11DB)
        self._divider_milli = int(bat.get("divider", 2.0) * 1000)  # type: int
        self._adc_samples = bat.get("samples", 8)  # type: int

        h = board["haptic"]
        self._haptic_on = 1 if h.get("active_high", True) else 0  # type: int
        self._haptic = machine.Pin(h["pin"], machine.Pin.OUT, value=1 - self._haptic_on)  # type: machine.Pin

        # accelerometer (optional part): its edges come from accel_events(); a
        # board without one has no accel_events at all (sotto.app checks for it)
        self.accel_error = None  # type: str | None  # why a board's accelerometer is not in use
        a = board.get("accel")
        if a is not None:
            from sotto.hal.lis2dh12 import ADDR, Lis2dh12

            try:
                i2c = machine.I2C(a.get("i2c", 0), scl=machine.Pin(a["scl"]), sda=machine.Pin(a["sda"]),
                                  freq=400000)
                int1 = machine.Pin(a["int1"], machine.Pin.IN)
                int2 = machine.Pin(a["int2"], machine.Pin.IN)
                acc = Lis2dh12(i2c, int1, int2, a.get("addr", ADDR))
            except (OSError, ValueError) as e:  # no bus: no accelerometer (alerts still work)
                self.accel_error = repr(e)
            else:
                if acc.present:
                    self.accel = acc  # type: Lis2dh12
                    self.accel_events = acc.events
                else:
                    self.accel_error = "no LIS2DH12 answers at I2C address 0x%02x" % a.get("addr", ADDR)

        # light sleep: (pin, edge handler, edge trigger) of each wake pin, levels before a sleep
        wake = [(self._button, self._edge_cb, machine.Pin.IRQ_RISING | machine.Pin.IRQ_FALLING)]
        self._acc = None  # type: Lis2dh12 | None
        if self.accel_error is None and a is not None:
            self._acc = acc = self.accel
            wake.append((acc.int1, acc.on_int1, machine.Pin.IRQ_RISING))
            wake.append((acc.int2, acc.on_int2, machine.Pin.IRQ_RISING | machine.Pin.IRQ_FALLING))
        self._nop_cb = self._nop
        ri = m.get("ri_pin")
        if ri is not None:  # RI: only wakes the chip; the delivery task then reads the UART
            self._ri = machine.Pin(ri, machine.Pin.IN, machine.Pin.PULL_UP)  # type: machine.Pin
            wake.append((self._ri, self._nop_cb, machine.Pin.IRQ_FALLING))
        self._wake = tuple(wake)  # type: tuple
        self._levels = bytearray(len(wake))  # type: bytearray
        self.sleeps = 0  # type: int
        self.wake_edges = 0  # type: int  # edges recorded at a wake from light sleep

        # The watchdog cannot be stopped once started, so it is armed by main.py
        # after a short service window (see arm_watchdog); feeding before is a no-op.
        self._wdt = None  # type: machine.WDT | None

    # -- button ------------------------------------------------------------------------
    def _on_edge(self, pin: machine.Pin) -> None:
        nxt = (self._head + 1) % EDGES
        if nxt == self._tail:
            self.edges_lost += 1  # the main loop stalled for 64 edges: keep the oldest
            return
        self._t[self._head] = time.ticks_ms()
        self._v[self._head] = pin.value()
        self._head = nxt

    def button_edges(self) -> list:
        out = []  # type: list[tuple[int, bool]]
        while self._tail != self._head:
            i = self._tail
            level = self._v[i]
            out.append((self._t[i], (level == 0) if self._active_low else (level == 1)))
            self._tail = (i + 1) % EDGES
        return out

    # -- light sleep (see the header) -----------------------------------------------------
    def _nop(self, pin: machine.Pin) -> None:
        pass

    def sleep_until(self, ms: int) -> bool:
        """Light-sleep up to ms, woken early by any wake pin changing level. False:
        did not sleep (an edge is already waiting to be taken)."""
        if self._tail != self._head or (self._acc is not None and self._acc.waiting()):
            return False
        wake = self._wake
        levels = self._levels
        for i in range(len(wake)):
            pin = wake[i][0]
            v = pin.value()
            levels[i] = v
            pin.irq(self._nop_cb, trigger=machine.Pin.WAKE_HIGH if v == 0 else machine.Pin.WAKE_LOW,
                    wake=machine.SLEEP)
        machine.lightsleep(ms)
        self.sleeps += 1
        for i in range(len(wake)):
            pin, handler, trigger = wake[i]
            pin.irq(handler, trigger)
            if pin.value() != levels[i]:
                self.wake_edges += 1
                handler(pin)  # the edge that happened in sleep, at the wake time
        return True

    # -- power lines ---------------------------------------------------------------------
    def modem_pwrkey(self, level: int) -> None:
        self._pwrkey.value(1 if level else 0)

    def gnss_power(self, on: bool) -> None:
        self._gnss_power.value(self._gnss_on if on else 1 - self._gnss_on)

    def haptic(self, on: bool) -> None:
        self._haptic.value(self._haptic_on if on else 1 - self._haptic_on)

    # -- microphone ------------------------------------------------------------------------
    # I2S in non-blocking mode: readinto() returns at once and the driver fills
    # the block in the background, then calls _on_block. The callback publishes
    # the block and arms the next one; mic_readinto copies out what is published.
    def mic_start(self, rate_hz: int) -> None:
        self.mic_stop()
        c = self._mic_cfg
        self._mic_head = self._mic_tail = self._mic_pos = 0
        self._i2s = i2s = machine.I2S(c["i2s"], sck=machine.Pin(c["sck"]), ws=machine.Pin(c["ws"]),
                                      sd=machine.Pin(c["sd"]), mode=machine.I2S.RX, bits=32,
                                      format=machine.I2S.MONO, rate=rate_hz,
                                      ibuf=c.get("ibuf_bytes", 8192))
        i2s.irq(self._on_block)
        i2s.readinto(self._blocks[0])

    def _on_block(self, i2s: machine.I2S) -> None:
        nxt = (self._mic_head + 1) % MIC_BLOCKS
        if nxt == self._mic_tail:
            # every block is waiting to be read: refill this one, its audio is lost
            self.mic_overruns += 1
            i2s.readinto(self._blocks[self._mic_head])
            return
        self._mic_head = nxt
        i2s.readinto(self._blocks[nxt])

    def mic_readinto(self, buf: bytearray) -> int:
        dst = memoryview(buf)
        n = 0
        while n < len(buf) and self._mic_tail != self._mic_head:
            t = self._mic_tail
            k = min(len(buf) - n, MIC_BLOCK - self._mic_pos)
            dst[n:n + k] = self._views[t][self._mic_pos:self._mic_pos + k]
            n += k
            self._mic_pos += k
            if self._mic_pos == MIC_BLOCK:
                self._mic_pos = 0
                self._mic_tail = (t + 1) % MIC_BLOCKS
        return n

    def mic_stop(self) -> None:
        if self._i2s is not None:
            self._i2s.deinit()
            self._i2s = None

    # -- the rest ----------------------------------------------------------------------------
    def battery_mv(self) -> int:
        # read_uv() is calibrated per chip; averaging smooths the ADC's noise
        total = 0
        for _ in range(self._adc_samples):
            total += self._adc.read_uv()
        return total // self._adc_samples // 1000 * self._divider_milli // 1000  # small ints

    def random_bytes(self, n: int) -> bytes:
        return os.urandom(n)  # the hardware RNG (true random while the RF clock runs)

    def arm_watchdog(self) -> None:
        """Start the watchdog (board watchdog_ms). It cannot be stopped again."""
        if self._wdt is None:
            self._wdt = machine.WDT(timeout=self.board.get("watchdog_ms", 8000))

    def wdt_feed(self) -> None:
        if self._wdt is not None:
            self._wdt.feed()

    def reset(self) -> None:
        machine.reset()

    def reset_cause(self) -> int:
        """frames.RST_*: 1 power-on, 2 hard, 3 watchdog, 4 deep sleep, 5 soft (0 unknown)."""
        get = getattr(machine, "reset_cause", None)  # absent from some ports and stand-ins
        if get is None:
            return 0
        c = get()
        for code, name in ((1, "PWRON_RESET"), (2, "HARD_RESET"), (3, "WDT_RESET"),
                           (4, "DEEPSLEEP_RESET"), (5, "SOFT_RESET")):
            if c == getattr(machine, name, None):
                return code
        return 0

    def ticks_ms(self) -> int:
        return time.ticks_ms()
