"""The audit log: who looked at or did what, and when.

Every operator access to an alert's location or audio (`alerts show`, `alerts
export`, the console's alert page and audio), every acknowledgement, closure,
command, purge, hold and account change is one row in the `audit` table,
committed before the access happens (no record, no access). The table is
append-only (triggers refuse UPDATE and DELETE; purging never touches it) and
tamper-evident: each entry carries the SHA-256 of the entry before it
(`prev_hash`) and its own (`entry_hash`, over its fields and `prev_hash`), and
the `audit_head` row keeps the count and the newest hash (centre_schema.py).
verify_chain() finds a removed, altered or reordered entry, and entries cut off
the end. Audit rows hold no location or audio, only what was accessed.

Every entry names who and in which role: a console operator in their account's
role, or `cli` for a command run on the centre's host (the name from
--operator, $SOTTO_OPERATOR or the login name).
"""

from __future__ import annotations

import datetime
import getpass
import hashlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass, field

from host_tools.errors import UsageError
from host_tools.ids import format_device_id
from host_tools.receiver.centre_schema import GENESIS_HASH
from host_tools.registry import DatabaseError, write_transaction

ENV_OPERATOR = "SOTTO_OPERATOR"
MAX_OPERATOR_CHARS = 100
CLI_ROLE = "cli"          # the role of entries written by `sotto` commands on the centre's host


def operator_name(cli_value: str | None = None) -> str:
    """The operator to record: --operator, else $SOTTO_OPERATOR, else the login name."""
    for candidate in (cli_value, os.environ.get(ENV_OPERATOR)):
        if candidate is not None and candidate.strip():
            return check_operator(candidate)
    try:
        return check_operator(getpass.getuser())
    except (OSError, KeyError, UsageError):
        raise UsageError(f"who is the operator? give --operator NAME or set {ENV_OPERATOR}") from None


def check_operator(name: str) -> str:
    """An operator name, whitespace tidied; UsageError when empty or unprintable."""
    text = " ".join(str(name).split())
    if not text:
        raise UsageError("the operator name is empty; give --operator NAME")
    if len(text) > MAX_OPERATOR_CHARS:
        raise UsageError(f"the operator name is {len(text)} characters; at most {MAX_OPERATOR_CHARS}")
    if not text.isprintable():
        raise UsageError("the operator name holds control characters")
    return text


@dataclass(frozen=True)
class AuditEntry:
    """One row of the audit log."""

    audit_id: int
    at: float
    operator: str
    action: str
    alert_id: int | None
    device_id: bytes | None
    detail: str | None
    role: str | None = None
    prev_hash: str | None = None
    entry_hash: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"id": self.audit_id, "at": self.at,
                "at_utc": datetime.datetime.fromtimestamp(self.at, datetime.timezone.utc)
                .isoformat(timespec="seconds").replace("+00:00", "Z"),
                "operator": self.operator, "role": self.role, "action": self.action,
                "alert": f"A{self.alert_id}" if self.alert_id else None,
                "device": format_device_id(self.device_id) if self.device_id else None,
                "detail": self.detail, "hash": self.entry_hash}


def entry_hash(prev_hash: str, audit_id: int, at: float, operator: str, role: str | None, action: str,
               alert_id: int | None, device_id: bytes | None, detail: str | None) -> str:
    """SHA-256 (hex) of one entry: the previous entry's hash, then its fields as
    canonical JSON. The time is hashed as the float the database returns."""
    fields = [audit_id, float(at), operator, role, action, alert_id,
              device_id.hex() if device_id is not None else None, detail]
    text = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{prev_hash}\n{text}".encode()).hexdigest()


