"""Console sessions: created at login, found by the cookie's token, ended at logout,
after IDLE_TIMEOUT_S without a request, after MAX_SESSION_S in all, or when the
account is disabled or its password changes.

Only the SHA-256 of a session token is stored, so a copy of the database does
not let anyone in. Each session has its own CSRF token, which the page sends
back in a header with every POST. Sessions live in the database, so every
console process in front of one database knows them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import time
from dataclasses import dataclass

from host_tools.receiver import audit
from host_tools.receiver.roles import Actor
from host_tools.registry import write_transaction

IDLE_TIMEOUT_S = 15 * 60
MAX_SESSION_S = 12 * 3600
TOUCH_EVERY_S = 5.0  # last_seen_at is written at most this often per session


@dataclass(frozen=True)
class Session:
    token_hash: str
    operator: str
    role: str
    csrf_token: str
    created_at: float
    last_seen_at: float

    @property
    def actor(self) -> Actor:
        return Actor(self.operator, self.role)

    def csrf_ok(self, presented: str | None) -> bool:
        """The CSRF token from a request, compared in constant time."""
        return bool(presented) and hmac.compare_digest(self.csrf_token.encode(), str(presented).encode())


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_session(
    conn: sqlite3.Connection, operator: str, role: str, *, now: float | None = None, peer: str | None = None
) -> tuple[str, Session]:
    """A new session for a logged-in operator (audited as `login`): (token, session)."""
    now = time.time() if now is None else now
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    with write_transaction(conn):
        conn.execute(
            "INSERT INTO console_sessions(token_hash, operator, csrf_token, created_at, last_seen_at, "
            "peer) VALUES (?, ?, ?, ?, ?, ?)",
            (_hash(token), operator, csrf, now, now, peer),
        )
        audit.record(
            conn,
            operator,
            "login",
            role=role,
            at=now,
            in_transaction=True,
            detail=f"console session from {peer or 'unknown address'}",
        )
    return token, Session(_hash(token), operator, role, csrf, now, now)


def find_session(
    conn: sqlite3.Connection,
    token: str | None,
    *,
    now: float | None = None,
    idle_s: float = IDLE_TIMEOUT_S,
    max_s: float = MAX_SESSION_S,
) -> Session | None:
    """The live session of that token (its last_seen_at moved on), or None: unknown,
    ended, idle too long, too old, or its account disabled."""
    if not token:
        return None
    now = time.time() if now is None else now
    row = conn.execute(
        "SELECT s.token_hash, s.operator, o.role, s.csrf_token, s.created_at, s.last_seen_at "
        "FROM console_sessions s JOIN operators o ON o.name = s.operator "
        "WHERE s.token_hash = ? AND s.ended_at IS NULL AND o.disabled_at IS NULL",
        (_hash(token),),
    ).fetchone()
    if row is None:
        return None
    session = Session(*row)
    if now - session.last_seen_at > idle_s or now - session.created_at > max_s:
        with write_transaction(conn):
            conn.execute(
                "UPDATE console_sessions SET ended_at = ? WHERE token_hash = ? AND ended_at IS NULL",
                (now, session.token_hash),
            )
        return None
    if now - session.last_seen_at >= TOUCH_EVERY_S:
        with write_transaction(conn):
            conn.execute(
                "UPDATE console_sessions SET last_seen_at = ? WHERE token_hash = ?", (now, session.token_hash)
            )
    return session


def end_session(conn: sqlite3.Connection, session: Session, *, now: float | None = None) -> None:
    """Logout (audited)."""
    now = time.time() if now is None else now
    with write_transaction(conn):
        conn.execute(
            "UPDATE console_sessions SET ended_at = ? WHERE token_hash = ? AND ended_at IS NULL",
            (now, session.token_hash),
        )
        audit.record(conn, session.operator, "logout", role=session.role, at=now, in_transaction=True)
