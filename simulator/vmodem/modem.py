"""The virtual modem itself: power and PWRKEY, the boot order, registration, the UART
and its clock (see the package docstring).

Power follows the A7670 hardware design manual V1.06 (3.2, Tables 11-12): PWRKEY
low >= 50 ms switches the module on (at the release); held >= 2.5 s it switches a
running module off (when the 2.5 s have passed, still held); a power-down takes
about 2 s, during which the module hears neither the UART nor the key, and a press
that starts less than 2 s after it went off is ignored. AT+CPOF answers OK within
its Max Response Time of 9 s (AT manual V1.09 3.2.5), then powers down the same way.
A module hung with `hang_needs_reset` would need its RESET line (HD 3.2.3), which
the board's HAL does not wire: here only a power removal (`cut_power`) clears it.

Boot order: `*ATREADY: 1` (A76XX; SIM7600: `RDY`), then `+CPIN: READY` (or
`+CPIN: SIM REMOVED`), `SMS DONE`, `PB DONE`. Until `SMS DONE` SIM commands answer
`+CME ERROR: 14` (SIM busy) and SMS commands `+CMS ERROR: 500` (AT manual 28.3,
28.4). The same after AT+CFUN=1.

Registration on LTE Cat-1 (3GPP TS 27.007 +CEREG / +CREG): CEREG is the EPS (data)
domain; CREG is what the network grants for circuit-switched services over LTE:
1 / 5 with a combined attach, 6 / 7 "registered for SMS only" with `sms_only`.
The PDP context 1 (AT+CGDCONT, kept in NVRAM) is used at attach: an APN written
later takes effect at the next attach (AT manual 5.2.5).
"""

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
    CERT_PACKET_GAP_MS,
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

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._m._input(bytes(data))
        return len(data)


