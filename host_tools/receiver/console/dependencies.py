"""What every handler needs, passed in rather than read from globals (STYLE rule 17):
the database connection of this worker thread, the session behind the cookie,
the acting person with a right checked, the CSRF check of a POST, and the
mapping of the receiver's errors to HTTP answers.

    def handler(request):
        ctx = authorise(request, LIVE_ALERTS, post=True)   # 401 / 403 / 403 csrf, or the context
        ... access.acknowledge(ctx.conn, ctx.actor, alert_id) ...
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from host_tools.errors import SottoError, UsageError
from host_tools.receiver.accounts import AccountError, LoginFailed
from host_tools.receiver.alert_records import AlertNotFoundError, AlertStateError
from host_tools.receiver.console.config import ConsoleConfig
from host_tools.receiver.roles import Actor, Forbidden, require
from host_tools.receiver.sessions import Session, find_session
from host_tools.receiver.store import open_db

SESSION_COOKIE = "sotto_session"
CSRF_HEADER = "x-csrf-token"
MAX_JSON_BYTES = 64 * 1024


class ApiError(Exception):
    """An answer other than 200: status, reason code, detail for people."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail


class Connections:
    """One database connection per worker thread (Starlette runs sync handlers in a pool)."""

    def __init__(self, db_path: str) -> None:
        self.db_path = db_path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def get(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = open_db(self.db_path)
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()


@dataclass
class Context:
    conn: sqlite3.Connection
    session: Session
    config: ConsoleConfig

    @property
    def actor(self) -> Actor:
        return self.session.actor


def config_of(request: Request) -> ConsoleConfig:
    return request.app.state.config  # type: ignore[no-any-return]


def conn_of(request: Request) -> sqlite3.Connection:
    return request.app.state.connections.get()  # type: ignore[no-any-return]


def current_session(request: Request) -> Session:
    """The live session behind the cookie; 401 otherwise."""
    cfg = config_of(request)
    session = find_session(
        conn_of(request), request.cookies.get(SESSION_COOKIE), now=cfg.clock(), idle_s=cfg.idle_timeout_s
    )
    if session is None:
        raise ApiError(401, "no-session", "log in first (no session, or it ended or expired)")
    return session


def authorise(request: Request, right: str | None = None, *, post: bool = False) -> Context:
    """The handler's context: a live session (401), for a POST the CSRF token (403
    csrf), and the role's right (403 forbidden)."""
    session = current_session(request)
    if post and not session.csrf_ok(request.headers.get(CSRF_HEADER)):
        raise ApiError(403, "csrf", f"this request lacks the session's CSRF token (header {CSRF_HEADER})")
    if right is not None:
        require(session.actor, right)
    return Context(conn_of(request), session, config_of(request))


def json_body(body: bytes, request: Request) -> dict[str, Any]:
    """The request's JSON object; 415 without a JSON content type, 400 when malformed."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise ApiError(415, "unsupported-media-type", "send the body as application/json")
    if len(body) > MAX_JSON_BYTES:
        raise ApiError(413, "too-large", f"at most {MAX_JSON_BYTES} bytes of JSON")
    try:
        obj = json.loads(body or b"{}")
    except ValueError:
        raise ApiError(400, "bad-request", "the body is not JSON") from None
    if not isinstance(obj, dict):
        raise ApiError(400, "bad-request", "the body must be a JSON object")
    return obj


def text_field(obj: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = obj.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise ApiError(400, "bad-request", f"`{name}` must be a non-empty string")
    return value


def error_answer(exc: Exception) -> JSONResponse:
    """The receiver's errors as HTTP: {reason, detail}."""
    if isinstance(exc, ApiError):
        status, reason, detail = exc.status, exc.reason, exc.detail
    elif isinstance(exc, LoginFailed):
        status, reason, detail = (423 if exc.reason == "account-locked" else 401), exc.reason, str(exc)
    elif isinstance(exc, Forbidden):
        status, reason, detail = 403, "forbidden", str(exc)
    elif isinstance(exc, AlertNotFoundError):
        status, reason, detail = 404, "not-found", str(exc)
    elif isinstance(exc, AlertStateError):
        status, reason, detail = 409, "conflict", str(exc)
    elif isinstance(exc, (UsageError, AccountError)):
        status, reason, detail = 400, "bad-request", str(exc)
    elif isinstance(exc, SottoError):
        status, reason, detail = 503, "unavailable", str(exc)
    else:
        raise exc
    return JSONResponse(
        {"reason": reason, "detail": detail}, status_code=status, headers={"Cache-Control": "no-store"}
    )


def handler(fn: Any) -> Any:
    """A Starlette endpoint around a plain function `fn(request, body) -> Response`:
    the body is read here, fn runs in the worker pool (the database calls block),
    expected errors become {reason, detail} answers."""
    from starlette.concurrency import run_in_threadpool

    async def endpoint(request: Request) -> Any:
        body = await request.body() if request.method == "POST" else b""
        try:
            return await run_in_threadpool(fn, request, body)
        except (ApiError, SottoError) as e:
            return error_answer(e)

    endpoint.__name__ = fn.__name__
    endpoint.__doc__ = fn.__doc__
    return endpoint


def ok(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers={"Cache-Control": "no-store"})
