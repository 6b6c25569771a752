# HTTP/1.1 for frame delivery: the request head of POST /v1/frames (the body,
# an RFC 8742 CBOR sequence, is the frames themselves, sent after it as they
# are) and an incremental response parser (status line, headers, body by
# Content-Length) into pre-allocated buffers. The body is the centre's signed
# answer (docs/frames.md "The signed answer"): sotto.answer opens it, then
# parse_ack() and error_reason() read the payload map it gives.
from micropython import const

ACCEPTED = const(1)
DUPLICATE = const(2)
REJECTED = const(3)
_STATUS = {"accepted": ACCEPTED, "duplicate": DUPLICATE, "rejected": REJECTED}

# HttpError codes
BAD_STATUS_LINE = const(1)
BAD_HEADER = const(2)
HEAD_TOO_LONG = const(3)
BODY_TOO_LONG = const(4)
UNSUPPORTED = const(5)  # e.g. Transfer-Encoding: chunked
TRUNCATED = const(6)  # connection closed before the whole body came
BAD_ANSWER = const(7)  # the body is not the receiver's answer map
UNAUTHENTICATED = const(8)  # the answer is not signed by the centre for this request

PATH = "/v1/frames"
OTA_PATH = "/v1/release-chunk"  # sotto.otafetch


class HttpError(Exception):
    def __init__(self, code, detail=""):
        super().__init__(code, detail)
        self.code = code
        self.detail = detail

    def __str__(self):
        return "http error %d: %s" % (self.code, self.detail)


def request_head(host, port, body_len, tls=True, path=PATH):
    """The request line and headers of one POST; the body follows unchanged."""
    if port == (443 if tls else 80):
        authority = host
    else:
        authority = "%s:%d" % (host, port)
    return ("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/cbor-seq\r\n"
            "Content-Length: %d\r\n\r\n" % (path, authority, body_len)).encode()


class Response:
    """Feed it the bytes of one HTTP response; `done` once the body is complete."""

    def __init__(self, head_max=1024, body_max=4096):
        self._head = bytearray(head_max)
        self._body = bytearray(body_max)
        self.reset()

    def reset(self):
        self._hn = 0
        self._bn = 0
        self.in_body = False
        self.done = False
        self.status = 0
        self.length = -1  # Content-Length; -1: body runs until the connection closes
        self.close = False  # the server will close the connection after this answer
        self.extra = 0  # bytes after the body (ignored)

    @property
    def body(self):
        return memoryview(self._body)[:self._bn]

    def feed(self, data):
        """Consume bytes; returns True once the response is complete. Raises HttpError."""
        mv = memoryview(data)
        i = 0
        n = len(data)
        while i < n and not self.done:
            if not self.in_body:
                # copy up to the end of the head; search only around the new bytes
                k = n - i
                room = len(self._head) - self._hn
                if k > room:
                    k = room
                start = self._hn - 3 if self._hn > 3 else 0
                self._head[self._hn:self._hn + k] = mv[i:i + k]
                self._hn += k
                end = self._head.find(b"\r\n\r\n", start, self._hn)
                if end < 0:
                    if self._hn == len(self._head):
                        raise HttpError(HEAD_TOO_LONG, "response head over %d bytes" % len(self._head))
                    i += k
                    continue
                used = end + 4 - (self._hn - k)  # bytes of this chunk that belong to the head
                i += used
                self._hn = end + 4
                self._parse_head()
                self.in_body = True
                if self.length == 0:
                    self.done = True
            else:
                k = n - i
                if self.length >= 0 and k > self.length - self._bn:
                    self.extra += k - (self.length - self._bn)
                    k = self.length - self._bn
                if self._bn + k > len(self._body):
                    raise HttpError(BODY_TOO_LONG, "response body over %d bytes" % len(self._body))
                self._body[self._bn:self._bn + k] = mv[i:i + k]
                self._bn += k
                i += k
                if self._bn == self.length:
                    self.done = True
        return self.done

    def closed(self):
        """The connection closed: completes a body without Content-Length, else TRUNCATED."""
        if self.done:
            return True
        if self.in_body and self.length < 0:
            self.done = True
            self.close = True
            return True
        raise HttpError(TRUNCATED, "connection closed after %d body bytes" % self._bn)

    def _parse_head(self):
        lines = bytes(memoryview(self._head)[:self._hn - 4]).split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or len(parts[1]) != 3:
            raise HttpError(BAD_STATUS_LINE, repr(lines[0][:40]))
        try:
            self.status = int(parts[1])
        except ValueError:
            raise HttpError(BAD_STATUS_LINE, repr(lines[0][:40])) from None
        self.close = parts[0] == b"HTTP/1.0"
        for line in lines[1:]:
            colon = line.find(b":")
            if colon <= 0:
                raise HttpError(BAD_HEADER, repr(line[:40]))
            name = line[:colon].strip().lower()
            value = line[colon + 1:].strip()
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    raise HttpError(BAD_HEADER, "Content-Length %r" % value[:20]) from None
                if length < 0 or (self.length >= 0 and length != self.length):
                    raise HttpError(BAD_HEADER, "Content-Length %r" % value[:20])
                self.length = length
            elif name == b"transfer-encoding" and value.lower() != b"identity":
                raise HttpError(UNSUPPORTED, "Transfer-Encoding %r" % value[:20])
            elif name == b"connection":
                v = value.lower()
                if b"close" in v:
                    self.close = True
                elif b"keep-alive" in v:
                    self.close = False
        if self.status in (204, 304) or 100 <= self.status < 200:
            self.length = 0
        if self.length > len(self._body):
            raise HttpError(BODY_TOO_LONG, "Content-Length %d over %d" % (self.length, len(self._body)))


