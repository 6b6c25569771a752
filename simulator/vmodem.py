"""A virtual SIMCom A7670-class modem for the simulator and the tests.

It answers the AT subset the firmware speaks (docs/modem.md) over a virtual
serial stream, on the simulator's clock, and carries data for real:

    vm = VirtualModem(timing=Timing(), faults=Faults(), seed=1, smsc=VirtualSmsc(url))
    hal.modem_uart = vm.stream          # read(n) -> bytes | None, write(b), any()
    hal.modem_pwrkey = vm.pwrkey        # 1 = key pressed (PWRKEY pulled low)
    ...
    vm.advance(now_ms)                  # before each firmware step; never sleeps
    vm.next_event_ms()                  # when the modem next has something to say
    vm.air                              # every byte that crossed the air (AirRecord)
    vm.close()

Time: everything (boot, registration, command latency, UART speed, network
round trips and bandwidth) runs on the `now_ms` values given to advance().
Sockets are real: AT+CCHOPEN opens a real TCP connection (with real TLS through
Python's ssl, client type 2) to a loopback address; AT+CMGS hands the PDU to a
VirtualSmsc, which posts it to the receiver's /v1/sms webhook. While the firmware
waits for an answer the receiver has not sent yet, advance() blocks on the socket
(at most `io_wait_s` of wall time): the answer is then stamped with its modelled
arrival time, so runs are repeatable whatever the machine's speed.

Faults (the Faults fields, also settable while running with set_fault()):
no_coverage, denied, sim_missing, hang (silent until power-cycled by PWRKEY),
error_rate / cme_rate (random ERROR / +CME ERROR answers, seeded), fail_next
(scripted answers for the next commands matching a prefix), garbage_every_ms,
urc_burst (URCs inside every answer), data_down (registered, SMS works, data
connections fail), drop_after_bytes / drop_before_response (one-shot: the
connection breaks mid-send / after the request reached the receiver), and a slow
link through Timing (rtt_ms, uplink_bps, downlink_bps).
"""

from __future__ import annotations

import heapq
import ipaddress
import math
import random
import select
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simulator.smsc import PduDecodeError, VirtualSmsc

CTRL_Z = 0x1A
ESC = 0x1B

# <err> codes of the CCH commands (A76XX manual, "AT Commands for SSL", result codes)
CCH_OK = 0
CCH_NETWORK_ERROR = 9
CCH_DNS_ERROR = 13
CCH_CONNECT_ERROR = 14
CCH_HANDSHAKE_ERROR = 15
CCH_NO_CERT = 19


@dataclass
class Timing:
    """Nominal delays of a registered LTE Cat-1 module; all in ms or bit/s."""

    uart_baud: int = 115200
    cmd_ms: int = 15  # a simple command's answer
    boot_ms: int = 12000  # PWRKEY released -> *ATREADY
    sim_ms: int = 1500  # *ATREADY -> +CPIN: READY
    register_ms: int = 3000  # SIM ready / radio on -> registered
    cfun_off_ms: int = 800
    cfun_on_ms: int = 300
    power_off_ms: int = 2500
    start_ms: int = 200  # AT+CCHSTART (PDP already up on LTE)
    connect_ms: int = 150  # DNS + TCP connect beyond one round trip
    tls_ms: int = 350  # TLS handshake crypto in the module beyond the round trips
    rtt_ms: int = 80  # network round trip
    uplink_bps: int = 1_000_000
    downlink_bps: int = 5_000_000
    sms_ms: int = 2500  # AT+CMGS -> +CMGS
    fail_connect_ms: int = 5000  # how long a failing connect takes to report


@dataclass
class Faults:
    """What is wrong with the modem or the network; see the module docstring."""

    no_coverage: bool = False
    denied: bool = False
    sim_missing: bool = False
    hang: bool = False
    error_rate: float = 0.0
    cme_rate: float = 0.0
    fail_next: list[tuple[str, str]] = field(default_factory=list)  # (command prefix, answer line)
    garbage_every_ms: int = 0
    urc_burst: int = 0
    data_down: bool = False
    drop_after_bytes: int | None = None  # one-shot
    drop_before_response: bool = False  # one-shot


