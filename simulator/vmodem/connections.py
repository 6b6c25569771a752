"""The virtual modem's data connections: real TCP sockets to the receiver, TLS
through ssl.MemoryBIO (checked as simulator.vmodem.tls says), each byte timed on
the modelled link (see the package docstring). The failures the module reports
(AT manual V1.09 19.4): a clean close by the server is +CCH_PEER_CLOSED, a failed
receive (a reset, a broken record) +CCH_RECV_CLOSED, a failed send +CCHSEND: <id>,18;
each keeps the session, and its cache, until AT+CCHCLOSE.

Wall time never decides what the device sees, or when: the modem reads a socket
only at points fixed on the simulated clock (an HTTP request's answer, at once or
when due; an idle connection at each pump, for the peer's close) and waits for
the host as long as it takes, up to `io_wait_s` of wall time, past which the run
stops with HostStall instead of going on without the answer. Bytes read early
(TLS tickets) go on the air log with the answer they came before."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time

from simulator.vmodem.reading import Reading
from simulator.vmodem.sessions import TlsOpen, _Conn
from simulator.vmodem.settings import (
    CCH_CONNECT_ERROR,
    CCH_DNS_ERROR,
    CCH_HANDSHAKE_ERROR,
    CCH_NETWORK_ERROR,
    CCH_NO_CERT,
    CCH_OK,
    CCH_SEND_TIMEOUT,
    RECV_BLOCK,
    AirRecord,
)
from simulator.vmodem.tls import NoCert, client_context, ssl_settings
from simulator.vmodem.traffic import _AWAITING, _error_page, _http_complete


class Connections(Reading):
    """VirtualModem's data side (a mixin: it uses the modem's clock, faults and UART):
    real sockets behind the CCH sessions (simulator.vmodem.cch has the commands)."""

    def _resolve(self, host: str, port: int) -> tuple[str, int] | None:
        """The address AT+CCHOPEN reaches: `hosts` maps a name to an IP, or to
        "IP:port" (a test server standing in for the name's port); None: no DNS."""
        ip = self.hosts.get(host, host)
        if ip.count(":") == 1:
            ip, _, port_text = ip.partition(":")
            port = int(port_text)
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        if not addr.is_loopback and not self.allow_remote:
            return None
        return str(addr), port

    def _connect(self, conn: _Conn, host: str, port: int, client_type: int,
                 ssl_ctx: int) -> tuple[int, float]:
        """Connect conn for real; returns (err, sim ms until +CCHOPEN)."""
        t = self.timing
        if not self.registered or self.faults.data_down or not self.cch_started:
            return CCH_NETWORK_ERROR, t.fail_connect_ms
        where = self._resolve(host, port)
        if where is None:
            return CCH_DNS_ERROR, t.fail_connect_ms
        ip, port = where
        took = t.connect_ms + t.rtt_ms
        try:
            sock = socket.create_connection((ip, port), timeout=self.io_wait_s)
        except TimeoutError:
            raise self._stall(f"connecting to {ip}:{port}") from None
        except OSError:
            return CCH_CONNECT_ERROR, took
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.sock = sock
        conn.peer = f"{ip}:{port}"
        if client_type == 2:
            try:
                took += self._handshake(conn, host, ssl_ctx)
            except NoCert:
                sock.close()
                return CCH_NO_CERT, t.cmd_ms
            except TimeoutError:
                sock.close()
                raise self._stall(f"the TLS handshake with {ip}:{port}") from None
            except (ssl.SSLError, OSError):
                sock.close()
                self.tls_log.append(TlsOpen(host, conn.sni, conn.authenticated, False))
                return CCH_HANDSHAKE_ERROR, took + t.tls_ms
            self.tls_log.append(TlsOpen(host, conn.sni, conn.authenticated, True))
        sock.setblocking(False)
        conn.up_free = conn.down_free = self.now + took
        self.connections += 1
        return CCH_OK, took

    def _opened(self, sid: int, conn: _Conn, err: int) -> None:
        """The +CCHOPEN result at its modelled time."""
        if self._conns.get(sid) is not conn:
            self._drop(conn)  # given up meanwhile (AT+CCHCLOSE, CCHSTOP, power)
            return
        if err:
            del self._conns[sid]
            self.session_ctx.pop(sid, None)  # a failed open clears it (19.2.10)
            self._drop(conn)
        else:
            conn.state = "open"
            conn.last_io_ms = self.now
            self._arm_idle(sid, conn)
        self._line(f"+CCHOPEN: {sid},{err}")

    def _handshake(self, conn: _Conn, host: str, ssl_ctx: int) -> float:
        ctx, sni, conn.authenticated = client_context(ssl_settings(self.ssl_cfg, ssl_ctx), self.certs, host,
                                                      self.faults.tls_strict)
        conn.sni = sni
        assert conn.sock is not None
        conn.incoming, conn.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        conn.tls = ctx.wrap_bio(conn.incoming, conn.outgoing, server_hostname=sni)
        flights = down = 0  # down: the server's flight so far (one air record, however it was read)
        while True:
            try:
                conn.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                out = conn.outgoing.read()
                if out:
                    if down:
                        self._air("down", "tls", down, b"", conn.peer)
                        down = 0
                    conn.sock.sendall(out)
                    self._air("up", "tls", len(out), b"", conn.peer)
                    flights += 1
                data = conn.sock.recv(65536)
                if not data:
                    raise ssl.SSLError("connection closed during the handshake") from None
                down += len(data)
                conn.incoming.write(data)
        if down:
            self._air("down", "tls", down, b"", conn.peer)
        out = conn.outgoing.read()
        if out:
            conn.sock.sendall(out)
            self._air("up", "tls", len(out), b"", conn.peer)
        return self.timing.tls_ms + flights * self.timing.rtt_ms

    def _air(self, direction: str, kind: str, nbytes: int, payload: bytes, peer: str) -> None:
        self.air.append(AirRecord(self.now, direction, kind, nbytes, payload, peer))

    def _send(self, sid: int, plain: bytes) -> bool:
        """The data of one AT+CCHSEND goes out. False: it will not (the failure is
        reported later, as +CCHSEND: <id>,18, once the module's send times out)."""
        conn = self._conns.get(sid)
        if conn is None or conn.state != "open" or conn.sock is None:
            return False
        f = self.faults
        conn.last_io_ms = self.now
        if f.send_fail:
            f.send_fail = False
            self._send_failed(sid, conn)
        if conn.send_dead:
            return False  # the link is gone; the module does not know it yet
        cut = None
        if f.drop_after_bytes is not None and conn.sent_plain + len(plain) > f.drop_after_bytes:
            cut = max(0, f.drop_after_bytes - conn.sent_plain)
            f.drop_after_bytes = None
            plain = plain[:cut]
        if f.drop_before_response:
            f.drop_before_response = False
            conn.drop_response = True
        if f.proxy_answer_bytes and not conn.request:
            conn.proxy_bytes, f.proxy_answer_bytes = f.proxy_answer_bytes, 0
        if plain:
            raw = plain
            if conn.tls is not None and conn.outgoing is not None:
                conn.tls.write(plain)
                raw = conn.outgoing.read()
            if not conn.proxy_bytes:
                try:
                    conn.sock.settimeout(self.io_wait_s)
                    conn.sock.sendall(raw)
                    conn.sock.setblocking(False)
                except TimeoutError:
                    raise self._stall(f"sending {len(raw)} bytes to {conn.peer}") from None
                except OSError:
                    self._send_failed(sid, conn)
                    return False
            self._air("up", "data", len(raw), bytes(plain), conn.peer)
            conn.sent_plain += len(plain)
            start = max(float(self.now), conn.up_free)
            conn.up_free = start + len(raw) * 8000 / self.timing.uplink_bps
            conn.expect_from = conn.up_free + self.timing.rtt_ms
            conn.request += plain
            complete = _http_complete(conn.request, b"POST ")
            if complete is not False and conn.proxy_bytes:
                page = _error_page(conn.proxy_bytes)
                conn.proxy_bytes = 0
                conn.request.clear()
                self._deliver(sid, conn, page)  # the front end answers; the receiver never sees it
            elif complete is not False:
                # a whole request is out (or not HTTP): its answer is worth waiting for
                conn.outstanding = True
                conn.answered = False
                conn.sent_wall = time.monotonic()
                conn.sent_ms = self.now
                conn.ready_wall = 0.0
                conn.request.clear()
                conn.answer.clear()
                conn.wait_s = 0.0 if complete else self.raw_wait_s
                if complete and self.answer_at_send:
                    # the receiver answers while the simulation stands still: what it sees
                    # (its clock, the operators' actions) is the send time's
                    self._await_answer(conn)
                elif complete:
                    _AWAITING.add(conn)
        if cut is not None:
            self._drop(conn)
            conn.state = "closed"
            self._later(self.timing.rtt_ms, f"+CCH_PEER_CLOSED: {sid}")
        return True

    def _send_failed(self, sid: int, conn: _Conn) -> None:
        """Nothing more leaves on conn; after the module's send timeout (modelled as
        fail_connect_ms) it reports +CCHSEND: <id>,18 and the connection is gone."""
        if conn.send_dead:
            return
        conn.send_dead = True

        def report() -> None:
            if self._conns.get(sid) is conn and conn.state == "open":
                self._broken(conn)
                self._line(f"+CCHSEND: {sid},{CCH_SEND_TIMEOUT}")

        self._at(self.timing.fail_connect_ms, report)

    def _broken(self, conn: _Conn) -> None:
        """The connection is gone (the session stays held until AT+CCHCLOSE)."""
        self._drop(conn)
        conn.state = "closed"

    def _drop(self, conn: _Conn) -> None:
        conn.outstanding = False
        if conn.sock is not None:
            try:
                conn.sock.close()
            except OSError:
                pass

    def _cch_stopped(self) -> None:
        """The network stopped the SSL service (19.4 "+CCH: CCH STOP"): its sessions are gone."""
        if not self.cch_started:
            return
        self.cch_started = False
        self.close()
        self.session_ctx.clear()
        self._line("+CCH: CCH STOP")

    def _recv_failed(self) -> None:
        """Receiving failed on every open session (19.4 "+CCH_RECV_CLOSED: <id>,<err>")."""
        for sid, conn in sorted(self._conns.items()):
            if conn.state == "open":
                self._broken(conn)
                self._line(f"+CCH_RECV_CLOSED: {sid},{CCH_NETWORK_ERROR}")

    def _arm_idle(self, sid: int, conn: _Conn) -> None:
        if self.faults.idle_close_ms and conn.state == "open":
            self._at(self.faults.idle_close_ms, self._idle_check, sid, conn, conn.last_io_ms)

    def _idle_check(self, sid: int, conn: _Conn, stamp: float) -> None:
        """The server's keep-alive timeout: it closes a connection idle that long."""
        if (self._conns.get(sid) is not conn or conn.state != "open" or not self.faults.idle_close_ms
                or conn.last_io_ms != stamp or conn.outstanding):
            return
        self._broken(conn)
        self._line(f"+CCH_PEER_CLOSED: {sid}")

    def _pump_sockets(self, now_ms: int) -> None:
        for sid, conn in list(self._conns.items()):
            if conn.state != "open" or conn.sock is None:
                continue
            if conn.outstanding:
                if now_ms < conn.expect_from:
                    continue  # its answer reaches the module after the modelled round trip
                if conn.wait_s:
                    self._read_quiet(conn, conn.wait_s)
                elif not conn.answered:
                    self._await_answer(conn)  # a modem that does not wait at the send (fleets)
                conn.outstanding = conn.answered = False
            else:
                self._read_idle(conn)
            if conn.pending or conn.eof:
                got = bytes(conn.pending)
                conn.pending.clear()
                self._deliver(sid, conn, got)

    def _deliver(self, sid: int, conn: _Conn, data: bytes) -> None:
        """Received bytes reach the module at their modelled time, then the host."""
        if conn.down_raw:  # on the air log at a time fixed by the simulated clock (not when read)
            self._air("down", "data" if data else "tls", conn.down_raw, data, conn.peer)
            conn.down_raw = 0
        arrive = max(float(self.now), conn.expect_from, conn.down_free)
        arrive += len(data) * 8000 / self.timing.downlink_bps
        conn.down_free = arrive
        if conn.drop_response:
            self._broken(conn)
            self._at(arrive - self.now, self._line, f"+CCH_PEER_CLOSED: {sid}")
            return
        eof, failed = conn.eof, conn.recv_error
        if eof:
            self._broken(conn)
        self._at(arrive - self.now, self._arrived, sid, conn, data, eof, failed)

    def _arrived(self, sid: int, conn: _Conn, data: bytes, eof: bool, failed: bool) -> None:
        if self._conns.get(sid) is not conn:
            return
        conn.last_io_ms = self.now
        if data:
            if self.cch_recv_mode == 0:
                for i in range(0, len(data), RECV_BLOCK):
                    block = data[i:i + RECV_BLOCK]
                    self._emit(f"\r\n+CCHRECV: DATA,{sid},{len(block)}\r\n".encode() + block)
            else:
                conn.cache += data
                self._line(f"+CCHEVENT: {sid},RECV EVENT")  # new data (19.4)
        if eof:
            self._line(f"+CCH_RECV_CLOSED: {sid},{CCH_NETWORK_ERROR}" if failed
                       else f"+CCH_PEER_CLOSED: {sid}")
        else:
            self._arm_idle(sid, conn)
