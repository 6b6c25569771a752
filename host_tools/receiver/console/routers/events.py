"""GET /api/events: server-sent events (new alert, new frame, duress, state change,
silent device, rejected frame; audit entries for auditors). The stream re-checks
its session every SESSION_RECHECK_S and ends with `logout` when it is gone."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from host_tools.errors import SottoError
from host_tools.receiver.console.dependencies import ApiError, current_session, error_answer

KEEPALIVE_S = 15.0
SESSION_RECHECK_S = 10.0
WAKE_S = 0.5  # how soon a stream notices that the console is stopping


def _sse(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def events(request: Request) -> Response:
    try:
        session = await run_in_threadpool(current_session, request)
    except (ApiError, SottoError) as e:
        return error_answer(e)
    feed = request.app.state.feed
    sub = feed.subscribe(session.actor, asyncio.get_running_loop())
    stopping = request.app.state.stopping  # a threading.Event: set by stop() from another thread

    async def stream() -> AsyncIterator[bytes]:
        try:
            yield _sse("hello", {"name": session.operator, "role": session.role})
            loop = asyncio.get_running_loop()
            recheck = loop.time() + SESSION_RECHECK_S
            quiet_since = loop.time()
            while not stopping.is_set():
                try:
                    event = await asyncio.wait_for(sub.queue.get(), timeout=WAKE_S)
                    yield _sse(event["kind"], event)
                    quiet_since = loop.time()
                except asyncio.TimeoutError:
                    if loop.time() - quiet_since >= KEEPALIVE_S:
                        yield b": keepalive\n\n"
                        quiet_since = loop.time()
                if loop.time() >= recheck:
                    recheck = loop.time() + SESSION_RECHECK_S
                    try:
                        await run_in_threadpool(current_session, request)
                    except (ApiError, SottoError):
                        yield _sse("logout", {"reason": "session ended or expired"})
                        return
        finally:
            feed.unsubscribe(sub)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


routes = [Route("/api/events", events, methods=["GET"])]