@dataclass
class AirRecord:
    """Bytes that crossed the radio: `air_bytes` as sent (TLS records, or the SMS
    TPDU), `payload` the application bytes inside (plaintext, or the SMS user data)."""

    t_ms: int
    direction: str  # "up" (device -> network) or "down"
    kind: str  # "data", "tls" (handshake and other TLS records without data), "sms"
    air_bytes: int
    payload: bytes
    peer: str


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


@dataclass(eq=False)  # hashable by identity: kept in _AWAITING
class _Conn:
    sock: socket.socket
    peer: str
    tls: ssl.SSLObject | None = None
    incoming: ssl.MemoryBIO | None = None
    outgoing: ssl.MemoryBIO | None = None
    cache: bytearray = field(default_factory=bytearray)
    sent_plain: int = 0
    outstanding: bool = False
    expect_from: float = 0.0
    up_free: float = 0.0
    down_free: float = 0.0
    eof: bool = False
    closed: bool = False
    event_sent: bool = False
    drop_response: bool = False
    answer: bytearray = field(default_factory=bytearray)  # plaintext since the last request
    request: bytearray = field(default_factory=bytearray)  # plaintext of the request being sent
    wait_s: float = 0.0  # how long to block for the answer once it is due
    sent_wall: float = 0.0  # wall time the last request's last byte went out
    ready_wall: float = 0.0  # wall time its answer was first seen waiting (stamp_ready)


