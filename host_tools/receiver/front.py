"""The device-facing listener of `sotto receive`: one asyncio event loop for every socket.
(A little over 400 lines: the connection state machine and the listener that counts and
feeds it read best side by side.)

No thread waits on an idle or slow socket. The loop accepts, counts connections
per source address and in all, runs TLS handshakes, reads the request line and
headers within a short deadline (header_timeout_s) and the body its
Content-Length announces (within the byte cap, io_timeout_s between reads and
request_deadline_s in all); only a *complete* request goes to a bounded pool of
worker threads (host_tools.receiver.http_handler.handle_request: routes, the
frame cap, ingest, the signed answer). Its answer is written back by the loop,
and the connection waits for the next request (keep-alive) or closes.

Refusals made here, before any worker sees the request:
- over max_per_address connections from one address: 503 `too-many-connections`,
  closed; over max_connections in all: 503 `busy`, closed (over TLS: closed before
  the handshake, which would cost the receiver more than the client);
- a TLS handshake not done within header_timeout_s: closed.

TLS: the loop accepts TLS connections itself (sock_accept), counts them, and hands
each accepted socket to the TLS layer with loop.connect_accepted_socket(ssl=…):
the TLS layer owns the socket from its first byte, so a ClientHello sent together
with the connect (as every client does) can never reach data_received as plain
bytes. (start_tls on a transport that was already reading could lose such early
bytes to the plain protocol and leave that connection hanging.)
- headers not complete within header_timeout_s: 408 `request-timeout`, closed;
  headers over MAX_HEAD_BYTES: 431 `headers-too-large`, closed;
- a body slower than io_timeout_s per read or request_deadline_s in all: 408, closed.
A Content-Length over the byte cap is not read: the handler answers 413 at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import socket
import ssl
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import cbor2

from host_tools.receiver import fastpath
from host_tools.receiver.http_handler import PATH_FRAMES, handle_request
from host_tools.receiver.sms_auth import RateLimiter

if TYPE_CHECKING:
    from host_tools.receiver.centre_key import CentreKey
    from host_tools.receiver.ingest import Receiver
    from host_tools.receiver.server import ServerConfig

log = logging.getLogger("sotto.receiver")

MAX_HEAD_BYTES = 64 * 1024      # request line + headers
_HEAD, _BODY, _BUSY = 0, 1, 2


class ListenError(OSError):
    """The port cannot be opened (in use, no such address)."""


def _plain(status: int, text: str, reason: str, detail: str, path: str) -> bytes:
    """An unsigned refusal made by the front end (CBOR on /v1/frames, JSON elsewhere), closing."""
    doc = {"reason": reason, "detail": detail}
    if path == PATH_FRAMES:
        ctype, body = "application/cbor", cbor2.dumps(doc, canonical=True)
    else:
        ctype, body = "application/json", json.dumps(doc).encode()
    extra = "Retry-After: 5\r\n" if status == 503 else ""
    return (f"HTTP/1.1 {status} {text}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
            f"Cache-Control: no-store\r\n{extra}Connection: close\r\n\r\n").encode() + body


def _body_length(head: bytes, cap: int) -> int:
    """How many body bytes follow these headers: the Content-Length when it is one
    plain number within the cap, else 0 (the handler then refuses the request from
    its headers alone: 411, 400 bad-content-length or 413, and closes)."""
    values = []
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        name = name.strip().lower()
        if name == b"transfer-encoding" and b"chunked" in value.lower():
            return 0
        if name == b"content-length":
            values.append(value.strip())
    if not values or len(set(values)) > 1:
        return 0
    text = values[0]
    if not text.isdigit() or len(text) > 18:
        return 0
    n = int(text)
    return n if n <= cap else 0


def _path_of(head: bytes) -> str:
    parts = head.split(b"\r\n", 1)[0].split()
    if len(parts) >= 2:
        return parts[1].split(b"?", 1)[0].decode("latin-1")
    return ""


class _Conn(asyncio.Protocol):
    """One client connection: caps, deadlines, request framing; never blocks."""

    def __init__(self, front: FrontEnd) -> None:
        self.front = front
        self.transport: Any = None
        self.head_armed = False       # the header deadline runs (not the keep-alive wait)
        self.addr = ("?", 0)
        self.buf = bytearray()
        self.state = _HEAD
        self.timer: asyncio.TimerHandle | None = None
        self.admitted = False
        self.released = False
        self.head_end = 0
        self.need = 0
        self.deadline = 0.0
        self.started = False      # a byte of the current request has arrived
        self.handshake: asyncio.Task[None] | None = None   # TLS: the handshake under way

    # -- connection life --------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        if self.admitted:     # TLS: admitted at accept (FrontEnd._accepted), the handshake is done
            if self.released:
                transport.close()
                return
            self.transport = transport
            return
        front = self.front
        peer = transport.get_extra_info("peername")
        self.addr = (str(peer[0]), int(peer[1])) if peer else ("?", 0)
        refused = front.admit(self.addr[0])
        if refused is not None:
            reason, detail = refused
            if front.ssl_context is None:
                transport.write(_plain(503, "Service Unavailable", reason, detail, ""))
            transport.close()
            front.count_error(reason)
            return
        self.admitted = True
        front.conns.add(self)
        self.transport = transport
        self._arm(front.config.header_timeout_s, self._head_timeout)   # counts from the connect
        self.head_armed = True

    def admitted_tls(self, addr: tuple[str, int]) -> None:
        """Counted at accept (FrontEnd._accepted): the header deadline runs from now, the
        handshake included."""
        self.addr = addr
        self.admitted = True
        self.front.conns.add(self)
        self._arm(self.front.config.header_timeout_s, self._head_timeout)
        self.head_armed = True

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()

    def _release(self) -> None:
        if self.admitted and not self.released:
            self.released = True
            self._cancel()
            self.front.release(self.addr[0], self)

    def _cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _arm(self, seconds: float, what: Any) -> None:
        self._cancel()
        self.timer = self.front.loop.call_later(seconds, what)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        elif self.handshake is not None and not self.handshake.done():   # still in the TLS handshake
            self.handshake.cancel()
        self._release()

    def _refuse(self, status: int, text: str, reason: str, detail: str) -> None:
        self.front.count_error(reason)
        if self.transport is not None and not self.transport.is_closing():
            path = _path_of(bytes(self.buf[:512]))
            self.transport.write(_plain(status, text, reason, detail, path))
        self.close()

    # -- deadlines ------------------------------------------------------------------
    def _head_timeout(self) -> None:
        self.timer = None
        if self.state != _HEAD:
            return
        if not self.started:      # an idle connection (new, or between requests): just close
            self.front.count_error("idle-timeout")
            self.close()
            return
        self._refuse(408, "Request Timeout", "request-timeout",
                     f"the request line and headers took over {self.front.config.header_timeout_s:g} s")

    def _body_timeout(self) -> None:
        self.timer = None
        if self.state == _BODY:
            self._refuse(408, "Request Timeout", "request-timeout", "the body came too slowly")

    # -- reading ---------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.released:
            return
        self.buf += data
        if self.state == _BUSY:
            if len(self.buf) > MAX_HEAD_BYTES:
                self.transport.pause_reading()    # pipelining ahead of the answer: wait
            return
        self._advance()

    def _advance(self) -> None:
        front = self.front
        config = front.config
        if self.state == _HEAD:
            if not self.buf:
                return
            self.started = True
            if not self.head_armed:   # the first byte after a keep-alive wait
                self.head_armed = True
                self._arm(config.header_timeout_s, self._head_timeout)
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEAD_BYTES:
                    self._refuse(431, "Request Header Fields Too Large", "headers-too-large",
                                 f"the request line and headers exceed {MAX_HEAD_BYTES} bytes")
                return
            if end + 4 > MAX_HEAD_BYTES:
                self._refuse(431, "Request Header Fields Too Large", "headers-too-large",
                             f"the request line and headers exceed {MAX_HEAD_BYTES} bytes")
                return
            self.head_end = end + 4
            self.need = _body_length(bytes(self.buf[:end + 2]), front.body_cap)
            self.state = _BODY
            self.deadline = time.monotonic() + config.request_deadline_s
        if self.state == _BODY:
            total = self.head_end + self.need
            if len(self.buf) < total:
                left = self.deadline - time.monotonic()
                self._arm(max(0.0, min(config.io_timeout_s, left)), self._body_timeout)
                return
            request = bytes(self.buf[:total])
            del self.buf[:total]
            self._cancel()
            self.state = _BUSY
            front.dispatch(self, request, self.head_end)

    def answered(self, out: bytes, close: bool) -> None:
        """In the loop: the worker's answer to the request in progress."""
        t = self.transport
        if self.released or t is None or t.is_closing():
            self._release()
            return
        t.write(out)
        if close or self.front.stopping:
            self.close()
            return
        self.state = _HEAD
        self.started = False
        self.head_armed = False
        self._arm(self.front.config.io_timeout_s, self._head_timeout)    # keep-alive wait
        t.resume_reading()
        if self.buf:
            self._advance()


