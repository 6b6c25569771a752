"""The console's live queue carries the open timed check-in visits (overdue
first, no location), as `sotto alerts list` does."""

from __future__ import annotations

from pathlib import Path

import framefactory as ff
from console_support import NOW, make_device

from host_tools.receiver.ingest import Receiver
from host_tools.receiver.queue import live_queue
from host_tools.receiver.store import open_db
from host_tools.registry import Registry


def test_the_queue_lists_open_and_overdue_visits(tmp_path: Path) -> None:
    db = tmp_path / "receiver.db"
    a, b = make_device(b"SOTTO-70"), make_device(b"SOTTO-71")
    with Registry(db) as reg:
        reg.add(a.kid, a.public_key, officer="A. One")
        reg.add(b.kid, b.public_key, officer="B. Two")
    with Receiver(db, clock=lambda: NOW) as rx:
        rx.ingest([ff.check_in(a, loc=ff.pack_location(1, 2, 8, 1, 1), visit=(1, 0, 1800)),
                   ff.check_in(b, visit=(4, 0, 60)), ff.check_in(b, visit=(3, 0, 0))])
    conn = open_db(db)
    try:
        q = live_queue(conn, now=NOW + 120)
    finally:
        conn.close()
    got = [(v["device"], v["visit"], v["state"], v["left_s"]) for v in q["visits"]]
    assert got == [("SOTTO-71", 4, "overdue", -60.0), ("SOTTO-70", 1, "open", 1680.0)]
    assert all("lat" not in v and "location" not in v for v in q["visits"])