def _is_uint(x):
    return type(x) is int and x >= 0


def parse_ack(answer, count):
    """The receiver's answer (the authenticated payload map) for `count`
    frames: ([(status, seq|None, reason|None)], time_s|None, [closed sids]).
    Raises HttpError(BAD_ANSWER) unless it is exactly that shape."""
    if not isinstance(answer, dict):
        raise HttpError(BAD_ANSWER, "not a map")
    results = answer.get("results")
    if not isinstance(results, list) or len(results) != count:
        raise HttpError(BAD_ANSWER, "results for %d frames expected" % count)
    out = []
    for r in results:
        if not isinstance(r, dict):
            raise HttpError(BAD_ANSWER, "result is not a map")
        name = r.get("status")
        status = _STATUS.get(name, 0) if isinstance(name, str) else 0
        seq = r.get("seq")
        reason = r.get("reason")
        if not status or not (seq is None or _is_uint(seq)):
            raise HttpError(BAD_ANSWER, "bad result %r" % r)
        if reason is not None and not isinstance(reason, str):
            raise HttpError(BAD_ANSWER, "bad reason")
        out.append((status, seq, reason))
    time_s = answer.get("time")
    if time_s is not None and not _is_uint(time_s):
        raise HttpError(BAD_ANSWER, "bad time")
    closed = answer.get("closed", [])
    if not isinstance(closed, list):
        raise HttpError(BAD_ANSWER, "bad closed")
    for sid in closed:
        if not _is_uint(sid):
            raise HttpError(BAD_ANSWER, "bad closed sid")
    return out, time_s, closed


def commands_of(answer):
    """The `cmds` of an authenticated answer map: a list of maps (each one is
    checked by sotto.commands). HttpError(BAD_ANSWER) if not that shape."""
    cmds = answer.get("cmds", [])
    if not isinstance(cmds, list):
        raise HttpError(BAD_ANSWER, "bad cmds")
    for c in cmds:
        if not isinstance(c, dict):
            raise HttpError(BAD_ANSWER, "a command is not a map")
    return cmds


def error_reason(answer):
    """The reason code of an authenticated error answer (400/413), else None."""
    if isinstance(answer, dict) and "results" not in answer:
        v = answer.get("reason")
        if isinstance(v, str):
            return v
    return None