class VirtualModem:
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

    # -- command input --------------------------------------------------------------
    def _receive(self, data: bytes) -> None:
        if self.power != "on" or self.faults.hang:
            return
        i = 0
        while i < len(data):
            if self._mode == "data":
                k = min(self._data_left, len(data) - i)
                self._data_buf += data[i:i + k]
                self._data_left -= k
                i += k
                if self._data_left == 0:
                    self._mode = "cmd"
                    done, self._data_done = self._data_done, None
                    if done is not None:
                        done(bytes(self._data_buf))
                continue
            if self._mode == "pdu":
                c = data[i]
                i += 1
                if c in (CTRL_Z, ESC):
                    self._mode = "cmd"
                    done, self._data_done = self._data_done, None
                    if done is not None and c == CTRL_Z:
                        done(bytes(self._data_buf))
                else:
                    self._data_buf.append(c)
                continue
            c = data[i]
            i += 1
            if c == 13:
                line = bytes(self._linebuf).strip()
                self._linebuf.clear()
                if line:
                    if self.echo:
                        self._emit(line + b"\r")
                    self._command(line)
            elif c != 10:
                self._linebuf.append(c)

    def _expect_data(self, nbytes: int, prompt: bytes, done: Callable[[bytes], None]) -> None:
        self._mode = "data"
        self._data_left = nbytes
        self._data_buf = bytearray()
        self._data_done = done
        self._emit(prompt)

    def _command(self, line: bytes) -> None:
        self.commands += 1
        text = line.decode("latin-1")
        upper = text.upper()
        if not upper.startswith("AT"):
            self._later(self.timing.cmd_ms, "ERROR")
            return
        f = self.faults
        for k, (prefix, answer) in enumerate(f.fail_next):
            if upper.startswith(prefix.upper()):
                del f.fail_next[k]
                self._later(self.timing.cmd_ms, answer)
                return
        if f.error_rate and self.rng.random() < f.error_rate:
            self._later(self.timing.cmd_ms, "ERROR")
            return
        if f.cme_rate and self.rng.random() < f.cme_rate:
            self._later(self.timing.cmd_ms, "+CME ERROR: 100")
            return
        body = text[2:]
        name, op, args = body, "", ""
        for sep in ("=?", "?", "="):
            pos = body.find(sep)
            if pos >= 0 and (op == "" or pos < len(name)):
                name, op, args = body[:pos], sep, body[pos + len(sep):]
        name = name.upper()
        handler = _HANDLERS.get(name)
        if handler is None and name.startswith("E") and name[1:] in ("", "0", "1"):
            self.echo = name != "E0"
            self._ok()
            return
        if handler is None:
            self._ok() if name == "" else self._error(4)  # 4: operation not supported
            return
        handler(self, op, _split_args(args))

    def _answer(self, *lines: str | bytes, delay: float | None = None) -> None:
        """Info lines, then (with a burst of URCs inside, if asked) OK."""
        burst = [self._urc_noise(k) for k in range(self.faults.urc_burst)]
        self._later(self.timing.cmd_ms if delay is None else delay, *lines, *burst, "OK")

    def _ok(self, delay: float | None = None) -> None:
        self._answer(delay=delay)

    def _error(self, code: int = 100, sms: bool = False, delay: float | None = None) -> None:
        # +CMS ERROR is always numeric (TS 27.005 §3.2.5); +CME ERROR follows AT+CMEE
        if sms:
            line = f"+CMS ERROR: {code}"
        elif self.cmee == 0:
            line = "ERROR"
        else:
            line = f"+CME ERROR: {code}"
        self._later(self.timing.cmd_ms if delay is None else delay, line)

    def _urc_noise(self, k: int) -> str:
        choice = k % 4
        if choice == 0:
            return f"+CEREG: {self.reg_stat}"
        if choice == 1:
            return f"+CREG: {self.reg_stat}"
        if choice == 2:
            return "+CGEV: ME PDN ACT 1"
        return f'+CMTI: "SM",{k % 20}'

    # -- data connections -------------------------------------------------------------
    def _resolve(self, host: str) -> str | None:
        ip = self.hosts.get(host, host)
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        if not addr.is_loopback and not self.allow_remote:
            return None
        return str(addr)

    def _open(self, sid: int, host: str, port: int, client_type: int) -> tuple[int, float]:
        """Connect for real; returns (err, sim ms it took)."""
        t = self.timing
        if not self.registered or self.faults.data_down:
            return CCH_NETWORK_ERROR, t.fail_connect_ms
        ip = self._resolve(host)
        if ip is None:
            return CCH_DNS_ERROR, t.fail_connect_ms
        took = t.connect_ms + t.rtt_ms
        try:
            sock = socket.create_connection((ip, port), timeout=5)
        except OSError:
            return CCH_CONNECT_ERROR, took
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Conn(sock, f"{ip}:{port}")
        if client_type == 2:
            try:
                took += self._handshake(conn, host)
            except ssl.SSLError:
                sock.close()
                return CCH_HANDSHAKE_ERROR, took + t.tls_ms
            except _NoCert:
                sock.close()
                return CCH_NO_CERT, t.cmd_ms
            except OSError:
                sock.close()
                return CCH_HANDSHAKE_ERROR, took + t.tls_ms
        sock.setblocking(False)
        conn.up_free = conn.down_free = self.now + took
        self._conns[sid] = conn
        self.connections += 1
        return CCH_OK, took

    def _handshake(self, conn: _Conn, host: str) -> float:
        cfg = self.ssl_cfg
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if cfg["sslversion"] == 3:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        if cfg["authmode"] == 0:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        else:
            pem = self.certs.get(cfg["cacert"] or "")
            if pem is None:
                raise _NoCert()
            ctx.load_verify_locations(cadata=pem)
        sni = host if (cfg["enableSNI"] or cfg["authmode"]) else None
        conn.incoming, conn.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        conn.tls = ctx.wrap_bio(conn.incoming, conn.outgoing, server_hostname=sni)
        flights = 0
        while True:
            try:
                conn.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                out = conn.outgoing.read()
                if out:
                    conn.sock.sendall(out)
                    self._air("up", "tls", len(out), b"", conn.peer)
                    flights += 1
                data = conn.sock.recv(65536)
                if not data:
                    raise ssl.SSLError("connection closed during the handshake") from None
                self._air("down", "tls", len(data), b"", conn.peer)
                conn.incoming.write(data)
        out = conn.outgoing.read()
        if out:
            conn.sock.sendall(out)
            self._air("up", "tls", len(out), b"", conn.peer)
        return self.timing.tls_ms + flights * self.timing.rtt_ms

    def _air(self, direction: str, kind: str, nbytes: int, payload: bytes, peer: str) -> None:
        self.air.append(AirRecord(self.now, direction, kind, nbytes, payload, peer))

    def _send(self, sid: int, plain: bytes) -> None:
        conn = self._conns.get(sid)
        if conn is None or conn.closed:
            return
        f = self.faults
        cut = None
        if f.drop_after_bytes is not None and conn.sent_plain + len(plain) > f.drop_after_bytes:
            cut = max(0, f.drop_after_bytes - conn.sent_plain)
            f.drop_after_bytes = None
            plain = plain[:cut]
        if f.drop_before_response:
            f.drop_before_response = False
            conn.drop_response = True
        if plain:
            raw = plain
            if conn.tls is not None and conn.outgoing is not None:
                conn.tls.write(plain)
                raw = conn.outgoing.read()
            try:
                conn.sock.setblocking(True)
                conn.sock.sendall(raw)
                conn.sock.setblocking(False)
            except OSError:
                cut = 0
            self._air("up", "data", len(raw), bytes(plain), conn.peer)
            conn.sent_plain += len(plain)
            start = max(float(self.now), conn.up_free)
            conn.up_free = start + len(raw) * 8000 / self.timing.uplink_bps
            conn.expect_from = conn.up_free + self.timing.rtt_ms
            conn.request += plain
            complete = _http_complete(conn.request, b"POST ")
            if complete is not False:
                # a whole request is out (or not HTTP): its answer is worth waiting for
                conn.outstanding = True
                conn.sent_wall = time.monotonic()
                conn.ready_wall = 0.0
                _AWAITING.add(conn)
                conn.wait_s = self.io_wait_s if complete else min(self.io_wait_s, 0.2)
                conn.request.clear()
                conn.answer.clear()
        if cut is not None:
            self._drop(conn)
            self._later(self.timing.rtt_ms, f"+CCH_PEER_CLOSED: {sid}")

    def _drop(self, conn: _Conn) -> None:
        conn.closed = True
        conn.outstanding = False
        try:
            conn.sock.close()
        except OSError:
            pass

    def _pump_sockets(self, now_ms: int) -> None:
        for sid, conn in list(self._conns.items()):
            if conn.closed:
                continue
            wait = 0.0
            if conn.outstanding and now_ms >= conn.expect_from:
                wait = conn.wait_s  # the firmware is waiting for this answer
            got = self._read_socket(conn, wait)
            if got or conn.eof:
                self._deliver(sid, conn, got)

    def _read_socket(self, conn: _Conn, wait_s: float) -> bytes:
        """Read what the peer sent. With wait_s, block (wall time) until the whole
        answer is in: an HTTP response by its Content-Length, anything else once
        the line has been quiet for 50 ms."""
        plain = bytearray()
        deadline = time.monotonic() + wait_s
        while True:
            left = deadline - time.monotonic()
            try:
                ready = _readable(conn.sock, max(0.0, left))
            except (OSError, ValueError):
                conn.eof = True
                break
            if not ready:
                break
            try:
                raw = conn.sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                raw = b""
            if not raw:
                conn.eof = True
                break
            got = self._decrypt(conn, raw)
            self._air("down", "data" if got else "tls", len(raw), got, conn.peer)
            plain += got
            conn.answer += got
            if got and conn.outstanding:
                complete = _http_complete(conn.answer, b"HTTP/1.")
                if complete:
                    # the whole answer is in, even if it came before the modelled
                    # round trip was over: nothing more to wait for
                    seen = conn.ready_wall or time.monotonic()
                    self.answer_wall_ms.append((seen - conn.sent_wall) * 1000)
                    conn.outstanding = False
                    break
                if complete is None and wait_s:  # not HTTP: take what came, after a short quiet time
                    deadline = min(deadline, time.monotonic() + 0.05)
        if wait_s and (plain or not conn.eof):
            # the answer is in (or the receiver stays silent): stop blocking for it
            conn.outstanding = False
        return bytes(plain)

    def _decrypt(self, conn: _Conn, raw: bytes) -> bytes:
        if conn.tls is None or conn.incoming is None:
            return raw
        conn.incoming.write(raw)
        out = bytearray()
        while True:
            try:
                chunk = conn.tls.read(65536)
            except ssl.SSLWantReadError:
                break
            except (ssl.SSLZeroReturnError, ssl.SSLError):
                conn.eof = True
                break
            if not chunk:
                break
            out += chunk
        return bytes(out)

    def _deliver(self, sid: int, conn: _Conn, data: bytes) -> None:
        """Received bytes reach the module at their modelled time, then the host."""
        arrive = max(float(self.now), conn.expect_from, conn.down_free)
        arrive += len(data) * 8000 / self.timing.downlink_bps
        conn.down_free = arrive
        if conn.drop_response:
            self._drop(conn)
            self._at(arrive - self.now, self._line, f"+CCH_PEER_CLOSED: {sid}")
            return
        eof = conn.eof
        if eof:
            conn.closed = True
            try:
                conn.sock.close()
            except OSError:
                pass
        self._at(arrive - self.now, self._arrived, sid, conn, data, eof)

    def _arrived(self, sid: int, conn: _Conn, data: bytes, eof: bool) -> None:
        if self._conns.get(sid) is not conn:
            return
        if data:
            if self.cch_recv_mode == 0:
                self._emit(f"\r\n+CCHRECV: DATA,{sid},{len(data)}\r\n".encode() + data)
            else:
                conn.cache += data
                if not conn.event_sent:
                    conn.event_sent = True
                    self._line(f"+CCHEVENT: {sid},RECV EVENT")
        if eof:
            self._line(f"+CCH_PEER_CLOSED: {sid}")

    # -- SMS ----------------------------------------------------------------------
    def _sms_submit(self, length: int, hex_pdu: bytes) -> None:
        try:
            pdu = bytes.fromhex(hex_pdu.decode("ascii"))
        except ValueError:
            self._error(304, sms=True)  # invalid PDU mode parameter
            return
        if not pdu or len(pdu) - 1 - pdu[0] != length:
            self._error(304, sms=True)
            return
        if not self.sim_ready:
            self._error(310, sms=True)  # SIM not inserted
            return
        if not self.registered:
            self._error(331, sms=True, delay=self.timing.sms_ms)  # no network service
            return
        tpdu = pdu[1 + pdu[0]:]
        if self.smsc is not None:
            try:
                record = self.smsc.submit(self.now + self.timing.sms_ms, self.msisdn, tpdu)
            except PduDecodeError:
                self._error(304, sms=True, delay=self.timing.sms_ms)
                return
            payload = record.payload
        else:
            payload = b""
        self._air("up", "sms", len(tpdu), payload, "smsc")
        self.sms_sent += 1
        self._mr = (self._mr + 1) % 256
        self._answer(f"+CMGS: {self._mr}", delay=self.timing.sms_ms)


