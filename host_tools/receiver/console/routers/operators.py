"""Operator accounts, for administrators: list, add, disable, new password."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from host_tools.receiver import accounts
from host_tools.receiver.console.dependencies import authorise, handler, json_body, ok, text_field
from host_tools.receiver.roles import ACCOUNTS


@handler
def list_accounts(request: Request, body: bytes) -> JSONResponse:
    ctx = authorise(request, ACCOUNTS)
    now = ctx.config.clock()
    return ok({"operators": [r.to_json(now) for r in accounts.list_operators(ctx.conn)]})


@handler
def add(request: Request, body: bytes) -> JSONResponse:
    """{"name", "role", "password"}."""
    ctx = authorise(request, ACCOUNTS, post=True)
    obj = json_body(body, request)
    rec = accounts.add_operator(
        ctx.conn,
        str(text_field(obj, "name")),
        str(text_field(obj, "role")),
        str(text_field(obj, "password")),
        by=ctx.actor,
        now=ctx.config.clock(),
    )
    return ok(rec.to_json(ctx.config.clock()), status=201)


@handler
def disable(request: Request, body: bytes) -> JSONResponse:
    ctx = authorise(request, ACCOUNTS, post=True)
    rec = accounts.disable_operator(
        ctx.conn, request.path_params["name"], by=ctx.actor, now=ctx.config.clock()
    )
    return ok(rec.to_json(ctx.config.clock()))


@handler
def password(request: Request, body: bytes) -> JSONResponse:
    """{"password"}: a new password; unlocks the account and ends its sessions."""
    ctx = authorise(request, ACCOUNTS, post=True)
    new = str(text_field(json_body(body, request), "password"))
    rec = accounts.set_password(
        ctx.conn, request.path_params["name"], new, by=ctx.actor, now=ctx.config.clock()
    )
    return ok(rec.to_json(ctx.config.clock()))


routes = [
    Route("/api/operators", list_accounts, methods=["GET"]),
    Route("/api/operators", add, methods=["POST"]),
    Route("/api/operators/{name}/disable", disable, methods=["POST"]),
    Route("/api/operators/{name}/password", password, methods=["POST"]),
]
