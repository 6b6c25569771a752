"""The HTTP side of `sotto receive`: an event-driven listener (host_tools.receiver.front)
that hands complete requests to a bounded pool of worker threads.

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
    404 not-found   405 method-not-allowed   408 request-timeout   411 length-required
    415 unsupported-media-type   429 rate-limited (/v1/sms)   431 headers-too-large
    503 storage-unavailable / busy / too-many-connections

Hostile or slow clients cost a socket and a few hundred bytes, never a thread:
connections are capped per source address (max_per_address) and in all
(max_connections); the request line and headers must arrive within
header_timeout_s; bodies over max_body_bytes are refused before they are read,
bodies over max_frames frames as soon as frame max_frames + 1 begins.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
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
from host_tools.receiver.front import FrontEnd, ListenError
from host_tools.receiver.ingest import Receiver
from host_tools.receiver.store import open_db
from host_tools.storage import is_postgres, redact

log = logging.getLogger("sotto.receiver")


class ServerError(SottoError, OSError):
    """The server cannot start (port in use, bad TLS files, database locked)."""


MAX_DEFAULT_VERIFY_PROCESSES = 2


def default_verify_processes() -> int:
    """Signature-checking helper processes by default: one per core beyond the first, at
    most MAX_DEFAULT_VERIFY_PROCESSES (the receiver's own process, which does TLS, HTTP,
    storage and answer signing on one interpreter lock, cannot feed more)."""
    return max(0, min(MAX_DEFAULT_VERIFY_PROCESSES, (os.cpu_count() or 1) - 1))


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
    io_timeout_s: float = 30.0             # a body read (or a keep-alive wait) longer closes it
    request_deadline_s: float = 60.0       # a whole body
    header_timeout_s: float = 10.0         # request line + headers (and the TLS handshake)
    max_connections: int = 4096            # in all
    max_per_address: int = 256             # from one source address (raise it behind a carrier NAT)
    workers: int = 32                      # threads that handle complete requests (not the fast path)
    uvloop: bool = True                    # uvloop's event loop where installed
    fast_path: bool = True                 # plain frame POSTs without a worker (receiver.fastpath)
    listen_backlog: int = 1024
    verify_processes: int = field(default_factory=lambda: default_verify_processes())   # helper processes
    centre_key: str | None = None          # the answer-signing key file; None: <db>-centre.key
    sms_secret: bytes | None = field(default=None, repr=False)   # the gateway's HMAC secret; None: no SMS
    sms_per_minute: float = 120.0          # posts per source address to /v1/sms
    sms_burst: int = 60
    # receipts' times; `sotto receive --clock-file` (host_tools/receiver/clock_file.py) for simulated runs
    clock: Callable[[], float] = field(default=time.time, repr=False)



class ReceiverHTTPServer(FrontEnd):
    """The listener with the limits of ServerConfig and optional TLS."""

    def __init__(self, receiver: Receiver, config: ServerConfig, centre: CentreKey) -> None:
        ctx = _tls_context(config.tls_cert, config.tls_key) if (config.tls_cert or config.tls_key) else None
        try:
            super().__init__(receiver, config, centre, ctx)
        except ListenError as e:
            raise ServerError(str(e)) from None


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
    _raise_open_files(config)
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
        receiver = Receiver(db_path, verify_processes=config.verify_processes, clock=config.clock)
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
        # What start-up made (modules, keys, caches) lives as long as the process: frozen,
        # the full collections the load still triggers skip it (docs/architecture.md, "Garbage")
        gc.collect()
        gc.freeze()
        server.serve_forever()
        log.info("receiver stopping: finishing what is queued")
        return 0
    finally:
        gc.unfreeze()
        if running_console is not None:
            running_console.stop()
        if server is not None:
            server.stopping = True
            server.server_close()
        if receiver is not None:
            receiver.close()
        lock.release()


def _raise_open_files(config: ServerConfig) -> None:
    """Let the process hold max_connections sockets (plus the database and pipes):
    raise the soft RLIMIT_NOFILE towards the hard limit; warn when that is short."""
    import resource

    want = config.max_connections + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        if new < want:
            log.warning("the system allows %d open files: fewer than --max-connections %d needs",
                        new, config.max_connections)


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
    config = config or ServerConfig(port=0, verify_processes=0)
    centre, _ = centre_key_for(db_path, config)
    receiver = receiver or Receiver(db_path, verify_processes=config.verify_processes, clock=config.clock)
    try:
        server = ReceiverHTTPServer(receiver, config, centre)
    except BaseException:
        receiver.close()
        raise
    thread = threading.Thread(target=server.serve_forever, name="sotto-http", daemon=True)
    thread.start()
    return RunningServer(receiver, server, thread)
