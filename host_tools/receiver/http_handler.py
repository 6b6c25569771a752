"""The request handler of `sotto receive`: the /v1 routes, body limits, content types
and the reason code of every error (see host_tools.receiver.server for the whole picture).

The event-driven front end (host_tools.receiver.front) reads a whole request (line,
headers and the body its Content-Length announces, within the caps) and only then
hands its bytes to `handle_request` in a worker thread, which runs this handler over
them in memory and returns the bytes of the answer."""

from __future__ import annotations

import base64
import binascii
import contextlib
import http.server
import io
import json
import logging
import string
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import cbor2

from host_tools import __version__
from host_tools.frames import FrameError, Reason, SequenceTooLong, split_sequence
from host_tools.ids import format_device_id
from host_tools.receiver.ingest import REJECTED, Result, StorageUnavailable
from host_tools.receiver.ingest.answer import signed_answer
from host_tools.receiver.sms_auth import RATE_LIMITED, check_sms_request

if TYPE_CHECKING:
    from host_tools.receiver.server import ReceiverHTTPServer

log = logging.getLogger("sotto.receiver")

CBOR_SEQ = "application/cbor-seq"
COSE = "application/cose"     # the centre's signed answers (docs/frames.md, "The signed answer")
SIGNED_STATUSES = (200, 400, 413)
FRAME_TYPES = (CBOR_SEQ, "application/cbor")
JSON = "application/json"
PATH_FRAMES, PATH_SMS, PATH_HEALTH = "/v1/frames", "/v1/sms", "/v1/health"
PATH_RELEASE_CHUNK = "/v1/release-chunk"   # docs/ota.md
_HEX = frozenset(string.hexdigits)
# Retry-After of a 503 storage-unavailable (both HTTP paths): the storage was too slow or
# failed; a short pause. (The device's own ladder decides when it posts again.)
RETRY_AFTER_S = 2

_REASONS = {400: "bad-request", 401: "unauthorized", 404: "not-found", 405: "method-not-allowed",
            408: "request-timeout", 411: "length-required", 413: "too-large", 414: "uri-too-long",
            415: "unsupported-media-type", 429: "rate-limited", 431: "headers-too-large",
            500: "internal-error", 501: "method-not-allowed", 503: "storage-unavailable",
            505: "http-version-not-supported"}


