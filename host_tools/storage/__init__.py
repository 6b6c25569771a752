"""The centre's database, on SQLite or PostgreSQL (one connection abstraction).

Where the CLI takes `--db` (or `$SOTTO_DB`): a plain path is a SQLite file (the
embedded default, what `make demo` uses); a `postgresql://…` / `postgres://…` URL
is a PostgreSQL database, reached with psycopg 3. Either way callers get an object
with the sqlite3 connection's shape — `execute(sql, params)` (a cursor:
fetchone/fetchall/iteration/description/rowcount/lastrowid), `executemany`,
`close` — in autocommit mode, with transactions written out as `BEGIN IMMEDIATE`
… `COMMIT` (host_tools.registry.write_transaction).

SQL is written once, in the subset both backends share: `?` or `:name`
placeholders (translated to psycopg's `%s` / `%(name)s`), ON CONFLICT, RETURNING,
CASE instead of SQLite's two-argument max()/min(). `lastrowid` after an INSERT
works on both (PostgreSQL: the table's id column, RETURNING'd by the wrapper).

- backend: which backend a target or connection is; the error classes of both.
- sqlite: opening a SQLite file (WAL, synchronous=FULL).
- pg: the PostgreSQL connection wrapper (translation, reconnection, numbers).
- schema, migrations: every table of every component, one migration list for both.
- roles: PostgreSQL roles (ingest, console, purge, registry) and their grants.
- pgserver: a throw-away PostgreSQL server (initdb + pg_ctl) for tests and benchmarks.
"""

from host_tools.storage.backend import (
    POSTGRESQL,
    SQLITE,
    Error,
    IntegrityError,
    OperationalError,
    backend_of,
    is_postgres,
    redact,
)

__all__ = ["POSTGRESQL", "SQLITE", "Error", "IntegrityError", "OperationalError", "backend_of",
           "is_postgres", "redact"]
