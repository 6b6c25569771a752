# HTTP/1.1 framing of frame delivery (sotto.modem.http): the request head, the
# incremental response parser and the payload of the centre's answer.
# Runs under CPython and in the MicroPython VM.
import http_vectors as vec
from fwtest import raises, unhex
from sotto import cbor
from sotto.modem import http


def answer(status_line, headers, body):
    head = status_line + b"\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n"
    return head + body


def test_request_head():
    head = http.request_head("receiver.example", 443, 412)
    assert head == (b"POST /v1/frames HTTP/1.1\r\nHost: receiver.example\r\n"
                    b"Content-Type: application/cbor-seq\r\nContent-Length: 412\r\n\r\n")
    # a port other than the scheme's default goes into Host (RFC 9110 §7.2)
    assert b"Host: 127.0.0.1:8443\r\n" in http.request_head("127.0.0.1", 8443, 1)
    assert b"Host: 127.0.0.1\r\n" in http.request_head("127.0.0.1", 80, 1, tls=False)


def test_response_in_one_piece():
    body = unhex(vec.ACK_ONE)
    r = http.Response()
    data = answer(b"HTTP/1.1 200 OK", [b"Content-Type: application/cbor",
                                       b"Content-Length: %d" % len(body)], body)
    assert r.feed(data)
    assert r.status == 200 and bytes(r.body) == body and not r.close and r.extra == 0


def test_response_byte_by_byte_and_split_everywhere():
    body = unhex(vec.ACK_MIXED)
    data = answer(b"HTTP/1.1 200 OK", [b"content-length: %d" % len(body), b"Connection: close"], body)
    for cut in (1, 2, 3, 7, 50, len(data) - 1):
        r = http.Response()
        done = False
        for i in range(0, len(data), cut):
            assert not done
            done = r.feed(data[i:i + cut])
        assert done and r.status == 200 and r.close
        assert bytes(r.body) == body


def test_body_ends_by_content_length_not_by_extra_bytes():
    r = http.Response()
    assert r.feed(answer(b"HTTP/1.1 200 OK", [b"Content-Length: 3"], b"abcdef"))
    assert bytes(r.body) == b"abc" and r.extra == 3


def test_http_errors_and_empty_bodies():
    r = http.Response()
    assert r.feed(answer(b"HTTP/1.1 503 Service Unavailable", [b"Content-Length: 0"], b""))
    assert r.status == 503 and len(r.body) == 0
    r = http.Response()
    assert r.feed(answer(b"HTTP/1.1 204 No Content", [], b""))
    assert r.status == 204


def test_body_until_close_when_no_length():
    r = http.Response()
    assert not r.feed(answer(b"HTTP/1.0 200 OK", [], b"abc"))
    assert r.closed() and bytes(r.body) == b"abc" and r.close


def test_truncated_body_is_an_error():
    r = http.Response()
    assert not r.feed(answer(b"HTTP/1.1 200 OK", [b"Content-Length: 10"], b"abc"))
    e = raises(http.HttpError, r.closed)
    assert e.code == http.TRUNCATED


def test_bad_responses_raise_specific_errors():
    cases = [
        (b"HTP/1.1 200 OK\r\n\r\n", http.BAD_STATUS_LINE),
        (b"HTTP/1.1 20 OK\r\n\r\n", http.BAD_STATUS_LINE),
        (b"HTTP/1.1 abc OK\r\n\r\n", http.BAD_STATUS_LINE),
        (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", http.BAD_HEADER),
        (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", http.BAD_HEADER),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", http.BAD_HEADER),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", http.UNSUPPORTED),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 99999\r\n\r\n", http.BODY_TOO_LONG),
        (b"HTTP/1.1 200 OK\r\nX: " + b"y" * 2000, http.HEAD_TOO_LONG),
    ]
    for data, code in cases:
        e = raises(http.HttpError, http.Response().feed, data)
        assert e.code == code, (data, e.code)


def payload_of(hexed):
    return cbor.decode(unhex(hexed))  # the payload map sotto.answer gives once it is authenticated


def test_parse_ack_one_frame():
    results, time_s, closed = http.parse_ack(payload_of(vec.ACK_ONE), 1)
    assert results == [(http.ACCEPTED, 5, None)]
    assert time_s == 1790000000 and closed == []
    assert http.commands_of(payload_of(vec.ACK_ONE)) == []


def test_parse_ack_mixed():
    results, time_s, closed = http.parse_ack(payload_of(vec.ACK_MIXED), 3)
    assert results == [(http.ACCEPTED, 7, None), (http.DUPLICATE, 8, None),
                       (http.REJECTED, None, "malformed-cbor")]
    assert time_s == 1790000123 and closed == [3]


def test_parse_ack_refuses_answers_of_the_wrong_shape():
    e = raises(http.HttpError, http.parse_ack, payload_of(vec.ACK_ONE), 2)  # we sent two frames
    assert e.code == http.BAD_ANSWER
    ok = payload_of(vec.ACK_ONE)
    for bad in (None, b"", [], payload_of(vec.ERR_400), dict(ok, results={}), dict(ok, time=-1),
                dict(ok, time="now"), dict(ok, closed=3), dict(ok, closed=["1"]),
                dict(ok, results=[{"status": "stored", "seq": 5}])):
        e = raises(http.HttpError, http.parse_ack, bad, 1)
        assert e.code == http.BAD_ANSWER, bad
    for bad in (dict(ok, cmds={}), dict(ok, cmds=[1]), dict(ok, cmds=[{"id": 1}, "x"])):
        assert raises(http.HttpError, http.commands_of, bad).code == http.BAD_ANSWER, bad
    assert http.commands_of(dict(ok, cmds=[{"id": 1, "op": "locate"}])) == [{"id": 1, "op": "locate"}]


def test_error_reason():
    assert http.error_reason(payload_of(vec.ERR_400)) == "malformed-cbor"
    assert http.error_reason({"reason": 7}) is None and http.error_reason(None) is None
    assert http.error_reason(payload_of(vec.ACK_ONE)) is None
