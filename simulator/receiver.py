"""A real receiver (`sotto receive`) as a subprocess on a free loopback port,
with TLS from a throwaway PKI, for scenarios, fleets and the demo.

Its trust anchors are what a device is provisioned with: the CA of the PKI
(`pki.ca_pem`) and the centre's answer-signing public key (`centre_public_key`,
made with `sotto centre init` before the receiver starts). The SMS centre signs
its posts with `sms_secret`, which the receiver is given as its gateway secret.

One clock: the receiver stamps receipts with the simulation's time, which the
simulator writes to its clock file (`sotto receive --clock-file`) once a run
attaches its virtual clock (`attach_clock`).

OutsideReceiver stands for an already-running `sotto receive` (a staging
centre): its URL, CA certificate and centre public key; its registry database
only when it is on this machine (`sotto sim run --receiver URL ... --db PATH`)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from host_tools.errors import SottoError, UsageError
from host_tools.receiver import centre_key
from host_tools.receiver.clock_file import ClockWriter
from host_tools.receiver.store import open_db
from host_tools.registry import Registry, resolve_db_path
from simulator.pki import RECEIVER_NAME, TestPki, make_pki

REPO = Path(__file__).resolve().parent.parent


class ReceiverStartError(SottoError, RuntimeError):
    """`sotto receive` did not come up."""


class ReceiverProcess:
    def __init__(self, directory: str | Path, tls: bool = True, db: str | Path | None = None,
                 console: bool = False, console_args: list[str] | None = None) -> None:
        """tls: HTTPS with a throwaway PKI (else plain HTTP on loopback); db: the
        database: a SQLite file or a PostgreSQL URL (default DIRECTORY/receiver.db);
        console: the operators' console too."""
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.db = resolve_db_path(db, {}) if db else self.dir / "receiver.db"
        self.pki: TestPki | None = make_pki(str(self.dir)) if tls else None
        Registry(self.db).close()  # create the database before the server opens it
        with closing(open_db(self.db, create=True)) as conn:   # the centre's key, as `sotto centre init`
            key, _ = centre_key.ensure(conn, centre_key.default_path(self.db))
        self.centre_public_key = key.public_key
        self.sms_secret = secrets.token_hex(32).encode()
        secret_file = self.dir / "sms-gateway.secret"
        self.clock_path = self.dir / "clock"   # written by attach_clock; until then this machine's
        self._clock_writer: ClockWriter | None = None
        with open(os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
            f.write(self.sms_secret)
        cmd = [sys.executable, "-m", "sotto_cli", "receive", "--db", str(self.db),
               "--host", "127.0.0.1", "--port", "0", "-q", "--sms-secret-file", str(secret_file),
               "--clock-file", str(self.clock_path),
               # every simulated device connects from 127.0.0.1: one address, many devices
               "--max-per-address", "4096"]
        if self.pki is not None:
            cmd += ["--tls-cert", self.pki.cert_file, "--tls-key", self.pki.key_file]
        if console:   # the operators' console on its own free port (same certificate)
            cmd += ["--console-port", "0", *(console_args or [])]
        self.log_path = self.dir / "receiver.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - kept open while the process runs
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=self._log, text=True,
                                     env=env)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("listening on "):
            self.stop()
            raise ReceiverStartError(f"sotto receive did not start ({line.strip()!r}); see {self.log_path}")
        self.url = line.split()[2]
        self.port = int(self.url.rsplit(":", 1)[1].split("/")[0])
        self.console_url: str | None = None
        if console:
            line = self.proc.stdout.readline() if self.proc.stdout else ""
            if not line.startswith("console on "):
                self.stop()
                raise ReceiverStartError(f"the console did not start ({line.strip()!r}); see {self.log_path}")
            self.console_url = line.split()[2]
        self.host = RECEIVER_NAME if self.pki else "127.0.0.1"

    @property
    def sms_url(self) -> str:
        scheme = "https" if self.pki else "http"
        return f"{scheme}://127.0.0.1:{self.port}/v1/sms"

    def register(self, device_id: bytes, public_key: bytes, officer: str | None) -> None:
        with Registry(self.db) as reg:
            reg.add(device_id, public_key, officer=officer, by="simulator")

    def attach_clock(self, clock: Any) -> None:
        """From now on the receiver's clock is this virtual clock's UTC."""
        if self._clock_writer is None:
            self._clock_writer = ClockWriter(self.clock_path)
        self._clock_writer(clock.utc())
        clock.on_advance = self._clock_writer

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a centre that dies mid-alert (no clean shutdown); its database stays."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self._log.close()
        if self._clock_writer is not None:
            self._clock_writer.close()

    def __enter__(self) -> ReceiverProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Pki:
    """What a device is given of an outside receiver's TLS: its CA certificate."""

    def __init__(self, ca_pem: str) -> None:
        self.ca_pem = ca_pem


class OutsideReceiver:
    """An already-running `sotto receive`, for scenarios against a staging centre.

    url: https://HOST:PORT (or http:// on loopback); ca_pem: its TLS CA certificate
    (https); centre_public_key: its answer-signing public key (`sotto centre key`);
    db: its database (a SQLite file on this machine, or a PostgreSQL URL): devices' keys are
    registered there, operators' actions and expectations read it. Without db the
    devices' keys must be registered beforehand (`sotto sim keys`) and only what
    the device saw can be checked."""

    def __init__(self, url: str, ca_pem: str | None, centre_public_key: bytes,
                 db: str | Path | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"--receiver {url}: give https://HOST:PORT (http:// only on loopback)")
        if parts.scheme == "https" and not ca_pem:
            raise UsageError(f"--receiver {url}: give its CA certificate with --ca-cert")
        self.url = url
        self.host = parts.hostname
        try:   # where the virtual modem's connections go (a staging centre is not on loopback)
            self.address = socket.gethostbyname(parts.hostname)
        except OSError as e:
            raise UsageError(f"--receiver {url}: cannot resolve {parts.hostname} ({e})") from None
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.pki = _Pki(ca_pem) if parts.scheme == "https" and ca_pem else None
        self.centre_public_key = centre_public_key
        self.db = resolve_db_path(db, {}) if db else None   # a file, or a PostgreSQL URL as given
        self.sms_secret: bytes | None = None   # SMS fallback posts are not signed: the receiver refuses them
        self.registered: list[tuple[bytes, bytes, str | None]] = []

    @property
    def sms_url(self) -> str:
        return f"{urlsplit(self.url).scheme}://{self.host}:{self.port}/v1/sms"

    def register(self, device_id: bytes, public_key: bytes, officer: str | None) -> None:
        self.registered.append((device_id, public_key, officer))
        if self.db is not None:
            with Registry(self.db, create=False) as reg:   # the same key again changes nothing
                reg.add(device_id, public_key, officer=officer, by="simulator")

    def stop(self) -> None:
        """Nothing to stop: the receiver is not ours."""