def _readable(sock: socket.socket, timeout_s: float) -> bool:
    """select() for one socket, with poll (select fails above fd 1024, which a fleet passes)."""
    p = select.poll()
    p.register(sock.fileno(), select.POLLIN)
    return bool(p.poll(int(timeout_s * 1000 + 0.999)))


_AWAITING: set[_Conn] = set()  # connections with a request out and no answer seen yet


def stamp_ready(modems: list[VirtualModem] | None = None) -> None:
    """Note the wall time at which answers become readable on connections that
    await one, without reading them. A simulator stepping many devices in turn
    calls this often, so a device's measured answer time is the receiver's,
    not the time the simulator took to get round to that device. (`modems` is
    accepted for clarity; every waiting connection is checked.)"""
    waiting = {}
    poller = select.poll()  # poll, not select: a fleet has more than 1024 sockets
    for conn in list(_AWAITING):
        if not conn.outstanding or conn.ready_wall or conn.closed:
            _AWAITING.discard(conn)
            continue
        try:
            fd = conn.sock.fileno()
        except OSError:
            _AWAITING.discard(conn)
            continue
        waiting[fd] = conn
        poller.register(fd, select.POLLIN)
    if not waiting:
        return
    now = time.monotonic()
    for fd, _ev in poller.poll(0):
        waiting[fd].ready_wall = now
        _AWAITING.discard(waiting[fd])


