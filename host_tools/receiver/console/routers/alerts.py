"""Alerts: the queue, one alert's page, its audio, acknowledge, close, commands, export, hold.

Every read of a location or audio goes through host_tools.receiver.access, which
writes the audit entry first; nothing here reads alert content itself."""

from __future__ import annotations

import time
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from host_tools.receiver import access
from host_tools.receiver.console.dependencies import ApiError, authorise, handler, json_body, ok, text_field
from host_tools.receiver.queue import live_queue
from host_tools.receiver.roles import CLOSED_ALERTS, LIVE_ALERTS, RETENTION
from host_tools.receiver.store import alert_code, parse_alert_id


def _alert_id(request: Request) -> int:
    try:
        return parse_alert_id(request.path_params["alert"])
    except ValueError:
        raise ApiError(404, "not-found", f"no alert {request.path_params['alert']!r}") from None


@handler
def queue(request: Request, body: bytes) -> JSONResponse:
    """The live queue (?closed=1: closed alerts too, for supervisors)."""
    ctx = authorise(request, LIVE_ALERTS)
    closed = request.query_params.get("closed") in ("1", "true")
    if closed:
        authorise(request, CLOSED_ALERTS)
    return ok(live_queue(ctx.conn, include_closed=closed, now=ctx.config.clock()))


@handler
def detail(request: Request, body: bytes) -> JSONResponse:
    """Track, latest fix, timeline, chain, audio summary (audited)."""
    ctx = authorise(request)
    return ok(access.alert_page(ctx.conn, ctx.actor, _alert_id(request), now=ctx.config.clock()))


@handler
def audio(request: Request, body: bytes) -> Response:
    """The audio received so far as a WAV (audited); grows as chunks arrive."""
    ctx = authorise(request)
    alert_id = _alert_id(request)
    wav, built = access.alert_audio(ctx.conn, ctx.actor, alert_id, now=ctx.config.clock())
    if not wav:
        raise ApiError(404, "no-audio", f"no audio has arrived for {alert_code(alert_id)} yet")
    return Response(
        wav,
        media_type="audio/wav",
        headers={"Cache-Control": "no-store", "X-Audio-Seconds": f"{built.seconds:.2f}"},
    )


@handler
def ack(request: Request, body: bytes) -> JSONResponse:
    ctx = authorise(request, post=True)
    a = access.acknowledge(ctx.conn, ctx.actor, _alert_id(request))
    return ok({"id": a.code, "state": a.state, "acknowledged_by": a.acked_by})


@handler
def close(request: Request, body: bytes) -> JSONResponse:
    ctx = authorise(request, post=True)
    outcome = text_field(json_body(body, request), "outcome")
    a = access.close(ctx.conn, ctx.actor, _alert_id(request), str(outcome))
    return ok({"id": a.code, "state": a.state, "closed_by": a.closed_by, "outcome": a.outcome})


@handler
def command(request: Request, body: bytes) -> JSONResponse:
    """{"op": "listen" | "more-audio" | "locate" | "ask", "seconds"?, "question"?}: queued
    for the device's next signed answer (audited); its state shows in the alert's detail."""
    ctx = authorise(request, post=True)
    obj = json_body(body, request)
    op = text_field(obj, "op")
    seconds, question = obj.get("seconds"), obj.get("question")
    if seconds is not None and (type(seconds) is not int):
        raise ApiError(400, "bad-request", "`seconds` must be a whole number")
    if question is not None and (isinstance(question, bool) or not isinstance(question, (int, str))):
        raise ApiError(400, "bad-request", "`question` must be a question's name or code")
    c = access.send_command(
        ctx.conn, ctx.actor, _alert_id(request), str(op), seconds=seconds, question=question
    )
    return ok(c.to_json())


@handler
def export(request: Request, body: bytes) -> JSONResponse:
    """An evidence bundle written on the centre's host (the export directory)."""
    ctx = authorise(request, post=True)
    alert_id = _alert_id(request)
    out = (
        Path(str(ctx.config.export_dir))
        / f"{alert_code(alert_id)}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(ctx.config.clock()))}"
    )
    result = access.export(ctx.conn, ctx.actor, alert_id, str(out),
                           centre_key_path=ctx.config.centre_key_path)
    return ok(
        {
            "id": alert_code(alert_id),
            "path": str(result.path),
            "manifest_sha256": result.manifest_sha256,
            "frames": result.frames,
            "audio_seconds": round(result.audio_seconds, 2),
            "chain": result.chain,
        }
    )


@handler
def hold(request: Request, body: bytes) -> JSONResponse:
    """{"reason"} holds the alert against purging; {"release": true} lets it go."""
    ctx = authorise(request, RETENTION, post=True)
    obj = json_body(body, request)
    alert_id = _alert_id(request)
    if obj.get("release") is True:
        was = access.set_hold(ctx.conn, ctx.actor, alert_id, None)
        return ok({"id": alert_code(alert_id), "held": False, "released": was.to_json()})
    now = access.set_hold(ctx.conn, ctx.actor, alert_id, str(text_field(obj, "reason")))
    return ok({"id": alert_code(alert_id), "held": True, "hold": now.to_json()})


routes = [
    Route("/api/alerts", queue, methods=["GET"]),
    Route("/api/alerts/{alert}", detail, methods=["GET"]),
    Route("/api/alerts/{alert}/audio.wav", audio, methods=["GET"]),
    Route("/api/alerts/{alert}/ack", ack, methods=["POST"]),
    Route("/api/alerts/{alert}/close", close, methods=["POST"]),
    Route("/api/alerts/{alert}/commands", command, methods=["POST"]),
    Route("/api/alerts/{alert}/export", export, methods=["POST"]),
    Route("/api/alerts/{alert}/hold", hold, methods=["POST"]),
]
