"""Poison integers: every integer field of the payload at its edges, through the real
receiver over HTTP. The largest allowed value is stored; one more is refused as
`bad-field` (never a 503), its batch's other frames are stored, and /v1/health stays ok.

The store is SQLite (signed 64-bit integers); the schema bounds every field well
below that (docs/frames.md), so no verified frame can fail the transaction.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import framefactory as ff
import pytest
from conftest import LOC, answer_map, post

from host_tools.receiver.server import RunningServer
from host_tools.registry import connect as db_connect

U32 = 2**32 - 1
BIG = (2**63 - 1, 2**63, 2**64 - 1)       # what SQLite cannot hold, and its edge
PREV = bytes(8)


def _base(ftype: int) -> dict[int, Any]:
    """A valid payload of `ftype` (seq and time are set per case)."""
    common = {0: 1, 1: ftype, 4: 1_790_000_100, 5: 1000}
    extra: dict[int, dict[int, Any]] = {
        ff.ALERT_START: {2: 1, 7: 80, 9: 1, 6: LOC},
        ff.AUDIO: {2: 1, 8: PREV, 11: 1, 12: 8000, 13: 0, 14: bytes(32), 15: [0, 0], 16: 2},
        ff.END: {2: 1, 8: PREV, 20: 1},
        ff.HEARTBEAT: {7: 80, 17: 900},
        ff.STATUS: {7: 80, 18: 5, 19: 0},
        ff.REPLY: {21: 1, 22: 1},
        ff.CHECK_IN: {7: 80, 6: LOC, 31: 1, 32: 1_790_001_900, 33: 1800},
    }
    return {**common, **extra[ftype]}


# (key, name, frame type, largest value the format allows)
FIELDS = [
    (2, "sid", ff.ALERT_START, 0xFFFF),
    (3, "seq", ff.HEARTBEAT, U32),
    (5, "up", ff.HEARTBEAT, U32),
    (7, "batt", ff.HEARTBEAT, 100),
    (9, "trig", ff.ALERT_START, 5),
    (10, "flags", ff.HEARTBEAT, 0x3F),
    (11, "codec", ff.AUDIO, 1),
    (12, "rate", ff.AUDIO, U32),
    (13, "off", ff.AUDIO, U32),
    (16, "ns", ff.AUDIO, U32),
    (17, "hb", ff.HEARTBEAT, U32),
    (18, "st", ff.STATUS, 11),
    (19, "drop", ff.STATUS, U32),
    (20, "why", ff.END, 4),
    (21, "cmd", ff.REPLY, 2**53),
    (22, "res", ff.REPLY, 7),
    (23, "unauth", ff.HEARTBEAT, U32),
    (25, "cfgv", ff.HEARTBEAT, U32),
    (26, "rst", ff.STATUS, 6),
    (27, "boots", ff.STATUS, U32),
    (28, "faults", ff.STATUS, U32),
    (29, "qd", ff.HEARTBEAT, U32),
    (30, "csq", ff.HEARTBEAT, 99),
    (31, "visit", ff.CHECK_IN, U32),
    (32, "due", ff.CHECK_IN, U32),
    (33, "dur", ff.CHECK_IN, 604_800),
    (34, "rx", ff.HEARTBEAT, 1),
    (36, "upd", ff.STATUS, 9),
]


class _Sender:
    def __init__(self, dev: ff.DeviceSim) -> None:
        self.dev = dev
        self.seq = 100

    def frame(self, ftype: int, key: int | None = None, value: Any = None) -> bytes:
        p = _base(ftype)
        self.seq += 1
        p[3] = self.seq
        if ftype == ff.STATUS and key == 18:
            del p[19]                       # drop goes only with st 5
        if key is not None:
            p[key] = value
        if key == 2:
            p[2] = value                    # each sid its own alert
        audio = b"\x00" if ftype == ff.AUDIO else None
        if audio is not None:
            import hashlib
            p[14] = hashlib.sha256(audio).digest()
        return ff.resign(self.dev, p, audio)


def _results(port: int, frames: list[bytes]) -> list[dict[str, Any]]:
    status, _, body = post(port, b"".join(frames))
    assert status == 200, (status, body[:200])
    return list(answer_map(body)["results"])


def _health(port: int) -> str:
    status, _, body = post(port, b"", path="/v1/health", method="GET")
    assert status == 200, body
    return str(json.loads(body)["status"])


@pytest.mark.parametrize("key,name,ftype,top", FIELDS, ids=[f[1] for f in FIELDS])
def test_each_integer_field_at_its_edges(server: RunningServer, dev: ff.DeviceSim, db: Path,
                                         key: int, name: str, ftype: int, top: int) -> None:
    s = _Sender(dev)
    if key == 3:                            # seq itself: the sender's counter is replaced
        ok_frame = ff.resign(dev, {**_base(ftype), 3: top})
        over = [ff.resign(dev, {**_base(ftype), 3: v}) for v in (top + 1, *BIG, -1)]
    else:
        ok_frame = s.frame(ftype, key, top)
        over = [s.frame(ftype, key, v) for v in (top + 1, *BIG, -1)]
    start = s.frame(ff.ALERT_START, 2, 7)   # an alert-start in the same batch as the poison
    results = _results(server.port, [ok_frame, start, *over])
    verdicts = [(r["status"], r.get("reason")) for r in results]
    assert verdicts[0] == ("accepted", None), results[0]
    assert verdicts[1] == ("accepted", None)
    assert verdicts[2:] == [("rejected", "bad-field")] * len(over)
    conn = db_connect(db)
    details = [r[0] for r in conn.execute("SELECT detail FROM rejections ORDER BY rejection_id")]
    assert all(d.startswith(f"{name} ({key})") for d in details), details
    column = {3: "seq", 10: "flags", 13: "audio_off", 16: "audio_ns", 12: "audio_rate", 7: "battery",
              2: "sid"}.get(key)
    if column is not None:
        stored = conn.execute(f"SELECT max({column}) FROM frames").fetchone()[0]
        assert stored == top
    assert conn.execute("SELECT count(*) FROM rejections WHERE reason = 'bad-field'").fetchone()[0] \
        == len(over)
    assert _health(server.port) == "ok"


def test_time_at_its_edges(server: RunningServer, dev: ff.DeviceSim) -> None:
    # time 2^32 - 1 is a valid integer but lies far in the future: time-in-future, not 503
    frames = [ff.resign(dev, {**_base(ff.HEARTBEAT), 3: 1 + i, 4: t}) for i, t in
              enumerate((0, U32, U32 + 1, *BIG))]
    verdicts = [(r["status"], r.get("reason")) for r in _results(server.port, frames)]
    assert verdicts[0][0] == "accepted"             # 1970: accepted (and flagged on an alert)
    assert verdicts[1] == ("rejected", "time-in-future")
    assert verdicts[2:] == [("rejected", "bad-field")] * 4
    assert _health(server.port) == "ok"


def test_the_adpcm_state_at_its_edges(server: RunningServer, dev: ff.DeviceSim) -> None:
    s = _Sender(dev)
    good = [s.frame(ff.AUDIO, 15, v) for v in ([-32768, 0], [32767, 88])]
    bad = [s.frame(ff.AUDIO, 15, v) for v in ([-32769, 0], [32768, 0], [0, 89], [0, 2**64 - 1],
                                              [2**63, 0])]
    verdicts = [(r["status"], r.get("reason")) for r in _results(server.port, good + bad)]
    assert verdicts == [("accepted", None)] * 2 + [("rejected", "bad-field")] * 5
    assert _health(server.port) == "ok"


@pytest.mark.parametrize("key,reason", [(0, "unsupported-version"), (1, "unknown-frame-type")])
def test_version_and_type_beyond_any_store(server: RunningServer, dev: ff.DeviceSim, key: int,
                                           reason: str) -> None:
    frames = [ff.resign(dev, {**_base(ff.HEARTBEAT), 3: 1 + i, key: v}) for i, v in enumerate(BIG)]
    verdicts = [(r["status"], r.get("reason")) for r in _results(server.port, frames)]
    assert verdicts == [("rejected", reason)] * len(BIG)
    assert _health(server.port) == "ok"


def test_every_integer_field_of_the_schema_is_tested_here() -> None:
    # a key added to the schema (docs/frames.md) must get its edges tested above
    from host_tools.frames.schema import _FIELDS

    uints = {k for k, f in _FIELDS.items() if f.kind == "uint"}
    covered = {k for k, *_ in FIELDS} | {0, 1, 4}            # v, t, time: their own tests
    assert uints - covered == set(), f"integer keys without an edge test: {sorted(uints - covered)}"
    tops = {k: top for k, _, _, top in FIELDS}
    assert {k: _FIELDS[k].hi for k in tops} == tops           # the largest value is the schema's