class _HTTPError(Exception):
    def __init__(self, status: int, reason: str, detail: str, close: bool = False,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail, self.close = status, reason, detail, close
        self.extra = extra or {}     # more fields of the error body (a 503's maybe_stored)


def _unavailable(e: StorageUnavailable) -> _HTTPError:
    """The 503 storage-unavailable of a failed ingest: its detail, and `maybe_stored`
    for a tool (true: the frames may have been stored; false: nothing was)."""
    return _HTTPError(503, "storage-unavailable", e.detail, extra={"maybe_stored": e.maybe_stored})


def _decode_sms_payload(text: str) -> bytes:
    """Hex (even length, hex digits only, whitespace ignored) or base64."""
    compact = "".join(text.split())
    if not compact:
        raise ValueError("the payload is empty")
    if len(compact) % 2 == 0 and all(c in _HEX for c in compact):
        return bytes.fromhex(compact)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        pass
    try:
        return base64.urlsafe_b64decode(compact + "=" * (-len(compact) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("the payload is neither hex nor base64") from None


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"sotto-receiver/{__version__}"
    sys_version = ""
    disable_nagle_algorithm = True
    wbufsize = 64 * 1024          # headers and body leave in one segment
    server: ReceiverHTTPServer

    # -- plumbing ----------------------------------------------------------------
    def version_string(self) -> str:
        return self.server_version

    def handle_one_request(self) -> None:
        super().handle_one_request()
        if self.server.stopping:
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s", self.client_address[0], format % args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (bad request line, headers too large, unknown
        method) with a reason code in a JSON body instead of an HTML page."""
        if code == 501:
            code = 405
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"   # an unparsable request line: answer with a status line
        detail = message or (self.responses.get(code, ("",))[0])
        with contextlib.suppress(OSError):
            self._answer(code, JSON, json.dumps({"reason": _REASONS.get(code, "bad-request"),
                                                 "detail": detail}).encode(), close=True)

    def _answer(self, status: int, ctype: str, body: bytes, *, close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if status == 503:
            self.send_header("Retry-After", str(RETRY_AFTER_S))
        if close or self.server.stopping:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, path: str, e: _HTTPError) -> None:
        body: dict[str, Any] = {"reason": e.reason, "detail": e.detail, **e.extra}
        if path == PATH_FRAMES and e.status in SIGNED_STATUSES and self._frames_body is not None:
            # a refusal of a request we read: signed and bound to it, so the device may act on it
            self._answer(e.status, COSE, self._signed(body), close=e.close)
        elif path == PATH_FRAMES:
            # nothing the device acts on: a refusal before the body was read (bad or too
            # large Content-Length) cannot be bound to it, and 415 / 503 need no signature
            self._answer(e.status, "application/cbor", cbor2.dumps(body, canonical=True), close=e.close)
        else:
            self._answer(e.status, JSON, json.dumps(body).encode(), close=e.close)
        self.server.count_error(e.reason)

    def _signed(self, payload: dict[str, Any]) -> bytes:
        """The centre's signed answer to the frames body being answered: payload + req."""
        assert self._frames_body is not None
        return signed_answer(self.server.centre, self._frames_body, payload)

    def _read_body(self, limit: int) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise _HTTPError(411, "length-required", "send the body with a Content-Length, not chunked",
                             close=True)
        values = self.headers.get_all("Content-Length") or []
        if not values:
            raise _HTTPError(411, "length-required", "a Content-Length header is required", close=True)
        if len(set(v.strip() for v in values)) > 1:
            raise _HTTPError(400, "bad-content-length", "conflicting Content-Length headers", close=True)
        text = values[0].strip()
        if not text.isdigit() or len(text) > 18:
            raise _HTTPError(400, "bad-content-length", f"Content-Length {text[:20]!r} is not a byte count",
                             close=True)
        length = int(text)
        if length > limit:
            raise _HTTPError(413, "too-large", f"a body of {length} bytes; at most {limit} per request",
                             close=True)
        body = self.rfile.read(length)
        if len(body) != length:
            raise ConnectionError("the client went away in the middle of its body")
        return body

    def _check_type(self, allowed: tuple[str, ...]) -> None:
        ctype = self.headers.get_content_type() if self.headers.get("Content-Type") else "(none)"
        if ctype not in allowed:
            raise _HTTPError(415, "unsupported-media-type",
                             f"Content-Type {ctype}; this endpoint takes {' or '.join(allowed)}", close=True)

    # -- methods -------------------------------------------------------------------
    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        self._frames_body = None
        try:
            if path == PATH_FRAMES:
                self._post_frames()
            elif path == PATH_SMS:
                self._post_sms()
            elif path == PATH_RELEASE_CHUNK:
                self._post_release_chunk()
            elif path == PATH_HEALTH:
                raise _HTTPError(405, "method-not-allowed", f"{path} takes GET", close=True)
            else:
                raise _HTTPError(404, "not-found", f"no such endpoint {path[:80]!r}", close=True)
        except _HTTPError as e:
            self._error(path, e)
        except TimeoutError:
            self.server.count_error("request-timeout")
            with contextlib.suppress(OSError):
                self._error(path, _HTTPError(408, "request-timeout", "the request came too slowly",
                                             close=True))
            self.close_connection = True
        except (ConnectionError, OSError) as e:
            log.debug("connection from %s lost: %s", self.client_address[0], e)
            self.close_connection = True
        except Exception as e:  # a bug: answer, log the traceback, keep serving
            log.exception("internal error on POST %s", path)
            self.server.count_error("internal-error", bug=True)
            self._error(path, _HTTPError(500, "internal-error", f"{type(e).__name__}", close=True))

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == PATH_HEALTH:
            self._health()
        elif path in (PATH_FRAMES, PATH_SMS):
            self._error(path, _HTTPError(405, "method-not-allowed", f"{path} takes POST"))
        else:
            self._error(path, _HTTPError(404, "not-found", f"no such endpoint {path[:80]!r}"))

    def do_HEAD(self) -> None:
        self.do_GET()

    def _other(self) -> None:
        path = urlsplit(self.path).path
        status = 405 if path in (PATH_FRAMES, PATH_SMS, PATH_HEALTH) else 404
        self._error(path, _HTTPError(status, _REASONS[status], f"{self.command} {path[:80]!r}", close=True))

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _other

    # -- endpoints -----------------------------------------------------------------
    def _post_frames(self) -> None:
        self._check_type(FRAME_TYPES)
        body = self._read_body(self.server.config.max_body_bytes)
        self._frames_body = body
        limit = self.server.config.max_frames
        try:   # stops at item limit + 1: a million one-byte items cost no more than `limit`
            wires = split_sequence(body, max_items=limit)
        except SequenceTooLong as e:
            raise _HTTPError(413, Reason.TOO_LARGE.value, f"frames: {e.detail}") from None
        except FrameError as e:
            raise _HTTPError(400, e.reason.value, e.detail) from None
        if not wires:
            raise _HTTPError(400, Reason.MALFORMED_CBOR.value, "an empty body: no frames")
        try:
            answer = self.server.receiver.ingest(wires, via="http", peer=self.client_address[0])
        except StorageUnavailable as e:
            raise _unavailable(e) from None
        self._answer(200, COSE, answer.signed(self.server.centre, body))

    def _post_release_chunk(self) -> None:
        # a piece of the device's assigned release, in the centre's signed answer
        from host_tools.receiver import release_chunk

        self._check_type(FRAME_TYPES)
        body = self._read_body(release_chunk.MAX_BODY)
        self._frames_body = body   # what the answer is bound to (req)
        status, payload, _kid = release_chunk.answer(self.server.receiver.db_path, body)
        self._answer(status, COSE, self._signed(payload))

    def _post_sms(self) -> None:
        # The gateway's signature first (host_tools.receiver.sms_auth): nothing of a
        # post without it is parsed, stored or counted as a frame rejection.
        if not self.server.sms_limiter.allow(self.client_address[0], time.time()):
            raise _HTTPError(429, RATE_LIMITED, "too many posts from this address; slow down", close=True)
        self._check_type((JSON,))
        body = self._read_body(self.server.config.max_sms_bytes)
        problem = check_sms_request(self.headers, body, self.server.config.sms_secret, time.time())
        if problem is not None:
            raise _HTTPError(401, problem.reason, problem.detail, close=True)
        try:
            msg = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise _HTTPError(400, "bad-request", f"the body is not JSON: {e}") from None
        if not isinstance(msg, dict):
            raise _HTTPError(400, "bad-request", "the body must be a JSON object {sender, time, payload}")
        sender, sent, payload = msg.get("sender"), msg.get("time"), msg.get("payload")
        if not isinstance(payload, str):
            raise _HTTPError(400, "bad-request", "payload must be a string of hex or base64")
        if sender is not None and (not isinstance(sender, str) or len(sender) > 64):
            raise _HTTPError(400, "bad-request", "sender must be the sender's number (a short string)")
        if sent is not None and (not isinstance(sent, int) or isinstance(sent, bool) or sent < 0):
            raise _HTTPError(400, "bad-request", "time must be epoch seconds (an integer)")
        try:
            data = _decode_sms_payload(payload)
        except ValueError as e:
            raise _HTTPError(400, "bad-request", str(e)) from None
        try:
            wires = split_sequence(data, max_items=1)
        except SequenceTooLong:
            wires, split_error = [], None
        except FrameError as e:
            wires, split_error = [], e
        else:
            split_error = None
        if len(wires) != 1:
            why = split_error.detail if split_error else "an SMS carries one frame, this one more or none"
            result = Result(REJECTED, None, None, Reason.MALFORMED_CBOR.value, why)
            self._answer(200, JSON, json.dumps(_sms_result(result, int(time.time()))).encode())
            return
        try:
            answer = self.server.receiver.ingest(wires, via="sms", peer=sender)
        except StorageUnavailable as e:
            raise _unavailable(e) from None
        self._answer(200, JSON, json.dumps(_sms_result(answer.results[0], answer.time)).encode())

    def _health(self) -> None:
        receiver = self.server.receiver
        if receiver.healthy:
            writer = receiver.writer
            body = {"status": "ok", "time": int(time.time()), "version": __version__,
                    # requests dropped unstored (answered 503 "nothing was stored"), failed commits
                    "abandoned": writer.abandoned, "failed_commits": writer.failed_commits}
            self._answer(200, JSON, json.dumps(body).encode())
        else:
            why = receiver.writer.last_error or "the storage writer stopped"
            body = {"status": "unavailable", "reason": "storage-unavailable", "detail": why,
                    "time": int(time.time())}
            self._answer(503, JSON, json.dumps(body).encode())


def _sms_result(result: Result, now: int) -> dict[str, Any]:
    out: dict[str, Any] = {"status": result.status,
                           "device": format_device_id(result.device) if result.device else None,
                           "seq": result.seq, "time": now}
    if result.reason:
        out["reason"] = result.reason
        out["detail"] = result.detail
    return out


def handle_request(server: ReceiverHTTPServer, data: bytes,
                   client_address: tuple[str, int]) -> tuple[bytes, bool]:
    """One whole request (line, headers, body) -> (the bytes of its answer, close after it).

    Runs _Handler over the bytes in memory: the front end did the socket work."""
    h = _Handler.__new__(_Handler)
    h.server = server
    h.client_address = client_address
    h.request = h.connection = None
    h.rfile = io.BytesIO(data)
    h.wfile = io.BytesIO()
    h._frames_body = None
    h.close_connection = True
    h.command = ""
    h.request_version = h.default_request_version
    h.requestline = ""
    try:
        h.handle_one_request()
    except Exception as e:  # a bug: answer 500, log the traceback, keep serving
        log.exception("internal error handling a request from %s", client_address[0])
        server.count_error("internal-error", bug=True)
        body = json.dumps({"reason": "internal-error", "detail": type(e).__name__}).encode()
        return (b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)), True
    return h.wfile.getvalue(), bool(h.close_connection)
