"""The virtual accelerometer: motion profiles turned into the interrupt edges a
LIS2DH12 set up as firmware/sotto/hal/lis2dh12.py does would give.

A profile is a function of time giving the magnitude of the acceleration in
mg (1000 at rest: gravity), sampled at the chip's 50 Hz. The virtual chip
applies the driver's thresholds to the samples, as the chip's interrupt
generators do:

- FALL    the magnitude below FF_MG for FF_MS (once per free-fall);
- IMPACT  the magnitude above IMPACT_MG (once per shock);
- STILL   |magnitude - 1 g| at most ACT_MG for ACT_MS: the chip goes to sleep
          (edge time: when the stillness began, as the driver stamps it);
- ACTIVE  over ACT_MG again while asleep.

Profiles (the scenario action `motion`, docs/qa-guide.md): walk, still, fall,
sit, drive, and table (the device set down), drop (the device dropped and
picked up three seconds later). A profile runs for `for_s`; then the device is
at rest until the next `motion` action (a new action replaces what is left of
the one before). Before the first `motion` action the chip reports nothing.
Noise is seeded, so a scenario runs the same way every time.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from sotto import motion
from sotto.hal import lis2dh12_setup as chip

RATE_HZ = chip.ODR_HZ
SAMPLE_MS = 1000 // RATE_HZ
FF_SAMPLES = chip.FF_MS * RATE_HZ // 1000
ACT_SAMPLES = chip.ACT_MS // SAMPLE_MS
SETTLE_S = 4.0  # rest simulated after a profile, long enough for the chip to fall asleep

Profile = Callable[[float, random.Random], float]  # (seconds into the profile, rng) -> mg


def _still(t: float, rng: random.Random) -> float:
    return 1000 + rng.uniform(-15, 15)


def _walk(t: float, rng: random.Random) -> float:
    return 1000 + 320 * math.sin(2 * math.pi * 1.8 * t) + rng.uniform(-60, 60)


def _drive(t: float, rng: random.Random) -> float:
    bump = 800 if (t % 20.0) < 0.06 else 0  # a pothole every 20 s: a jolt, no free-fall
    return 1000 + 140 * math.sin(2 * math.pi * 12 * t) + rng.uniform(-80, 80) + bump


def _sit(t: float, rng: random.Random) -> float:
    if t < 1.2:  # lowering onto the chair
        return 1000 - 350 * math.sin(math.pi * t / 1.2) + rng.uniform(-40, 40)
    if t < 1.3:
        return 1700  # landing on the seat: a jolt, well under an impact
    if (t - 1.3) % 25.0 < 0.6:  # shifting in the seat now and then
        return 1000 + 220 * math.sin(2 * math.pi * 3 * t) + rng.uniform(-30, 30)
    return _still(t, rng)


def _fall(t: float, rng: random.Random) -> float:
    if t < 0.3:  # stumbling
        return 1000 + 400 * math.sin(2 * math.pi * 3 * t) + rng.uniform(-50, 50)
    if t < 0.75:  # falling: near 0 g
        return 80 + rng.uniform(-30, 30)
    if t < 0.8:  # hitting the floor
        return 3600
    if t < 1.2:  # rolling, bouncing
        return 1000 + 500 * math.sin(2 * math.pi * 6 * t) + rng.uniform(-50, 50)
    return _still(t, rng)  # lying still


def _table(t: float, rng: random.Random) -> float:
    if t < 0.8:  # taken off the belt
        return 1000 + 300 * math.sin(2 * math.pi * 2 * t) + rng.uniform(-40, 40)
    if t < 0.84:
        return 1600  # set down with a knock
    return _still(t, rng)


def _drop(t: float, rng: random.Random) -> float:
    if t < 0.35:  # slipping out of the hand: free-fall
        return 60 + rng.uniform(-30, 30)
    if t < 0.39:
        return 3000  # on the floor
    if t < 3.4:
        return _still(t, rng)
    if t < 4.6:  # picked up
        return 1000 + 450 * math.sin(2 * math.pi * 1.5 * t) + rng.uniform(-40, 40)
    return _walk(t, rng)  # and off again


PROFILES: dict[str, Profile] = {"walk": _walk, "still": _still, "fall": _fall, "sit": _sit,
                                "drive": _drive, "table": _table, "drop": _drop}


class VirtualAccelerometer:
    """Edges on the simulator's clock, made when a `motion` action is scheduled
    and handed out as they come due (as the button's): (due_ms, t_ms, kind),
    where t_ms is the time the firmware is given (for STILL, when the stillness
    began) and due_ms when the chip's pin changes (for STILL, ACT_MS later)."""

    def __init__(self, seed: int = 1) -> None:
        self._rng = random.Random(seed * 7919 + 17)
        self.edges: list[tuple[int, int, int]] = []  # not yet taken
        self._made: list[tuple[int, int]] = []  # (due_ms, kind) of every edge made: the chip's state
        self.profile: str | None = None

    def _asleep_at(self, t_ms: int) -> bool:
        asleep = False
        for due, kind in self._made:
            if due >= t_ms:
                break
            if kind == motion.STILL:
                asleep = True
            elif kind == motion.ACTIVE:
                asleep = False
        return asleep

    def play(self, at_ms: int, name: str, for_s: float) -> None:
        """Run profile `name` from at_ms for for_s seconds, then rest."""
        fn = PROFILES[name]
        self.edges = [e for e in self.edges if e[0] < at_ms]  # the new motion replaces the rest
        self._made = [m for m in self._made if m[0] < at_ms]
        asleep = self._asleep_at(at_ms)
        self.profile = name
        n = int(for_s * RATE_HZ)
        rest = int(SETTLE_S * RATE_HZ)
        low = quiet = 0
        over = False
        quiet_from = at_ms
        rng = self._rng
        made: list[tuple[int, int, int]] = []
        for i in range(n + rest):
            t_ms = at_ms + i * SAMPLE_MS
            mg = fn(i / RATE_HZ, rng) if i < n else _still(0.0, rng)
            low = low + 1 if mg < chip.FF_MG else 0
            if low == FF_SAMPLES:
                made.append((t_ms, t_ms, motion.FALL))
            if mg > chip.IMPACT_MG and not over:
                made.append((t_ms, t_ms, motion.IMPACT))
            over = mg > chip.IMPACT_MG
            if abs(mg - 1000) <= chip.ACT_MG:
                if quiet == 0:
                    quiet_from = t_ms
                quiet += 1
                if not asleep and quiet == ACT_SAMPLES:
                    asleep = True
                    made.append((t_ms, quiet_from, motion.STILL))
            else:
                quiet = 0
                if asleep:
                    asleep = False
                    made.append((t_ms, t_ms, motion.ACTIVE))
        self.edges += made
        self._made += [(due, kind) for due, _, kind in made]

    def take(self, now_ms: int) -> list[tuple[int, int]]:
        """The edges due by now, as the HAL gives them: (t_ms, kind)."""
        out = [(t, k) for due, t, k in self.edges if due <= now_ms]
        if out:
            self.edges = self.edges[len(out):]
        return out

    def due(self, now_ms: int) -> list[tuple[int, int]]:
        return [(t, k) for due, t, k in self.edges if due <= now_ms]

    def next_edge_ms(self) -> int | None:
        return self.edges[0][0] if self.edges else None
