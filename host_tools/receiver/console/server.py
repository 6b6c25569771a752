"""Running the console: uvicorn in its own thread with its own event loop, inside
the receiver process, on its own listener (the operators' network, apart from the
devices'). TLS with the receiver's certificate; plain HTTP only on loopback.

    running = start_console(db_path, ConsoleConfig(port=0))
    running.url        # https://127.0.0.1:PORT
    running.stop()
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass

import uvicorn

from host_tools.errors import SottoError
from host_tools.receiver.console.app import create_app
from host_tools.receiver.console.config import ConsoleConfig
from host_tools.receiver.console.events import EventFeed
from host_tools.receiver.console.notify import Notifier

log = logging.getLogger("sotto.console")
START_TIMEOUT_S = 15.0


class ConsoleError(SottoError, OSError):
    """The console cannot start (port in use, bad TLS files)."""


@dataclass
class RunningConsole:
    server: uvicorn.Server
    thread: threading.Thread
    feed: EventFeed
    notifier: Notifier | None
    url: str

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def stop(self) -> None:
        self.server.config.app.state.stopping.set()  # open event streams end within a second
        self.server.should_exit = True
        self.thread.join(10)
        self.feed.stop()
        if self.notifier is not None:
            self.notifier.stop()


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise ConsoleError(
                f"console port {port} on {host} is in use; choose another --console-port"
            ) from None
        raise ConsoleError(f"cannot listen on {host}:{port} for the console: {e.strerror or e}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def start_console(db_path: str | os.PathLike[str], config: ConsoleConfig) -> RunningConsole:
    """Serve the console in a background thread; returns once it accepts connections."""
    config.check()
    sock = _listen(config.host, config.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    url = f"{'https' if config.tls else 'http'}://{shown}:{port}"
    notifier = (
        Notifier(str(db_path), config.notify, console_url=config.public_url or url, clock=config.clock)
        if config.notify.enabled
        else None
    )
    feed = EventFeed(
        str(db_path),
        poll_interval_s=config.poll_interval_s,
        silent_check_s=config.silent_check_s,
        clock=config.clock,
        on_event=notifier.on_event if notifier else None,
    )
    app = create_app(db_path, config, feed=feed)
    uv = uvicorn.Config(
        app,
        ssl_certfile=config.tls_cert,
        ssl_keyfile=config.tls_key,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
        server_header=False,
        ws="none",
    )
    server = uvicorn.Server(uv)
    try:
        uv.load()  # reads the TLS files now, so a bad one is an error here
    except (OSError, ValueError) as e:
        sock.close()
        raise ConsoleError(f"cannot load the console's TLS certificate or key: {e}") from None
    feed.start()
    if notifier is not None:
        notifier.start()
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="sotto-console", daemon=True
    )
    thread.start()
    pause = threading.Event()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        pause.wait(0.02)
    if not server.started:
        feed.stop()
        raise ConsoleError("the console did not start; see the log above")
    log.info("console on %s", url)
    return RunningConsole(server, thread, feed, notifier, url)
