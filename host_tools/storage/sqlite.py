"""Opening a SQLite database file: WAL journal, synchronous=FULL, foreign keys on."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

BUSY_TIMEOUT_MS = 10_000


class SqliteOpenError(Exception):
    """The file cannot be made or opened as a SQLite database (the message says why)."""


def connect(path: Path, *, create: bool, missing_hint: str) -> sqlite3.Connection:
    """Open the database file (see host_tools.registry.connect): make it (mode 0600,
    its folder 0700) when create, else a missing file is an error with missing_hint."""
    if not path.exists():
        if not create:
            raise SqliteOpenError(missing_hint)
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Location and audio are personal data: only the owner may read the file.
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        except OSError as e:
            raise SqliteOpenError(f"cannot create the database {path}: {e.strerror or e}") from None
    elif path.is_dir():
        raise SqliteOpenError(f"{path} is a directory, not a database file")
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=False)
    except sqlite3.Error as e:
        raise SqliteOpenError(f"cannot open the database {path}: {e}") from None
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise SqliteOpenError(f"the database {path} cannot use WAL mode (journal mode {mode}); "
                                  "is it on a network file system?")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    except sqlite3.DatabaseError as e:
        conn.close()
        raise SqliteOpenError(f"{path} is not a usable SQLite database: {e}") from None
    except SqliteOpenError:
        conn.close()
        raise
    return conn
