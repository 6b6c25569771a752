"""Who may post to /v1/sms: the SMS gateway's signature, and a per-source rate limit.

    problem = check_sms_request(headers, body, secret, now)   # None: authentic; else SmsAuthProblem
    limiter = RateLimiter(per_minute=120); limiter.allow(source, now) -> bool

The gateway signs every post (docs/operator-guide.md, "The SMS gateway"):

    X-Sotto-Timestamp: <epoch seconds>
    X-Sotto-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>

The timestamp is inside the MAC, so a captured post cannot be replayed later
with a fresh timestamp; one outside +-WINDOW_S of the receiver's clock is
stale. MACs are compared in constant time (hmac.compare_digest). With no
secret configured every post is refused (`sms-not-configured`).

check_sms_request is a pure function of the request and the clock: the
device-facing front end calls it before anything else and answers 401 with
the problem's reason. Nothing of a refused post is parsed, stored or counted
where operators see rejections.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from host_tools.errors import SottoError, UsageError

HEADER_TIMESTAMP = "X-Sotto-Timestamp"
HEADER_SIGNATURE = "X-Sotto-Signature"
SIGNATURE_PREFIX = "sha256="
WINDOW_S = 300
ENV_SECRET_FILE = "SOTTO_SMS_SECRET_FILE"
MIN_SECRET_BYTES = 16
MISSING, BAD, STALE, NOT_CONFIGURED = ("missing-signature", "bad-signature", "stale-timestamp",
                                       "sms-not-configured")
RATE_LIMITED = "rate-limited"


@dataclass(frozen=True)
class SmsAuthProblem:
    """Why a post to /v1/sms is refused: `reason` (a code) and `detail` for the gateway's log."""

    reason: str
    detail: str


def signature_for(secret: bytes, timestamp: str, body: bytes) -> str:
    """The X-Sotto-Signature value for a post (what a gateway sends)."""
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + mac


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # plain dicts in tests; http.client's message objects are case-blind already
        lower = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lower), None)
    return value.strip() if isinstance(value, str) else None


def check_sms_request(headers: Mapping[str, str], body: bytes, secret: bytes | None, now: float,
                      window_s: int = WINDOW_S) -> SmsAuthProblem | None:
    """None when the post carries a good signature over a fresh timestamp; else why not."""
    if not secret:
        return SmsAuthProblem(NOT_CONFIGURED, "this receiver has no SMS gateway secret "
                              "(sotto receive --sms-secret-file): every post is refused")
    stamp = _header(headers, HEADER_TIMESTAMP)
    given = _header(headers, HEADER_SIGNATURE)
    if not stamp or not given:
        return SmsAuthProblem(MISSING, f"send {HEADER_TIMESTAMP} and {HEADER_SIGNATURE} "
                                       "(docs/operator-guide.md, 'The SMS gateway')")
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
        return SmsAuthProblem(STALE, f"{HEADER_TIMESTAMP} must be epoch seconds")
    if abs(int(stamp) - now) > window_s:
        return SmsAuthProblem(STALE, f"{HEADER_TIMESTAMP} is more than {window_s} s from the receiver's "
                                     "clock")
    want = signature_for(secret, stamp, body)
    # compare_digest wants both sides ASCII: anything else cannot be a signature anyway
    if not given.isascii() or not hmac.compare_digest(given.lower().encode(), want.encode()):
        return SmsAuthProblem(BAD, f"{HEADER_SIGNATURE} does not match the body and timestamp")
    return None


def load_secret(path: str | os.PathLike[str]) -> bytes:
    """The shared secret in `path` (surrounding whitespace dropped); UsageError when
    the file is missing, readable by others or too short. Never quotes the file."""
    p = Path(path).expanduser()
    try:
        st = p.stat()
        data = p.read_bytes().strip()
    except OSError as e:
        raise UsageError(f"cannot read the SMS gateway secret {p}: {e.strerror or e}") from None
    if st.st_mode & 0o077:
        raise UsageError(f"the SMS gateway secret {p} can be read by others (mode "
                         f"{stat.S_IMODE(st.st_mode):o}); `chmod 600 {p}`")
    if len(data) < MIN_SECRET_BYTES:
        raise UsageError(f"the SMS gateway secret in {p} is {len(data)} bytes; use at least "
                         f"{MIN_SECRET_BYTES} random bytes (e.g. `openssl rand -hex 32`)")
    return data


class RateLimiter:
    """Requests per source (a gateway's address): a token bucket of `burst`
    refilled at `per_minute`. Thread-safe; forgets idle sources."""

    def __init__(self, per_minute: float = 120.0, burst: int = 60, max_sources: int = 10_000) -> None:
        if per_minute <= 0 or burst < 1:
            raise SottoError("the SMS rate limit must allow at least one post")
        self.rate_s = per_minute / 60.0
        self.burst = float(burst)
        self.max_sources = max_sources
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self.limited = 0

    def allow(self, source: str, now: float) -> bool:
        with self._lock:
            tokens, at = self._buckets.get(source, (self.burst, now))
            tokens = min(self.burst, tokens + max(0.0, now - at) * self.rate_s)
            if len(self._buckets) >= self.max_sources and source not in self._buckets:
                full = [s for s, (t, a) in self._buckets.items()
                        if t + (now - a) * self.rate_s >= self.burst]
                for s in full:
                    del self._buckets[s]
            if tokens < 1.0:
                self._buckets[source] = (tokens, now)
                self.limited += 1
                return False
            self._buckets[source] = (tokens - 1.0, now)
            return True
