"""The simulated HAL: the interface of firmware/sotto/hal/ over virtual parts.

The firmware runs unchanged on top of it. Time is the virtual clock's; the
modem is simulator.vmodem.VirtualModem; flash is a directory on the host. The
board definition is read and checked by the firmware's own
`sotto.hal.load_board`, from the same hardware/boards/*.json the device uses.

What the firmware did to the hardware is recorded: haptic pulses
(`haptic_log`), GNSS power (`gnss_log`), microphone on/off (`mic_log`),
watchdog feeds, and resets the firmware asked for (`reset_requested`, which
the virtual device turns into a reboot, as the chip would).

Light sleep (`sleep_until(ms)`) is on the virtual clock: the call returns at
once and records the window `sleep_window` = (from, until) ms; the virtual
device's next pass comes at `until` or at the first wake event before it (a
button or accelerometer edge, the modem's RI: anything the virtual modem has
for the host), and the power model (simulator/power.py) charges the time
slept as light sleep. `sleeps` counts the calls, `sleep_log` keeps the last
windows.

`inputs()` tells what the parts hold for the firmware at this moment without
taking anything (the VM runtime, simulator/vmruntime.py, hands it to the
firmware in the VM for one pass, and replays what the firmware took on this
HAL afterwards).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sotto import hal as fw_hal

from host_tools.errors import SottoError
from simulator.accel import VirtualAccelerometer
from simulator.clock import VirtualClock
from simulator.peripherals import Battery, Button, GnssReceiver, GnssUart, Microphone
from simulator.vmodem import VirtualModem

SLEEP_LOG = 64  # light-sleep windows kept in SimHal.sleep_log
BOARDS_DIR = Path(__file__).resolve().parent.parent / "hardware" / "boards"


class BoardFileError(SottoError, ValueError):
    """A board definition the simulator cannot use (absent, or not wirable as written)."""

    exit_code = 2  # `sotto sim run`: the scenario cannot run (1 is for a failed expectation)


def load_board(name: str, directory: str | Path = BOARDS_DIR) -> dict[str, Any]:
    """hardware/boards/<name>.json, checked by the firmware's own board check."""
    try:
        return fw_hal.load_board(name, str(directory))
    except OSError as e:
        known = sorted(p.stem for p in Path(directory).glob("*.json"))
        raise BoardFileError(f"no board definition {name!r} in {directory} ({e.strerror}); "
                             f"known boards: {', '.join(known) or 'none'}") from None
    except ValueError as e:
        raise BoardFileError(f"board {name!r}: {e}; fix hardware/boards/{name}.json") from None


@dataclass(frozen=True)
class Inputs:
    """What the parts hold for the firmware now: button edges not yet taken (as
    button_edges() gives them), the bytes the GNSS and modem UARTs would return,
    the microphone words produced and not yet read, the battery voltage."""

    edges: list[tuple[int, bool]]
    gnss: bytes
    modem: bytes
    mic: bytes
    battery_mv: int
    accel: list[tuple[int, int]] = field(default_factory=list)  # accelerometer edges not yet taken


class SimHal:
    def __init__(self, board: dict[str, Any], flash_dir: str, clock: VirtualClock,
                 modem: VirtualModem, gnss: GnssReceiver, mic: Microphone, battery: Battery,
                 button: Button, seed: int = 1, accel: VirtualAccelerometer | None = None) -> None:
        self.board = board
        self.flash_dir = flash_dir
        self.storage_root = flash_dir.rstrip("/") + "/data"
        self.clock = clock
        self.modem = modem
        self.gnss = gnss
        self.mic = mic
        self.battery = battery
        self.button = button
        # the accelerometer, on a board that has one ("accel"): accel_events() exists only then,
        # as on the device (sotto.app looks for it)
        self.accel = accel if "accel" in board else None
        if self.accel is not None:
            self.accel_events = self._accel_events
        self.modem_uart = modem.stream
        self.gnss_uart = GnssUart(gnss)
        self.haptic_log: list[tuple[int, bool]] = []
        self.gnss_log: list[tuple[int, bool]] = []
        self.mic_log: list[tuple[int, bool]] = []
        self.wdt_feeds = 0
        self.watchdog_armed_ms: int | None = None
        self.resets = 0
        self.reset_requested = False
        self.sleeps = 0
        self.sleep_window: tuple[int, int] | None = None  # the last light sleep: (from, until) ms
        self.sleep_log: list[tuple[int, int]] = []  # the last SLEEP_LOG windows
        self._rng = random.Random(seed)

    def inputs(self) -> Inputs:
        """What the firmware's next reads would get, without taking any of it."""
        now = self.clock.now_ms
        self.mic.now_ms = now
        return Inputs(edges=[(t % (1 << 30), p) for t, p in self.button.due(now)],
                      gnss=self.gnss_uart.peek(), modem=self.modem_uart.peek(), mic=self.mic.peek(),
                      battery_mv=self.battery.mv(),
                      accel=[(t % (1 << 30), k) for t, k in self.accel.due(now)] if self.accel else [])

    # the interface ---------------------------------------------------------------
    def button_edges(self) -> list[tuple[int, bool]]:
        return [(t % (1 << 30), p) for t, p in self.button.take(self.clock.now_ms)]

    def _accel_events(self) -> list[tuple[int, int]]:
        assert self.accel is not None
        return [(t % (1 << 30), k) for t, k in self.accel.take(self.clock.now_ms)]

    def modem_pwrkey(self, level: int) -> None:
        self.modem.pwrkey(level)

    def gnss_power(self, on: bool) -> None:
        if on != self.gnss.powered:
            self.gnss_log.append((self.clock.now_ms, bool(on)))
        self.gnss.power(bool(on), self.clock.now_ms)

    def mic_start(self, rate_hz: int) -> None:
        self.mic.now_ms = self.clock.now_ms
        self.mic.start(rate_hz)
        self.mic_log.append((self.clock.now_ms, True))

    def mic_readinto(self, buf: bytearray | memoryview) -> int:
        self.mic.now_ms = self.clock.now_ms
        return self.mic.readinto(buf)

    def mic_stop(self) -> None:
        if self.mic.on:
            self.mic_log.append((self.clock.now_ms, False))
        self.mic.stop()

    def battery_mv(self) -> int:
        return self.battery.mv()

    def haptic(self, on: bool) -> None:
        self.haptic_log.append((self.clock.now_ms, bool(on)))

    def random_bytes(self, n: int) -> bytes:
        """Seeded, so that a scenario runs the same way every time (never a real key)."""
        return self._rng.randbytes(n)

    def arm_watchdog(self) -> None:
        if self.watchdog_armed_ms is None:
            self.watchdog_armed_ms = self.clock.now_ms

    def wdt_feed(self) -> None:
        self.wdt_feeds += 1

    def reset(self) -> None:
        """The firmware asked for a reset: the virtual device reboots before its next pass."""
        self.resets += 1
        self.reset_requested = True

    def ticks_ms(self) -> int:
        return self.clock.ticks()

    def sleep_until(self, ms: int) -> bool:
        """Light sleep on the virtual clock (see the module docstring). False, as on
        the device, when an edge is already waiting to be taken."""
        now = self.clock.now_ms
        if self.button.due(now) or (self.accel is not None and self.accel.due(now)):
            return False
        self.sleeps += 1
        self.sleep_window = (now, now + int(ms))
        self.sleep_log.append(self.sleep_window)
        del self.sleep_log[:-SLEEP_LOG]
        return True