def _new_loop(fast: bool) -> asyncio.AbstractEventLoop:
    """uvloop's event loop (libuv; TLS without asyncio's Python layer) when installed, else asyncio's."""
    if fast:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class FrontEnd:
    """The listener: `serve_forever()` runs the loop (in the calling thread) until `stop()`."""

    def __init__(self, receiver: Receiver, config: ServerConfig, centre: CentreKey,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.receiver = receiver
        self.config = config
        self.centre = centre
        self.ssl_context = ssl_context
        self.sms_limiter = RateLimiter(config.sms_per_minute, config.sms_burst)
        self.body_cap = max(config.max_body_bytes, config.max_sms_bytes)
        if config.fast_path and receiver.writer.helpers:     # helpers sign fast-path answers after COMMIT
            receiver.writer.answer_key = centre
        self.stopping = False
        self.errors: dict[str, int] = {}
        self.bugs = 0
        self._err_lock = threading.Lock()
        self.per_address: dict[str, int] = {}
        self.conns: set[_Conn] = set()
        self.in_flight = 0
        self.loop: asyncio.AbstractEventLoop = _new_loop(config.uvloop)
        self.pool = ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="sotto-request")
        self._stopped = threading.Event()
        self._running = False
        self._stop_requested: asyncio.Event | None = None
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((config.host, config.port))
            sock.listen(config.listen_backlog)
        except OSError as e:
            sock.close()
            self.loop.close()
            self.pool.shutdown(wait=False)
            if e.errno == errno.EADDRINUSE:
                raise ListenError(f"port {config.port} on {config.host} is in use: another receiver? "
                                  "choose another with --port") from None
            raise ListenError(f"cannot listen on {config.host}:{config.port}: {e.strerror or e}") from None
        sock.setblocking(False)
        self.socket = sock
        self.server_address = sock.getsockname()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else str(host)
        return f"{'https' if self.ssl_context else 'http'}://{shown}:{port}"

    @property
    def open_connections(self) -> int:
        return len(self.conns)

    def count_error(self, reason: str, bug: bool = False) -> None:
        with self._err_lock:
            self.errors[reason] = self.errors.get(reason, 0) + 1
            if bug:
                self.bugs += 1

    # -- in the loop -------------------------------------------------------------------
    def admit(self, addr: str) -> tuple[str, str] | None:
        """Count a new connection from addr, or say why it is refused."""
        held = self.per_address.get(addr, 0)
        if held >= self.config.max_per_address:
            return ("too-many-connections",
                    f"{held} connections from this address already; at most {self.config.max_per_address}")
        if len(self.conns) >= self.config.max_connections:
            return ("busy", "too many connections; try again shortly")
        self.per_address[addr] = held + 1
        return None

    def release(self, addr: str, conn: _Conn) -> None:
        self.conns.discard(conn)
        held = self.per_address.get(addr, 0) - 1
        if held > 0:
            self.per_address[addr] = held
        else:
            self.per_address.pop(addr, None)

    def dispatch(self, conn: _Conn, request: bytes, head_end: int) -> None:
        self.in_flight += 1
        if self.config.fast_path:
            plain, close = fastpath.eligible(request[:head_end])
            if plain:
                def answered(out: bytes, close: bool) -> None:
                    self.in_flight -= 1
                    conn.answered(out, close)

                if fastpath.handle(self, request[head_end:], conn.addr[0], close, answered):
                    return
        fut = self.pool.submit(handle_request, self, request, conn.addr)
        loop = self.loop

        def done(f: Future[tuple[bytes, bool]]) -> None:
            with contextlib.suppress(RuntimeError):     # the loop closed meanwhile
                loop.call_soon_threadsafe(self._answered, conn, f)

        fut.add_done_callback(done)

    def _answered(self, conn: _Conn, f: Future[tuple[bytes, bool]]) -> None:
        self.in_flight -= 1
        try:
            out, close = f.result()
        except Exception:   # handle_request answers its own errors; this is a bug
            log.exception("a request worker failed")
            self.count_error("internal-error", bug=True)
            conn.close()
            return
        conn.answered(out, close)

    # -- TLS: accepted here, handed to the TLS layer before a byte is read -------------------
    async def _accept_tls(self) -> None:
        """Accept TLS connections (a burst at a time), count each, hand it to the TLS layer."""
        loop = self.loop
        while not self.stopping:
            try:
                batch = [await loop.sock_accept(self.socket)]
                while len(batch) < 64:     # what else is waiting, without another loop turn
                    try:
                        sock, peer = self.socket.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    batch.append((sock, peer))
            except asyncio.CancelledError:
                return
            except OSError as e:      # out of descriptors (EMFILE), a reset in the queue: go on
                if self.stopping:
                    return
                log.warning("accept failed: %s", e)
                self.count_error("accept")
                await asyncio.sleep(0.05)
                continue
            for sock, peer in batch:
                self._accepted(sock, peer)

    def _accepted(self, sock: socket.socket, peer: Any) -> None:
        addr = (str(peer[0]), int(peer[1])) if peer else ("?", 0)
        refused = self.admit(addr[0])
        if refused is not None:       # closed before the handshake: it would cost us more than them
            self.count_error(refused[0])
            sock.close()
            return
        sock.setblocking(False)
        conn = _Conn(self)
        conn.admitted_tls(addr)
        conn.handshake = self.loop.create_task(self._handshake(conn, sock))

    async def _handshake(self, conn: _Conn, sock: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(
                lambda: conn, sock, ssl=self.ssl_context,
                ssl_handshake_timeout=self.config.header_timeout_s)
        except asyncio.CancelledError:    # conn.close() during the handshake (deadline, stop)
            sock.close()
            conn._release()
        except (OSError, ssl.SSLError, asyncio.TimeoutError, ConnectionError) as e:
            log.debug("TLS handshake with %s failed: %s", conn.addr[0], e)
            self.count_error("tls-handshake")
            sock.close()
            conn._release()

    async def _main(self) -> None:
        self._stop_requested = asyncio.Event()
        server: Any = None
        acceptor: asyncio.Task[None] | None = None
        if self.ssl_context is None:
            server = await self.loop.create_server(lambda: _Conn(self), sock=self.socket,
                                                   backlog=self.config.listen_backlog)
        else:
            acceptor = self.loop.create_task(self._accept_tls())
        try:
            await self._stop_requested.wait()
        finally:
            if server is not None:
                server.close()
            if acceptor is not None:
                acceptor.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await acceptor
            deadline = time.monotonic() + 5.0
            while self.in_flight and time.monotonic() < deadline:   # answer what is being answered
                await asyncio.sleep(0.02)
            for conn in list(self.conns):
                conn.close()
            await asyncio.sleep(0)

    # -- from any thread -------------------------------------------------------------------
    def serve_forever(self, poll_interval: float | None = None) -> None:
        """Run the loop until stop() (poll_interval: ignored, for the old signature)."""
        self._running = True
        try:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self._main())
        finally:
            self._stopped.set()

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop accepting, answer the requests in progress (up to ~5 s), close."""
        self.stopping = True
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._request_stop)
        if self._running:
            self._stopped.wait(grace_s + 5.0)
        self.server_close()

    def _request_stop(self) -> None:
        if self._stop_requested is not None:
            self._stop_requested.set()
        else:   # not started yet
            self.loop.call_later(0.01, self._request_stop)

    shutdown = stop

    def server_close(self) -> None:
        self.stopping = True
        with contextlib.suppress(OSError):
            self.socket.close()
        self.pool.shutdown(wait=False)
        if self._stopped.is_set() and not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self.loop.close()
