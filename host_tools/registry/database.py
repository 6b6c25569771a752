"""The receiver's database file: where it is (resolve_db_path), opening it (connect),
write transactions, and each component's schema version (check_schema)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from host_tools.errors import SottoError

ENV_DB = "SOTTO_DB"
DB_FILE_NAME = "receiver.db"
BUSY_TIMEOUT_MS = 10_000
REGISTRY_SCHEMA_VERSION = 1


class DatabaseError(SottoError, OSError):
    """The database cannot be opened or used (missing, not SQLite, locked, newer schema)."""

# --------------------------------------------------------------------------
# The database file.


def default_db_path(env: Mapping[str, str] | None = None) -> Path:
    """`$XDG_DATA_HOME/sotto/receiver.db`, or `~/.local/share/sotto/receiver.db`."""
    env = os.environ if env is None else env
    base = env.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "sotto" / DB_FILE_NAME


def resolve_db_path(cli_value: str | os.PathLike[str] | None = None,
                    env: Mapping[str, str] | None = None) -> Path:
    """The database every command uses: `--db PATH` (cli_value), else $SOTTO_DB,
    else default_db_path()."""
    env = os.environ if env is None else env
    if cli_value is not None and str(cli_value).strip():
        return Path(os.path.expanduser(os.fspath(cli_value)))
    from_env = env.get(ENV_DB, "").strip()
    if from_env:
        return Path(os.path.expanduser(from_env))
    return default_db_path(env)


def add_db_option(parser: Any) -> None:
    """The `--db PATH` option every command that uses the database shares."""
    parser.add_argument("--db", metavar="PATH",
                        help=f"the receiver database (default: ${ENV_DB}, else {_DEFAULT_HELP})")


_DEFAULT_HELP = "$XDG_DATA_HOME/sotto/receiver.db, i.e. ~/.local/share/sotto/receiver.db"


def connect(db_path: str | os.PathLike[str], *, create: bool = True) -> sqlite3.Connection:
    """Open the receiver database: WAL journal, synchronous=FULL (a commit is on
    disk when it returns), foreign keys on, waits up to 10 s for another writer.

    create: make the file (mode 0600, its folder 0700) if it does not exist;
    otherwise a missing file is a DatabaseError that says how to make one.
    The connection is in autocommit mode: write through write_transaction().
    """
    path = Path(db_path)
    if not path.exists():
        if not create:
            raise DatabaseError(f"no receiver database at {path}; register a device "
                                f"(`sotto devices add`) or start `sotto receive --db {path}` first, "
                                f"or point --db / {ENV_DB} at the right file")
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Location and audio are personal data: only the owner may read the file.
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        except OSError as e:
            raise DatabaseError(f"cannot create the database {path}: {e.strerror or e}") from None
    elif path.is_dir():
        raise DatabaseError(f"{path} is a directory, not a database file")
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=False)
    except sqlite3.Error as e:
        raise DatabaseError(f"cannot open the database {path}: {e}") from None
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise DatabaseError(f"the database {path} cannot use WAL mode (journal mode {mode}); "
                                "is it on a network file system?")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    except sqlite3.DatabaseError as e:
        conn.close()
        raise DatabaseError(f"{path} is not a usable SQLite database: {e}") from None
    except DatabaseError:
        conn.close()
        raise
    return conn


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any exception). The commit is
    durable when the block ends (synchronous=FULL)."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as e:
        raise DatabaseError(f"the database is busy or unavailable: {e}") from None
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def check_schema(conn: sqlite3.Connection, component: str, version: int, ddl: str) -> None:
    """Create `component`'s tables (ddl, idempotent) and record its schema version;
    refuse a database made by a newer version of sotto."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_versions ("
                 "component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
    row = conn.execute("SELECT version FROM schema_versions WHERE component = ?", (component,)).fetchone()
    if row is not None and row[0] == version:
        return
    if row is not None and row[0] > version:
        raise DatabaseError(f"the database's {component} tables are version {row[0]}; this sotto "
                            f"knows version {version}: upgrade sotto")
    with write_transaction(conn):
        for statement in _statements(ddl):
            conn.execute(statement)
        conn.execute("INSERT OR REPLACE INTO schema_versions(component, version) VALUES (?, ?)",
                     (component, version))


def _statements(ddl: str) -> list[str]:
    """Split a DDL script into statements (sqlite3.complete_statement keeps triggers whole)."""
    out: list[str] = []
    current = ""
    for line in ddl.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    if current.strip():
        out.append(current.strip())
    return out


_REGISTRY_DDL = """
CREATE TABLE IF NOT EXISTS devices (
    device_id   BLOB PRIMARY KEY CHECK (length(device_id) = 8),
    officer     TEXT,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS device_keys (
    key_id      INTEGER PRIMARY KEY,
    device_id   BLOB NOT NULL REFERENCES devices(device_id),
    public_key  BLOB NOT NULL UNIQUE CHECK (length(public_key) = 32),
    added_at    REAL NOT NULL,
    added_by    TEXT,
    revoked_at  REAL,
    revoked_by  TEXT,
    revoke_reason TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS device_keys_one_active ON device_keys(device_id) WHERE revoked_at IS NULL;
CREATE TABLE IF NOT EXISTS registry_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO registry_meta(name, value) VALUES ('generation', 0);
""" + "".join(
    # any change to a device or a key moves the registry's generation on (the KeyBook reloads)
    f"CREATE TRIGGER IF NOT EXISTS {prefix}_gen_{event[:3].lower()} AFTER {event} ON {table} BEGIN\n"
    "    UPDATE registry_meta SET value = value + 1 WHERE name = 'generation'; END;\n"
    for prefix, table in (("devices", "devices"), ("keys", "device_keys"))
    for event in ("INSERT", "UPDATE", "DELETE"))


def ensure_registry_schema(conn: sqlite3.Connection) -> None:
    """Create the registry's tables if they are missing."""
    check_schema(conn, "registry", REGISTRY_SCHEMA_VERSION, _REGISTRY_DDL)
