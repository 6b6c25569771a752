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
from micropython import const

# edge kinds: sotto.motion's (tests/firmware/test_motion.py checks they agree)
FALL = const(1)
IMPACT = const(2)
ACTIVE = const(3)
STILL = const(4)

ADDR = const(0x18)  # SA0 low (0x19 with SA0 high: board "accel.addr")
WHO_AM_I = const(0x0F)
CHIP_ID = const(0x33)
CTRL_REG1 = const(0x20)
CTRL_REG2 = const(0x21)
CTRL_REG3 = const(0x22)
CTRL_REG4 = const(0x23)
CTRL_REG5 = const(0x24)
CTRL_REG6 = const(0x25)
INT1_CFG = const(0x30)
INT1_SRC = const(0x31)
INT1_THS = const(0x32)
INT1_DURATION = const(0x33)
INT2_CFG = const(0x34)
INT2_SRC = const(0x35)
INT2_THS = const(0x36)
INT2_DURATION = const(0x37)
ACT_THS = const(0x3E)
ACT_DUR = const(0x3F)
IA = const(0x40)  # INTx_SRC: interrupt active

ODR_HZ = const(50)
MG_PER_LSB = const(32)  # thresholds at +-4 g
FF_MG = const(350)
FF_MS = const(100)
IMPACT_MG = const(2500)
ACT_MG = const(96)
ACT_DUR_N = const(12)  # (8 * ACT_DUR + 1) / ODR s of stillness before INT2 rises
ACT_MS = const((8 * 12 + 1) * 1000 // 50)  # 1940 ms: taken off the STILL edge's time
EDGES = const(32)

# (register, value) written in this order at start-up
SETUP = (
    (CTRL_REG1, 0x4F),  # 50 Hz, low-power, X/Y/Z on
    (CTRL_REG2, 0x00),  # no high-pass on the interrupt generators (free-fall needs gravity)
    (CTRL_REG3, 0x60),  # I1_IA1 | I1_IA2: free-fall and impact on INT1
    (CTRL_REG4, 0x10),  # +-4 g
    (CTRL_REG5, 0x0A),  # LIR_INT1 | LIR_INT2: latched until the source register is read
    (CTRL_REG6, 0x08),  # P2_ACT: activity / inactivity on INT2
    (INT1_THS, FF_MG // MG_PER_LSB),
    (INT1_DURATION, FF_MS * ODR_HZ // 1000),
    (INT1_CFG, 0x95),  # AOI=1 (AND), ZLIE | YLIE | XLIE: free-fall
    (INT2_THS, IMPACT_MG // MG_PER_LSB),
    (INT2_DURATION, 0x00),
    (INT2_CFG, 0x2A),  # OR of ZHIE | YHIE | XHIE: impact
    (ACT_THS, ACT_MG // 16),  # ACT_THS is 16 mg per LSB at +-4 g
    (ACT_DUR, ACT_DUR_N),
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
        int1.irq(self._on_int1, machine.Pin.IRQ_RISING)
        int2.irq(self._on_int2, machine.Pin.IRQ_RISING | machine.Pin.IRQ_FALLING)

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

    # -- main loop -----------------------------------------------------------------------
    def events(self) -> list:
        out = []  # type: list[tuple[int, int]]
        while self._tail != self._head:
            i = self._tail
            out.append((self._t[i], self._v[i]))
            self._tail = (i + 1) % EDGES
        return out