class VirtualModem(CommandLine, Connections):
    """See the module docstring. Constructor options:

    timing, faults: Timing() and Faults() by default; seed: the RNG for faults;
    model: "A7670" (boot URC *ATREADY: 1) or "SIM7600" (RDY); hosts: name -> IP
    for AT+CCHOPEN; certs: CA certificates already on the module (name -> PEM);
    smsc: where AT+CMGS goes; msisdn: the SIM's number (the SMS sender); apn: the
    APN stored in the module's context 1; powered: start switched on and
    registered (the nominal idle state) instead of off; io_wait_s: wall-time
    limit for waiting on the real receiver; allow_remote: permit non-loopback
    addresses (off: the simulator never reaches the internet).
    """

    def __init__(self, *, timing: Timing | None = None, faults: Faults | None = None, seed: int = 0,
                 model: str = "A7670", hosts: dict[str, str] | None = None,
                 certs: dict[str, str] | None = None, smsc: VirtualSmsc | None = None,
                 msisdn: str = "+447700900001", imei: str = "860000000000001", apn: str = "internet",
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
        # kept in the module's NVRAM across power cycles (AUTO_SAVE)
        self.contexts: dict[int, tuple[str, str]] = {1: ("IP", apn)}
        # counters
        self.commands = 0
        self.power_ons = 0
        self.power_offs = 0
        self.presses_ignored = 0  # PWRKEY presses during a power-down, too soon after one, or while hung
        self.sms_sent = 0
        self.connections = 0
        self.answer_wall_ms: list[float] = []  # per HTTP request: wall time from its last byte to the answer
        self.tls_log: list[tuple[str, str | None, bool]] = []  # per TLS open: (host, SNI sent, ok)
        self._events: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = 0
        self._out: list[tuple[float, bytes]] = []
        self._tx_free = 0.0
        self._rx_free = 0.0
        self._press_at: int | None = None
        self._press_counts = False
        self._press_id = 0
        self._off_at: int | None = None  # when it last went off (None: long ago)
        self._conns: dict[int, _Conn] = {}
        self._reset_state()
        self.power = "off"  # off, booting, on, stopping
        self._garbage_armed = False
        if powered:
            self._power_on_now()

    # -- public interface -------------------------------------------------------
    def pwrkey(self, level: int) -> None:
        """PWRKEY: 1 = pressed (see the module docstring for what a press does when)."""
        if level and self._press_at is None:
            self._press_at = self.now
            self._press_id += 1
            self._press_counts = self._key_listens()
            if not self._press_counts:
                self.presses_ignored += 1
            elif self.power == "on":
                self._at(self.timing.pwrkey_off_ms, self._long_press, self._press_id)
        elif not level and self._press_at is not None:
            held = self.now - self._press_at
            self._press_at = None
            if self._press_counts and self.power == "off" and held >= self.timing.pwrkey_on_ms:
                self._boot()

    def cut_power(self) -> None:
        """The device lost power: the module is off at once and says nothing more.
        The only cure for `hang_needs_reset` here (the board has no RESET line)."""
        self.faults.hang_needs_reset = False
        self._off()
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
            if conn.outstanding and conn.state == "open":
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
            self._at(self.timing.sim_ms, self._sim_up, self._radio_gen)  # the SIM is back
        if name in ("no_coverage", "denied", "sim_missing", "roaming", "sms_only"):
            self._registration_changed()
        if name in ("data_down", "cch_stop") and value:
            self._cch_stopped()
        if name == "recv_closed" and value:
            self._recv_failed()
        if name == "idle_close_ms" and value:
            for sid, conn in self._conns.items():
                self._arm_idle(sid, conn)
        if name == "garbage_every_ms" and value:
            self._arm_garbage()
        if name in ("cch_stop", "recv_closed"):
            setattr(self.faults, name, False)  # one-shot: done

    def close(self) -> None:
        """Close every real socket."""
        for conn in list(self._conns.values()):
            self._drop(conn)
        self._conns.clear()

    @property
    def registered(self) -> bool:
        """Registered in the EPS (data) domain."""
        return self.reg_stat in (1, 5)

    @property
    def sms_service(self) -> bool:
        """Registered for SMS (CREG 1 / 5, or 6 / 7: SMS only)."""
        return self.cs_stat in (1, 5, 6, 7)

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
        if self.power not in ("on", "stopping") or self._hung() or not data:
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
        if self._mode == "data" and self._data_packets is not None:
            # AT+CCERTDOWN: bytes that follow the previous ones without a pause are one packet
            if start - self._rx_free >= CERT_PACKET_GAP_MS or not self._data_packets:
                self._data_packets.append(0)
            self._data_packets[-1] += len(data)
        self._rx_free = start + self._uart_ms(len(data))
        self._seq += 1
        heapq.heappush(self._events, (self._rx_free, self._seq, self._receive, (data,)))

    def _apn_accepted(self) -> bool:
        """The network takes the APN the module attached with ("": the network's default)."""
        apn = self.attached_apn
        return apn is not None and (apn == "" or apn in self.faults.apns)

    def _hung(self) -> bool:
        return self.faults.hang or self.faults.hang_needs_reset

    # -- power ------------------------------------------------------------------
    def _reset_state(self) -> None:
        self.echo = True
        self.cmee = 0
        self.cmgf = 0
        self.creg_n = 0
        self.cereg_n = 0
        self.radio = False
        self.sim_ready = False
        self.sms_ready = False  # "SMS DONE" said
        self.reg_stat = 0  # +CEREG <stat>
        self.cs_stat = 0  # +CREG <stat>
        self.attached_apn: str | None = None  # the APN of the attach (context 1 at that time)
        self.cch_started = False
        self.cch_report = 0
        self.cch_recv_mode = 0
        self.ssl_cfg: dict[int, dict[str, Any]] = {}  # context index -> settings (defaults: 19.2.1)
        self.session_ctx: dict[int, int] = {}  # CCH session -> SSL context (AT+CCHSSLCFG)
        self._mode = "cmd"
        self._linebuf = bytearray()
        self._data_left = 0
        self._data_buf = bytearray()
        self._data_done: Callable[[bytes], None] | None = None
        self._data_packets: list[int] | None = None  # AT+CCERTDOWN: the sizes of its packets
        self._data_packets_seen: list[int] = []  # ... of the data just taken
        self._mr = 0
        self._reg_gen = 0
        self._radio_gen = 0

    def _key_listens(self) -> bool:
        if self.faults.hang_needs_reset or self.power == "stopping":
            return False
        if self.power == "off" and self._off_at is not None:
            return self.now - self._off_at >= self.timing.off_on_ms
        return True

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
        self._at(self.timing.sim_ms, self._sim_up, self._radio_gen)
        self._arm_garbage()

    def _power_on_now(self) -> None:
        """Start already on, SIM ready and (faults permitting) registered."""
        self.power = "on"
        self.power_ons += 1
        self.radio = True
        self.sim_ready = self.sms_ready = not self.faults.sim_missing
        self.echo = False
        self.cmee = 1
        self.reg_stat, self.cs_stat = self._targets()
        if self.registered:
            self.attached_apn = self.contexts.get(1, ("IP", ""))[1]
        self._arm_garbage()

    def _long_press(self, press_id: int) -> None:
        if press_id == self._press_id and self._press_at is not None and self.power == "on":
            self._shut_down(0, "NORMAL POWER DOWN")

    def _shut_down(self, after_ms: float, *last_words: str) -> None:
        """A power-down (PWRKEY held, or AT+CPOF): deaf at once; `last_words` after
        `after_ms`, then off after power_off_ms."""
        self.power = "stopping"
        self._mode = "cmd"
        self.close()
        self._events.clear()  # nothing said before the power-down can come after it
        self._garbage_armed = False

        def finish() -> None:
            for line in last_words:
                self._line(line)
            self._at(self.timing.power_off_ms, self._off)

        self._at(after_ms, finish)

    def _off(self) -> None:
        if self.power != "off":
            self.power_offs += 1
        self.power = "off"
        self._off_at = self.now
        self.faults.hang = False  # a power cycle cures a (PWRKEY-curable) hung module
        self.close()
        self._events.clear()
        self._garbage_armed = False
        self._out = [o for o in self._out if o[0] <= self.now]
        self._reset_state()

    def _reboot_now(self) -> None:
        self.close()
        self._events.clear()
        self._garbage_armed = False
        self._boot()

    def _sim_up(self, gen: int) -> None:
        if self.power != "on" or gen != self._radio_gen or not self.radio:
            return
        if self.faults.sim_missing:
            self._line("+CPIN: SIM REMOVED")
            return
        self.sim_ready = True
        self._line("+CPIN: READY")
        self._registration_changed()
        self._at(self.timing.sms_ready_ms, self._sms_up, gen)

    def _sms_up(self, gen: int) -> None:
        if self.power != "on" or gen != self._radio_gen or not self.sim_ready:
            return
        self.sms_ready = True
        self._line("SMS DONE")
        self._later(self.timing.pb_ms, "PB DONE")

    def _radio_off(self, keep_sim: bool) -> None:
        """AT+CFUN=0 (SIM off too) or 4 (flight mode): detached, the data service gone."""
        self._radio_gen += 1
        self.radio = False
        if not keep_sim:
            self.sim_ready = self.sms_ready = False
        self.cch_started = False
        self.close()

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
    def _targets(self) -> tuple[int, int]:
        """(CEREG stat, CREG stat) the network would give now."""
        f = self.faults
        if not self.radio or not self.sim_ready or f.sim_missing:
            return 0, 0
        if f.no_coverage:
            return 2, 2
        if f.denied:
            return 3, 3
        eps = 5 if f.roaming else 1
        cs = (7 if f.roaming else 6) if f.sms_only else eps
        return eps, cs

    def _registration_changed(self) -> None:
        if self.power != "on":
            return
        if self.faults.sim_missing:
            self.sim_ready = self.sms_ready = False
        target = self._targets()
        if target == (self.reg_stat, self.cs_stat):
            return
        self._reg_gen += 1
        if target[0] in (1, 3, 5) and self.reg_stat not in (1, 3, 5):
            if self.reg_stat != 2:
                self._set_stat(2, 2)  # searching first
            self._at(self.timing.register_ms, self._set_stat_if, self._reg_gen, target)
        else:
            self._set_stat(*target)

    def _set_stat_if(self, gen: int, target: tuple[int, int]) -> None:
        if gen == self._reg_gen and self.power == "on":
            self._set_stat(*target)

    def _set_stat(self, eps: int, cs: int) -> None:
        was = self.registered
        if eps != self.reg_stat and self.cereg_n:
            self._line(f"+CEREG: {eps}")
        if cs != self.cs_stat and self.creg_n:
            self._line(f"+CREG: {cs}")
        self.reg_stat, self.cs_stat = eps, cs
        if self.registered and not was:
            self.attached_apn = self.contexts.get(1, ("IP", ""))[1]  # the context at the attach
        if was and not self.registered:
            self.attached_apn = None
            if self.radio:  # the network's doing (AT+CFUN=0 / 4 is the host's own)
                self._line("+CGEV: NW PDN DEACT 1")
                self._cch_stopped()
