# Millisecond tick arithmetic with MicroPython's time.ticks_* semantics.
#
# The core never reads a clock: callers pass `now_ms` values taken from
# time.ticks_ms() (or the simulator's virtual clock). Ticks wrap at TICKS_PERIOD
# (2**30 on ESP32 and in the VM), so compare them only through these helpers.
# Pure integer code, identical under MicroPython and CPython.
from micropython import const

TICKS_PERIOD = const(0x40000000)
_TICKS_MAX = const(0x3FFFFFFF)
_TICKS_HALF = const(0x20000000)


def ticks_add(ticks, delta):
    """ticks + delta (delta may be negative), wrapped into the tick period."""
    return (ticks + delta) & _TICKS_MAX


def ticks_diff(end, start):
    """Signed distance end - start, in (-TICKS_PERIOD/2, TICKS_PERIOD/2]."""
    return ((end - start + _TICKS_HALF) & _TICKS_MAX) - _TICKS_HALF


def ticks_reached(now, deadline):
    """True once `now` is at or past `deadline`."""
    return ticks_diff(now, deadline) >= 0
