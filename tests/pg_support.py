"""The storage backend of the receiver and console tests: SQLite files (the default)
or, with SOTTO_TEST_BACKEND=postgresql (`make pytest-pg`), databases on one real
PostgreSQL server this test session starts (host_tools.storage.pgserver: Debian's
server binaries, initdb into a temporary directory, pg_ctl on a free port) and tears
down. Never skipped: without the binaries the PostgreSQL lane fails and says why."""

from __future__ import annotations

import atexit
import itertools
import os
from pathlib import Path
from typing import Any

BACKEND = os.environ.get("SOTTO_TEST_BACKEND", "sqlite").strip().lower() or "sqlite"
if BACKEND not in ("sqlite", "postgresql"):
    raise RuntimeError(f"SOTTO_TEST_BACKEND={BACKEND!r}: sqlite or postgresql")
PG = BACKEND == "postgresql"

_server: Any = None
_names = itertools.count(1)


def server() -> Any:
    """The session's PostgreSQL server (started at first use, stopped at exit)."""
    global _server
    if _server is None:
        import tempfile

        from host_tools.storage.pgserver import TempPostgres

        _server = TempPostgres()
        atexit.register(_server.close)
        # a PostgreSQL database's default centre key lives under $XDG_DATA_HOME
        # (host_tools.receiver.centre_key.default_path): never the user's own
        os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="sotto-pg-xdg-", dir=_server.dir)
    return _server


def new_db(tmp_path: Path, name: str = "receiver.db", template: str | None = None) -> Any:
    """A new empty database: a file under tmp_path, or a PostgreSQL URL (a copy of
    `template`, a database name, when given)."""
    if not PG:
        return tmp_path / name
    dbname = f"t{os.getpid()}_{next(_names)}"
    pg = server()
    if template is None:
        return pg.create_database(dbname)
    with pg.admin() as conn:
        conn.execute(f'CREATE DATABASE "{dbname}" TEMPLATE "{template}"')
    return pg.url(dbname)


def dbname_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def lift_audit_guard(conn: Any) -> None:
    """Let a test tamper with the audit log as an attacker with the owner's rights
    would: the append-only triggers off (SQLite: dropped; PostgreSQL: disabled)."""
    if PG:
        conn.execute("ALTER TABLE audit DISABLE TRIGGER audit_append_only")
    else:
        conn.execute("DROP TRIGGER audit_append_only_update")
        conn.execute("DROP TRIGGER audit_append_only_delete")