class _NoCert(Exception):
    pass


def _http_complete(data: bytearray, start: bytes) -> bool | None:
    """True when `data` holds a whole HTTP message beginning with `start` (a
    request or a response, by its Content-Length), False when a part is still
    missing, None when it is not HTTP."""
    if not data.startswith(start):
        return None if len(data) >= len(start) or not start.startswith(bytes(data)) else False
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return False
    length = 0
    for line in bytes(data[:end]).split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return True
    return len(data) >= end + 4 + length


def _split_args(args: str) -> list[str]:
    out, cur, quoted = [], [], False
    for ch in args:
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    if args:
        out.append("".join(cur).strip())
    return out


def _unquote(s: str) -> str:
    return s[1:-1] if len(s) >= 2 and s[0] == s[-1] == '"' else s


def _int(s: str, default: int = -1) -> int:
    try:
        return int(s)
    except ValueError:
        return default


# -- command handlers: handler(modem, op, args); op is "", "?", "=?" or "=" ----------
def _h_at(m: VirtualModem, op: str, a: list[str]) -> None:
    m._ok()


def _h_cmee(m: VirtualModem, op: str, a: list[str]) -> None:
    if op == "?":
        m._answer(f"+CMEE: {m.cmee}")
    elif op == "=" and a and _int(a[0]) in (0, 1, 2):
        m.cmee = _int(a[0])
        m._ok()
    else:
        m._error(50)


