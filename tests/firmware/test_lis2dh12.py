# The LIS2DH12 driver (sotto/hal/lis2dh12.py) against a recording stand-in for
# MicroPython's `machine` (an I2C bus with the chip's registers, pins whose
# interrupts the test fires): the set-up it writes, a missing chip, and
# interrupt edges recorded like the button's and turned into sotto.motion's
# edges in order (STILL stamped when the stillness began).
import sys

from sotto import motion


class _Pin:
    IN = 1
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, pin_id, mode=None):
        self.id = pin_id
        self.level = 0
        self.handler = None

    def value(self):
        return self.level

    def irq(self, handler, trigger):
        self.handler = handler
        self.trigger = trigger

    def fire(self, level):
        self.level = level
        self.handler(self)


class _I2C:
    def __init__(self, chip_id=0x33):
        self.regs = {0x0F: chip_id}
        self.writes = []
        self.reads = []

    def readfrom_mem_into(self, addr, reg, buf):
        self.reads.append(reg)
        buf[0] = self.regs.get(reg, 0)
        if reg in (0x31, 0x35):
            self.regs[reg] = 0  # latched sources clear when read

    def writeto_mem(self, addr, reg, buf):
        self.writes.append((addr, reg, buf[0]))
        self.regs[reg] = buf[0]


class _Time:
    now = 0

    @staticmethod
    def ticks_ms():
        return _Time.now

    @staticmethod
    def ticks_add(t, d):
        return t + d


class _Machine:
    Pin = _Pin
    I2C = _I2C


def _driver():
    sys.modules["machine"] = _Machine
    try:
        sys.modules.pop("sotto.hal.lis2dh12", None)
        from sotto.hal import lis2dh12

        lis2dh12.time = _Time
        from sotto.hal import lis2dh12_setup as setup

        for name in ("SETUP", "INT1_THS", "INT1_DURATION", "INT2_THS", "ODR_HZ"):
            setattr(lis2dh12, name, getattr(setup, name))  # the tests read them off the driver
        return lis2dh12
    finally:
        del sys.modules["machine"]


def test_edge_kinds_are_sotto_motions():
    d = _driver()
    assert (d.FALL, d.IMPACT, d.ACTIVE, d.STILL) == (motion.FALL, motion.IMPACT, motion.ACTIVE, motion.STILL)


def test_set_up_writes_the_documented_registers_in_order():
    d = _driver()
    bus = _I2C()
    acc = d.Lis2dh12(bus, _Pin(15), _Pin(16), 0x18)
    assert acc.present
    assert [(r, v) for _, r, v in bus.writes] == list(d.SETUP)
    assert all(a == 0x18 for a, _, _ in bus.writes)
    regs = dict(d.SETUP)
    assert regs[d.INT1_THS] == 10 and regs[d.INT1_DURATION] == 5 and regs[d.INT2_THS] == 78
    assert d.ACT_MS == 1940


def test_a_missing_chip_claims_nothing():
    d = _driver()
    bus = _I2C(chip_id=0x00)
    p1, p2 = _Pin(15), _Pin(16)
    acc = d.Lis2dh12(bus, p1, p2)
    assert not acc.present and bus.writes == [] and p1.handler is None and p2.handler is None


def test_interrupts_become_motion_edges_in_order():
    d = _driver()
    bus = _I2C()
    p1, p2 = _Pin(15), _Pin(16)
    acc = d.Lis2dh12(bus, p1, p2)
    _Time.now = 1000
    bus.regs[0x31] = 0x40 | 0x15  # IA1: free-fall
    p1.fire(1)
    assert bus.regs[0x31] == 0  # read at once: the latch is cleared for the next edge
    _Time.now = 1300
    bus.regs[0x35] = 0x40 | 0x2A  # IA2: impact
    p1.fire(1)
    _Time.now = 5000
    p2.fire(1)  # asleep: still since 5000 - ACT_MS
    _Time.now = 9000
    p2.fire(0)  # moving again
    got = acc.events()
    assert got[0] == (1000, motion.FALL)
    assert got[1] == (1300, motion.IMPACT)
    assert got[2] == (5000 - d.ACT_MS, motion.STILL) and got[3] == (9000, motion.ACTIVE)
    assert acc.events() == []


def test_the_ring_keeps_the_oldest_when_the_main_loop_stalls():
    d = _driver()
    acc = d.Lis2dh12(_I2C(), _Pin(15), p2 := _Pin(16))
    for i in range(d.EDGES + 5):
        _Time.now = i
        p2.fire(i % 2)
    got = acc.events()
    assert len(got) == d.EDGES - 1 and acc.edges_lost == 6
    assert got[0] == (0, motion.ACTIVE) and got[1] == (1 - d.ACT_MS, motion.STILL)


def test_a_chip_already_still_at_start_up_is_reported_still():
    d = _driver()
    p2 = _Pin(16)
    p2.level = 1  # INT2 high: the chip was asleep before the restart
    _Time.now = 50000
    acc = d.Lis2dh12(_I2C(), _Pin(15), p2)
    assert acc.events() == [(50000 - d.ACT_MS, motion.STILL)]
