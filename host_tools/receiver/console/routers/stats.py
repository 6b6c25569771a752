"""Statistics, for supervisors: BS 8484-style answer times for a month."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from host_tools.receiver.console.dependencies import authorise, handler, ok
from host_tools.receiver.roles import STATISTICS
from host_tools.receiver.stats import month_stats


@handler
def stats(request: Request, body: bytes) -> JSONResponse:
    """?month=YYYY-MM (default: this month, UTC)."""
    ctx = authorise(request, STATISTICS)
    month = request.query_params.get("month") or time.strftime("%Y-%m", time.gmtime(ctx.config.clock()))
    return ok(month_stats(ctx.conn, month).to_json())


routes = [Route("/api/stats", stats, methods=["GET"])]