def _h_ident(text: str) -> Callable[[VirtualModem, str, list[str]], None]:
    def h(m: VirtualModem, op: str, a: list[str]) -> None:
        m._answer(text if text else m.imei)
    return h


def _h_cpin(m: VirtualModem, op: str, a: list[str]) -> None:
    if m.faults.sim_missing or not m.sim_ready:
        m._error(10 if m.faults.sim_missing else 14)  # not inserted / SIM busy
    else:
        m._answer("+CPIN: READY")


def _h_csq(m: VirtualModem, op: str, a: list[str]) -> None:
    rssi = m.rssi if m.radio and not m.faults.no_coverage else 99
    m._answer(f"+CSQ: {rssi},99")


def _h_reg(kind: str) -> Callable[[VirtualModem, str, list[str]], None]:
    def h(m: VirtualModem, op: str, a: list[str]) -> None:
        attr = "creg_n" if kind == "CREG" else "cereg_n"
        if op == "?":
            m._answer(f"+{kind}: {getattr(m, attr)},{m.reg_stat}")
        elif op == "=" and a and _int(a[0]) in (0, 1, 2):
            setattr(m, attr, _int(a[0]))
            m._ok()
        else:
            m._error(50)
    return h


def _h_cgdcont(m: VirtualModem, op: str, a: list[str]) -> None:
    if op == "=" and len(a) >= 3 and _int(a[0]) == 1:
        m.apn = _unquote(a[2])
        m._ok()
    elif op == "?":
        m._answer(f'+CGDCONT: 1,"IP","{m.apn}"')
    else:
        m._error(50)


def _h_cfun(m: VirtualModem, op: str, a: list[str]) -> None:
    if op == "?":
        m._answer(f"+CFUN: {1 if m.radio else 0}")
        return
    fun = _int(a[0]) if a else -1
    if fun == 1 and len(a) > 1 and _int(a[1]) == 1:  # reset
        m._ok()
        m._at(m.timing.cmd_ms + 100, m._reboot_now)
        return
    if fun == 0:
        m.radio = False
        m.cch_started = False
        for conn in list(m._conns.values()):
            m._drop(conn)
        m._conns.clear()
        m._ok(delay=m.timing.cfun_off_ms)
        m._at(m.timing.cfun_off_ms, m._registration_changed)
    elif fun == 1:
        was = m.radio
        m.radio = True
        m._ok(delay=m.timing.cfun_on_ms)
        if not was:
            m.sim_ready = False
            m._at(m.timing.cfun_on_ms, m._sim_up)
    else:
        m._error(50)


