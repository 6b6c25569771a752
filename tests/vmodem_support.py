"""Helpers for the virtual-modem tests: replay an AT transcript (tests/data/at/)
against a VirtualModem byte for byte, loopback servers that answer as scripted
and note the server name (SNI) each client sent, and certificates with the
defects a TLS check must or must not see (another host, expired, another CA)."""

from __future__ import annotations

import datetime
import os
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from atfake import load_transcript, parse_transcript
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from modem_support import RECEIVER_NAME, run_task
from sotto.modem.at import AtEngine
from sotto.modem.simcom import Simcom
from sotto.sched import Scheduler

from simulator.pki import self_signed_ca
from simulator.smsc import VirtualSmsc
from simulator.vmodem import Faults, Timing, VirtualModem

Steps = list[tuple[str, bytes]]


def steps(text: str) -> Steps:
    """A transcript written inline (the tests/data/at/ format)."""
    return parse_transcript(text)


def transcript(name: str) -> Steps:
    return load_transcript(name)


def play(vm: VirtualModem, script: Steps, limit_ms: int = 200_000, step_ms: int = 5) -> bytes:
    """Replay `script` against vm from its current time: the host's lines are
    written, and what the modem says must be exactly the transcript's next lines
    (the echo of the host's own command line, while echo is on, is taken off
    first). Waits on the modem's clock (at most limit_ms for each answer).
    Returns what the modem said after the last expected line, so far."""
    got = bytearray()
    i = 0
    while i < len(script):
        who, data = script[i]
        if who == ">":
            echo = vm.echo and vm._mode == "cmd" and data.endswith(b"\r")
            vm.stream.write(data)
            if echo:
                _collect(vm, got, len(data), limit_ms, step_ms)
                assert bytes(got[:len(data)]) == data, f"expected the echo {data!r}, got {bytes(got)!r}"
                del got[:len(data)]
            i += 1
            continue
        j = i
        while j < len(script) and script[j][0] == "<":
            j += 1
        want = b"".join(d for _w, d in script[i:j])
        _collect(vm, got, len(want), limit_ms, step_ms)
        assert bytes(got[:len(want)]) == want, (
            f"step {i}: the modem said\n  {bytes(got[:len(want) + 40])!r}\nthe transcript says\n  {want!r}")
        del got[:len(want)]
        i = j
    return bytes(got)


def _collect(vm: VirtualModem, got: bytearray, n: int, limit_ms: int, step_ms: int) -> None:
    end = vm.now + limit_ms
    while True:
        got += vm.stream.read(65536) or b""
        if len(got) >= n:
            return
        if vm.now >= end:
            raise AssertionError(f"after {limit_ms} ms the modem said only {bytes(got)!r} "
                                 f"({n} bytes expected)")
        nxt = vm.next_event_ms()
        vm.advance(min(end, nxt if nxt is not None and nxt > vm.now else vm.now + step_ms))


def run_for(vm: VirtualModem, ms: int, step_ms: int = 5) -> bytes:
    """Let ms pass on the modem's clock; what it said meanwhile."""
    out = bytearray()
    end = vm.now + ms
    while vm.now < end:
        nxt = vm.next_event_ms()
        vm.advance(min(end, nxt if nxt is not None and nxt > vm.now else vm.now + step_ms))
        out += vm.stream.read(65536) or b""
    return bytes(out)


def say(vm: VirtualModem, command: str, wait_ms: int = 200) -> bytes:
    """Write one command line and return what the modem said within wait_ms."""
    vm.stream.write(command.encode() + b"\r")
    return run_for(vm, wait_ms)


def press(vm: VirtualModem, hold_ms: int) -> None:
    """PWRKEY held for hold_ms on the modem's clock."""
    vm.pwrkey(1)
    run_for(vm, hold_ms)
    vm.pwrkey(0)


