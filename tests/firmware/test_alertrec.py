# The live alert's record (sotto.alertrec): its bytes, damage, a write the
# power cut between its write and its rename, and what the queue says
# happened after it.
from fwtest import tmpdir
from sotto import alertrec, ed25519, frames
from sotto.queue import FrameQueue
from sotto.storage import TMP, Storage

KID = b"SOTTO-77"
_signer = []


def signer():
    if not _signer:
        _signer.append(frames.FrameSigner(KID, ed25519.SigningKey(b"\x07" * 32)))
    return _signer[0]


def frame(seq, ftype, sid, prev=None):
    f = {frames.K_T: ftype, frames.K_SEQ: seq, frames.K_TIME: 0, frames.K_UP: seq, frames.K_SID: sid}
    if ftype == frames.ALERT_START:
        f[frames.K_BATT] = 50
        f[frames.K_TRIG] = frames.TRIG_HOLD
    else:
        f[frames.K_PREV] = prev
        if ftype == frames.END:
            f[frames.K_WHY] = frames.WHY_CENTRE
        if ftype == frames.LOCATION:
            f[frames.K_LOC] = frames.pack_location(514545000, -25879000, 4, 0, frames.SRC_GNSS)
    return signer().sign(f)


def storage():
    st = Storage(tmpdir("rec"))
    st.fsync = False
    return st


def test_a_record_round_trips_and_damage_is_refused():
    r = alertrec.Record(frames.DURESS, frames.TRIG_PRESSES, True, 513, 1795000000, 70000, 123456, b"L" * 8)
    raw = alertrec.encode(r)
    assert len(raw) == alertrec.SIZE == 30
    back = alertrec.decode(raw)
    got = (back.want, back.trig, back.duress, back.sid, back.utc_s, back.seq, back.elapsed_ms, back.link)
    assert got == (frames.DURESS, frames.TRIG_PRESSES, True, 513, 1795000000, 70000, 123456, b"L" * 8)
    intent = alertrec.decode(alertrec.encode(alertrec.Record(frames.ALERT_START, 1, False, 0, 0, 9)))
    assert intent.sid == 0 and intent.link == b""  # no alert id, no chain yet
    for i in range(len(raw)):
        bad = bytearray(raw)
        bad[i] ^= 0x40
        assert alertrec.decode(bytes(bad)) is None, "byte %d" % i
    assert alertrec.decode(raw[:-1]) is None and alertrec.decode(None) is None


def test_a_whole_record_left_in_tmp_is_the_newer_one_and_a_torn_one_is_not():
    st = storage()
    alertrec.write(st, alertrec.Record(0, 1, False, 4, 0, 10, 0, b"A" * 8))
    newer = alertrec.encode(alertrec.Record(frames.CANCEL, 1, False, 4, 0, 11, 0, b"B" * 8))
    with open(st.path(alertrec.NAME + TMP), "wb") as f:
        f.write(newer[:17])  # torn: the power went mid-write
    assert alertrec.read(st).link == b"A" * 8
    with open(st.path(alertrec.NAME + TMP), "wb") as f:
        f.write(newer)  # whole: the power went before the rename
    r = alertrec.read(st)
    assert r.want == frames.CANCEL and r.link == b"B" * 8
    assert st.read(alertrec.NAME) == newer and not st.exists(alertrec.NAME + TMP)  # the replace finished
    with open(st.path(alertrec.NAME + TMP), "wb") as f:
        f.write(newer)  # stale (a failed write left it): the alert's end takes it too
    alertrec.remove(st)
    assert alertrec.read(st) is None and not st.exists(alertrec.NAME + TMP)


def test_the_queue_after_the_record_says_what_happened():
    st = storage()
    q = FrameQueue(st)
    old = frame(3, frames.ALERT_START, 1)  # an earlier alert, still waiting to be delivered
    q.push(old, frames.ALERT_START, 3)
    q.push(frame(4, frames.CANCEL, 1, frames.chain_link(old)), frames.CANCEL, 4)
    intent = alertrec.Record(frames.ALERT_START, 1, False, 0, 0, 4)
    got = alertrec.find(intent, q)
    assert got.sid == 0 and got.seq == 0  # the earlier alert's alert-start does not count
    start = frame(6, frames.ALERT_START, 2)
    q.push(start, frames.ALERT_START, 6)
    got = alertrec.find(intent, q)
    assert (got.sid, got.seq, got.ftype, got.link) == (2, 6, frames.ALERT_START, frames.chain_link(start))
    loc = frame(9, frames.LOCATION, 2, frames.chain_link(start))
    q.push(loc, frames.LOCATION, 9)
    live = alertrec.Record(0, 1, False, 2, 0, 6, 0, frames.chain_link(start))
    got = alertrec.find(live, q)
    assert got.seq == 9 and got.link == frames.chain_link(loc)  # the queue is ahead of the record
    q.ack([6, 9])
    got = alertrec.find(live, q)
    assert got.seq == 0  # all delivered: the record's own link stands
    end = frame(12, frames.END, 2, frames.chain_link(loc))
    q.push(end, frames.END, 12)
    got = alertrec.find(alertrec.Record(0, 1, False, 2, 0, 9, 0, frames.chain_link(loc)), q)
    assert got.ftype == frames.END and got.types == 1 << frames.END  # the alert is over
