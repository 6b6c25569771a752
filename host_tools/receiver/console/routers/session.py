"""Logging in and out: POST /api/login, POST /api/logout, GET /api/session."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from host_tools.receiver.accounts import authenticate
from host_tools.receiver.console.config import ConsoleConfig
from host_tools.receiver.console.dependencies import (
    SESSION_COOKIE,
    authorise,
    config_of,
    conn_of,
    handler,
    json_body,
    ok,
    text_field,
)
from host_tools.receiver.roles import RIGHTS
from host_tools.receiver.sessions import Session, create_session, end_session


def _me(session: Session, cfg: ConsoleConfig) -> dict[str, Any]:
    return {
        "name": session.operator,
        "role": session.role,
        "csrf_token": session.csrf_token,
        "rights": sorted(RIGHTS.get(session.role, ())),
        "idle_timeout_s": cfg.idle_timeout_s,
        "map": {"tile_url": cfg.tile_url, "attribution": cfg.tile_attribution},
    }


@handler
def login(request: Request, body: bytes) -> JSONResponse:
    """{"name", "password"} -> the session cookie; answers the name, role and CSRF token."""
    obj = json_body(body, request)
    name, password = text_field(obj, "name"), text_field(obj, "password")
    cfg, conn = config_of(request), conn_of(request)
    rec = authenticate(conn, str(name), str(password), now=cfg.clock())
    token, session = create_session(
        conn, rec.name, rec.role, now=cfg.clock(), peer=request.client.host if request.client else None
    )
    resp = ok(_me(session, cfg))
    resp.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", secure=cfg.tls, path="/")
    return resp


@handler
def logout(request: Request, body: bytes) -> JSONResponse:
    ctx = authorise(request, post=True)
    end_session(ctx.conn, ctx.session, now=ctx.config.clock())
    resp = ok({"logged_out": ctx.session.operator})
    resp.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=ctx.config.tls)
    return resp


@handler
def session(request: Request, body: bytes) -> JSONResponse:
    """Who is logged in (the page asks after a reload)."""
    ctx = authorise(request)
    return ok(_me(ctx.session, ctx.config))


routes = [
    Route("/api/login", login, methods=["POST"]),
    Route("/api/logout", logout, methods=["POST"]),
    Route("/api/session", session, methods=["GET"]),
]
