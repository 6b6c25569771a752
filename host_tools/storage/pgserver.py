"""A throw-away PostgreSQL server for tests and benchmarks: Debian's `postgresql`
server binaries, `initdb` into a temporary directory, `pg_ctl` on a free loopback
port, torn down afterwards (`make postgres` installs the package when it is missing).

    with TempPostgres() as pg:
        url = pg.create_database("t1")      # postgresql://sotto@127.0.0.1:PORT/t1
        pg.stop(mode="immediate")           # as if the server were killed
        pg.start()

Nothing here is used in production: a centre runs its own (managed or replicated)
PostgreSQL (docs/operator-guide.md).
"""

from __future__ import annotations

import contextlib
import glob
import os
import random
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import psycopg

ENV_BIN = "SOTTO_PG_BIN"       # the folder of initdb/pg_ctl, if not Debian's
SUPERUSER = "sotto"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries here (`make postgres` installs Debian's)."""


def server_bin() -> Path:
    """The folder holding initdb and pg_ctl: $SOTTO_PG_BIN, else the newest
    /usr/lib/postgresql/<major>/bin."""
    given = os.environ.get(ENV_BIN)
    def major(p: str) -> int:
        name = Path(p).parent.name
        return int(name) if name.isdigit() else 0

    candidates = [given] if given else sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=major)
    for c in reversed(candidates):
        if c and (Path(c) / "initdb").is_file() and (Path(c) / "pg_ctl").is_file():
            return Path(c)
    raise PostgresUnavailable("no PostgreSQL server binaries (initdb, pg_ctl): run `make postgres` "
                              f"(Debian's postgresql package) or set {ENV_BIN}")


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999          # Linux's default


def free_port() -> int:
    """A free loopback port outside the kernel's ephemeral range. A port the kernel
    handed out (bind to 0) can be taken as the source port of any outgoing connection
    while the server is down, and a server restarted after `stop("immediate")` must
    get its own port back."""
    low, high = _ephemeral_range()
    pool = [p for p in range(20000, 32768) if not low <= p <= high] or list(range(1024, low))
    for port in random.sample(pool, min(len(pool), 200)):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise PostgresUnavailable("no free loopback port outside the ephemeral range for PostgreSQL")


class TempPostgres:
    """One PostgreSQL cluster in a temporary directory (see module doc)."""

    def __init__(self, *, fsync: bool = True) -> None:
        self.bin = server_bin()
        self.dir = Path(tempfile.mkdtemp(prefix="sotto-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.log = self.dir / "server.log"
        self._run_as: dict[str, Any] = {}
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root: run it as nobody, in a folder nobody owns
            import pwd

            nobody = pwd.getpwnam("nobody")
            os.chown(self.dir, nobody.pw_uid, nobody.pw_gid)
            self._run_as = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
        self._pg(["initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                  "--no-instructions"])
        conf = [f"port = {self.port}", "listen_addresses = '127.0.0.1'",
                f"unix_socket_directories = '{self.dir}'",
                "max_connections = 200", "shared_buffers = 64MB", f"fsync = {'on' if fsync else 'off'}",
                "synchronous_commit = on", "log_min_messages = warning"]
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as f:
            f.write("\n".join(conf) + "\n")
        self.start()

    def _pg(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin / args[0]), *args[1:]]
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=self.dir, **self._run_as)
        if check and r.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise PostgresUnavailable(f"{' '.join(args[:2])} failed ({r.returncode}): "
                                      f"{r.stderr.strip()} {log}")
        return r

    # -- the server ---------------------------------------------------------------
    def start(self) -> None:
        self._pg(["pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "120", "start"])

    def stop(self, mode: str = "fast") -> None:
        """mode "immediate": the server stops at once without a checkpoint, as if killed
        (it recovers from its WAL at the next start)."""
        self._pg(["pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "120", "stop"], check=False)

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> TempPostgres:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- databases ------------------------------------------------------------------
    def url(self, dbname: str = "postgres", user: str = SUPERUSER, password: str | None = None) -> str:
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{dbname}"

    def admin(self, dbname: str = "postgres") -> psycopg.Connection[Any]:
        return psycopg.connect(self.url(dbname), autocommit=True)

    def create_database(self, name: str) -> str:
        """A new empty database; its URL (as the superuser)."""
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with contextlib.suppress(psycopg.Error), self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
