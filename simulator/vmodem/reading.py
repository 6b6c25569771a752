"""How the virtual modem reads its sockets (a mixin of simulator.vmodem.connections):
only at points fixed on the simulated clock, waiting for the host as long as it
takes (up to `io_wait_s` of wall time, then HostStall), so that a slow host never
changes what the device sees, or when (see the package docstring)."""

from __future__ import annotations

import ssl
import time

from simulator.vmodem.sessions import _Conn
from simulator.vmodem.settings import HostStall
from simulator.vmodem.traffic import _http_complete, _readable, _wants_close


class Reading:
    """VirtualModem's socket reads (it uses the modem's io_wait_s, clock and answer_wall_ms)."""

    def _stall(self, what: str) -> HostStall:
        return HostStall(f"the virtual modem waited {self.io_wait_s:g} s of wall time for {what} at "
                         f"{self.now} ms (simulated) and gave up: the receiver is stuck or this machine is "
                         "overloaded; the run stops rather than let the wall clock change the simulated "
                         "timeline (VirtualModem(io_wait_s=...) sets the limit)")

    def _await_answer(self, conn: _Conn) -> None:
        """Block (wall time) until the whole answer to the request out is in: an HTTP
        response by its Content-Length (and the peer's close after it, when it says
        `Connection: close`), or the peer's close. However long the host takes, the
        answer is the same; past io_wait_s the run stops (HostStall)."""
        assert conn.sock is not None
        deadline = time.monotonic() + self.io_wait_s
        while not conn.eof:
            if _http_complete(conn.answer, b"HTTP/1.") and not _wants_close(conn.answer):
                break
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._stall(f"the answer from {conn.peer} to the request sent at {conn.sent_ms} ms")
            try:
                ready = _readable(conn.sock, min(left, 1.0))
            except (OSError, ValueError):
                conn.eof = conn.recv_error = True
                break
            if ready:
                self._take(conn)
        if _http_complete(conn.answer, b"HTTP/1."):
            seen = conn.ready_wall or time.monotonic()
            self.answer_wall_ms.append((seen - conn.sent_wall) * 1000)
        conn.answered = True

    def _read_idle(self, conn: _Conn) -> None:
        """What came on a connection with no request out, without waiting: the peer's
        close (a receiver killed, or its keep-alive timeout), TLS tickets."""
        while not conn.eof:
            try:
                if not _readable(conn.sock, 0.0) or not self._take(conn):  # type: ignore[arg-type]
                    break
            except (OSError, ValueError):
                conn.eof = conn.recv_error = True

    def _read_quiet(self, conn: _Conn, wait_s: float) -> None:
        """The answer to a request that is not HTTP (raw TCP in the tests; the firmware
        speaks only HTTP): nothing says where it ends, so take what comes within wait_s
        of wall time, until the line has been quiet for 50 ms. Wall time decides here."""
        deadline = time.monotonic() + wait_s
        while not conn.eof:
            try:
                if not _readable(conn.sock, max(0.0, deadline - time.monotonic())):  # type: ignore[arg-type]
                    break
            except (OSError, ValueError):
                conn.eof = conn.recv_error = True
                break
            before = len(conn.pending)
            if not self._take(conn):
                break
            if len(conn.pending) > before:
                deadline = min(deadline, time.monotonic() + 0.05)

    def _take(self, conn: _Conn) -> bool:
        """One read off conn's socket: the plaintext to conn.pending (and conn.answer),
        the bytes to conn.down_raw (the air log takes them when they are delivered).
        False: nothing was there after all."""
        assert conn.sock is not None
        try:
            raw = conn.sock.recv(65536)
        except BlockingIOError:
            return False
        except OSError:
            conn.eof = conn.recv_error = True
            return True
        if not raw:
            conn.eof = True
            return True
        conn.down_raw += len(raw)
        got = self._decrypt(conn, raw)
        conn.pending += got
        conn.answer += got
        return True

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
            except ssl.SSLZeroReturnError:  # close_notify: the server closed
                conn.eof = True
                break
            except ssl.SSLError:  # a broken record: the receive side failed
                conn.eof = conn.recv_error = True
                break
            if not chunk:
                break
            out += chunk
        return bytes(out)
