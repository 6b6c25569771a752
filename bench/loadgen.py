"""A load generator for the receiver benchmarks: many simulated devices on one asyncio
event loop per process, in processes of their own (they do not share the benchmark's GIL).

Each device has a plan: when it starts, and the POST bodies it sends over one
keep-alive (TLS) connection, one after another (closed loop) or on a schedule
`pace_s` apart. With several receivers (ingest nodes on one database), device i
talks to `ports[i % len(ports)]`.

Cheap and honest:
- every request (head + body) is built before the clock starts, with what its
  answer must say: `req` = SHA-256 of the body and, per frame in order, its
  device and seq with status `accepted`. Each answer is parsed (HTTP status,
  Content-Length, the signed answer's payload) and checked against that; a
  `duplicate`, a missing, extra or wrong result, another request's `req` or bytes
  nobody asked for are errors (`Result.errors`), never successes (a `duplicate`
  is right only after a 503 that said the frames "may have been stored"). The answer's
  Ed25519 signature is not verified here (bench_receiver measures that cost).
- latency is measured from the moment the device would send (its schedule:
  `start_s + k * pace_s`; closed loop: when the previous answer came), not from
  when the load generator got round to it, so a lagging load generator or a
  slow connect cannot hide queueing (no coordinated omission). Where it accrues
  is kept apart: the load generator's own lag, TCP connect, TLS handshake and
  request -> answer.
- a 503 or a lost connection is retried after a short pause, as a device would;
  retries are counted by cause (`"handshake: ConnectionResetError"`, `"503 busy"`...).
- a full TLS handshake per connection, no session resumption: the devices'
  modem (SIMCom A7670, the module's own SSL client, AT+CCHOPEN) offers no setting
  for it (AT+CSSLCFG: sslversion, authmode, ignorelocaltime, enableSNI, the
  certificates; docs/modem.md), so a fair load generator cannot assume it.
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import os
import random
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cbor2

from bench.common import runqueue_wait_s

HEAD = (b"POST /v1/frames HTTP/1.1\r\nHost: receiver\r\nContent-Type: application/cbor-seq\r\n"
        b"Content-Length: %d\r\n\r\n")
PHASES = ("lag", "connect", "handshake", "answer")
MAX_ATTEMPTS = 50


class ClosedByReceiver(ConnectionError):
    """The receiver closed the connection cleanly (EOF) with a request unanswered;
    told apart from a reset (ConnectionResetError) in the retry causes."""


@dataclass
class Plan:
    start_s: float                      # after the run's start
    posts: list[tuple[bytes, int, str]]  # (body, frames in it, tag)
    pace_s: float = 0.0                 # schedule: POST k at start_s + k * pace_s (0: closed loop)


@dataclass
class Result:
    wall_s: float = 0.0
    posts: int = 0
    frames: int = 0
    connections: int = 0
    latencies: dict[str, list[float]] = field(default_factory=dict)  # by tag: scheduled -> accepted
    phases: dict[str, list[float]] = field(default_factory=dict)     # lag, connect, handshake, answer
    retries: int = 0
    retry_reasons: dict[str, int] = field(default_factory=dict)   # "503 busy", "connect: ...Error"...
    errors: list[str] = field(default_factory=list)
    client_cpu_s: float = 0.0           # all load generator processes together
    client_wait_s: float = 0.0          # their time runnable but waiting for a CPU (a loaded machine)
    procs: int = 1
    per_port: dict[int, int] = field(default_factory=dict)    # POSTs answered, by receiver port

    def merge(self, other: Result) -> None:
        self.wall_s = max(self.wall_s, other.wall_s)
        for name in ("posts", "frames", "connections", "retries", "client_cpu_s", "client_wait_s"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for mine, theirs in ((self.latencies, other.latencies), (self.phases, other.phases)):
            for k, v in theirs.items():
                mine.setdefault(k, []).extend(v)
        for counts, more in ((self.retry_reasons, other.retry_reasons), (self.per_port, other.per_port)):
            for k, n in more.items():
                counts[k] = counts.get(k, 0) + n     # type: ignore[index]
        self.errors.extend(other.errors)


@dataclass
class _Post:
    request: bytes                      # head + body, sent as is
    digest: bytes                       # the answer's `req`
    expect: list[tuple[int, bytes]]     # (seq, device) per frame, in order
    tag: str


def prepare(body: bytes, count: int, tag: str) -> _Post:
    """A POST ready to send, with what its answer must say."""
    from host_tools.frames import decode_frame, split_sequence

    frames = [decode_frame(w) for w in split_sequence(body)]
    if len(frames) != count:
        raise ValueError(f"{tag}: the body holds {len(frames)} frames, the plan says {count}")
    return _Post(HEAD % len(body) + body, hashlib.sha256(body).digest(),
                 [(f.seq, f.kid) for f in frames], tag)


def check_answer(post: _Post, status: int, body: bytes, duplicate_ok: bool = False) -> str | None:
    """None if the answer is HTTP 200 with every frame of the request `accepted`; else what is wrong.
    duplicate_ok: `duplicate` is right too (this request was sent before and answered by a 503
    that said its frames may have been stored: a commit that timed out in an open transaction)."""
    if status != 200:
        return f"HTTP {status}: {body[:120]!r}"
    try:
        signed = cbor2.loads(body)
        payload = cbor2.loads(signed.value[2])
        results = payload["results"]
        req = payload["req"]
    except Exception as e:  # noqa: BLE001 - any undecodable answer is a wrong answer
        return f"undecodable answer ({e!r}): {body[:80]!r}"
    if req != post.digest:
        return "the answer's req is another request's"
    if len(results) != len(post.expect):
        return f"{len(results)} results for {len(post.expect)} frames"
    for r, (seq, kid) in zip(results, post.expect, strict=True):
        got = (r.get("status"), r.get("seq"), r.get("device")) if isinstance(r, dict) else r
        if duplicate_ok and got == ("duplicate", seq, kid):
            continue
        if got != ("accepted", seq, kid):
            return f"frame {kid!r}/{seq}: {r!r}"
    return None


class _Client(asyncio.Protocol):
    """One device's connection: one request outstanding at a time; bytes that
    answer nothing (after a complete answer, or with no request out) are flagged."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes, float]] | None = None
        self.stray = False
        self.closed: BaseException | None = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter is None:
            self.stray = True
            return
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end]).lower()
        length = 0
        at = head.find(b"\r\ncontent-length:")
        if at >= 0:
            stop = head.find(b"\r\n", at + 2)
            length = int(head[at + 17:stop if stop > 0 else len(head)])
        if len(self.buf) < end + 4 + length:
            return
        body = bytes(self.buf[end + 4:end + 4 + length])
        if len(self.buf) > end + 4 + length:
            self.stray = True
        self.buf.clear()
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result((int(head[9:12]), body, time.perf_counter()))

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = exc or ClosedByReceiver("closed by the receiver")
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(self.closed)
        self.waiter = None


