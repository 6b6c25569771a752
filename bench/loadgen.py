"""A load generator for the receiver benchmarks: many simulated devices on one asyncio
event loop, in a process of its own (so it does not share the benchmark's GIL).

Each device has a plan: when it starts, and the POST bodies it sends over one
keep-alive (TLS) connection, one after another (closed loop) or `pace_s` apart.
With several receivers (ingest nodes on one database), device i talks to
`ports[i % len(ports)]`. Every answer is read and checked: HTTP 200 and every frame `accepted`. A 503
(busy, storage) or a refused connection is retried after a short pause, as a
device would; retries are counted. Per POST it records the answer time (from
the first byte sent to the last byte of the answer read, the attempt that was
accepted) and the time until accepted (from the first attempt, connecting,
retries and their pauses included).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import random
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cbor2

HEAD = (b"POST /v1/frames HTTP/1.1\r\nHost: receiver\r\nContent-Type: application/cbor-seq\r\n"
        b"Content-Length: %d\r\n\r\n")


@dataclass
class Plan:
    start_s: float                      # after the run's start
    posts: list[tuple[bytes, int, str]]  # (body, frames in it, tag)
    pace_s: float = 0.0                 # between POSTs (0: as soon as answered)


@dataclass
class Result:
    wall_s: float = 0.0
    posts: int = 0
    frames: int = 0
    latencies: dict[str, list[float]] = field(default_factory=dict)
    retries: int = 0
    until_accepted: list[float] = field(default_factory=list)   # per POST: first try -> accepted, retries in
    retry_reasons: dict[str, int] = field(default_factory=dict)   # "503 busy", "ConnectionResetError"...
    errors: list[str] = field(default_factory=list)
    client_cpu_s: float = 0.0
    per_port: dict[int, int] = field(default_factory=dict)    # POSTs answered, by receiver port


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    body = await reader.readexactly(length) if length else b""
    return status, body


def _reason(body: bytes) -> str:
    """The reason of a 503 answer (CBOR or JSON {"reason": ...}), or "?"."""
    for load in (cbor2.loads, json.loads):
        try:
            doc = load(body)
        except Exception:  # noqa: BLE001 - any undecodable body
            continue
        if isinstance(doc, dict) and isinstance(doc.get("reason"), str):
            return doc["reason"]
    return "?"


def _count(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1


def _all_accepted(body: bytes, count: int) -> bool:
    signed = cbor2.loads(body)
    results = cbor2.loads(signed.value[2])["results"]
    return len(results) == count and all(r["status"] == "accepted" for r in results)


async def _device(plan: Plan, host: str, port: int, ctx: ssl.SSLContext | None, t0: float,
                  out: Result, rng: random.Random) -> None:
    await asyncio.sleep(max(0.0, t0 + plan.start_s - time.perf_counter()))
    reader = writer = None
    i = 0
    attempts = 0
    first = 0.0
    while i < len(plan.posts):
        body, count, tag = plan.posts[i]
        if attempts == 0:
            first = time.perf_counter()     # a new POST (not a retry): connecting counts in until_accepted
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port, ssl=ctx,
                                                               server_hostname="localhost" if ctx else None)
            assert reader is not None
            t = time.perf_counter()
            writer.write(HEAD % len(body) + body)
            status, answer = await _read_answer(reader)
            took = time.perf_counter() - t
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError) as e:
            if writer is not None:
                writer.close()
            reader = writer = None
            attempts += 1
            out.retries += 1
            _count(out.retry_reasons, type(e).__name__)
            if attempts > 50:
                out.errors.append(f"gave up after {attempts} tries: {e!r}")
                return
            await asyncio.sleep(0.05 + rng.random() * 0.2)
            continue
        if status == 503:
            writer.close()
            reader = writer = None
            attempts += 1
            out.retries += 1
            _count(out.retry_reasons, "503 " + _reason(answer))
            await asyncio.sleep(0.05 + rng.random() * 0.2)
            continue
        if status != 200 or not _all_accepted(answer, count):
            out.errors.append(f"HTTP {status}: {answer[:120]!r}")
            return
        attempts = 0
        out.latencies.setdefault(tag, []).append(took)
        out.until_accepted.append(time.perf_counter() - first)
        out.posts += 1
        out.per_port[port] = out.per_port.get(port, 0) + 1
        out.frames += count
        i += 1
        if plan.pace_s and i < len(plan.posts):
            await asyncio.sleep(plan.pace_s)
    if writer is not None:
        writer.close()


async def _run(plans: list[Plan], host: str, ports: list[int], ca_pem: str | None) -> Result:
    ctx = None
    if ca_pem is not None:
        ctx = ssl.create_default_context(cadata=ca_pem)
    out = Result()
    rng = random.Random(1)
    t0 = time.perf_counter()
    await asyncio.gather(*(_device(p, host, ports[i % len(ports)], ctx, t0, out, rng)
                           for i, p in enumerate(plans)))
    out.wall_s = time.perf_counter() - t0
    return out


def _child(plans: list[Plan], host: str, ports: list[int], ca_pem: str | None, conn: Any) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    c0 = time.process_time()
    out = asyncio.run(_run(plans, host, ports, ca_pem))
    out.client_cpu_s = time.process_time() - c0
    conn.send(out)
    conn.close()
    os._exit(0)      # nothing of the forked parent's state to tear down


def drive(plans: list[Plan], host: str, ports: int | Sequence[int], ca_pem: str | None) -> Result:
    """Run the plans in a forked process; return what it measured. ports: one
    receiver's, or several (device i goes to ports[i % len(ports)])."""
    ports = [ports] if isinstance(ports, int) else list(ports)
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(plans, host, ports, ca_pem, child), daemon=True)
    proc.start()
    child.close()
    try:
        out: Result = parent.recv()
    finally:
        proc.join(30)
    return out
