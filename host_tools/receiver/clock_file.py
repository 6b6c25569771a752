"""A receiver clock read from a file: the simulator's simulated UTC.

`sotto receive --clock-file PATH` stamps receipts (and judges frames' times)
with the time in PATH instead of this machine's clock: a simulated run writes
its virtual clock there (`write_clock`), so the evidence of a scenario or the
demo shows the simulation's times throughout (no wall-clock "delay" between a
frame's making and its receipt). Never for a real centre.

The file holds one number, UTC epoch seconds (e.g. `1748854812.250`), written
in place at a fixed width by ClockWriter (a simulation moves its clock
thousands of times a second; replacing a file each time costs too much); the
reader takes a value only when two reads in a row agree (it reads again until
they do). A new run may set the clock back to its own start (a receiver shared
by several scenario runs): the receiver follows. Until the file exists,
or if it cannot be read, the clock gives the last time it read (else this
machine's clock)."""

from __future__ import annotations

import os
import time
from pathlib import Path


class ClockFile:
    """A callable clock (epoch seconds) reading PATH."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.last: float | None = None

    def __call__(self) -> float:
        try:
            with open(self.path, "rb") as f:
                seen = f.read(64)
                for _ in range(50):   # a read that met a write in progress is read again
                    f.seek(0)
                    again = f.read(64)
                    if again == seen:
                        self.last = float(seen.decode("ascii").strip())
                        break
                    seen = again
        except (OSError, ValueError, UnicodeDecodeError):
            pass
        return time.time() if self.last is None else self.last


WIDTH = 24


class ClockWriter:
    """Writes a simulated clock to PATH, in place (one small write per move)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)

    def __call__(self, t: float) -> None:
        os.pwrite(self.fd, f"{t:.3f}".rjust(WIDTH - 1).encode("ascii") + b"\n", 0)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def write_clock(path: str | os.PathLike[str], t: float) -> None:
    """Set the clock in PATH to t (epoch seconds), atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{t:.3f}\n", encoding="ascii")
    os.replace(tmp, path)
