"""The virtual modem's data connections: real TCP sockets to the receiver, TLS
through ssl.MemoryBIO, each byte timed on the modelled link (see the package docstring)."""

from __future__ import annotations

import ipaddress
import select
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from simulator.vmodem.settings import (
    CCH_CONNECT_ERROR,
    CCH_DNS_ERROR,
    CCH_HANDSHAKE_ERROR,
    CCH_NETWORK_ERROR,
    CCH_NO_CERT,
    CCH_OK,
    AirRecord,
)

if TYPE_CHECKING:
    from simulator.vmodem.modem import VirtualModem


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


class Connections:
    """VirtualModem's AT+CCH* side (a mixin: it uses the modem's clock, faults and UART)."""
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
            if conn.outstanding:
                if now_ms < conn.expect_from:
                    # not before the modelled round trip: whether the real answer is in
                    # yet depends on the wall clock, and the run must not
                    continue
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
