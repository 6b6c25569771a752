"""The HTTP side of `sotto receive` (standard library http.server, one thread per connection).

    POST /v1/frames   body application/cbor-seq: frames -> the centre's signed answer
                      (application/cose: COSE_Sign1 bound to the request, docs/frames.md)
    POST /v1/sms      the SMS gateway's webhook: JSON {sender, time, payload (hex or base64)},
                      signed by the gateway (host_tools.receiver.sms_auth)
    GET  /v1/health   JSON {"status": "ok", ...}; 503 when storage is failing

Every answer carries a reason: HTTP errors have a body {"reason": CODE, "detail":
TEXT} (on /v1/frames the centre's signed answer for 400 / 413 once the body was
read, else plain CBOR; JSON elsewhere):

    400 malformed-cbor / bad-request / bad-content-length   413 too-large
    401 missing-signature / bad-signature / stale-timestamp / sms-not-configured (/v1/sms)
    404 not-found   405 method-not-allowed   411 length-required   429 rate-limited (/v1/sms)
    415 unsupported-media-type   431 headers-too-large   503 storage-unavailable / busy

Slow or hostile clients only hold their own thread: every read has a timeout
(io_timeout_s), a request cycle has an absolute deadline (request_deadline_s,
enforced by a reaper that shuts such sockets down), bodies over max_body_bytes
are refused before they are read, connections are capped (max_connections),
and TLS handshakes happen in the connection's thread, never in the accept loop.
"""

from __future__ import annotations

import contextlib
import errno
import http.server
import json
import logging
import os
import signal
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host_tools import __version__
from host_tools.errors import SottoError, UsageError
from host_tools.receiver import centre_key
from host_tools.receiver.centre_key import CentreKey
from host_tools.receiver.http_handler import _Handler
from host_tools.receiver.ingest import Receiver
from host_tools.receiver.sms_auth import RateLimiter
from host_tools.receiver.store import open_db
from host_tools.storage import is_postgres, redact

log = logging.getLogger("sotto.receiver")



class ServerError(SottoError, OSError):
    """The server cannot start (port in use, bad TLS files, database locked)."""


@dataclass
class ServerConfig:
    """Tunables of the HTTP server (defaults suit a monitoring centre)."""

    host: str = "127.0.0.1"
    port: int = 8080
    tls_cert: str | None = None
    tls_key: str | None = None
    max_body_bytes: int = 1024 * 1024      # a device posts at most 8 KB; backlogs stay far below
    max_frames: int = 512                  # per request
    max_sms_bytes: int = 16 * 1024
    io_timeout_s: float = 30.0             # a read that waits longer closes the connection
    request_deadline_s: float = 60.0       # a whole request cycle (incl. keep-alive wait)
    max_connections: int = 4096
    listen_backlog: int = 1024
    verify_helper: bool = (os.cpu_count() or 1) > 1   # verify on a second core too
    centre_key: str | None = None          # the answer-signing key file; None: <db>-centre.key
    sms_secret: bytes | None = field(default=None, repr=False)   # the gateway's HMAC secret; None: no SMS
    sms_per_minute: float = 120.0          # posts per source address to /v1/sms
    sms_burst: int = 60
    # receipts' times; `sotto receive --clock-file` (host_tools/receiver/clock_file.py) for simulated runs
    clock: Callable[[], float] = field(default=time.time, repr=False)



