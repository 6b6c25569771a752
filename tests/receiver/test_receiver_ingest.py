"""Ingest: verification with a reason for every rejection, duplicates, the hash
chain as frames arrive in any order, durable answers (host_tools.receiver.ingest)."""

from __future__ import annotations

import hashlib
import itertools
import random
from pathlib import Path
from typing import Any

import cbor2
import framefactory as ff
import pytest
from conftest import LOC, Clock, device, loc, statuses

from host_tools import storage  # noqa: E402
from host_tools.frames import decode_frame
from host_tools.receiver.alerts import chain_status, get_alert
from host_tools.receiver.evidence import analyse_chain
from host_tools.receiver.ingest import Receiver, StorageUnavailable
from host_tools.registry import Registry
from host_tools.registry import connect as db_connect  # noqa: E402


def _count(db: Path, sql: str, *args: Any) -> int:
    conn = db_connect(db)
    try:
        return int(conn.execute(sql, args).fetchone()[0])
    finally:
        conn.close()


def _stored(db: Path) -> int:
    return _count(db, "SELECT count(*) FROM frames")


def _chain(db: Path, alert_id: int = 1) -> str:
    conn = db_connect(db)
    try:
        return get_alert(conn, alert_id).chain.state
    finally:
        conn.close()


# -- every reason code -----------------------------------------------------------------------------


def _payload(d: ff.DeviceSim, ftype: int, extra: dict[int, Any] | None = None,
             in_alert: bool = True) -> dict[int, Any]:
    fields = d._common(ftype, in_alert)
    fields.update(extra or {})
    return fields


def _bad_frames(d: ff.DeviceSim, clock: Clock) -> dict[str, bytes]:
    d.alert_start(loc=LOC)
    stranger = device(b"SOTTO-77")
    audio = bytes(range(256)) * 4
    good_audio = d.audio(audio, 0, 2048)
    sig_flip = bytearray(d.location(LOC))
    sig_flip[-1] ^= 1
    no_kid = ff.sign1_raw(d.key, ff.canonical({1: -8}), ff.canonical(_payload(d, ff.LOCATION, {6: LOC})))
    extra_param = ff.sign1_raw(d.key, ff.canonical({1: -8, 3: 0, 4: d.kid}),
                               ff.canonical(_payload(d, ff.LOCATION, {6: LOC})))
    audio_fields = {11: 1, 12: 8000, 13: 0, 14: hashlib.sha256(audio).digest(), 15: [0, 0], 16: 2048}
    future = device(b"SOTTO-42", t0=int(clock()) + 400)
    future.seed = d.seed
    future.seq = 900
    return {
        "malformed-cbor": b"\xd2\x84\x4d\xa2",
        "not-cose-sign1": cbor2.dumps({"hello": 1}),
        "bad-protected-header": extra_param,
        "unsupported-alg": ff.resign(d, _payload(d, ff.LOCATION, {6: LOC}), alg=-7),
        "missing-kid": no_kid,
        "unknown-device": stranger.heartbeat(),
        "bad-signature": bytes(sig_flip),
        "audio-missing": ff.resign(d, _payload(d, ff.AUDIO, audio_fields)),
        "audio-unexpected": ff.resign(d, _payload(d, ff.LOCATION, {6: LOC}), audio=audio),
        "audio-digest-mismatch": good_audio[:-1] + bytes([good_audio[-1] ^ 1]),
        "unsupported-version": ff.resign(d, _payload(d, ff.LOCATION, {0: 2, 6: LOC})),
        "unknown-frame-type": ff.resign(d, _payload(d, 42, {6: LOC})),
        "missing-field": ff.resign(d, _payload(d, ff.LOCATION)),
        "bad-field": ff.resign(d, _payload(d, ff.HEARTBEAT, {7: 101, 17: 60}, in_alert=False)),
        "time-in-future": future.heartbeat(),
        "too-large": d.audio(bytes(70_000), 0, 140_000),
    }


