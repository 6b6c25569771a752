"""The simulated HAL: the interface of firmware/sotto/hal/ over virtual parts.

The firmware runs unchanged on top of it. Time is the virtual clock's; the
modem is simulator.vmodem.VirtualModem; flash is a directory on the host.
"""

from __future__ import annotations

import random
from typing import Any

from simulator.clock import VirtualClock
from simulator.peripherals import Battery, Button, GnssReceiver, GnssUart, Microphone
from simulator.vmodem import VirtualModem


class SimHal:
    def __init__(self, board: dict[str, Any], flash_dir: str, clock: VirtualClock,
                 modem: VirtualModem, gnss: GnssReceiver, mic: Microphone, battery: Battery,
                 button: Button, seed: int = 1) -> None:
        self.board = board
        self.flash_dir = flash_dir
        self.storage_root = flash_dir.rstrip("/") + "/data"
        self.clock = clock
        self.modem = modem
        self.gnss = gnss
        self.mic = mic
        self.battery = battery
        self.button = button
        self.modem_uart = modem.stream
        self.gnss_uart = GnssUart(gnss)
        self.haptic_log: list[tuple[int, bool]] = []
        self.gnss_log: list[tuple[int, bool]] = []
        self.mic_log: list[tuple[int, bool]] = []
        self.wdt_feeds = 0
        self.resets = 0
        self._rng = random.Random(seed)

    # the interface ---------------------------------------------------------------
    def button_edges(self) -> list[tuple[int, bool]]:
        return [(t % (1 << 30), p) for t, p in self.button.take(self.clock.now_ms)]

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
        self.mic.stop()
        self.mic_log.append((self.clock.now_ms, False))

    def battery_mv(self) -> int:
        return self.battery.mv()

    def haptic(self, on: bool) -> None:
        self.haptic_log.append((self.clock.now_ms, bool(on)))

    def random_bytes(self, n: int) -> bytes:
        return bytes(self._rng.getrandbits(8) for _ in range(n))

    def wdt_feed(self) -> None:
        self.wdt_feeds += 1

    def reset(self) -> None:
        self.resets += 1

    def ticks_ms(self) -> int:
        return self.clock.ticks()