class _Connections:
    """Open connections with their deadlines; a reaper shuts overdue ones down."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.deadlines: dict[socket.socket, float] = {}
        self.reaped = 0

    def add(self, sock: socket.socket, seconds: float) -> None:
        with self.lock:
            self.deadlines[sock] = time.monotonic() + seconds

    def arm(self, sock: socket.socket, seconds: float) -> None:
        with self.lock:
            if sock in self.deadlines:
                self.deadlines[sock] = time.monotonic() + seconds

    def remove(self, sock: socket.socket) -> None:
        with self.lock:
            self.deadlines.pop(sock, None)

    def __len__(self) -> int:
        return len(self.deadlines)

    def reap(self) -> int:
        now = time.monotonic()
        with self.lock:
            overdue = [s for s, t in self.deadlines.items() if t < now]
            for s in overdue:
                self.deadlines[s] = now + 3600   # once
        for s in overdue:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        self.reaped += len(overdue)
        return len(overdue)


class ReceiverHTTPServer(http.server.ThreadingHTTPServer):
    """ThreadingHTTPServer with the limits of ServerConfig and optional TLS."""

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, receiver: Receiver, config: ServerConfig, centre: CentreKey) -> None:
        self.receiver = receiver
        self.config = config
        self.centre = centre
        self.sms_limiter = RateLimiter(config.sms_per_minute, config.sms_burst)
        self.request_queue_size = config.listen_backlog
        self.conns = _Connections()
        self.stopping = False
        self.errors: dict[str, int] = {}
        self.bugs = 0
        self._err_lock = threading.Lock()
        self.ssl_context: ssl.SSLContext | None = None
        if config.tls_cert or config.tls_key:
            self.ssl_context = _tls_context(config.tls_cert, config.tls_key)
        if ":" in config.host:
            self.address_family = socket.AF_INET6
        try:
            super().__init__((config.host, config.port), _Handler)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise ServerError(f"port {config.port} on {config.host} is in use: another receiver? "
                                  "choose another with --port") from None
            raise ServerError(f"cannot listen on {config.host}:{config.port}: {e.strerror or e}") from None
        self._reaper = threading.Thread(target=self._reap_loop, name="sotto-reaper", daemon=True)
        self._reaper.start()

    def server_bind(self) -> None:
        # http.server's version also looks up the host's FQDN, which can stall on DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else str(host)
        return f"{'https' if self.ssl_context else 'http'}://{shown}:{port}"

    def count_error(self, reason: str, bug: bool = False) -> None:
        with self._err_lock:
            self.errors[reason] = self.errors.get(reason, 0) + 1
            if bug:
                self.bugs += 1

    def _reap_loop(self) -> None:
        while not self.stopping:
            time.sleep(0.5)
            self.conns.reap()

    def process_request(self, request: Any, client_address: Any) -> None:
        if len(self.conns) >= self.config.max_connections:
            body = json.dumps({"reason": "busy",
                               "detail": "too many connections; try again shortly"}).encode()
            with contextlib.suppress(OSError):
                request.settimeout(1.0)
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                b"Content-Length: %d\r\nConnection: close\r\nRetry-After: 5\r\n\r\n%s"
                                % (len(body), body))
            self.shutdown_request(request)
            self.count_error("busy")
            return
        self.conns.add(request, self.config.request_deadline_s)
        super().process_request(request, client_address)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """In the connection's own thread: the TLS handshake, then HTTP."""
        raw = request
        try:
            if self.ssl_context is not None:
                raw.settimeout(self.config.io_timeout_s)
                request = self.ssl_context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
                self.conns.remove(raw)
                self.conns.add(request, self.config.request_deadline_s)
                try:
                    request.do_handshake()
                except (ssl.SSLError, OSError) as e:
                    log.debug("TLS handshake with %s failed: %s", client_address[0], e)
                    self.count_error("tls-handshake")
                    return
            self.RequestHandlerClass(request, client_address, self)
        finally:
            self.conns.remove(request)
            self.conns.remove(raw)
            if request is not raw:
                with contextlib.suppress(OSError):
                    request.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection's thread failed outside our handlers: log it, keep serving."""
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, ssl.SSLError)):
            log.debug("connection from %s ended: %s", client_address[0], exc)
            return
        self.count_error("internal-error", bug=True)
        log.exception("unexpected error on a connection from %s", client_address[0])

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop accepting, let requests in progress finish (up to grace_s)."""
        self.stopping = True
        self.shutdown()
        self.server_close()
        deadline = time.monotonic() + grace_s
        while len(self.conns) and time.monotonic() < deadline:
            time.sleep(0.05)


def _tls_context(cert: str | None, key: str | None) -> ssl.SSLContext:
    if not cert or not key:
        raise UsageError("TLS needs both --tls-cert and --tls-key")
    for name, path in (("certificate", cert), ("key", key)):
        if not Path(path).is_file():
            raise UsageError(f"TLS {name} file {path} does not exist")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as e:
        raise UsageError(f"cannot load the TLS certificate {cert} with key {key}: {e}") from None
    return ctx


# --------------------------------------------------------------------------
# Running `sotto receive`.


class _DbLock:
    """One receiver per SQLite database: an exclusive lock on DB + '-receiver.lock'.
    PostgreSQL takes several receivers (each write transaction takes an advisory
    lock, host_tools.receiver.ingest.writer): no lock file."""

    def __init__(self, db_path: Path) -> None:
        import fcntl

        self.fd = -1
        if is_postgres(db_path):
            return
        self.path = db_path.with_name(db_path.name + "-receiver.lock")
        db_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            other = os.pread(self.fd, 32, 0).decode("ascii", "replace").strip()
            os.close(self.fd)
            raise ServerError(f"another `sotto receive` (pid {other or '?'}) is using {db_path}; "
                              "stop it first, or give another --db") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)

    def release(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)


def centre_key_for(db_path: str | os.PathLike[str], config: ServerConfig) -> tuple[CentreKey, bool]:
    """The centre key the receiver signs with (made when the database has none yet):
    (key, created)."""
    path = Path(config.centre_key) if config.centre_key else centre_key.default_path(db_path)
    with closing(open_db(db_path, create=True)) as conn:
        return centre_key.ensure(conn, path)


def serve(db_path: Path, config: ServerConfig, *, announce: Callable[[str], None] = print,
          stop_event: threading.Event | None = None, note: Callable[[str], None] | None = None,
          console: Any = None) -> int:
    """Run the receiver until SIGINT/SIGTERM (or stop_event): the blocking body of
    `sotto receive`. `announce` gets one line once it listens: `listening on URL ...`;
    with a console (a ConsoleConfig), a second one once that listens: `console on URL`.
    `note` (default: the log) gets what the operator should know at start (a new
    centre key, the SMS gateway's state)."""
    note = note or log.warning
    lock = _DbLock(db_path)
    receiver = None
    server = None
    running_console = None
    try:
        centre, created = centre_key_for(db_path, config)
        if created:
            note(f"made the centre's answer-signing key {centre.path} (public key {centre.public_hex}); "
                 "provision devices with it (`sotto centre key`)")
        if config.sms_secret is None:
            note("no SMS gateway secret (--sms-secret-file): POST /v1/sms answers 401 to everything")
        receiver = Receiver(db_path, verify_helper=config.verify_helper, clock=config.clock)
        server = ReceiverHTTPServer(receiver, config, centre)
        if config.host not in ("127.0.0.1", "::1", "localhost") and server.ssl_context is None:
            log.warning("serving without TLS on %s: location and audio would cross the network in clear; "
                        "use --tls-cert/--tls-key, or a TLS proxy in front", config.host)
        if console is not None:
            from host_tools.receiver.console.server import start_console

            running_console = start_console(db_path, console)
        announce(f"listening on {server.url} (database {redact(db_path)})")
        if running_console is not None:
            announce(f"console on {running_console.url}")
        log.info("receiver %s started: %d devices registered, pid %d", __version__,
                 len(receiver.writer.keys), os.getpid())
        srv = server

        def stop(*_: Any) -> None:
            threading.Thread(target=srv.stop, name="sotto-stop", daemon=True).start()

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
        if stop_event is not None:
            threading.Thread(target=lambda: (stop_event.wait(), stop()), daemon=True).start()
        server.serve_forever(poll_interval=0.2)
        deadline = time.monotonic() + 5
        while len(srv.conns) and time.monotonic() < deadline:
            time.sleep(0.05)
        log.info("receiver stopping: finishing what is queued")
        return 0
    finally:
        if running_console is not None:
            running_console.stop()
        if server is not None:
            server.stopping = True
            server.server_close()
        if receiver is not None:
            receiver.close()
        lock.release()


@dataclass
class RunningServer:
    """A receiver serving HTTP in a background thread (tests, the simulator, benchmarks)."""

    receiver: Receiver
    server: ReceiverHTTPServer
    thread: threading.Thread

    @property
    def centre(self) -> CentreKey:
        return self.server.centre

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def stop(self) -> None:
        self.server.stop()
        self.thread.join(10)
        self.receiver.close()


def start_in_thread(db_path: str | os.PathLike[str], config: ServerConfig | None = None,
                    receiver: Receiver | None = None) -> RunningServer:
    """Start a receiver (port 0 = any free port) in this process; stop() it when done.
    Its centre key is config.centre_key, else `<db>-centre.key` (made when missing)."""
    config = config or ServerConfig(port=0, verify_helper=False)
    centre, _ = centre_key_for(db_path, config)
    receiver = receiver or Receiver(db_path, verify_helper=config.verify_helper, clock=config.clock)
    try:
        server = ReceiverHTTPServer(receiver, config, centre)
    except BaseException:
        receiver.close()
        raise
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name="sotto-http", daemon=True)
    thread.start()
    return RunningServer(receiver, server, thread)