def test_every_reason_code_is_given_and_nothing_invalid_is_stored(receiver: Receiver, db: Path,
                                                                  dev: ff.DeviceSim, clock: Clock) -> None:
    bad = _bad_frames(dev, clock)
    before = _stored(db)
    answer = receiver.ingest(list(bad.values()))
    got = {code: (r.status, r.reason) for code, r in zip(bad, answer.results, strict=True)}
    assert got == {code: ("rejected", code) for code in bad}
    assert all(r.detail for r in answer.results)        # and a detail for people
    assert _stored(db) == before
    logged = {r: n for r,
              n in db_connect(db).execute("SELECT reason, count(*) FROM rejections GROUP BY reason")}
    assert logged == {code: 1 for code in bad}
    decodable = answer.results[list(bad).index("unknown-device")]
    assert decodable.device == b"SOTTO-77" and decodable.seq == 1
    assert answer.results[0].device is None and answer.results[0].seq is None


def test_one_bad_frame_does_not_stop_the_others(receiver: Receiver, dev: ff.DeviceSim) -> None:
    a, b = dev.alert_start(loc=LOC), dev.location(LOC)
    answer = receiver.ingest([a, b"\x00", b])
    assert statuses(answer) == ["accepted", "rejected", "accepted"]


# -- duplicates --------------------------------------------------------------------------------------


def test_a_retried_batch_is_harmless(receiver: Receiver, db: Path, dev: ff.DeviceSim) -> None:
    batch = [dev.alert_start(loc=LOC), dev.location(LOC), dev.audio(b"\x12" * 400, 0, 800)]
    first = receiver.ingest(batch)
    again = receiver.ingest(batch)
    partly = receiver.ingest(batch[1:] + [dev.location(LOC)])
    inside = receiver.ingest([dev.location(LOC)] * 2)
    assert statuses(first) == ["accepted"] * 3
    assert statuses(again) == ["duplicate"] * 3
    assert [(r.device, r.seq) for r in again.results] == [(dev.kid, 1), (dev.kid, 2), (dev.kid, 3)]
    assert statuses(partly) == ["duplicate", "duplicate", "accepted"]
    assert statuses(inside) == ["accepted", "duplicate"]
    assert _stored(db) == 5
    assert get_alert(db_connect(db), 1).frames == 5


def test_a_stored_frame_is_still_a_duplicate_after_its_key_was_rotated(receiver: Receiver, db: Path,
                                                                        dev: ff.DeviceSim) -> None:
    frame = dev.alert_start(loc=LOC)
    assert statuses(receiver.ingest([frame])) == ["accepted"]
    with Registry(db, clock=lambda: dev.time + 0.5) as reg:       # rotated just after the frame
        reg.rotate(dev.kid, device(b"OTHER-01").public_key)
    # the answer was lost; the device sends it again after the technician rotated its key
    assert statuses(receiver.ingest([frame])) == ["duplicate"]
    late = receiver.ingest([dev.location(LOC)])                   # dated after the rotation
    assert late.results[0].reason == "revoked-device"


def test_a_different_frame_reusing_a_seq_is_kept_and_flagged(receiver: Receiver, db: Path,
                                                            dev: ff.DeviceSim) -> None:
    receiver.ingest([dev.alert_start(loc=LOC), dev.location(loc(1))])
    dev.seq -= 1       # the device's counter went back (it must never): a different frame, same seq
    answer = receiver.ingest([dev.location(loc(2))])
    assert statuses(answer) == ["accepted"]
    assert _count(db, "SELECT count(*) FROM frames WHERE seq = 2") == 2
    assert get_alert(db_connect(db), 1).seq_reused == 1


# -- the hash chain -------------------------------------------------------------------------------


def _alert(d: ff.DeviceSim) -> list[bytes]:
    return [d.alert_start(loc=LOC), d.location(loc(1)), d.audio(b"\x21" * 100, 0, 200), d.duress(loc(2)),
            d.location(loc(3)), d.end(why=2)]


def test_frames_in_any_order_make_a_complete_chain_only_when_all_are_there(db: Path, clock: Clock) -> None:
    orders = list(itertools.permutations(range(6)))
    rng = random.Random(3)
    chosen = [orders[0], orders[-1]] + rng.sample(orders, 14)
    devices = [device(b"PERM-%03d" % i) for i in range(len(chosen))]
    with Registry(db) as reg:
        for d in devices:
            reg.add(d.kid, d.public_key)
    with Receiver(db, clock=clock) as r:
        conn = db_connect(db)
        for d, order in zip(devices, chosen, strict=True):
            frames = _alert(d)
            seen = []
            for i in order:
                result = r.ingest([frames[i]]).results[0]
                seen.append(get_alert(conn, result.alert_id).chain.state)
            assert seen[-1] == "complete", order
            assert "complete" not in seen[:-1], order
            assert get_alert(conn, result.alert_id).duress


