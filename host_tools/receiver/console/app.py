"""The console's app factory: the routers, the page and its libraries, security headers.

    app = create_app(db_path, ConsoleConfig(...))    # a Starlette ASGI app

/api/... answers JSON (401 without a session, 403 for a role without the right,
403 `csrf` for a POST without the session's CSRF token); / is the page,
/static/ its files (beside this module), /vendor/leaflet/ the pinned Leaflet
from node_modules, /openapi.json the API's description.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from host_tools.receiver.console.config import ConsoleConfig
from host_tools.receiver.console.dependencies import MAX_JSON_BYTES, Connections
from host_tools.receiver.console.events import EventFeed
from host_tools.receiver.console.routers import alerts, audit, devices, events, operators, session, stats

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
OPENAPI = HERE / "openapi.json"
ROUTERS = (session, alerts, events, devices, operators, audit, stats)


class SecurityHeaders:
    """CSP (own origin only, plus the tile server when one is configured), no framing,
    no referrer; nothing under /api/ is cached."""

    def __init__(self, app: ASGIApp, tile_url: str | None) -> None:
        self.app = app
        tiles = ""
        if tile_url:  # {s} (sub-domains a, b, c) becomes a wildcard
            parts = urlsplit(tile_url)
            tiles = f" {parts.scheme}://{parts.netloc.replace('{s}', '*')}"
        self.csp = (
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            f"img-src 'self' data: blob:{tiles}; media-src 'self' blob:; connect-src 'self'; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
        ).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope["path"].startswith("/api/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", self.csp),
                    (b"x-frame-options", b"DENY"),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                if api and not any(k == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


async def _index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})


async def _openapi(request: Request) -> Response:
    return FileResponse(OPENAPI, media_type="application/json")


async def _api_not_found(request: Request) -> Response:
    return JSONResponse(
        {"reason": "not-found", "detail": f"no API route {request.url.path}"}, status_code=404
    )


def api_routes() -> list[Route]:
    """Every /api/ route of the routers (tests compare them with openapi.json)."""
    return [r for module in ROUTERS for r in module.routes]


def create_app(
    db_path: str | os.PathLike[str], config: ConsoleConfig | None = None, *, feed: EventFeed | None = None
) -> Starlette:
    """The console for the database at db_path. The event feed starts and stops with
    the app (lifespan), unless one is given (then the caller owns it)."""
    config = config or ConsoleConfig()
    db = str(db_path)
    if config.export_dir is None:
        config.export_dir = str(Path(db).resolve().parent / "exports")
    own_feed = feed is None
    the_feed = feed or EventFeed(
        db, poll_interval_s=config.poll_interval_s, silent_check_s=config.silent_check_s, clock=config.clock
    )
    routes: list[BaseRoute] = [
        *api_routes(),
        Route("/api/{rest:path}", _api_not_found, methods=["GET", "POST"]),
        Route("/", _index),
        Route("/openapi.json", _openapi),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    leaflet = config.vendor_dir / "leaflet" / "dist"
    if leaflet.is_dir():
        routes.append(Mount("/vendor/leaflet", StaticFiles(directory=leaflet), name="leaflet"))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if own_feed and not the_feed.is_alive():
            the_feed.start()
        try:
            yield
        finally:
            app.state.stopping.set()
            if own_feed:
                the_feed.stop()
            app.state.connections.close()

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        max_body_size=MAX_JSON_BYTES,
        middleware=[Middleware(SecurityHeaders, tile_url=config.tile_url)],
    )
    app.state.config = config
    app.state.connections = Connections(db)
    app.state.feed = the_feed
    app.state.stopping = threading.Event()  # ends the event streams (RunningConsole.stop, lifespan)
    return app


def route_table() -> list[tuple[str, str]]:
    """(method, path) of every API route."""
    out: list[tuple[str, str]] = []
    for r in api_routes():
        for m in sorted(r.methods or ()):
            if m != "HEAD":
                out.append((m, r.path))
    return out


__all__: list[Any] = ["create_app", "api_routes", "route_table"]
