"""The receiver's database: where it is (resolve_db_path: a SQLite file or a
PostgreSQL URL), opening it (connect), write transactions, and bringing its
schema up to date (ensure_registry_schema: host_tools.storage.migrations)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from host_tools import storage
from host_tools.errors import SottoError
from host_tools.storage import migrations, pg, sqlite

ENV_DB = "SOTTO_DB"
DB_FILE_NAME = "receiver.db"
BUSY_TIMEOUT_MS = 10_000
REGISTRY_SCHEMA_VERSION = 1


class DatabaseError(SottoError, OSError):
    """The database cannot be opened or used (missing, not SQLite, unreachable, locked, newer schema)."""

# --------------------------------------------------------------------------
# The database file.


def default_db_path(env: Mapping[str, str] | None = None) -> Path:
    """`$XDG_DATA_HOME/sotto/receiver.db`, or `~/.local/share/sotto/receiver.db`."""
    env = os.environ if env is None else env
    base = env.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "sotto" / DB_FILE_NAME


def resolve_db_path(cli_value: str | os.PathLike[str] | None = None,
                    env: Mapping[str, str] | None = None) -> Any:
    """The database every command uses: `--db PATH|URL` (cli_value), else $SOTTO_DB,
    else default_db_path(). A Path for a SQLite file; a `postgresql://…` URL stays
    the string it is (a Path would fold its `//`)."""
    env = os.environ if env is None else env
    for value in (cli_value, env.get(ENV_DB)):
        if value is not None and str(value).strip():
            text = os.fspath(value).strip() if not isinstance(value, Path) else value
            if storage.is_postgres(text):
                return text
            return Path(os.path.expanduser(os.fspath(value)))
    return default_db_path(env)


def add_db_option(parser: Any) -> None:
    """The `--db PATH` option every command that uses the database shares."""
    parser.add_argument("--db", metavar="PATH|URL",
                        help=f"the receiver database: a SQLite file, or a PostgreSQL URL "
                             f"postgresql://user@host/dbname (default: ${ENV_DB}, else {_DEFAULT_HELP})")


_DEFAULT_HELP = "$XDG_DATA_HOME/sotto/receiver.db, i.e. ~/.local/share/sotto/receiver.db"


def connect(db_path: str | os.PathLike[str], *, create: bool = True, prepared: bool = False) -> Any:
    """Open the receiver database. A `postgresql://…` URL: a PostgreSQL session
    (host_tools.storage.pg; its tables are made by the migrations). A path: a SQLite
    file in WAL mode with synchronous=FULL (a commit is on disk when it returns),
    foreign keys on, waiting up to 10 s for another writer.

    create: make the SQLite file (mode 0600, its folder 0700) if it does not exist;
    otherwise a missing file is a DatabaseError that says how to make one.
    The connection is in autocommit mode: write through write_transaction().
    prepared: on PostgreSQL, bind parameters on the server and prepare statements
    used often (the ingest writer; host_tools.storage.pg says what its SQL must do).
    """
    if storage.is_postgres(db_path):
        try:
            return pg.connect(str(db_path).strip(), prepared=prepared)
        except storage.Error as e:
            raise DatabaseError(str(e)) from None
    path = Path(db_path)
    hint = (f"no receiver database at {path}; register a device "
            f"(`sotto devices add`) or start `sotto receive --db {path}` first, "
            f"or point --db / {ENV_DB} at the right file")
    try:
        return sqlite.connect(path, create=create, missing_hint=hint)
    except sqlite.SqliteOpenError as e:
        raise DatabaseError(str(e)) from None


@contextlib.contextmanager
def write_transaction(conn: Any) -> Iterator[Any]:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any exception). The commit is
    durable when the block ends (SQLite: synchronous=FULL; PostgreSQL:
    synchronous_commit, its default)."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except storage.OperationalError as e:
        raise DatabaseError(f"the database is busy or unavailable: {e}") from None
    try:
        yield conn
    except BaseException:
        with contextlib.suppress(*storage.Error):
            conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def ensure_registry_schema(conn: Any) -> None:
    """Bring every component's tables up to date (registry, receiver, centre: one
    migration list, host_tools.storage.migrations), or refuse a newer database."""
    try:
        migrations.migrate(conn)
    except migrations.SchemaTooNewError as e:
        raise DatabaseError(str(e)) from None