def _count(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1


def _reason(body: bytes) -> tuple[str, bool]:
    """The reason of a 503 answer (CBOR or JSON {"reason": ...}), or "?"; and whether
    it says the frames may have been stored (its `maybe_stored`)."""
    import json

    for load in (cbor2.loads, json.loads):
        try:
            doc = load(body)
        except Exception:  # noqa: BLE001 - any undecodable body
            continue
        if isinstance(doc, dict) and isinstance(doc.get("reason"), str):
            return doc["reason"], doc.get("maybe_stored") is True
    return "?", False


async def _device(start_s: float, pace_s: float, posts: list[_Post], host: str, port: int,
                  ctx: ssl.SSLContext | None, t0: float, out: Result, rng: random.Random) -> None:
    loop = asyncio.get_running_loop()
    sched = t0 + start_s
    await asyncio.sleep(max(0.0, sched - time.perf_counter()))
    transport: Any = None
    proto: _Client | None = None
    i = attempts = 0
    maybe_stored = False     # a 503 said this post's frames may have been stored: `duplicate` is right
    phase = "connect"
    while i < len(posts):
        post = posts[i]
        if pace_s:
            sched = max(sched, t0 + start_s + i * pace_s)
            await asyncio.sleep(max(0.0, sched - time.perf_counter()))
        try:
            if transport is None or proto is None or proto.closed is not None:
                phase = "connect"
                t = time.perf_counter()
                if attempts == 0:
                    out.phases["lag"].append(t - sched)
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                try:
                    await loop.sock_connect(sock, (host, port))
                except BaseException:
                    sock.close()
                    raise
                t1 = time.perf_counter()
                phase = "handshake"
                transport, proto = await loop.create_connection(
                    _Client, sock=sock, ssl=ctx, server_hostname="localhost" if ctx else None)
                t2 = time.perf_counter()
                out.connections += 1
                if attempts == 0:
                    out.phases["connect"].append(t1 - t)
                    out.phases["handshake"].append(t2 - t1)
            phase = "answer"
            assert proto is not None
            proto.waiter = loop.create_future()
            sent = time.perf_counter()
            transport.write(post.request)
            status, body, done = await proto.waiter
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError) as e:
            if transport is not None:
                transport.abort()
            transport = proto = None
            attempts += 1
            out.retries += 1
            _count(out.retry_reasons, f"{phase}: {type(e).__name__}")
            if attempts >= MAX_ATTEMPTS:
                out.errors.append(f"gave up after {attempts} tries: {e!r}")
                return
            await asyncio.sleep(0.05 + rng.random() * 0.2)
            continue
        if status == 503:
            transport.close()
            transport = proto = None
            attempts += 1
            out.retries += 1
            reason, maybe = _reason(body)
            maybe_stored = maybe_stored or maybe
            _count(out.retry_reasons, f"503 {reason}" + (" (may have been stored)" if maybe else ""))
            if attempts >= MAX_ATTEMPTS:
                out.errors.append(f"gave up after {attempts} tries: 503")
                return
            await asyncio.sleep(0.05 + rng.random() * 0.2)
            continue
        wrong = check_answer(post, status, body, duplicate_ok=maybe_stored)
        if wrong is None and proto is not None and proto.stray:
            wrong = "bytes after the answer that answer nothing"
        if wrong is not None:
            out.errors.append(wrong)
            transport.abort()
            return
        attempts = 0
        maybe_stored = False
        out.latencies.setdefault(post.tag, []).append(done - sched)
        out.phases["answer"].append(done - sent)
        out.posts += 1
        out.per_port[port] = out.per_port.get(port, 0) + 1
        out.frames += len(post.expect)
        i += 1
        if not pace_s:
            sched = done      # closed loop: the next POST is due as this answer arrives
    if transport is not None:
        transport.close()


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _child(plans: list[tuple[int, Plan]], host: str, ports: list[int], ca_pem: str | None,
           conn: Any) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ready = [(i, p, [prepare(*post) for post in p.posts]) for i, p in plans]
    ctx = ssl.create_default_context(cadata=ca_pem) if ca_pem is not None else None
    out = Result(phases={k: [] for k in PHASES})
    conn.send("ready")
    t0 = conn.recv()       # a time.perf_counter() instant shared by every process (CLOCK_MONOTONIC)
    c1 = time.process_time()
    w1 = runqueue_wait_s()
    rng = random.Random(plans[0][0] if plans else 0)
    loop = _new_loop()

    async def main() -> None:
        await asyncio.gather(*(_device(p.start_s, p.pace_s, posts, host, ports[i % len(ports)],
                                       ctx, t0, out, rng) for i, p, posts in ready))

    loop.run_until_complete(main())
    out.wall_s = time.perf_counter() - t0
    out.client_cpu_s = time.process_time() - c1
    out.client_wait_s = runqueue_wait_s() - w1
    conn.send(out)
    conn.close()
    os._exit(0)      # nothing of the forked parent's state to tear down


