"""The SMS gateway's webhook: signed posts only (host_tools.receiver.sms_auth), a
per-source rate limit, and nothing of a refused post where operators look."""

from __future__ import annotations

import json
import time
from pathlib import Path

import framefactory as ff
import pytest
from conftest import LOC, SMS_SECRET, post, sms_headers

from host_tools.errors import UsageError
from host_tools.receiver.alerts import show_alert
from host_tools.receiver.server import RunningServer, ServerConfig, start_in_thread
from host_tools.receiver.sms_auth import (
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    RateLimiter,
    check_sms_request,
    load_secret,
    signature_for,
)
from host_tools.registry import connect as db_connect  # noqa: E402

NOW = 1_790_000_000


def _body(frame: bytes) -> bytes:
    return json.dumps({"sender": "+447700900123", "time": NOW, "payload": frame.hex()}).encode()


def _reason(headers: dict[str, str], body: bytes = b"{}", secret: bytes | None = SMS_SECRET,
            now: float = NOW) -> str | None:
    problem = check_sms_request(headers, body, secret, now)
    return problem.reason if problem is not None else None


def test_the_check_takes_a_good_signature_and_names_every_problem() -> None:
    body = b'{"payload": "00"}'
    good = sms_headers(body, at=NOW)
    assert _reason(good, body) is None
    assert _reason({k.lower(): v for k, v in good.items()}, body) is None          # header names: any case
    assert _reason({}, body) == "missing-signature"
    assert _reason({HEADER_TIMESTAMP: good[HEADER_TIMESTAMP]}, body) == "missing-signature"
    assert _reason({HEADER_SIGNATURE: good[HEADER_SIGNATURE]}, body) == "missing-signature"
    assert _reason(good, body + b" ") == "bad-signature"                           # the body changed
    assert _reason(sms_headers(body, secret=b"another secret, 32 bytes long...", at=NOW), body) == \
        "bad-signature"
    assert _reason({**good, HEADER_SIGNATURE: "sha256=" + "0" * 64}, body) == "bad-signature"
    assert _reason({**good, HEADER_SIGNATURE: "sha256=\u00e9"}, body) == "bad-signature"
    assert _reason(good, body, now=NOW + 301) == "stale-timestamp"
    assert _reason(good, body, now=NOW - 301) == "stale-timestamp"
    assert _reason(good, body, now=NOW + 300) is None
    assert _reason({**good, HEADER_TIMESTAMP: "noon"}, body) == "stale-timestamp"
    # a captured post replayed later with a fresh timestamp: the timestamp is inside the MAC
    fresh = str(NOW + 3600)
    replayed = {HEADER_TIMESTAMP: fresh, HEADER_SIGNATURE: good[HEADER_SIGNATURE]}
    assert _reason(replayed, body, now=NOW + 3600) == "bad-signature"
    assert _reason(good, body, secret=None) == "sms-not-configured"


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    mac = hmac.new(b"k" * 16, b"1790000000.{}", hashlib.sha256).hexdigest()
    assert signature_for(b"k" * 16, "1790000000", b"{}") == "sha256=" + mac


def test_a_secret_file_must_be_private_and_long_enough(tmp_path: Path) -> None:
    f = tmp_path / "secret"
    f.write_bytes(b"0123456789abcdef0123456789abcdef\n")
    f.chmod(0o600)
    assert load_secret(f) == b"0123456789abcdef0123456789abcdef"
    f.chmod(0o644)
    with pytest.raises(UsageError, match="read by others"):
        load_secret(f)
    f.write_bytes(b"short")
    f.chmod(0o600)
    with pytest.raises(UsageError) as e:
        load_secret(f)
    assert "short" not in str(e.value)                  # never quotes the secret
    with pytest.raises(UsageError, match="cannot read"):
        load_secret(tmp_path / "missing")


def test_the_rate_limit_is_per_source_and_refills() -> None:
    limiter = RateLimiter(per_minute=60, burst=3)
    assert [limiter.allow("a", 100.0) for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("b", 100.0)                    # another source has its own bucket
    assert not limiter.allow("a", 100.5)
    assert limiter.allow("a", 101.1)                    # one post a second
    assert limiter.limited == 2


def test_forged_posts_are_refused_and_never_reach_the_alert(server: RunningServer, dev: ff.DeviceSim,
                                                           db: Path) -> None:
    start = dev.alert_start(loc=LOC)
    assert post(server.port, start)[0] == 200
    forged = bytearray(dev.location(LOC))
    forged[-3] ^= 1
    body = _body(bytes(forged))
    unsigned = post(server.port, body, "application/json", path="/v1/sms")
    stale = post(server.port, body, "application/json", path="/v1/sms",
                 headers=sms_headers(body, at=time.time() - 3600))
    wrong = post(server.port, body, "application/json", path="/v1/sms",
                 headers=sms_headers(body, secret=b"not the gateway's secret at all!"))
    reasons = [(s, json.loads(b)["reason"]) for s, _, b in (unsigned, stale, wrong)]
    assert reasons == [(401, "missing-signature"), (401, "stale-timestamp"), (401, "bad-signature")]
    with db_connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM rejections").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM frames WHERE via = 'sms'").fetchone()[0] == 0
        detail = show_alert(conn, 1, operator="Bob")
    assert detail.rejected_since_start == {}           # operators see no "rejected 3 bad-signature"
    signed = post(server.port, body, "application/json", path="/v1/sms", headers=sms_headers(body))
    assert signed[0] == 200 and json.loads(signed[2])["reason"] == "bad-signature"   # the frame's own


def test_without_a_secret_every_post_is_refused(db: Path, dev: ff.DeviceSim) -> None:
    rs = start_in_thread(db, ServerConfig(port=0))
    try:
        body = _body(dev.alert_start(loc=LOC))
        got = post(rs.port, body, "application/json", path="/v1/sms", headers=sms_headers(body))
    finally:
        rs.stop()
    assert got[0] == 401 and json.loads(got[2])["reason"] == "sms-not-configured"


def test_too_many_posts_from_one_source_get_429(db: Path, dev: ff.DeviceSim) -> None:
    rs = start_in_thread(db, ServerConfig(port=0, sms_secret=SMS_SECRET, sms_per_minute=1, sms_burst=3))
    try:
        got = []
        for _ in range(5):                              # bounded by count, not by time
            body = _body(dev.heartbeat())
            got.append(post(rs.port, body, "application/json", path="/v1/sms", headers=sms_headers(body)))
    finally:
        rs.stop()
    assert [g[0] for g in got] == [200, 200, 200, 429, 429]
    assert json.loads(got[-1][2])["reason"] == "rate-limited"