def record(conn: sqlite3.Connection, operator: str, action: str, *, role: str = CLI_ROLE,
           alert_id: int | None = None, device_id: bytes | None = None, detail: str | None = None,
           at: float | None = None, in_transaction: bool = False) -> int:
    """Append one entry, chained to the one before; durable when it returns (unless
    in_transaction: the caller's transaction commits it together with what it
    records). Returns its id. The head row is updated first: that takes the lock
    that keeps two writers from chaining onto the same entry."""
    at = time.time() if at is None else float(at)
    operator = check_operator(operator)

    def append() -> int:
        head = conn.execute("UPDATE audit_head SET entries = entries + 1, last_id = last_id + 1 "
                            "WHERE id = 1 RETURNING last_id, last_hash").fetchall()
        if not head:
            raise DatabaseError("the audit log has no head row; open the database with sotto "
                                "(host_tools.receiver.store.open_db) so that its tables are complete")
        audit_id, prev = int(head[0][0]), str(head[0][1])
        h = entry_hash(prev, audit_id, at, operator, role, action, alert_id, device_id, detail)
        conn.execute("INSERT INTO audit(audit_id, at, operator, role, action, alert_id, device_id, detail, "
                     "prev_hash, entry_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (audit_id, at, operator, role, action, alert_id, device_id, detail, prev, h))
        conn.execute("UPDATE audit_head SET last_hash = ? WHERE id = 1", (h,))
        return audit_id

    if in_transaction:
        return append()
    with write_transaction(conn):
        return append()


_ENTRY_COLUMNS = "audit_id, at, operator, action, alert_id, device_id, detail, role, prev_hash, entry_hash"


def _entry(r: tuple[object, ...]) -> AuditEntry:
    device = bytes(r[5]) if r[5] is not None else None  # type: ignore[arg-type]
    return AuditEntry(r[0], r[1], r[2], r[3], r[4], device, r[6], r[7], r[8], r[9])  # type: ignore[arg-type]


def entries(conn: sqlite3.Connection, *, alert_id: int | None = None, device_id: bytes | None = None,
            actions: tuple[str, ...] | None = None, limit: int | None = None) -> list[AuditEntry]:
    """Audit entries, oldest first (the newest `limit` ones when given), optionally
    of one alert, one device, some actions."""
    where: list[str] = []
    args: list[object] = []
    if alert_id is not None:
        where.append("alert_id = ?")
        args.append(alert_id)
    if device_id is not None:
        where.append("device_id = ?")
        args.append(device_id)
    if actions:
        where.append(f"action IN ({', '.join('?' * len(actions))})")
        args.extend(actions)
    cond = f"WHERE {' AND '.join(where)}" if where else ""
    sql = f"SELECT {_ENTRY_COLUMNS} FROM audit {cond} ORDER BY audit_id"
    if limit is not None:
        sql = f"SELECT * FROM ({sql} DESC LIMIT {int(limit)}) newest ORDER BY audit_id"
    return [_entry(r) for r in conn.execute(sql, args)]


# --------------------------------------------------------------------------
# Checking the chain.

REMOVED_OR_REORDERED, ALTERED = "removed-or-reordered", "altered"
CUT, ANCHOR_MISSING = "cut", "anchor-missing"


@dataclass
class ChainCheck:
    """What verify_chain found. ok: every entry is as written, in order, none missing."""

    entries: int
    head_hash: str
    problems: list[tuple[int | None, str, str]] = field(default_factory=list)   # (audit id, code, text)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, object]:
        return {"ok": self.ok, "entries": self.entries, "head_hash": self.head_hash,
                "problems": [{"id": i, "reason": c, "detail": t} for i, c, t in self.problems]}


def verify_chain(conn: sqlite3.Connection, anchors: tuple[str, ...] = ()) -> ChainCheck:
    """Recompute every entry's hash and follow the chain (see module doc).
    anchors: hashes noted earlier (e.g. printed by a past verify); each must still
    be in the chain, which also shows entries cut off the end with the head."""
    head = conn.execute("SELECT entries, last_id, last_hash FROM audit_head WHERE id = 1").fetchone()
    check = ChainCheck(0, GENESIS_HASH)
    prev_stored = GENESIS_HASH
    seen: set[str] = set()
    last_id = 0
    for r in conn.execute(f"SELECT {_ENTRY_COLUMNS} FROM audit ORDER BY audit_id"):
        e = _entry(r)
        check.entries += 1
        if e.prev_hash != prev_stored:
            check.problems.append((e.audit_id, REMOVED_OR_REORDERED,
                                   f"entry #{e.audit_id} does not follow the entry before it "
                                   "(an entry was removed or the order changed)"))
        recomputed = entry_hash(e.prev_hash or "", e.audit_id, e.at, e.operator, e.role, e.action,
                                e.alert_id, e.device_id, e.detail)
        if recomputed != e.entry_hash:
            check.problems.append((e.audit_id, ALTERED, f"entry #{e.audit_id} was altered after it was "
                                                        "written (its hash does not match its content)"))
        prev_stored = e.entry_hash or ""
        seen.add(prev_stored)
        last_id = e.audit_id
    check.head_hash = prev_stored
    if head is None:
        check.problems.append((None, CUT, "the audit head row is missing"))
    elif (head[0], head[1], head[2]) != (check.entries, last_id, prev_stored):
        check.problems.append((None, CUT, f"the head records {head[0]} entries up to #{head[1]}; the log "
                                          f"holds {check.entries} up to #{last_id} (entries were removed "
                                          "from the end, or the head was changed)"))
    for anchor in anchors:
        if anchor.strip().lower() not in seen:
            check.problems.append((None, ANCHOR_MISSING, f"the noted hash {anchor.strip()[:16]}... is not in "
                                                         "the chain any more"))
    return check