def drive(plans: list[Plan], host: str, ports: int | Sequence[int], ca_pem: str | None,
          procs: int = 1) -> Result:
    """Run the plans in `procs` forked processes (device i in process i % procs);
    return what they measured, together. ports: one receiver's, or several
    (device i goes to ports[i % len(ports)]). client_cpu_s counts only the run,
    not building the requests."""
    ports = [ports] if isinstance(ports, int) else list(ports)
    procs = max(1, min(procs, len(plans)))
    mp = multiprocessing.get_context("fork")
    pipes, children = [], []
    for k in range(procs):
        parent, child = mp.Pipe()
        share = [(i, p) for i, p in enumerate(plans) if i % procs == k]
        proc = mp.Process(target=_child, args=(share, host, ports, ca_pem, child), daemon=True)
        proc.start()
        child.close()
        pipes.append(parent)
        children.append(proc)
    try:
        for parent in pipes:
            try:
                if parent.recv() != "ready":
                    raise EOFError
            except EOFError:
                raise RuntimeError("a load generator process failed before the run "
                                   "(its traceback is above)") from None
        t0 = time.perf_counter() + 0.05
        for parent in pipes:
            parent.send(t0)
        out = Result(phases={k: [] for k in PHASES}, procs=procs)
        for parent in pipes:
            out.merge(parent.recv())
    finally:
        for proc in children:
            proc.join(30)
    return out
