"""PostgreSQL connections with the sqlite3 connection's shape (see the package doc).

- SQL translation: `?` -> `%s`, `:name` -> `%(name)s` (outside quoted strings),
  a literal `%` -> `%%` (anywhere), `BEGIN IMMEDIATE` -> `BEGIN`; cached per statement.
- Client-side parameter binding (psycopg.ClientCursor) by default: a NULL
  parameter in `? IS NULL` needs no declared type, as in SQLite.
  `prepared=True` (the ingest writer's connection) binds on the server instead,
  and psycopg prepares each statement after its 5th use: a single-frame ingest
  went from 7.7-7.9 ms to 5.3-5.6 ms (two alternating runs each), since the
  server no longer parses and plans every statement again. Its SQL must give
  such a parameter a type (`CAST(? AS BIGINT) IS NULL`, which SQLite reads too).
- `lastrowid`: an INSERT into a table with an id column gets `RETURNING <id>`.
- numeric results (sum() of integers) come back as int, not Decimal.
- A connection that broke (the server restarted) is opened again at the next
  statement outside a transaction; inside one the failure is an error: the
  transaction is lost and must not be acknowledged.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import psycopg
from psycopg.adapt import Loader

from host_tools.storage.backend import POSTGRESQL, redact

# The id column of each table whose INSERTs report lastrowid.
ID_COLUMNS = {"alerts": "alert_id", "frames": "frame_id", "rejections": "rejection_id", "audit": "audit_id",
              "commands": "command_id", "device_keys": "key_id"}
CONNECT_TIMEOUT_S = 10

_TOKENS = re.compile(r"'(?:[^']|'')*'|\"[^\"]*\"|::|\?|:[A-Za-z_]\w*|%")
_INSERT = re.compile(r"^\s*INSERT\s+INTO\s+(\w+)", re.IGNORECASE)
_RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)
_BEGIN = re.compile(r"^\s*BEGIN(\s+(IMMEDIATE|EXCLUSIVE|DEFERRED))?\s*;?\s*$", re.IGNORECASE)
_END = re.compile(r"^\s*(COMMIT|ROLLBACK|END)\s*;?\s*$", re.IGNORECASE)


@functools.lru_cache(maxsize=2048)
def translate(sql: str) -> tuple[str, str | None]:
    """(psycopg SQL, id column whose value becomes lastrowid or None)."""
    if _BEGIN.match(sql):
        return "BEGIN", None

    def swap(m: re.Match[str]) -> str:
        t = m.group(0)
        if t == "?":
            return "%s"
        if t == "%":
            return "%%"
        if t.startswith(":") and t != "::":
            return f"%({t[1:]})s"
        return t.replace("%", "%%")       # a quoted string: only its % needs escaping

    out = _TOKENS.sub(swap, sql)
    returning = None
    m = _INSERT.match(sql)
    if m and m.group(1).lower() in ID_COLUMNS and not _RETURNING.search(sql):
        returning = ID_COLUMNS[m.group(1).lower()]
        out = out.rstrip().rstrip(";") + f" RETURNING {returning}"
    return out, returning


class _NumericLoader(Loader):
    """numeric -> int when whole, float otherwise (what sqlite3 gives for the same query)."""

    def load(self, data: Any) -> Any:
        text = bytes(data).decode("ascii")
        if "." in text or "e" in text.lower() or text in ("NaN", "Infinity", "-Infinity"):
            return float(text)
        return int(text)


class Cursor:
    """A psycopg cursor with sqlite3's lastrowid."""

    __slots__ = ("_cur", "lastrowid")

    def __init__(self, cur: psycopg.Cursor[Any], lastrowid: int | None) -> None:
        self._cur = cur
        self.lastrowid = lastrowid

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount

    @property
    def description(self) -> Any:
        return self._cur.description

    def fetchone(self) -> Any:
        return self._cur.fetchone() if self._cur.description is not None else None

    def fetchall(self) -> list[Any]:
        return self._cur.fetchall() if self._cur.description is not None else []

    def fetchmany(self, size: int = 1) -> list[Any]:
        return self._cur.fetchmany(size) if self._cur.description is not None else []

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cur) if self._cur.description is not None else iter(())

    def close(self) -> None:
        self._cur.close()


class PgConnection:
    """One PostgreSQL session, used like a sqlite3 connection in autocommit mode."""

    backend = POSTGRESQL

    def __init__(self, url: str, *, prepared: bool = False) -> None:
        self.url = url
        self._cursor_factory = psycopg.Cursor if prepared else psycopg.ClientCursor
        self._conn: psycopg.Connection[Any] | None = None
        self._in_txn = False
        self._open()

    def _open(self) -> None:
        try:
            conn = psycopg.connect(self.url, autocommit=True, cursor_factory=self._cursor_factory,
                                   connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.Error as e:
            # the message of a failed connect names the host, never the password
            raise psycopg.OperationalError(f"cannot connect to {redact(self.url)}: "
                                           f"{str(e).strip().splitlines()[-1] if str(e).strip() else e}"
                                           ) from None
        conn.adapters.register_loader("numeric", _NumericLoader)
        self._conn = conn

    def _live(self) -> psycopg.Connection[Any]:
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            if self._in_txn:
                raise psycopg.OperationalError("the connection to PostgreSQL was lost inside a transaction")
            if conn is not None:
                conn.close()
            self._conn = None
            self._open()
            conn = self._conn
        assert conn is not None
        return conn

    @property
    def in_transaction(self) -> bool:
        return self._in_txn

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> Cursor:
        text, returning = translate(sql)
        begin = text == "BEGIN"
        if begin:
            if self._in_txn:
                # a transaction its caller never ended (its BEGIN failed, or the caller
                # did not roll back): start on a fresh session, never latch "lost"
                self.close()
            conn = self._live()
        elif _END.match(text):
            self._in_txn = False
            conn = self._conn if self._conn is not None else self._live()
            if conn.closed or conn.broken:
                raise psycopg.OperationalError("the connection to PostgreSQL was lost inside a transaction")
        else:
            conn = self._live()
        cur = conn.cursor()
        cur.execute(text, params)        # always a sequence or mapping: psycopg turns %% back into %
        if begin:
            self._in_txn = True          # only once BEGIN went through (a failed one opened nothing)
        lastrowid = None
        if returning is not None and cur.description is not None:
            row = cur.fetchone()
            lastrowid = row[0] if row is not None else None
        return Cursor(cur, lastrowid)

    def executemany(self, sql: str, seq: Iterable[Sequence[Any] | Mapping[str, Any]]) -> Cursor:
        text, returning = translate(sql)
        if returning is not None:       # no RETURNING for many rows: sqlite3 has no lastrowid there either
            text = text[: text.rfind(" RETURNING ")]
        cur = self._live().cursor()
        cur.executemany(text, list(seq))
        return Cursor(cur, None)

    def commit(self) -> None:
        """sqlite3's commit(): nothing to do in autocommit mode."""

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._in_txn = False

    def __enter__(self) -> PgConnection:
        return self

    def __exit__(self, *exc: Any) -> None:
        """As sqlite3's: the end of a `with conn:` block does not close (autocommit: nothing to commit)."""


def connect(url: str, *, prepared: bool = False) -> PgConnection:
    return PgConnection(url, prepared=prepared)
