"""A request leaves no reference cycle behind: its job, frames and answer are freed
as soon as it is answered, not left to Python's cyclic garbage collector, whose full
collections under live load held the GIL for 100-290 ms at a time and delayed every
answer in flight (docs/architecture.md, "Garbage")."""

from __future__ import annotations

import gc
import http.client
from pathlib import Path

import framefactory as ff
import pytest
from conftest import LOC, open_answer

from host_tools.receiver.ingest.txn import _Job
from host_tools.receiver.server import ServerConfig, start_in_thread

REQUESTS = 40


def _live_jobs() -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, _Job))


@pytest.mark.parametrize("fast", [True, False])
def test_answered_requests_are_freed_without_the_cycle_collector(db: Path, dev: ff.DeviceSim,
                                                                 fast: bool) -> None:
    rs = start_in_thread(db, ServerConfig(port=0, fast_path=fast))
    conn = http.client.HTTPConnection("127.0.0.1", rs.port, timeout=30)
    answers = []
    was_enabled = gc.isenabled()
    try:
        gc.collect()
        gc.disable()      # only reference counting frees anything from here on
        before = _live_jobs()
        for i in range(REQUESTS):      # keep-alive, one request after another
            body = dev.location(LOC) if i else dev.alert_start(loc=LOC)
            conn.request("POST", "/v1/frames", body, {"Content-Type": "application/cbor-seq"})
            resp = conn.getresponse()
            answers.append((resp.status, open_answer(rs.centre.public_key, body, resp.read())))
        left = _live_jobs() - before
    finally:
        if was_enabled:
            gc.enable()
        conn.close()
        rs.stop()
    assert [status for status, _ in answers] == [200] * REQUESTS
    assert all(a["results"][0]["status"] == "accepted" for _, a in answers)
    # the writer may still hold the last group it stored; nothing older survives
    assert left <= 2, f"{left} of {REQUESTS} answered jobs are still alive: a reference cycle keeps them"
