"""Shared pieces of the receiver tests: devices, clocks, a receiver, an HTTP server."""

from __future__ import annotations

import hashlib
import http.client
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cbor2
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # tests/: framefactory

import framefactory as ff  # noqa: E402
import pg_support  # noqa: E402

from host_tools.receiver.ingest import Receiver  # noqa: E402
from host_tools.receiver.server import RunningServer, ServerConfig, start_in_thread  # noqa: E402
from host_tools.registry import Registry  # noqa: E402

NOW = 1_790_000_500           # the receiver's clock in tests: after DeviceSim's frame times
LOC = ff.pack_location(515007292, -1246254, 8, 1, ff.SRC_GNSS)


def device(name: bytes = b"SOTTO-42", t0: int = 1_790_000_000) -> ff.DeviceSim:
    """A simulated device with its own key (seed derived from the name)."""
    return ff.DeviceSim(kid=name, seed=hashlib.sha256(b"seed " + name).digest(), time=t0)


def loc(i: int = 0, acc_m: int = 8) -> bytes:
    return ff.pack_location(515007292 + 150 * i, -1246254 + 230 * i, acc_m, 1, ff.SRC_GNSS)


class Clock:
    """A clock tests move by hand."""

    def __init__(self, t: float = NOW) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def db(tmp_path: Path) -> Any:
    """The receiver database: a SQLite file, or a PostgreSQL URL (pg_support)."""
    return pg_support.new_db(tmp_path)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def dev(db: Path) -> ff.DeviceSim:
    """SOTTO-42, registered."""
    d = device()
    with Registry(db) as reg:
        reg.add(d.kid, d.public_key, officer="J. Smith")
    return d


@pytest.fixture
def receiver(db: Path, clock: Clock, dev: ff.DeviceSim) -> Iterator[Receiver]:
    r = Receiver(db, clock=clock)
    yield r
    r.close()


SMS_SECRET = b"test gateway secret, 32 bytes..."


@pytest.fixture
def server(db: Path, dev: ff.DeviceSim) -> Iterator[RunningServer]:
    rs = start_in_thread(db, ServerConfig(port=0, io_timeout_s=5, request_deadline_s=10,
                                          sms_secret=SMS_SECRET))
    yield rs
    rs.stop()


def sms_headers(body: bytes, secret: bytes = SMS_SECRET, at: float | None = None) -> dict[str, str]:
    """The headers an SMS gateway signs its post with (host_tools.receiver.sms_auth)."""
    from host_tools.receiver.sms_auth import HEADER_SIGNATURE, HEADER_TIMESTAMP, signature_for

    stamp = str(int(time.time() if at is None else at))
    return {HEADER_TIMESTAMP: stamp, HEADER_SIGNATURE: signature_for(secret, stamp, body)}


def post(port: int, body: bytes, ctype: str = "application/cbor-seq", path: str = "/v1/frames",
         headers: dict[str, str] | None = None, method: str = "POST") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body, {"Content-Type": ctype, **(headers or {})})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def answer_map(body: bytes) -> dict[str, Any]:
    """The payload map of the centre's signed answer (COSE_Sign1), not verified:
    open_answer() reads it as the device does."""
    item = cbor2.loads(body)
    assert isinstance(item, cbor2.CBORTag) and item.tag == 18, f"not a signed answer: {body[:40]!r}"
    return dict(cbor2.loads(item.value[2]))


_OPENERS: dict[bytes, Any] = {}


def open_answer(centre_public_key: bytes, request_body: bytes, body: bytes) -> dict[str, Any]:
    """The answer as the device's firmware opens it (sotto.answer.Opener: signature,
    kid and req checked); AnswerError when the device would not trust it."""
    from sotto.answer import Opener

    opener = _OPENERS.get(centre_public_key)
    if opener is None:
        opener = _OPENERS[centre_public_key] = Opener(centre_public_key)
    return opener.open(body, hashlib.sha256(request_body).digest())


def statuses(answer: Any) -> list[str]:
    """["accepted", "duplicate", ...] from an Answer or a signed answer body."""
    if isinstance(answer, bytes):
        return [r["status"] for r in answer_map(answer)["results"]]
    return [r.status for r in answer.results]