def test_a_gap_is_reported_and_closes_when_the_frame_arrives(receiver: Receiver, db: Path,
                                                            dev: ff.DeviceSim) -> None:
    start, l1, l2, l3, end = (dev.alert_start(loc=LOC), dev.location(loc(1)), dev.location(loc(2)),
                              dev.location(loc(3)), dev.end())
    receiver.ingest([start, l1, l3, end])
    conn = db_connect(db)
    a = get_alert(conn, 1)
    assert a.chain.state == "gap"
    assert a.chain.gap_before == (4,)
    assert "frames missing before seq 4 (the frame before it that arrived is seq 2)" in a.chain.summary
    receiver.ingest([l2])                 # e.g. it came late, by SMS
    assert get_alert(conn, 1).chain.state == "complete"


def test_a_missing_alert_start_is_a_gap(receiver: Receiver, db: Path, dev: ff.DeviceSim) -> None:
    start = dev.alert_start(loc=LOC)
    receiver.ingest([dev.location(loc(1)), dev.end()])
    conn = db_connect(db)
    assert "alert-start frame has not arrived" in get_alert(conn, 1).chain.summary
    receiver.ingest([start])
    assert get_alert(conn, 1).chain.state == "complete"


def test_two_frames_naming_the_same_predecessor_break_the_chain(receiver: Receiver, db: Path,
                                                               dev: ff.DeviceSim) -> None:
    receiver.ingest([dev.alert_start(loc=LOC)])
    fork_point = dev.prev
    receiver.ingest([dev.location(loc(1))])
    dev.prev = fork_point
    receiver.ingest([dev.location(loc(2)), dev.end()])
    a = get_alert(db_connect(db), 1)
    assert a.chain.state == "broken"
    assert "frames seq 2, 3 all claim the same previous frame" in a.chain.summary


def test_frames_after_the_end_frame_break_the_chain(receiver: Receiver, db: Path, dev: ff.DeviceSim) -> None:
    receiver.ingest([dev.alert_start(loc=LOC), dev.end(), dev.location(loc(1))])
    assert "came after the end frame" in get_alert(db_connect(db), 1).chain.summary


def test_the_counters_kept_as_frames_arrive_agree_with_the_chain_recomputed_from_scratch(db: Path,
                                                                                      clock: Clock) -> None:
    rng = random.Random(11)
    devices = [device(b"PROP-%03d" % i) for i in range(30)]
    with Registry(db) as reg:
        for d in devices:
            reg.add(d.kid, d.public_key)
    conn = db_connect(db)
    with Receiver(db, clock=clock) as r:
        for d in devices:
            frames = [d.alert_start(loc=LOC)] + [d.location(loc(i)) for i in range(rng.randint(1, 6))]
            if rng.random() < 0.3:           # a fork
                d.prev = ff.chain_link(frames[rng.randrange(len(frames))])
                frames.append(d.location(loc(9)))
            if rng.random() < 0.7:
                frames.append(d.end())
            sent = rng.sample(frames, rng.randint(1, len(frames)))
            while sent:
                n = rng.randint(1, len(sent))
                answer = r.ingest(sent[:n])
                sent = sent[n:]
            alert_id = answer.results[0].alert_id
            row = conn.execute("SELECT starts, dangling, forks, frames FROM alerts WHERE alert_id = ?",
                               (alert_id,)).fetchone()
            wires = [bytes(w) for (w,) in conn.execute("SELECT wire FROM frames WHERE alert_id = ?",
                                                       (alert_id,))]
            scratch = analyse_chain([decode_frame(w) for w in wires])
            assert chain_status(conn, alert_id, *row).state == scratch.state


# -- answers ------------------------------------------------------------------------------------------


def test_closed_alerts_are_told_to_their_device_only_until_it_ends_them(receiver: Receiver, db: Path,
                                                                       dev: ff.DeviceSim) -> None:
    from host_tools.receiver.alerts import close

    other = device(b"SOTTO-43")
    with Registry(db) as reg:
        reg.add(other.kid, other.public_key)
    receiver.ingest([dev.alert_start(loc=LOC), other.alert_start(loc=LOC)])
    close(db_connect(db), 1, operator="Bob", outcome="officer safe")
    mine = receiver.ingest([dev.location(LOC)])
    theirs = receiver.ingest([other.location(LOC)])
    nobody = receiver.ingest([b"\x00"])
    ended = receiver.ingest([dev.end(why=2)])
    later = receiver.ingest([dev.heartbeat()])
    assert mine.closed == [dev.sid] and mine.to_wire()["closed"] == [1]
    assert theirs.closed == [] and "closed" not in theirs.to_wire()
    assert nobody.closed == []
    assert ended.closed == [] and later.closed == []


