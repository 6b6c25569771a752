"""Devices, for administrators: registration, keys, last contact, battery (no alert content)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from host_tools.receiver.console.dependencies import authorise, handler, ok
from host_tools.receiver.queue import device_list
from host_tools.receiver.roles import DEVICES


@handler
def devices(request: Request, body: bytes) -> JSONResponse:
    ctx = authorise(request, DEVICES)
    return ok({"devices": device_list(ctx.conn, now=ctx.config.clock())})


routes = [Route("/api/devices", devices, methods=["GET"])]
