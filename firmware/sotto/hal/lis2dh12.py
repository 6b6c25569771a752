# ST LIS2DH12 3-axis accelerometer over I2C: the chip watches, the CPU sleeps.
#
# Set up (datasheet DS10924, application note AN5005) at 50 Hz low-power,
# +-4 g full scale, with its interrupt generators doing the detection:
#   INT1  IA1 free-fall: all axes below FF_MG for FF_MS (AND of low events)
#         IA2 impact: any axis above IMPACT_MG (OR of high events)
#         (both latched; INT1_SRC / INT2_SRC tell which, reading clears them)
#   INT2  activity / inactivity (CTRL_REG6 P2_ACT): high while the chip is
#         "asleep" (below ACT_MG for ACT_MS), low once it moves again
# The pin interrupts record (ticks, kind) into a pre-allocated ring, as the
# button's do, and events() (main loop) hands them over in order:
#   INT1 rising -> FALL and/or IMPACT; INT2 rising -> STILL (stamped ACT_MS
#   earlier: when the stillness began); INT2 falling -> ACTIVE.
# INT1's handler reads the two source registers at once (which also clears
# the latch, so the next event gives a new rising edge): it is a soft IRQ
# (MicroPython's default for Pin.irq on the ESP32, scheduled, not in the ISR
# itself), so it may use I2C; it reads into a buffer made once, no allocation.
# Register values follow AN5005 §5 (free-fall) and §7 (activity); the
# thresholds are the defaults of the reference board and should be checked on
# the bench with the enclosure (docs/technician-guide.md).
import array
import time

import machine

from sotto.hal.lis2dh12_setup import (
    ACT_MS,
    ACTIVE,
    ADDR,
    CHIP_ID,
    EDGES,
    FALL,
    IA,
    IMPACT,
    INT1_SRC,
    INT2_SRC,
    SETUP,
    STILL,
    WHO_AM_I,
)


class Lis2dh12:
    def __init__(self, i2c: machine.I2C, int1: machine.Pin, int2: machine.Pin, addr: int = ADDR) -> None:
        self._i2c = i2c  # type: machine.I2C
        self._addr = addr  # type: int
        self._one = bytearray(1)  # type: bytearray
        self._t = array.array("i", [0] * EDGES)  # type: array.array
        self._v = bytearray(EDGES)  # type: bytearray  # edge kinds
        self._head = 0  # type: int
        self._tail = 0  # type: int
        self.edges_lost = 0  # type: int
        self._int1 = int1  # type: machine.Pin
        self._int2 = int2  # type: machine.Pin
        self.present = self._read(WHO_AM_I) == CHIP_ID  # type: bool
        if not self.present:
            return
        for reg, value in SETUP:
            self._write(reg, value)
        self._read(INT1_SRC)  # clear anything latched before the set-up
        self._read(INT2_SRC)
        # bound once: the HAL re-arms them after each light sleep (Esp32Hal.sleep_until)
        self.int1 = int1  # type: machine.Pin
        self.int2 = int2  # type: machine.Pin
        self.on_int1 = self._on_int1
        self.on_int2 = self._on_int2
        int1.irq(self.on_int1, machine.Pin.IRQ_RISING)
        int2.irq(self.on_int2, machine.Pin.IRQ_RISING | machine.Pin.IRQ_FALLING)
        if int2.value():  # already still (a restart while lying still): no edge would ever say so
            self._on_int2(int2)

    def _read(self, reg: int) -> int:
        try:
            self._i2c.readfrom_mem_into(self._addr, reg, self._one)
        except OSError:
            return -1
        return self._one[0]

    def _write(self, reg: int, value: int) -> None:
        self._one[0] = value
        self._i2c.writeto_mem(self._addr, reg, self._one)

    # -- interrupts: record only -------------------------------------------------------
    def _record(self, t: int, kind: int) -> None:
        nxt = (self._head + 1) % EDGES
        if nxt == self._tail:
            self.edges_lost += 1  # the main loop stalled: keep the oldest
            return
        self._t[self._head] = t
        self._v[self._head] = kind
        self._head = nxt

    def _on_int1(self, pin: machine.Pin) -> None:
        t = time.ticks_ms()
        if self._read(INT1_SRC) & IA > 0:
            self._record(t, FALL)
        if self._read(INT2_SRC) & IA > 0:
            self._record(t, IMPACT)

    def _on_int2(self, pin: machine.Pin) -> None:
        t = time.ticks_ms()
        if pin.value():
            self._record(time.ticks_add(t, -ACT_MS), STILL)
        else:
            self._record(t, ACTIVE)

    def waiting(self) -> bool:
        """Edges recorded and not yet taken by events()."""
        return self._tail != self._head

    # -- main loop -----------------------------------------------------------------------
    def events(self) -> list:
        out = []  # type: list[tuple[int, int]]
        while self._tail != self._head:
            i = self._tail
            out.append((self._t[i], self._v[i]))
            self._tail = (i + 1) % EDGES
        return out
