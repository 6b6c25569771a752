"""Which backend a database target or an open connection is, and the errors of both."""

from __future__ import annotations

import os
import re
import sqlite3
from typing import Any

import psycopg

SQLITE = "sqlite"
POSTGRESQL = "postgresql"

# For `except` clauses: a failure of either backend.
Error = (sqlite3.Error, psycopg.Error)
IntegrityError = (sqlite3.IntegrityError, psycopg.IntegrityError)
OperationalError = (sqlite3.OperationalError, psycopg.OperationalError)

_URL = re.compile(r"^postgres(?:ql)?://", re.IGNORECASE)
_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


def is_postgres(target: Any) -> bool:
    """A `postgresql://…` or `postgres://…` URL (anything else is a SQLite path)."""
    return isinstance(target, str) and bool(_URL.match(target.strip()))


def backend_of(conn: Any) -> str:
    """SQLITE or POSTGRESQL for an open connection (host_tools.storage.pg wraps PostgreSQL ones)."""
    return getattr(conn, "backend", SQLITE)


def redact(target: str | os.PathLike[str]) -> str:
    """The target for messages and logs: a URL's password replaced by ***."""
    return _PASSWORD.sub(r"\1***@", os.fspath(target))
