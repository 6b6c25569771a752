"""The simulator's virtual clock: discrete events in integer milliseconds.

Nothing in the simulator sleeps. The device loop asks every part when it next
has something to do and jumps there, so an hour of a scenario takes seconds,
and the same scenario gives the same timeline every run. Where the simulation
needs the host (the receiver's answers), it stands still and waits for it, as long
as it takes up to a safety limit, past which it stops with HostStall.
"""

from __future__ import annotations

from collections.abc import Callable

TICKS_PERIOD = 1 << 30


class HostStall(RuntimeError):
    """The host (the receiver, or this machine under load) did not give the virtual
    modem or the SMS centre what the simulation needs within their wall-time safety
    limit (VirtualModem(io_wait_s=...), VirtualSmsc(wait_s=...)). The run stops here:
    going on would let the wall clock decide what the simulated device sees, and when."""


class VirtualClock:
    def __init__(self, start_ms: int = 0, epoch_s: int = 1_748_854_800) -> None:
        """epoch_s: the UTC time the simulation's t = 0 stands for
        (default 2025-06-02 09:00:00 UTC: safely in the past for the receiver)."""
        self.now_ms = start_ms
        self.epoch_s = epoch_s
        self.on_advance: Callable[[float], None] | None = None  # called with utc() when time moves

    def ticks(self) -> int:
        """What time.ticks_ms() would say on the device (wraps at 2**30)."""
        return self.now_ms % TICKS_PERIOD

    def utc(self, t_ms: int | None = None) -> float:
        return self.epoch_s + (self.now_ms if t_ms is None else t_ms) / 1000

    def advance_to(self, t_ms: int) -> None:
        if t_ms < self.now_ms:
            raise ValueError(f"the clock cannot go back ({t_ms} < {self.now_ms})")
        moved = t_ms != self.now_ms
        self.now_ms = t_ms
        if moved and self.on_advance is not None:
            self.on_advance(self.utc())