def _h_cpof(m: VirtualModem, op: str, a: list[str]) -> None:
    m._ok()
    m._at(m.timing.cmd_ms + 50, m._power_off)


def _h_cmgf(m: VirtualModem, op: str, a: list[str]) -> None:
    if op == "=" and a and _int(a[0]) in (0, 1):
        m.cmgf = _int(a[0])
        m._ok()
    elif op == "?":
        m._answer(f"+CMGF: {m.cmgf}")
    else:
        m._error(50)


def _h_cmgs(m: VirtualModem, op: str, a: list[str]) -> None:
    length = _int(a[0]) if op == "=" and a else -1
    if m.cmgf != 0 or not 7 <= length <= 164:
        m._error(304, sms=True)  # only PDU mode is modelled
        return
    m._mode = "pdu"
    m._data_buf = bytearray()
    m._data_done = lambda hexpdu: m._sms_submit(length, hexpdu)
    m._emit(b"\r\n> ")


def _h_cmgd(m: VirtualModem, op: str, a: list[str]) -> None:
    m._ok()


def _h_cchset(m: VirtualModem, op: str, a: list[str]) -> None:
    if op == "=" and a:
        m.cch_report = _int(a[0], 0)
        if len(a) > 1:
            m.cch_recv_mode = _int(a[1], 0)
        m._ok()
    elif op == "?":
        m._answer(f"+CCHSET: {m.cch_report},{m.cch_recv_mode}")
    else:
        m._error(50)


def _h_cchstart(m: VirtualModem, op: str, a: list[str]) -> None:
    if m.cch_started:
        m._later(m.timing.cmd_ms, "ERROR")
        return
    if not m.registered or m.faults.data_down:
        m._answer(delay=m.timing.cmd_ms)
        m._later(m.timing.fail_connect_ms, f"+CCHSTART: {CCH_NETWORK_ERROR}")
        return
    m.cch_started = True
    m._ok()
    m._later(m.timing.start_ms, "+CCHSTART: 0")


def _h_cchstop(m: VirtualModem, op: str, a: list[str]) -> None:
    if not m.cch_started:
        m._later(m.timing.cmd_ms, "ERROR")
        return
    m.cch_started = False
    for conn in list(m._conns.values()):
        m._drop(conn)
    m._conns.clear()
    m._ok()
    m._later(m.timing.cmd_ms * 2, "+CCHSTOP: 0")


def _h_csslcfg(m: VirtualModem, op: str, a: list[str]) -> None:
    if op != "=" or len(a) < 3:
        m._error(50)
        return
    key = _unquote(a[0])
    value: Any = _unquote(a[2])
    if key in ("sslversion", "authmode", "enableSNI"):
        value = _int(value)
    m.ssl_cfg[key] = value
    m._ok()


def _h_cchsslcfg(m: VirtualModem, op: str, a: list[str]) -> None:
    m._ok() if op == "=" and len(a) == 2 else m._error(50)


def _h_ccertdown(m: VirtualModem, op: str, a: list[str]) -> None:
    if op != "=" or len(a) != 2 or _int(a[1]) <= 0:
        m._error(50)
        return
    name, size = _unquote(a[0]), _int(a[1])

    def stored(data: bytes) -> None:
        m.certs[name] = data.decode("ascii", "replace")
        m._ok()

    m._expect_data(size, b"\r\n>", stored)


def _h_cchopen(m: VirtualModem, op: str, a: list[str]) -> None:
    if op == "?":
        m._answer(*[f'+CCHOPEN: {sid},"{c.peer}"' for sid, c in m._conns.items() if not c.closed])
        return
    if op != "=" or len(a) < 3:
        m._error(50)
        return
    sid, host, port = _int(a[0]), _unquote(a[1]), _int(a[2])
    client_type = _int(a[3]) if len(a) > 3 else 2
    if sid not in (0, 1) or not m.cch_started or (sid in m._conns and not m._conns[sid].closed):
        m._later(m.timing.cmd_ms, "ERROR")
        return
    m._conns.pop(sid, None)
    err, took = m._open(sid, host, port, client_type)
    m._ok()
    m._later(took, f"+CCHOPEN: {sid},{err}")


