"""A centre database for the provisioning tests: a SQLite file, or a PostgreSQL
database in `make pytest-pg` (tests/pg_support.py)."""

from __future__ import annotations

import sys
from contextlib import closing
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # tests/: pg_support

import pg_support  # noqa: E402

from host_tools.receiver import centre_key  # noqa: E402
from host_tools.receiver.store import open_db  # noqa: E402


def centre_db(path: Path) -> Any:
    """A registry database whose centre has its key (`sotto centre init`): `path` itself
    (SQLite), or a new PostgreSQL database's URL; returns it."""
    db = pg_support.new_db(path.parent, path.name)
    with closing(open_db(db, create=True)) as conn:
        centre_key.ensure(conn, centre_key.default_path(db))
    return db


def stored_bytes(db: Any) -> list[bytes]:
    """Everything the centre database holds, as bytes to search: each file of a SQLite
    database (with its WAL); every value of every table of a PostgreSQL one."""
    if not pg_support.PG:
        return [p.read_bytes() for p in Path(db).parent.iterdir() if p.is_file()]
    out = []
    with closing(open_db(db)) as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        for t in tables:
            for row in conn.execute(f'SELECT * FROM "{t}"'):
                out += [v if isinstance(v, bytes) else str(v).encode() for v in row if v is not None]
    return out
