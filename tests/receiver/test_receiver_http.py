"""`sotto receive` over HTTP: status codes with reasons, the SMS webhook, health, TLS,
slow clients and connection limits (host_tools.receiver.server)."""

from __future__ import annotations

import base64
import datetime
import http.client
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cbor2
import framefactory as ff
import pytest
from conftest import LOC, answer_map, device, open_answer, post, sms_headers
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sotto.answer import AnswerError
from sotto.modem import http as device_http

from host_tools.receiver.server import RunningServer, ServerConfig, start_in_thread


def _raw(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send bytes as they are; return everything until the server closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)


def _status_and_json(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_frames_are_answered_signed_and_the_device_can_open_and_parse_them(server: RunningServer,
                                                                           dev: ff.DeviceSim) -> None:
    frames = [dev.alert_start(loc=LOC), dev.location(LOC), dev.audio(b"\x44" * 1000, 0, 2000)]
    request = b"".join(frames)
    status, headers, body = post(server.port, request)
    opened = open_answer(server.centre.public_key, request, body)      # the firmware's own checks
    results, time_s, closed = device_http.parse_ack(opened, 3)
    assert status == 200 and headers["content-type"] == "application/cose"
    assert [(r[0], r[1]) for r in results] == [(device_http.ACCEPTED, s) for s in (1, 2, 3)]
    assert abs(time_s - time.time()) < 5 and closed == []
    again = post(server.port, request)
    assert [r["status"] for r in answer_map(again[2])["results"]] == ["duplicate"] * 3
    # the same answer for another request (the first one replayed) is refused by the device
    other = dev.heartbeat()
    with pytest.raises(AnswerError) as e:
        open_answer(server.centre.public_key, other, body)
    assert e.value.code == "wrong-request"


def test_one_connection_carries_many_requests(server: RunningServer, dev: ff.DeviceSim) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    answers = []
    for _ in range(3):
        conn.request("POST", "/v1/frames", dev.heartbeat(), {"Content-Type": "application/cbor-seq"})
        resp = conn.getresponse()
        answers.append((resp.status, resp.getheader("Connection"),
                        answer_map(resp.read())["results"][0]["status"]))
    conn.close()
    assert answers == [(200, None, "accepted")] * 3


@pytest.mark.parametrize("body, reason", [
    (b"\xd2\x84\x41", "malformed-cbor"),
    (b"", "malformed-cbor"),
])
def test_a_bad_envelope_gets_a_signed_400_with_a_reason(server: RunningServer, body: bytes,
                                                        reason: str) -> None:
    got, headers, answer = post(server.port, body)
    opened = open_answer(server.centre.public_key, body, answer)
    assert got == 400 and headers["content-type"] == "application/cose"
    assert opened["reason"] == reason and opened["detail"]
    assert device_http.error_reason(opened) == reason        # what the device reads


@pytest.mark.parametrize("ctype", ["text/plain", "application/json"])
def test_another_content_type_gets_415_unsigned(server: RunningServer, ctype: str) -> None:
    got, headers, answer = post(server.port, b"\xd2", ctype)
    assert got == 415 and headers["content-type"] == "application/cbor"      # the device acts on nothing
    assert cbor2.loads(answer)["reason"] == "unsupported-media-type" and cbor2.loads(answer)["detail"]


def test_too_many_frames_or_bytes_is_413(db: Path, dev: ff.DeviceSim) -> None:
    rs = start_in_thread(db, ServerConfig(port=0, max_frames=4, max_body_bytes=4096))
    try:
        five = b"".join(dev.heartbeat() for _ in range(5))
        many = post(rs.port, five)
        big = _raw(rs.port, b"POST /v1/frames HTTP/1.1\r\nHost: x\r\nContent-Type: application/cbor-seq\r\n"
                            b"Content-Length: 10000000000\r\n\r\n" + b"\x00" * 100)
        ok = post(rs.port, dev.heartbeat())
    finally:
        rs.stop()
    assert many[0] == 413 and open_answer(rs.centre.public_key, five, many[2])["reason"] == "too-large"
    assert big.startswith(b"HTTP/1.1 413") and b"Connection: close" in big     # refused before reading,
    assert cbor2.loads(big.partition(b"\r\n\r\n")[2])["reason"] == "too-large"   # so not bound: unsigned
    assert ok[0] == 200


@pytest.mark.parametrize("request_bytes, status, reason", [
    (b"POST /v1/frames HTTP/1.1\r\nHost: x\r\nContent-Type: application/cbor-seq\r\n\r\n", 411,
     "length-required"),
    (b"POST /v1/frames HTTP/1.1\r\nHost: x\r\nContent-Type: application/cbor-seq\r\n"
     b"Transfer-Encoding: chunked"
     b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 411, "length-required"),
    (b"POST /v1/frames HTTP/1.1\r\nHost: x\r\nContent-Type: application/cbor-seq\r\n"
     b"Content-Length: -5\r\n\r\n",
     400, "bad-content-length"),
    (b"POST /v1/frames HTTP/1.1\r\nContent-Type: application/cbor-seq\r\nContent-Length: 1\r\n"
     b"Content-Length: 2\r\n\r\nab", 400, "bad-content-length"),
    (b"GET /v1/frames HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405, "method-not-allowed"),
    (b"PUT /v1/frames HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405, "method-not-allowed"),
    (b"BREW /v1/frames HTTP/1.1\r\nHost: x\r\n\r\n", 405, "method-not-allowed"),
    (b"GET /admin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404, "not-found"),
    (b"POST /v1/nothing HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 404, "not-found"),
    (b"GET /v1/health HTTX/1.1\r\n\r\n", 400, "bad-request"),
    (b"GET /v1/health HTTP/9.9\r\n\r\n", 505, "http-version-not-supported"),
    (b"GET /v1/health HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(120)) + b"\r\n",
     431, "headers-too-large"),
])
def test_http_errors_have_reasons(server: RunningServer, request_bytes: bytes, status: int,
                                  reason: str) -> None:
    raw = _raw(server.port, request_bytes)
    head, _, body = raw.partition(b"\r\n\r\n")
    got = int(head.split()[1])
    decoded = cbor2.loads(body) if b"application/cbor" in head else json.loads(body)
    assert (got, decoded["reason"]) == (status, reason)


def test_health(server: RunningServer) -> None:
    status, _, body = post(server.port, b"", path="/v1/health", method="GET")
    server.receiver.writer.stop()                # storage gone: health says so
    down, _, down_body = post(server.port, b"", path="/v1/health", method="GET")
    assert status == 200 and json.loads(body)["status"] == "ok"
    assert down == 503 and json.loads(down_body)["reason"] == "storage-unavailable"


def test_frames_get_503_and_are_not_acknowledged_when_storage_is_down(server: RunningServer,
                                                                      dev: ff.DeviceSim) -> None:
    server.receiver.writer.stop()
    status, _, body = post(server.port, dev.alert_start(loc=LOC))
    assert status == 503 and cbor2.loads(body)["reason"] == "storage-unavailable"


def _sms(port: int, payload: str, **extra: object) -> tuple[int, dict]:
    body = json.dumps({"sender": "+447700900123", "time": 1_790_000_000, "payload": payload,
                       **extra}).encode()
    status, _, answer = post(port, body, "application/json", path="/v1/sms", headers=sms_headers(body))
    return status, json.loads(answer)


def test_the_sms_webhook_takes_hex_or_base64(server: RunningServer, dev: ff.DeviceSim) -> None:
    frame = dev.alert_start(loc=LOC)
    by_hex = _sms(server.port, frame.hex())
    by_b64 = _sms(server.port, base64.b64encode(frame).decode())
    forged = bytearray(dev.location(LOC))
    forged[-3] ^= 1
    bad_sig = _sms(server.port, bytes(forged).hex())
    garbage = _sms(server.port, "d2840000")
    status, _, by_data = post(server.port, frame)            # the same frame later by data: a duplicate
    assert by_hex == (200, {"status": "accepted", "device": "SOTTO-42", "seq": 1, "time": by_hex[1]["time"]})
    assert by_b64[1]["status"] == "duplicate"
    assert bad_sig[1]["status"] == "rejected" and bad_sig[1]["reason"] == "bad-signature"
    assert garbage[1]["status"] == "rejected" and garbage[1]["reason"] == "malformed-cbor"
    assert answer_map(by_data)["results"][0]["status"] == "duplicate"


@pytest.mark.parametrize("body, ctype, status", [
    (b"{not json", "application/json", 400),
    (b'["a list"]', "application/json", 400),
    (b'{"sender": "+44", "payload": 5}', "application/json", 400),
    (b'{"sender": "+44", "payload": "zz!!"}', "application/json", 400),
    (b'{"sender": "+44", "time": "noon", "payload": "00"}', "application/json", 400),
    (b'{"payload": "00"}', "text/plain", 415),
])
def test_bad_sms_webhook_calls(server: RunningServer, body: bytes, ctype: str, status: int) -> None:
    got, _, answer = post(server.port, body, ctype, path="/v1/sms", headers=sms_headers(body))
    assert got == status and json.loads(answer)["reason"] and json.loads(answer)["detail"]


def _self_signed(tmp: Path) -> tuple[str, str, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp / "c.pem").write_bytes(pem)
    (tmp / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                  serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return str(tmp / "c.pem"), str(tmp / "k.pem"), pem


def test_tls(db: Path, dev: ff.DeviceSim, tmp_path: Path) -> None:
    cert, key, pem = _self_signed(tmp_path)
    rs = start_in_thread(db, ServerConfig(port=0, tls_cert=cert, tls_key=key, io_timeout_s=2))
    try:
        stalled = socket.create_connection(("127.0.0.1", rs.port))     # never says hello
        plain = _raw(rs.port, b"POST /v1/frames HTTP/1.1\r\nContent-Length: 0\r\n\r\n", timeout=3)
        ctx = ssl.create_default_context(cadata=pem.decode())
        conn = http.client.HTTPSConnection("localhost", rs.port, context=ctx, timeout=5)
        conn.request("POST", "/v1/frames", dev.alert_start(loc=LOC), {"Content-Type": "application/cbor-seq"})
        resp = conn.getresponse()
        answer = answer_map(resp.read())
        conn.close()
        stalled.close()
    finally:
        rs.stop()
    assert rs.url.startswith("https://")
    assert not plain.startswith(b"HTTP/1.1 200")
    assert resp.status == 200 and answer["results"][0]["status"] == "accepted"


@pytest.fixture
def strict_server(db: Path, dev: ff.DeviceSim) -> Iterator[RunningServer]:
    rs = start_in_thread(db, ServerConfig(port=0, io_timeout_s=1.0, request_deadline_s=1.5,
                                          max_connections=20))
    yield rs
    rs.stop()


def test_slow_senders_do_not_hold_up_a_device_and_are_cut_off(strict_server: RunningServer,
                                                              dev: ff.DeviceSim) -> None:
    port = strict_server.port
    slow = []
    for _ in range(5):      # slowloris: a header, then a byte now and then
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"POST /v1/frames HTTP/1.1\r\nContent-Type: application/cbor-seq\r\n"
                  b"Content-Length: 200\r\n\r\n")
        slow.append(s)
    t0 = time.monotonic()
    answers = [post(port, dev.location(LOC) if i else dev.alert_start(loc=LOC))[0] for i in range(5)]
    served_in = time.monotonic() - t0
    closed_after = []
    for s in slow:
        s.settimeout(5)
        start = time.monotonic()
        try:
            leftover = s.recv(1000)        # nothing comes: the server just closes the connection
        except OSError:
            leftover = b""
        closed_after.append((time.monotonic() - start, leftover))
        s.close()
    assert answers == [200] * 5 and served_in < 2.0
    # cut off by the read timeout (408) or the deadline (closed), not left hanging
    assert all(waited < 4.0 and (data == b"" or data.startswith(b"HTTP/1.1 408")) for waited,
               data in closed_after)
    assert strict_server.server.bugs == 0


def test_connections_beyond_the_limit_get_503(db: Path, dev: ff.DeviceSim) -> None:
    rs = start_in_thread(db, ServerConfig(port=0, max_connections=3, io_timeout_s=5, request_deadline_s=5))
    try:
        idle = [socket.create_connection(("127.0.0.1", rs.port)) for _ in range(3)]
        time.sleep(0.2)
        busy = _raw(rs.port, b"GET /v1/health HTTP/1.1\r\n\r\n")
        for s in idle:
            s.close()
        time.sleep(0.3)
        after = post(rs.port, dev.heartbeat())[0]
    finally:
        rs.stop()
    status, body = _status_and_json(busy)
    assert status == 503 and body["reason"] == "busy"
    assert after == 200


def test_requests_from_many_devices_at_once(server: RunningServer, db: Path) -> None:
    from host_tools.registry import Registry

    devices = [device(b"FLEET%03d" % i) for i in range(40)]
    with Registry(db) as reg:
        for d in devices:
            reg.add(d.kid, d.public_key)
    results: list[int] = []
    lock = threading.Lock()

    def run(d: ff.DeviceSim) -> None:
        codes = [post(server.port, d.alert_start(loc=LOC))[0], post(server.port, d.location(LOC))[0]]
        with lock:
            results.extend(codes)

    threads = [threading.Thread(target=run, args=(d,)) for d in devices]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 80
    assert server.server.bugs == 0
