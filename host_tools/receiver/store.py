"""The receiver's durable store: tables, opening, alert ids.

One SQLite file holds the registry (host_tools.registry) and the tables below.
WAL journal, synchronous=FULL: a transaction is on disk when COMMIT returns, and
the receiver answers `accepted` only after that (host_tools.receiver.ingest).

- frames: every accepted frame exactly as received (`wire`), with the fields the
  views need decoded beside it. Purging past retention empties `wire` and the
  location columns of frames that carried a location or audio; their digest,
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
- device_trust: what each device says about its own trust setup: flag bit 3
  (it runs TLS without authenticating the server) and `unauth` (answers it
  could not authenticate).
"""

from __future__ import annotations

import os
import re
import sqlite3

from host_tools.errors import UsageError
from host_tools.receiver.centre_schema import ensure_centre_schema
from host_tools.receiver.releases import ensure_releases_schema
from host_tools.registry import check_schema, connect, ensure_registry_schema

RECEIVER_SCHEMA_VERSION = 2   # 2: centre_settings, commands, alert_holds, device_trust

_DDL = """
CREATE TABLE IF NOT EXISTS alerts (
    alert_id          INTEGER PRIMARY KEY,
    device_id         BLOB NOT NULL,
    key_id            INTEGER NOT NULL,
    sid               INTEGER NOT NULL,
    officer           TEXT,
    state             TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'acknowledged', 'closed')),
    started_at        INTEGER,
    start_seq         INTEGER,
    start_received_at REAL,
    first_received_at REAL NOT NULL,
    last_received_at  REAL NOT NULL,
    trigger           INTEGER,
    duress            INTEGER NOT NULL DEFAULT 0,
    duress_at         REAL,
    frames            INTEGER NOT NULL DEFAULT 0,
    starts            INTEGER NOT NULL DEFAULT 0,
    dangling          INTEGER NOT NULL DEFAULT 0,
    forks             INTEGER NOT NULL DEFAULT 0,
    seq_reused        INTEGER NOT NULL DEFAULT 0,
    end_type          INTEGER,
    end_why           INTEGER,
    end_seq           INTEGER,
    ended_at          REAL,
    audio_frames      INTEGER NOT NULL DEFAULT 0,
    audio_samples     INTEGER NOT NULL DEFAULT 0,
    audio_rate        INTEGER,
    battery           INTEGER,
    battery_seq       INTEGER,
    acked_by          TEXT,
    acked_at          REAL,
    closed_by         TEXT,
    closed_at         REAL,
    outcome           TEXT,
    purged_at         REAL,
    UNIQUE (key_id, sid)
);
CREATE INDEX IF NOT EXISTS alerts_state ON alerts(state, last_received_at);
CREATE TABLE IF NOT EXISTS frames (
    frame_id    INTEGER PRIMARY KEY,
    device_id   BLOB NOT NULL,
    key_id      INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    digest      BLOB NOT NULL,
    type        INTEGER NOT NULL,
    sid         INTEGER,
    alert_id    INTEGER,
    time        INTEGER NOT NULL,
    up_ms       INTEGER NOT NULL,
    flags       INTEGER NOT NULL,
    link        BLOB NOT NULL,
    prev        BLOB,
    received_at REAL NOT NULL,
    via         TEXT NOT NULL,
    peer        TEXT,
    size        INTEGER NOT NULL,
    lat_e7      INTEGER,
    lon_e7      INTEGER,
    acc_m       INTEGER,
    age_s       INTEGER,
    src         INTEGER,
    battery     INTEGER,
    audio_off   INTEGER,
    audio_ns    INTEGER,
    audio_rate  INTEGER,
    wire        BLOB,
    purged_at   REAL
);
CREATE INDEX IF NOT EXISTS frames_device_seq ON frames(device_id, seq);
CREATE INDEX IF NOT EXISTS frames_alert_link ON frames(alert_id, link) WHERE alert_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS frames_alert_prev ON frames(alert_id, prev) WHERE prev IS NOT NULL;
CREATE TABLE IF NOT EXISTS device_state (
    device_id     BLOB PRIMARY KEY,
    last_seen_at  REAL NOT NULL,
    last_seq      INTEGER,
    last_type     INTEGER,
    last_via      TEXT,
    frames        INTEGER NOT NULL DEFAULT 0,
    heartbeat_s   INTEGER,
    heartbeat_at  REAL,
    battery       INTEGER,
    battery_at    REAL,
    status        INTEGER,
    status_at     REAL,
    dropped_total INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS rejections (
    rejection_id INTEGER PRIMARY KEY,
    at          REAL NOT NULL,
    via         TEXT NOT NULL,
    peer        TEXT,
    device_id   BLOB,
    seq         INTEGER,
    reason      TEXT NOT NULL,
    detail      TEXT,
    size        INTEGER NOT NULL,
    digest      BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS rejections_at ON rejections(at);
CREATE TABLE IF NOT EXISTS audit (
    audit_id    INTEGER PRIMARY KEY,
    at          REAL NOT NULL,
    operator    TEXT NOT NULL,
    action      TEXT NOT NULL,
    alert_id    INTEGER,
    device_id   BLOB,
    detail      TEXT
);
CREATE TABLE IF NOT EXISTS centre_settings (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS commands (
    command_id   INTEGER PRIMARY KEY,
    device_id    BLOB NOT NULL,
    alert_id     INTEGER,
    sid          INTEGER,
    op           TEXT NOT NULL,
    args         TEXT NOT NULL,
    state        TEXT NOT NULL DEFAULT 'queued'
                 CHECK (state IN ('queued', 'delivered', 'done', 'refused', 'answered')),
    result       INTEGER,
    operator     TEXT NOT NULL,
    queued_at    REAL NOT NULL,
    delivered_at REAL,
    sent         INTEGER NOT NULL DEFAULT 0,
    replied_at   REAL,
    reply_seq    INTEGER
);
CREATE INDEX IF NOT EXISTS commands_undone ON commands(device_id, command_id)
    WHERE state IN ('queued', 'delivered');
CREATE INDEX IF NOT EXISTS commands_alert ON commands(alert_id, command_id);
CREATE TABLE IF NOT EXISTS alert_holds (
    alert_id    INTEGER PRIMARY KEY,
    reason      TEXT NOT NULL,
    held_by     TEXT NOT NULL,
    held_at     REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS device_trust (
    device_id       BLOB PRIMARY KEY,
    insecure_tls    INTEGER NOT NULL DEFAULT 0,
    insecure_frames INTEGER NOT NULL DEFAULT 0,
    insecure_at     REAL,
    unauth          INTEGER,
    unauth_at       REAL
);
CREATE TRIGGER IF NOT EXISTS audit_append_only_update BEFORE UPDATE ON audit BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_append_only_delete BEFORE DELETE ON audit BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the registry's and the receiver's tables if they are missing."""
    ensure_registry_schema(conn)
    check_schema(conn, "receiver", RECEIVER_SCHEMA_VERSION, _DDL)
    ensure_centre_schema(conn)      # operators, sessions, the audit chain (centre_schema.py)
    ensure_releases_schema(conn)    # releases, assignments, cohorts, device versions (releases.py)


def open_db(db_path: str | os.PathLike[str], *, create: bool = False) -> sqlite3.Connection:
    """A connection to the receiver database with every table in place.
    create False (commands that only read or act on alerts): a missing file is a
    DatabaseError that says what to do."""
    conn = connect(db_path, create=create)
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
