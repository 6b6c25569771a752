"""Shared pieces of the storage tests (PostgreSQL servers of their own, devices, posts)."""

from __future__ import annotations

import hashlib
import http.client
import sys
from pathlib import Path
from typing import Any

import cbor2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # tests/: framefactory

import framefactory as ff  # noqa: E402


def device(name: bytes, t0: int = 1_790_000_000) -> ff.DeviceSim:
    return ff.DeviceSim(kid=name, seed=hashlib.sha256(b"seed " + name).digest(), time=t0)


def loc(i: int = 0, acc_m: int = 8) -> bytes:
    return ff.pack_location(515007292 + 150 * i, -1246254 + 230 * i, acc_m, 1, ff.SRC_GNSS)


def answer_map(body: bytes) -> dict[str, Any]:
    """The payload of the centre's signed answer (not verified here)."""
    item = cbor2.loads(body)
    assert isinstance(item, cbor2.CBORTag) and item.tag == 18, f"not a signed answer: {body[:40]!r}"
    return dict(cbor2.loads(item.value[2]))


def post(port: int, batch: list[bytes], timeout: float = 30) -> tuple[int, Any]:
    """(status, the answer's payload map) for 200; (status, headers) otherwise."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/v1/frames", b"".join(batch), {"Content-Type": "application/cbor-seq"})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, (answer_map(body) if resp.status == 200 else dict(resp.getheaders()))
    finally:
        conn.close()
