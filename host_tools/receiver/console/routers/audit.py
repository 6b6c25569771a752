"""For auditors: the audit log, its chain check, the access ledger, purging."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from host_tools.errors import UsageError
from host_tools.ids import format_device_id, parse_device_id
from host_tools.receiver import access, audit
from host_tools.receiver.console.dependencies import ApiError, authorise, handler, json_body, ok
from host_tools.receiver.ledger import device_ledger
from host_tools.receiver.roles import AUDIT_LOG, RETENTION
from host_tools.receiver.store import parse_alert_id

MAX_ROWS = 1000


@handler
def log(request: Request, body: bytes) -> JSONResponse:
    """The newest entries (?limit=N, at most 1000; ?alert=A12 for one alert)."""
    ctx = authorise(request, AUDIT_LOG)
    try:
        limit = min(int(request.query_params.get("limit", "200")), MAX_ROWS)
    except ValueError:
        raise ApiError(400, "bad-request", "limit must be a number") from None
    alert = request.query_params.get("alert")
    rows = audit.entries(ctx.conn, alert_id=parse_alert_id(alert) if alert else None, limit=limit)
    return ok({"entries": [e.to_json() for e in reversed(rows)]})


@handler
def verify(request: Request, body: bytes) -> JSONResponse:
    ctx = authorise(request, AUDIT_LOG)
    return ok(audit.verify_chain(ctx.conn).to_json())


@handler
def ledger(request: Request, body: bytes) -> JSONResponse:
    ctx = authorise(request, AUDIT_LOG)
    try:
        device_id = parse_device_id(request.path_params["device"])
    except (ValueError, UsageError) as e:
        raise ApiError(400, "bad-request", str(e)) from None
    return ok({"device": format_device_id(device_id), "accesses": device_ledger(ctx.conn, device_id)})


@handler
def purge(request: Request, body: bytes) -> JSONResponse:
    """{"older_than_days": N, "dry_run": bool}: location and audio of closed alerts past
    retention (whole days, at least the centre's minimum); open, acknowledged and held alerts stay."""
    ctx = authorise(request, RETENTION, post=True)
    obj = json_body(body, request)
    days = obj.get("older_than_days")
    if type(days) is not int:
        raise ApiError(400, "bad-request", "`older_than_days` must be a whole number of days")
    r = access.run_purge(ctx.conn, ctx.actor, days, bool(obj.get("dry_run", False)))
    return ok(r.to_json())


routes = [
    Route("/api/audit", log, methods=["GET"]),
    Route("/api/audit/verify", verify, methods=["GET"]),
    Route("/api/ledger/{device}", ledger, methods=["GET"]),
    Route("/api/purge", purge, methods=["POST"]),
]
