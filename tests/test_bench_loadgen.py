"""bench/loadgen.py checks every answer: only HTTP 200 with every frame `accepted`
(the right request, the right frames, nothing extra) counts; a duplicate or a
wrong answer is an error; 503s and lost connections are retried and counted by
cause; latency counts from the scheduled send. A stub receiver in a thread
answers what each test tells it to."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Callable, Iterator

import cbor2
import framefactory as ff
import pytest

from bench.loadgen import Plan, check_answer, drive, prepare

Answer = Callable[[int, bytes], bytes | None]     # (request number, body) -> bytes to send, None: close


def signed(body: bytes, results: list[dict[str, object]], req: bytes | None = None) -> bytes:
    payload = {"req": hashlib.sha256(body).digest() if req is None else req, "time": 1, "results": results}
    sign1 = cbor2.dumps(cbor2.CBORTag(18, [b"\xa1\x01\x27", {}, cbor2.dumps(payload), b"s" * 64]))
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(sign1) + sign1


def results_for(body: bytes, status: str = "accepted") -> list[dict[str, object]]:
    from host_tools.frames import decode_frame, split_sequence

    return [{"seq": f.seq, "device": f.kid, "status": status}
            for f in (decode_frame(w) for w in split_sequence(body))]


def ok(n: int, body: bytes) -> bytes:
    return signed(body, results_for(body))


class Stub:
    """A plain-HTTP receiver stand-in: reads each request, writes answer(n, body)."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _run(self) -> None:
        async def main() -> None:
            self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
            self.port = self.server.sockets[0].getsockname()[1]
            self.ready.set()
            await self.server.serve_forever()

        try:
            self.loop.run_until_complete(main())
        except asyncio.CancelledError:
            pass

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                body = await reader.readexactly(length)
                n = self.requests
                self.requests += 1
                out = self.answer(n, body)
                if out is None:
                    break
                writer.write(out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        for task in asyncio.all_tasks(self.loop):
            self.loop.call_soon_threadsafe(task.cancel)
        self.thread.join(10)


@pytest.fixture
def stub() -> Iterator[Callable[[Answer], Stub]]:
    made: list[Stub] = []

    def make(answer: Answer) -> Stub:
        made.append(Stub(answer))
        return made[-1]

    yield make
    for s in made:
        s.stop()


def plans(devices: int = 2, pace_s: float = 0.0) -> list[Plan]:
    out = []
    for i in range(devices):
        d = ff.DeviceSim(kid=b"LGT%05d" % i, seed=hashlib.sha256(b"lg%d" % i).digest())
        start = d.alert_start()
        two = d.location(ff.pack_location(1, 2, 8, 1, ff.SRC_GNSS)) + d.heartbeat()
        out.append(Plan(0.0, [(start, 1, "start"), (two, 2, "live")], pace_s=pace_s))
    return out


def test_every_answer_accepted_counts(stub: Callable[[Answer], Stub]) -> None:
    s = stub(ok)
    res = drive(plans(3), "127.0.0.1", s.port, None, procs=2)
    assert (res.posts, res.frames, res.errors, res.retries, res.connections) == (6, 9, [], 0, 3)
    assert len(res.latencies["start"]) == 3 and len(res.phases["answer"]) == 6
    assert res.procs == 2


@pytest.mark.parametrize("answer, why", [
    (lambda n, b: signed(b, results_for(b, "duplicate")), "duplicate"),
    (lambda n, b: signed(b, results_for(b), req=b"\0" * 32), "another request"),
    (lambda n, b: signed(b, results_for(b)[:-1] + [{"seq": 0, "device": b"x", "status": "accepted"}]),
     "frame"),
    (lambda n, b: signed(b, results_for(b) * 2), "results for"),
    (lambda n, b: ok(n, b) + b"HTTP/1.1 200 OK\r\n", "answer nothing"),
    (lambda n, b: b"HTTP/1.1 400 Bad\r\nContent-Length: 2\r\n\r\nno", "HTTP 400"),
])
def test_a_wrong_answer_is_an_error_not_a_success(stub: Callable[[Answer], Stub], answer: Answer,
                                                  why: str) -> None:
    s = stub(answer)
    res = drive(plans(1), "127.0.0.1", s.port, None)
    assert res.posts == 0 and res.frames == 0
    assert len(res.errors) == 1 and why in res.errors[0]


def test_503_and_lost_connections_are_retried_and_counted_by_cause(stub: Callable[[Answer], Stub]) -> None:
    def flaky(n: int, body: bytes) -> bytes | None:
        if n == 0:
            why = cbor2.dumps({"reason": "busy"})
            return b"HTTP/1.1 503 Busy\r\nContent-Length: %d\r\n\r\n" % len(why) + why
        if n == 1:
            return None          # closes without an answer
        return ok(n, body)

    s = stub(flaky)
    res = drive(plans(1), "127.0.0.1", s.port, None)
    assert res.errors == [] and res.posts == 2 and res.retries == 2
    assert res.retry_reasons == {"503 busy": 1, "answer: ClosedByReceiver": 1}
    assert res.connections == 3


def _unavailable(detail: str, maybe_stored: bool) -> bytes:
    why = cbor2.dumps({"reason": "storage-unavailable", "detail": detail, "maybe_stored": maybe_stored})
    return b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: %d\r\n\r\n" % len(why) + why


@pytest.mark.parametrize("detail, right", [
    ("storing 1 frames took over 30 s; the frames may have been stored: send them again", True),
    ("storing 1 frames took over 30 s; nothing was stored, send again later", False),   # a lie
])
def test_duplicate_is_right_only_after_a_503_that_said_may_have_been_stored(
        stub: Callable[[Answer], Stub], detail: str, right: bool) -> None:
    def timed_out_then_stored(n: int, body: bytes) -> bytes:
        if n == 0:
            return _unavailable(detail, right)
        if n == 1:
            return signed(body, results_for(body, "duplicate"))   # the retry: it was stored after all
        return signed(body, results_for(body, "duplicate"))       # the next post: never right

    s = stub(timed_out_then_stored)
    res = drive(plans(1), "127.0.0.1", s.port, None)
    suffix = " (may have been stored)" if right else ""
    assert res.retry_reasons == {"503 storage-unavailable" + suffix: 1}
    if right:      # the first post counts; the second (no 503 before it) is an error
        assert res.posts == 1 and len(res.errors) == 1 and "duplicate" in res.errors[0]
    else:
        assert res.posts == 0 and len(res.errors) == 1 and "duplicate" in res.errors[0]


def test_latency_counts_from_the_scheduled_send(stub: Callable[[Answer], Stub]) -> None:
    """The first answer comes 0.4 s late; the second POST was due 0.1 s after the
    first: its latency includes the 0.3 s it waited behind it."""
    import time

    def slow_first(n: int, body: bytes) -> bytes:
        if n == 0:
            time.sleep(0.4)
        return ok(n, body)

    s = stub(slow_first)
    res = drive(plans(1, pace_s=0.1), "127.0.0.1", s.port, None)
    assert res.errors == []
    assert res.latencies["start"][0] >= 0.4
    assert res.latencies["live"][0] >= 0.3
    assert min(res.phases["answer"]) < res.latencies["live"][0]


def test_check_answer_and_prepare() -> None:
    body, n, tag = plans(1)[0].posts[1]
    post = prepare(body, n, tag)
    assert post.request.endswith(body) and b"Content-Length: %d" % len(body) in post.request
    answer = signed(body, results_for(body))
    status_body = answer.split(b"\r\n\r\n", 1)[1]
    assert check_answer(post, 200, status_body) is None
    assert check_answer(post, 200, b"\xff") is not None
    with pytest.raises(ValueError):
        prepare(body, 1, tag)
