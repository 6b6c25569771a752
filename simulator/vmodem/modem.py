"""The virtual modem itself: power, PWRKEY, registration, the UART and its clock
(see the package docstring)."""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from typing import Any

from simulator.smsc import VirtualSmsc
from simulator.vmodem.commandline import CommandLine
from simulator.vmodem.connections import Connections, _Conn
from simulator.vmodem.settings import (
    AirRecord,
    Faults,
    Timing,
)


class VirtualSerial:
    """The modem's UART as the firmware sees it (MicroPython machine.UART subset)."""

    def __init__(self, modem: VirtualModem) -> None:
        self._m = modem

    def any(self) -> int:
        return self._m._readable()

    def read(self, n: int = -1) -> bytes | None:
        return self._m._read(n)

    def peek(self) -> bytes:
        """What read() would return now, without taking it (the simulator's VM runtime)."""
        return b"".join(d for t, d in self._m._out if t <= self._m.now)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._m._input(bytes(data))
        return len(data)


class VirtualModem(CommandLine, Connections):
    """See the module docstring. Constructor options:

    timing, faults: Timing() and Faults() by default; seed: the RNG for faults;
    model: "A7670" (boot URC *ATREADY: 1) or "SIM7600" (RDY); hosts: name -> IP
    for AT+CCHOPEN; certs: CA certificates already on the module (name -> PEM);
    smsc: where AT+CMGS goes; msisdn: the SIM's number (the SMS sender);
    powered: start switched on and registered (the nominal idle state) instead
    of off; io_wait_s: wall-time limit for waiting on the real receiver;
    allow_remote: permit non-loopback addresses (off: the simulator never
    reaches the internet).
    """

    def __init__(self, *, timing: Timing | None = None, faults: Faults | None = None, seed: int = 0,
                 model: str = "A7670", hosts: dict[str, str] | None = None,
                 certs: dict[str, str] | None = None, smsc: VirtualSmsc | None = None,
                 msisdn: str = "+447700900001", imei: str = "860000000000001",
                 powered: bool = False, rssi: int = 22, io_wait_s: float = 5.0,
                 allow_remote: bool = False) -> None:
        self.timing = timing or Timing()
        self.faults = faults or Faults()
        self.rng = random.Random(seed)
        self.model = model
        self.hosts = dict(hosts or {})
        self.certs = dict(certs or {})
        self.smsc = smsc
        self.msisdn = msisdn
        self.imei = imei
        self.rssi = rssi
        self.io_wait_s = io_wait_s
        self.allow_remote = allow_remote
        self.stream = VirtualSerial(self)
        self.now = 0
        self.air: list[AirRecord] = []
        self.log: list[tuple[int, str, bytes]] = []  # (t, "in"/"out", bytes) on the UART
        # counters
        self.commands = 0
        self.power_ons = 0
        self.power_offs = 0
        self.sms_sent = 0
        self.connections = 0
        self.answer_wall_ms: list[float] = []  # per HTTP request: wall time from its last byte to the answer
        self._events: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = 0
        self._out: list[tuple[float, bytes]] = []
        self._tx_free = 0.0
        self._rx_free = 0.0
        self._press_at: int | None = None
        self._conns: dict[int, _Conn] = {}
        self._reset_state()
        self.power = "off"
        self._garbage_armed = False
        if powered:
            self._power_on_now()

    # -- public interface -------------------------------------------------------
    def pwrkey(self, level: int) -> None:
        """PWRKEY: 1 = pressed. A press of >= 50 ms switches the module on;
        one of >= 2.5 s switches it off (a hung module too)."""
        if level and self._press_at is None:
            self._press_at = self.now
        elif not level and self._press_at is not None:
            held = self.now - self._press_at
            self._press_at = None
            if self.power == "off" and held >= 50:
                self._boot()
            elif self.power != "off" and held >= 2500:
                self._power_off()

    def cut_power(self) -> None:
        """The device lost power: the module is off at once and says nothing more."""
        self._power_off()
        self._out.clear()

    def advance(self, now_ms: int) -> None:
        """Move the modem's clock to now_ms: run what is due, pump the sockets."""
        if now_ms < self.now:
            raise ValueError(f"the clock went back: {now_ms} < {self.now}")
        while True:
            while self._events and self._events[0][0] <= now_ms:
                t, _seq, fn, args = heapq.heappop(self._events)
                self.now = max(self.now, int(t))
                fn(*args)
            self.now = now_ms
            self._pump_sockets(now_ms)
            if not self._events or self._events[0][0] > now_ms:
                break
        if self.smsc is not None:
            self.smsc.advance(now_ms)

    def next_event_ms(self) -> int | None:
        """The next time something happens on its own (an answer, a URC, data)."""
        times: list[float] = []
        if self._events:
            times.append(self._events[0][0])
        pending = [t for t, _ in self._out if t > self.now]
        if pending:
            times.append(min(pending))
        for conn in self._conns.values():
            if conn.outstanding and not conn.closed:
                times.append(max(conn.expect_from, self.now))
        if self.smsc is not None:
            t_sms = self.smsc.next_event_ms()
            if t_sms is not None:
                times.append(t_sms)
        return math.ceil(min(times)) if times else None

    def set_fault(self, name: str, value: Any) -> None:
        """Change a fault while running (e.g. set_fault("no_coverage", True))."""
        if not hasattr(self.faults, name):
            raise KeyError(f"no fault called {name!r}")
        setattr(self.faults, name, value)
        if name == "sim_missing" and not value and self.power == "on" and self.radio:
            self._at(self.timing.sim_ms, self._sim_up)  # the SIM is back
        if name in ("no_coverage", "denied", "sim_missing"):
            self._registration_changed()
        if name == "data_down" and value:
            for sid, conn in list(self._conns.items()):
                if not conn.closed:
                    self._drop(conn)
                    self._line(f"+CCH_PEER_CLOSED: {sid}")
        if name == "garbage_every_ms" and value:
            self._arm_garbage()

    def close(self) -> None:
        """Close every real socket."""
        for conn in list(self._conns.values()):
            self._drop(conn)
        self._conns.clear()

    @property
    def registered(self) -> bool:
        return self.reg_stat in (1, 5)

    def air_bytes(self, direction: str | None = None, kinds: tuple[str, ...] = ("data", "tls", "sms")) -> int:
        """Sum of air bytes, optionally for one direction."""
        return sum(r.air_bytes for r in self.air
                   if r.kind in kinds and (direction is None or r.direction == direction))

    # -- the UART ---------------------------------------------------------------
    def _readable(self) -> int:
        return sum(len(d) for t, d in self._out if t <= self.now)

    def _read(self, n: int) -> bytes | None:
        out = bytearray()
        while self._out and self._out[0][0] <= self.now and (n < 0 or len(out) < n):
            t, data = self._out[0]
            k = len(data) if n < 0 else min(len(data), n - len(out))
            out += data[:k]
            if k < len(data):
                self._out[0] = (t, data[k:])
            else:
                self._out.pop(0)
        return bytes(out) if out else None

    def _uart_ms(self, nbytes: int) -> float:
        return nbytes * 10 * 1000 / self.timing.uart_baud

    def _emit(self, data: bytes) -> None:
        """Bytes to the host now (after the UART time of those ahead of them)."""
        if self.power != "on" or self.faults.hang or not data:
            return
        start = max(float(self.now), self._tx_free)
        self._tx_free = start + self._uart_ms(len(data))
        self._out.append((self._tx_free, data))
        self.log.append((self.now, "out", data))

    def _line(self, text: str | bytes) -> None:
        self._emit(b"\r\n" + (text.encode() if isinstance(text, str) else text) + b"\r\n")

    def _at(self, delay_ms: float, fn: Callable[..., None], *args: Any) -> None:
        self._seq += 1
        heapq.heappush(self._events, (self.now + delay_ms, self._seq, fn, args))

    def _later(self, delay_ms: float, *lines: str | bytes) -> None:
        def emit() -> None:
            for line in lines:
                self._line(line)
        self._at(delay_ms, emit)

    def _input(self, data: bytes) -> None:
        self.log.append((self.now, "in", data))
        start = max(float(self.now), self._rx_free)
        self._rx_free = start + self._uart_ms(len(data))
        self._seq += 1
        heapq.heappush(self._events, (self._rx_free, self._seq, self._receive, (data,)))

    # -- power ------------------------------------------------------------------
    def _reset_state(self) -> None:
        self.echo = True
        self.cmee = 0
        self.cmgf = 0
        self.creg_n = 0
        self.cereg_n = 0
        self.radio = False
        self.sim_ready = False
        self.reg_stat = 0
        self.apn = ""
        self.cch_started = False
        self.cch_report = 0
        self.cch_recv_mode = 0
        self.ssl_cfg: dict[str, Any] = {"sslversion": 4, "authmode": 0, "cacert": None, "enableSNI": 0}
        self._mode = "cmd"
        self._linebuf = bytearray()
        self._data_left = 0
        self._data_buf = bytearray()
        self._data_done: Callable[[bytes], None] | None = None
        self._mr = 0
        self._reg_gen = 0

    def _boot(self) -> None:
        self.power = "booting"
        self.power_ons += 1
        self._reset_state()
        self._out.clear()
        self._at(self.timing.boot_ms, self._booted)

    def _booted(self) -> None:
        if self.power != "booting":
            return
        self.power = "on"
        self._tx_free = float(self.now)
        self._line("*ATREADY: 1" if self.model == "A7670" else "RDY")
        self.radio = True
        self._at(self.timing.sim_ms, self._sim_up)
        self._arm_garbage()

    def _power_on_now(self) -> None:
        """Start already on, SIM ready and (faults permitting) registered."""
        self.power = "on"
        self.power_ons += 1
        self.radio = True
        self.sim_ready = not self.faults.sim_missing
        self.echo = False
        self.cmee = 1
        self.reg_stat = self._target_stat()
        self._arm_garbage()

    def _power_off(self) -> None:
        self.power_offs += 1
        if self.power == "on" and not self.faults.hang:
            self._line("NORMAL POWER DOWN")
        self.power = "off"
        self.faults.hang = False  # a power cycle cures a hung module
        self.close()
        self._conns.clear()
        self._events.clear()  # nothing said before the power went can come after it
        self._garbage_armed = False
        self._out = [o for o in self._out if o[0] <= self.now]
        self._reset_state()

    def _reboot_now(self) -> None:
        self.close()
        self._conns.clear()
        self._events.clear()
        self._garbage_armed = False
        self._boot()

    def _sim_up(self) -> None:
        if self.power != "on":
            return
        if self.faults.sim_missing:
            return
        self.sim_ready = True
        self._line("+CPIN: READY")
        self._line("SMS DONE")
        self._line("PB DONE")
        self._registration_changed()

    def _arm_garbage(self) -> None:
        if self.faults.garbage_every_ms and not self._garbage_armed and self.power == "on":
            self._garbage_armed = True
            self._at(self.faults.garbage_every_ms, self._garbage)

    def _garbage(self) -> None:
        self._garbage_armed = False
        if not self.faults.garbage_every_ms or self.power != "on":
            return
        noise = [b for b in range(256) if b >= 0x80 or (b < 0x20 and b not in (10, 13))]
        self._emit(bytes(self.rng.choice(noise) for _ in range(self.rng.randint(4, 40))))
        self._arm_garbage()

    # -- registration -------------------------------------------------------------
    def _target_stat(self) -> int:
        f = self.faults
        if not self.radio or not self.sim_ready:
            return 0
        if f.no_coverage:
            return 2
        if f.denied:
            return 3
        return 1

    def _registration_changed(self) -> None:
        if self.power != "on":
            return
        if self.faults.sim_missing:
            self.sim_ready = False
        target = self._target_stat()
        if target == self.reg_stat:
            return
        self._reg_gen += 1
        gen = self._reg_gen
        if target == 1 or target == 3:
            if self.reg_stat != 2:
                self._set_stat(2)  # searching first
            self._at(self.timing.register_ms, self._set_stat_if, gen, target)
        else:
            self._set_stat(target)

    def _set_stat_if(self, gen: int, stat: int) -> None:
        if gen == self._reg_gen and self.power == "on":
            self._set_stat(stat)

    def _set_stat(self, stat: int) -> None:
        was = self.registered
        self.reg_stat = stat
        if self.cereg_n:
            self._line(f"+CEREG: {stat}")
        if self.creg_n:
            self._line(f"+CREG: {stat}")
        if was and not self.registered:
            self._line("+CGEV: NW PDN DEACT 1")
            for sid, conn in list(self._conns.items()):
                self._drop(conn)
                self._line(f"+CCH_PEER_CLOSED: {sid}")
