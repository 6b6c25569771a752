"""The console's settings (what `sotto receive --console-*` gives) and where its
front-end libraries are served from."""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from host_tools.errors import UsageError
from host_tools.receiver.sessions import IDLE_TIMEOUT_S

ENV_VENDOR = "SOTTO_CONSOLE_VENDOR"  # a folder holding leaflet/dist (default: the repository's node_modules)
_REPO_NODE_MODULES = Path(__file__).resolve().parents[3] / "node_modules"


def default_vendor_dir() -> Path:
    """Where the pinned npm packages are: $SOTTO_CONSOLE_VENDOR, else the repository's node_modules."""
    env = os.environ.get(ENV_VENDOR, "").strip()
    return Path(env) if env else _REPO_NODE_MODULES


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class NotifyConfig:
    """Outgoing notifications (notify.py); both channels optional."""

    webhook_url: str | None = None
    webhook_secret: bytes | None = None  # HMAC-SHA256 key; never logged
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_user: str | None = None
    smtp_password: str | None = None
    mail_from: str = "sotto@localhost"
    mail_to: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.webhook_url or (self.smtp_host and self.mail_to))


@dataclass
class ConsoleConfig:
    host: str = "127.0.0.1"
    port: int = 8081
    tls_cert: str | None = None
    tls_key: str | None = None
    tile_url: str | None = None  # e.g. https://tiles.example/{z}/{x}/{y}.png; None: offline plot
    tile_attribution: str = ""
    public_url: str | None = None  # the console's address in notifications (default: its own URL)
    idle_timeout_s: float = IDLE_TIMEOUT_S
    export_dir: str | None = None  # where console exports are written (default: beside the database)
    centre_key_path: str | None = None  # the key that seals exports (default: `<db>-centre.key`)
    vendor_dir: Path = field(default_factory=default_vendor_dir)
    poll_interval_s: float = 0.1  # how often the event feed reads the database
    silent_check_s: float = 5.0
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    clock: Callable[[], float] = time.time  # tests move it (session expiry)

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert and self.tls_key)

    def check(self) -> None:
        """UsageError for a console that would send location and audio in clear over a network."""
        if not 0 <= self.port <= 65535:
            raise UsageError(f"--console-port {self.port} is not a TCP port (0..65535)")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise UsageError("TLS needs both --tls-cert and --tls-key")
        if not self.tls and not is_loopback(self.host):
            raise UsageError(
                f"the console would serve location and audio without TLS on {self.host}; give "
                "--tls-cert/--tls-key, or keep --console-host on loopback (127.0.0.1)"
            )
        if self.tile_url and not self.tile_url.startswith(("https://", "http://")):
            raise UsageError("--console-tiles must be an http(s) URL with {z}, {x} and {y}")
