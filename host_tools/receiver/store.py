"""The receiver's durable store: tables, opening, alert ids.

One database holds the registry (host_tools.registry) and the tables below: a
SQLite file (WAL journal, synchronous=FULL) or PostgreSQL (host_tools.storage);
either way a transaction is durable when COMMIT returns, and the receiver answers
`accepted` only after that (host_tools.receiver.ingest). The tables' DDL and its
migrations: host_tools.storage.schema / .migrations.

- frames: every accepted frame exactly as received (`wire`), with the fields the
  views need decoded beside it; (device, seq, digest) is unique (schema 3), so
  a frame is stored once however many receivers share the database. Purging
  past retention empties `wire` and the location columns of frames that
  carried a location or audio; their digest,
  link and seq stay, so a resent frame is still a duplicate and the chain
  still shows where it was.
- alerts: one row per alert (device key, session id), with the chain counters
  kept up to date as frames arrive in any order, and the operator's state.
- device_state: last contact, heartbeat interval, battery, status of each device.
- rejections: every rejected frame's reason (no frame bytes are kept).
- audit: append-only, hash-chained record of every operator access and action
  (the chain columns and the centre's own tables: centre_schema.py).
- centre_settings: the centre's public answer-signing key (never the private
  one), the minimum retention, and other settings of the centre.
- commands: what operators asked a device to do (listening, more-audio, locate,
  ask), carried in the device's signed answers until its reply frame arrives.
  `command_id` is the id the device sees: it only increases, so rows are never
  deleted (a reused id would be ignored by the device as already run).
- alert_holds: alerts an operator placed on hold; purge never touches them.
- device_config, device_health, device_provisioned (devcfg.py, schema component
  `devcfg`): the centre's configuration versions of each device, what it last
  said about its health (firmware, configuration version, resets, faults, queue,
  signal), and the settings `sotto provision --set` gave it.
- device_trust: what each device says about its own trust setup: flag bit 3
  (it runs TLS without authenticating the server) and `unauth` (answers it
  could not authenticate).
"""

from __future__ import annotations

import os
import re
from typing import Any

from host_tools.errors import UsageError
from host_tools.registry import connect, ensure_registry_schema
from host_tools.storage.migrations import LATEST

RECEIVER_SCHEMA_VERSION = LATEST["receiver"]   # 2: settings, commands, holds, trust; 3: frames unique


def ensure_schema(conn: Any) -> None:
    """Create or migrate every table (registry, receiver, centre, alert_flags, devcfg, releases:
    host_tools.storage.migrations)."""
    ensure_registry_schema(conn)


def open_db(db_path: str | os.PathLike[str], *, create: bool = False, prepared: bool = False) -> Any:
    """A connection to the receiver database with every table in place.
    db_path: a SQLite file or a `postgresql://…` URL. create False (commands that
    only read or act on alerts): a missing file is a DatabaseError that says what to do.
    prepared: server-side binding and prepared statements on PostgreSQL (registry.connect)."""
    conn = connect(db_path, create=create, prepared=prepared)
    try:
        ensure_schema(conn)
    except BaseException:
        conn.close()
        raise
    return conn


# --------------------------------------------------------------------------
# Alert ids: short and typeable, `A` and the alert's number (A7, A1042).

_ALERT_ID = re.compile(r"^\s*(?:#|[Aa]-?)?0*(\d{1,12})\s*$")


def alert_code(alert_id: int) -> str:
    """How people write an alert id: `A` + its number."""
    return f"A{alert_id}"


def parse_alert_id(text: str | int) -> int:
    """The number in `A12`, `a12`, `A-12`, `#12` or `12`; UsageError otherwise."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text > 0:
            return text
        raise UsageError(f"alert id {text} must be positive")
    m = _ALERT_ID.match(str(text))
    if not m or int(m.group(1)) == 0:
        raise UsageError(f"{text!r} is not an alert id; alert ids look like A12 (see `sotto alerts list`)")
    return int(m.group(1))
