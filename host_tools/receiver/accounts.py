"""Operator accounts: add, list, disable, change password, log in (with lock-out).

    add_operator(conn, "alice", "operator", password, by=Actor("root", "cli"))
    rec = authenticate(conn, "alice", password)       # LoginFailed(.reason) otherwise

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's second
recommended profile); the hash never leaves this module's records. After
MAX_FAILED_LOGINS wrong passwords in a row an account is locked for LOCKOUT_S;
a new password (`sotto operators passwd`) unlocks it. Every change and every
login, failed login and lock-out is in the audit log.
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from host_tools.errors import SottoError, UsageError
from host_tools.receiver import audit
from host_tools.receiver.format import iso_utc
from host_tools.receiver.roles import Actor, check_role
from host_tools.registry import write_transaction

MAX_FAILED_LOGINS = 5
LOCKOUT_S = 15 * 60
MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 1024
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not a password of anyone")  # unknown names cost the same time

BAD_CREDENTIALS, LOCKED, DISABLED = "bad-credentials", "account-locked", "account-disabled"


class AccountError(SottoError, ValueError):
    """An account change that cannot be made (unknown or existing name, weak password)."""


class LoginFailed(SottoError, PermissionError):
    """A login refused; .reason is bad-credentials, account-locked or account-disabled."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class OperatorRecord:
    """One account, without its password hash."""

    name: str
    role: str
    created_at: float
    created_by: str
    password_at: float
    disabled_at: float | None
    disabled_by: str | None
    failed_logins: int
    locked_until: float | None
    last_login_at: float | None

    def locked(self, now: float) -> bool:
        return self.locked_until is not None and self.locked_until > now

    def to_json(self, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        return {
            "name": self.name,
            "role": self.role,
            "created": iso_utc(self.created_at),
            "created_by": self.created_by,
            "password_changed": iso_utc(self.password_at),
            "disabled": iso_utc(self.disabled_at),
            "disabled_by": self.disabled_by,
            "locked_until": iso_utc(self.locked_until) if self.locked(now) else None,
            "failed_logins": self.failed_logins,
            "last_login": iso_utc(self.last_login_at),
        }


_COLUMNS = (
    "name, role, created_at, created_by, password_at, disabled_at, disabled_by, failed_logins, "
    "locked_until, last_login_at"
)


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise UsageError(
            f"{name!r} is not a usable operator name: 1-64 letters, digits, '.', '_', '@' or "
            "'-', starting with a letter or digit"
        )
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(
            f"the password has {len(password)} characters; use at least "
            f"{MIN_PASSWORD_CHARS} (a few words are easier to remember than symbols)"
        )
    if len(password) > MAX_PASSWORD_CHARS:
        raise AccountError(f"the password is longer than {MAX_PASSWORD_CHARS} characters")
    if password != password.strip() or "\n" in password:
        raise AccountError("the password starts or ends with white space, or holds a line break")
    return password


def get_operator(conn: sqlite3.Connection, name: str) -> OperatorRecord:
    row = conn.execute(f"SELECT {_COLUMNS} FROM operators WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise AccountError(f"no operator {name!r} (`sotto operators list` shows them)")
    return OperatorRecord(*row)


def list_operators(conn: sqlite3.Connection) -> list[OperatorRecord]:
    return [OperatorRecord(*r) for r in conn.execute(f"SELECT {_COLUMNS} FROM operators ORDER BY name")]


def add_operator(
    conn: sqlite3.Connection, name: str, role: str, password: str, *, by: Actor, now: float | None = None
) -> OperatorRecord:
    """A new account (audited). AccountError if the name is taken."""
    now = time.time() if now is None else now
    check_name(name)
    check_role(role)
    digest = _hasher.hash(check_password(password))
    with write_transaction(conn):
        added = conn.execute(
            "INSERT INTO operators(name, role, password_hash, created_at, created_by, password_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO NOTHING RETURNING name",
            (name, role, digest, now, by.name, now),
        ).fetchall()
        if not added:
            raise AccountError(
                f"an operator named {name!r} exists already; choose another name, or "
                "`sotto operators passwd` to change that one's password"
            )
        audit.record(
            conn,
            by.name,
            "operator-add",
            role=by.role,
            at=now,
            in_transaction=True,
            detail=f"account {name} ({role})",
        )
    return get_operator(conn, name)


def disable_operator(
    conn: sqlite3.Connection, name: str, *, by: Actor, now: float | None = None
) -> OperatorRecord:
    """Disable an account and end its sessions (audited). Accounts are never deleted:
    the audit log names them."""
    now = time.time() if now is None else now
    with write_transaction(conn):
        done = conn.execute(
            "UPDATE operators SET disabled_at = ?, disabled_by = ? WHERE name = ? "
            "AND disabled_at IS NULL RETURNING name",
            (now, by.name, name),
        ).fetchall()
        if not done:
            get_operator(conn, name)  # AccountError if there is none
            raise AccountError(f"operator {name!r} is disabled already")
        conn.execute(
            "UPDATE console_sessions SET ended_at = ? WHERE operator = ? AND ended_at IS NULL", (now, name)
        )
        audit.record(
            conn,
            by.name,
            "operator-disable",
            role=by.role,
            at=now,
            in_transaction=True,
            detail=f"account {name}; its sessions ended",
        )
    return get_operator(conn, name)


def set_password(
    conn: sqlite3.Connection, name: str, password: str, *, by: Actor, now: float | None = None
) -> OperatorRecord:
    """A new password (audited); unlocks the account and ends its sessions."""
    now = time.time() if now is None else now
    digest = _hasher.hash(check_password(password))
    with write_transaction(conn):
        done = conn.execute(
            "UPDATE operators SET password_hash = ?, password_at = ?, failed_logins = 0, "
            "locked_until = NULL WHERE name = ? RETURNING name",
            (digest, now, name),
        ).fetchall()
        if not done:
            raise AccountError(f"no operator {name!r} (`sotto operators list` shows them)")
        conn.execute(
            "UPDATE console_sessions SET ended_at = ? WHERE operator = ? AND ended_at IS NULL", (now, name)
        )
        audit.record(
            conn,
            by.name,
            "operator-passwd",
            role=by.role,
            at=now,
            in_transaction=True,
            detail=f"account {name}: new password; unlocked, its sessions ended",
        )
    return get_operator(conn, name)


def authenticate(
    conn: sqlite3.Connection,
    name: str,
    password: str,
    *,
    now: float | None = None,
    max_failed: int = MAX_FAILED_LOGINS,
    lockout_s: float = LOCKOUT_S,
) -> OperatorRecord:
    """The account, if name and password match and it is neither locked nor disabled;
    LoginFailed otherwise. Wrong passwords count towards the lock-out."""
    now = time.time() if now is None else now
    row = conn.execute(f"SELECT password_hash, {_COLUMNS} FROM operators WHERE name = ?", (name,)).fetchone()
    if row is None:
        _verify(_DUMMY_HASH, password)
        raise LoginFailed(BAD_CREDENTIALS, "wrong name or password")
    digest, rec = row[0], OperatorRecord(*row[1:])
    if rec.locked(now):
        raise LoginFailed(
            LOCKED,
            f"the account is locked after {max_failed} failed logins until "
            f"{iso_utc(rec.locked_until)}; an administrator can set a new password",
        )
    if not _verify(digest, password):
        with write_transaction(conn):
            failed = conn.execute(
                "UPDATE operators SET failed_logins = failed_logins + 1 WHERE name = ? "
                "RETURNING failed_logins",
                (name,),
            ).fetchall()[0][0]
            audit.record(
                conn,
                name,
                "login-failed",
                role=rec.role,
                at=now,
                in_transaction=True,
                detail=f"wrong password ({failed} in a row)",
            )
            if failed >= max_failed:
                conn.execute(
                    "UPDATE operators SET locked_until = ?, failed_logins = 0 WHERE name = ?",
                    (now + lockout_s, name),
                )
                audit.record(
                    conn,
                    name,
                    "locked",
                    role=rec.role,
                    at=now,
                    in_transaction=True,
                    detail=f"{failed} failed logins: locked for {lockout_s / 60:g} min",
                )
        raise LoginFailed(BAD_CREDENTIALS, "wrong name or password")
    if rec.disabled_at is not None:
        raise LoginFailed(DISABLED, "this account is disabled; ask an administrator")
    with write_transaction(conn):
        update = ", password_hash = ?" if _hasher.check_needs_rehash(digest) else ""
        args: tuple[Any, ...] = (now, _hasher.hash(password), name) if update else (now, name)
        conn.execute(
            "UPDATE operators SET failed_logins = 0, locked_until = NULL, "
            f"last_login_at = ?{update} WHERE name = ?",
            args,
        )
    return get_operator(conn, name)


def _verify(digest: str, password: str) -> bool:
    try:
        return _hasher.verify(digest, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