class DriverRig:
    """The driver over a virtual modem, on one simulated clock."""

    def __init__(self, pki=None, powered=True, faults=None, timing=None, hosts=None, apn="internet", **vm_kw):
        self.sched = Scheduler()
        self.vm = VirtualModem(faults=faults or Faults(), timing=timing or Timing(), seed=5, powered=powered,
                               hosts=hosts or {}, certs={"sotto_ca.pem": pki.ca_pem} if pki else None,
                               smsc=VirtualSmsc(None, delay_ms=1000), **vm_kw)
        self.modem = Simcom(AtEngine(self.vm.stream, self.sched), pwrkey=self.vm.pwrkey, apn=apn,
                            ca_cert="sotto_ca.pem" if pki else None)

    def run(self, gen, limit_ms=200000):
        return run_task(self.sched, self.vm, gen, limit_ms)

    def up(self):
        self.run(self.modem.start())
        self.run(self.modem.check_sim())
        t0 = self.sched.now_ms
        while not self.run(self.modem.registration()):
            self.run(self.modem.at.wait(500))
            assert self.sched.now_ms - t0 < 60000, "never registered"
        self.run(self.modem.start_data())

    def said(self, text: bytes) -> int:
        """How many times the modem said `text`."""
        return sum(data.count(text) for _t, way, data in self.vm.log if way == "out")

    def sent(self, prefix: bytes) -> int:
        """How many times the host sent a command starting with `prefix`."""
        return sum(1 for _t, way, data in self.vm.log if way == "in" and data.startswith(prefix))


def post(rig: DriverRig, frames: list[bytes], port: int) -> bytes:
    """One POST through the driver as the delivery task does it: read until the whole
    answer is in, following events and what a full read left behind."""
    m = rig.modem
    body = b"".join(frames)
    head = (f"POST /v1/frames HTTP/1.1\r\nHost: {RECEIVER_NAME}:{port}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    rig.run(m.send([head, body], bytearray(1024)))
    got = bytearray()
    t0 = rig.sched.now_ms
    while b"\r\n\r\n" not in got or len(got) < got.index(b"\r\n\r\n") + 4 + _length(got):
        if m.rx_event or m.rx_more:
            rig.run(m.recv())
        got += m.consume()
        rig.run(m.at.wait(20))
        assert rig.sched.now_ms - t0 < 20000, f"answer incomplete after 20 s: {len(got)} bytes"
    return bytes(got)


def _length(data: bytes) -> int:
    for line in bytes(data).split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


# -- loopback servers ---------------------------------------------------------------------
@dataclass
class ServerCert:
    cert_file: str
    key_file: str


@dataclass
class ScriptedServer:
    """A loopback TCP server, TLS with `cert`. For each connection it reads until
    `complete(request)` holds, then sends `answer(request)` (None: closes without
    a word) and closes when `close_after`. Notes each client's SNI (None: none)."""

    answer: Callable[[bytes], bytes | None]
    cert: ServerCert | None = None
    close_after: bool = False
    complete: Callable[[bytes], bool] = lambda data: b"\r\n\r\n" in data
    sni: list[str | None] = field(default_factory=list)
    requests: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._ctx = None
        if self.cert is not None:
            self._ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._ctx.load_cert_chain(self.cert.cert_file, self.cert.key_file)
            self._ctx.sni_callback = self._note_sni
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _note_sni(self, _sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        self.sni.append(name)

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:  # closed by stop()
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, raw: socket.socket) -> None:
        conn: socket.socket = raw
        try:
            conn.settimeout(10)
            if self._ctx is not None:
                conn = self._ctx.wrap_socket(raw, server_side=True)
            while not self._stop:
                data = b""
                while not self.complete(data):
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                self.requests.append(data)
                out = self.answer(data)
                if out is None:
                    return
                conn.sendall(out)
                if self.close_after:
                    return
        except (OSError, ssl.SSLError):
            return
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop = True
        self._sock.close()
        self._thread.join(timeout=2)


# -- certificates ----------------------------------------------------------------------------
@dataclass
class TestCa:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    directory: str

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def issue(self, name: str, *, days_from: int = -1, days_to: int = 30,
              file: str | None = None) -> ServerCert:
        """A server certificate for `name`, valid from days_from to days_to days from now."""
        now = datetime.datetime.now(datetime.timezone.utc)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(self.cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now + datetime.timedelta(days=days_from))
                .not_valid_after(now + datetime.timedelta(days=days_to))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .sign(self.key, hashes.SHA256()))
        stem = os.path.join(self.directory, file or f"{name}-{days_from}-{days_to}")
        with open(stem + ".pem", "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(stem + ".key", "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        return ServerCert(stem + ".pem", stem + ".key")


def make_ca(directory: str, name: str = "Sotto test CA") -> TestCa:
    key, cert = self_signed_ca(name, days_before=400, days_after=400)
    return TestCa(key, cert, directory)