def _h_cchsend(m: VirtualModem, op: str, a: list[str]) -> None:
    sid = _int(a[0]) if a else -1
    length = _int(a[1]) if len(a) > 1 else -1
    conn = m._conns.get(sid)
    if op != "=" or conn is None or conn.closed or not 1 <= length <= 2048:
        m._later(m.timing.cmd_ms, "ERROR")
        return

    def sent(data: bytes) -> None:
        m._send(sid, data)
        lines: list[str] = []
        if m.cch_report:
            lines.append(f"+CCHSEND: {sid},0")
        m._answer(delay=m.timing.cmd_ms)
        if lines:
            m._later(m.timing.cmd_ms + 1, *lines)

    m._expect_data(length, b"\r\n>", sent)


def _h_cchrecv(m: VirtualModem, op: str, a: list[str]) -> None:
    if op == "?":
        lens = [len(m._conns[s].cache) if s in m._conns else 0 for s in (0, 1)]
        m._answer(f"+CCHRECV: LEN,{lens[0]},{lens[1]}")
        return
    sid = _int(a[0]) if a else -1
    limit = _int(a[1]) if len(a) > 1 else 1500
    conn = m._conns.get(sid)
    if op != "=" or conn is None or limit <= 0:
        m._later(m.timing.cmd_ms, "ERROR")
        return
    take = bytes(conn.cache[:min(limit, 1500)])
    del conn.cache[:len(take)]
    conn.event_sent = bool(conn.cache)

    def out() -> None:
        m._line("OK")
        if take:
            m._emit(f"\r\n+CCHRECV: DATA,{sid},{len(take)}\r\n".encode() + take)
        m._line(f"+CCHRECV: {sid},0")
        if conn.cache:
            m._line(f"+CCHEVENT: {sid},RECV EVENT")

    m._at(m.timing.cmd_ms, out)


def _h_cchclose(m: VirtualModem, op: str, a: list[str]) -> None:
    sid = _int(a[0]) if a else -1
    conn = m._conns.pop(sid, None)
    if op != "=" or conn is None:
        m._later(m.timing.cmd_ms, "ERROR")
        return
    m._drop(conn)
    m._ok()
    m._later(m.timing.cmd_ms + m.timing.rtt_ms // 2, f"+CCHCLOSE: {sid},0")


_HANDLERS: dict[str, Callable[[VirtualModem, str, list[str]], None]] = {
    "": _h_at,
    "+CMEE": _h_cmee,
    "I": _h_ident("SIMCOM INCORPORATED\r\nModel: A7670E-LASE\r\nRevision: A7670M7_V1.11.1"),
    "+CGMI": _h_ident("SIMCOM INCORPORATED"),
    "+CGMM": _h_ident("A7670E-LASE"),
    "+CGSN": _h_ident(""),
    "+CPIN": _h_cpin,
    "+CSQ": _h_csq,
    "+CREG": _h_reg("CREG"),
    "+CEREG": _h_reg("CEREG"),
    "+CGDCONT": _h_cgdcont,
    "+CFUN": _h_cfun,
    "+CPOF": _h_cpof,
    "+CMGF": _h_cmgf,
    "+CMGS": _h_cmgs,
    "+CMGD": _h_cmgd,
    "+CCHSET": _h_cchset,
    "+CCHSTART": _h_cchstart,
    "+CCHSTOP": _h_cchstop,
    "+CSSLCFG": _h_csslcfg,
    "+CCHSSLCFG": _h_cchsslcfg,
    "+CCERTDOWN": _h_ccertdown,
    "+CCHOPEN": _h_cchopen,
    "+CCHSEND": _h_cchsend,
    "+CCHRECV": _h_cchrecv,
    "+CCHCLOSE": _h_cchclose,
}