def test_the_answer_is_what_the_device_firmware_parses(receiver: Receiver, dev: ff.DeviceSim,
                                                       clock: Clock) -> None:
    from sotto.modem import http as device_http

    frames = [dev.alert_start(loc=LOC), b"\x01", dev.location(LOC)]  # 0x01: a bare integer
    body = receiver.ingest(frames).to_cbor()
    results, time_s, closed = device_http.parse_ack(cbor2.loads(body), 3)   # the device's own checks
    assert [(s, seq) for s, seq, _ in results] == [(device_http.ACCEPTED, 1), (device_http.REJECTED, None),
                                                   (device_http.ACCEPTED, 2)]
    assert results[1][2] == "not-cose-sign1"
    assert time_s == int(clock()) and closed == []


def test_time_in_future_is_judged_against_the_receivers_clock(receiver: Receiver, dev: ff.DeviceSim,
                                                             clock: Clock) -> None:
    dev.time = int(clock()) + 290
    ok = receiver.ingest([dev.heartbeat()])          # 291 s ahead: within 5 minutes
    dev.time = int(clock()) + 400
    late = receiver.ingest([dev.heartbeat()])
    clock.t += 200
    later = receiver.ingest([dev.heartbeat()])        # the same device clock is fine once ours caught up
    assert statuses(ok) == ["accepted"] and late.results[0].reason == "time-in-future"
    assert statuses(later) == ["accepted"]


def test_frames_by_sms_are_marked_and_device_state_is_kept(receiver: Receiver, db: Path,
                                                           dev: ff.DeviceSim) -> None:
    receiver.ingest([dev.heartbeat(battery=55, interval_s=600)])
    receiver.ingest([dev.status(5, battery=40, dropped=7)])
    receiver.ingest([dev.alert_start(loc=LOC)], via="sms", peer="+447700900123")
    conn = db_connect(db)
    via, peer = conn.execute("SELECT via, peer FROM frames WHERE type = 1").fetchone()
    state = conn.execute("SELECT heartbeat_s, battery, status, dropped_total, last_via "
                         "FROM device_state").fetchone()
    assert (via, peer) == ("sms", "+447700900123")
    assert state == (600, 80, 5, 7, "sms")


def test_nothing_is_acknowledged_when_storage_fails(receiver: Receiver, db: Path, dev: ff.DeviceSim) -> None:
    writer = receiver.writer
    real = writer.conn

    class FailingInsert:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def executemany(self, sql: str, rows: Any) -> Any:
            if sql.startswith("INSERT INTO frames"):
                raise storage.OperationalError[0]("disk I/O error")
            return real.executemany(sql, rows)

    frames = [dev.alert_start(loc=LOC), dev.location(LOC)]
    writer.conn = FailingInsert()  # type: ignore[assignment]
    with pytest.raises(StorageUnavailable) as e:
        receiver.ingest(frames)
    unhealthy = receiver.healthy
    writer.conn = real
    retried = receiver.ingest(frames)
    assert "disk I/O error" in str(e.value) and not unhealthy
    assert statuses(retried) == ["accepted", "accepted"]    # not duplicates: nothing was stored before
    assert receiver.healthy and _stored(db) == 2


@pytest.mark.parametrize(("key", "value"), [(4, 2**63), (4, 2**64 - 1), (10, 64), (17, 2**32), (23, 2**40)])
def test_a_value_beyond_its_bound_is_bad_field_never_a_storage_failure(receiver: Receiver, dev: ff.DeviceSim,
                                                                       key: int, value: int) -> None:
    """Every integer is bounded (docs/frames.md): what would not fit the store is refused first."""
    fields = {0: 1, 1: 7, 3: 77, 4: 1_790_000_000, 5: 1000, 7: 80, 17: 900, key: value}
    wire = ff.resign(dev, fields)
    result = receiver.ingest([wire]).results[0]
    assert (result.status, result.reason) == ("rejected", "bad-field")
    assert receiver.healthy
