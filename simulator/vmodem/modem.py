"""The virtual modem itself: its state, the public interface, the UART and its
clock (see the package docstring); power, boot and registration are
simulator.vmodem.lifecycle, the command line simulator.vmodem.commandline, the data
side simulator.vmodem.connections."""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from typing import Any

from simulator.smsc import VirtualSmsc
from simulator.vmodem.commandline import CommandLine
from simulator.vmodem.connections import Connections
from simulator.vmodem.lifecycle import Lifecycle
from simulator.vmodem.sessions import _Conn
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

    def peek(self) -> bytes:
        """What read() would return now, without taking it (the simulator's VM runtime)."""
        return b"".join(d for t, d in self._m._out if t <= self._m.now)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._m._input(bytes(data))
        return len(data)


class VirtualModem(Lifecycle, CommandLine, Connections):
    """See the module docstring. Constructor options:

    timing, faults: Timing() and Faults() by default; seed: the RNG for faults;
    model: "A7670" (boot URC *ATREADY: 1) or "SIM7600" (RDY); hosts: name -> IP
    for AT+CCHOPEN; certs: CA certificates already on the module (name -> PEM);
    smsc: where AT+CMGS goes; msisdn: the SIM's number (the SMS sender); apn: the
    APN stored in the module's context 1; powered: start switched on and
    registered (the nominal idle state) instead of off; io_wait_s: how long (wall
    time) to wait for the host (the receiver's answer, a connect, a send) before
    the run stops with HostStall: a safety net, never a timeout the simulated
    device sees; answer_at_send: wait for an HTTP request's answer as soon as
    its last byte is out, the simulation standing still meanwhile (what the
    receiver sees is the send time's, whatever the host's speed), else only
    when the answer is due (fleets: the receiver answers many devices at once,
    at the price of that determinism); allow_remote: permit non-loopback
    addresses (off: the simulator never reaches the internet); raw_wait_s: how
    long (wall time) the answer to a request that is not HTTP (raw TCP, tests
    only: nothing says where it ends) may take to start; a test whose server
    answers gives it seconds so a loaded host cannot lose the answer.
    """

    def __init__(self, *, timing: Timing | None = None, faults: Faults | None = None, seed: int = 0,
                 model: str = "A7670", hosts: dict[str, str] | None = None,
                 certs: dict[str, str] | None = None, smsc: VirtualSmsc | None = None,
                 msisdn: str = "+447700900001", imei: str = "860000000000001", apn: str = "internet",
                 powered: bool = False, rssi: int = 22, io_wait_s: float = 120.0,
                 answer_at_send: bool = True, allow_remote: bool = False, raw_wait_s: float = 0.2) -> None:
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
        self.answer_at_send = answer_at_send
        self.allow_remote = allow_remote
        self.raw_wait_s = raw_wait_s
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
        # AT+CPSMS (kept in NVRAM): mode, and the requested active time (T3324) in ms
        self.psm_mode = 0
        self.psm_active_ms: int | None = None
        self.psm_wakes = 0  # times the host's bytes woke it from PSM
        self._uart_at = 0  # the UART's last activity (either way)
        self._awake_at = 0.0  # woken from PSM: hears the UART from then on
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
    def open_connections(self) -> int:
        """Sockets open (or opening) through the module."""
        return len(self._conns)

    def psm_start_ms(self) -> int | None:
        """When the module is (or, with nothing more on the UART or the air, will be) in
        3GPP PSM; None: it will not be (PSM not requested, not granted, not registered,
        a connection open). See Timing.rrc_tail_ms."""
        if (self.psm_mode != 1 or self.psm_active_ms is None or self.faults.psm_refused
                or self.power != "on" or not self.registered or self._conns):
            return None
        last = max(self._uart_at, int(self._awake_at))
        if self.air:
            last = max(last, self.air[-1].t_ms + self.timing.rrc_tail_ms)
        return last + self.psm_active_ms

    @property
    def in_psm(self) -> bool:
        t = self.psm_start_ms()
        return t is not None and self.now >= t

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
        self._uart_at = max(self._uart_at, int(self._tx_free))
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
        if self.in_psm:  # the host's bytes wake it; it hears them once awake
            self.psm_wakes += 1
            self._awake_at = float(self.now + self.timing.psm_wake_ms)
        self._uart_at = self.now
        start = max(float(self.now), self._rx_free, self._awake_at)
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
