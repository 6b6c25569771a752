# The store-and-forward queue: order, acknowledgement, drop policy, flash full,
# recovery of torn records, frames kept on flash (not in RAM), and the capacity
# for a day of heartbeats plus a whole alert, with real signed frames.
# (Power cuts at every write of a whole alert: test_queue_powerloss.py.)
import hashlib

from faultstorage import FaultStorage
from fwtest import raises, tmpdir
from sotto import config, ed25519, frames
from sotto.queue import FrameQueue, QueueFull, record_bytes
from sotto.storage import Storage, StorageError

A, L, AU, C, D, E, H, CI, ST = (frames.ALERT_START, frames.LOCATION, frames.AUDIO, frames.CANCEL,
                                frames.DURESS, frames.END, frames.HEARTBEAT, frames.CHECK_IN,
                                frames.STATUS)
REC = record_bytes(60)  # what one 60-byte test frame counts against max_bytes


def wire(seq, size=60):
    b = bytearray(size)
    for i in range(size):
        b[i] = (seq * 31 + i) & 0xFF
    return bytes(b)


def store(root=None, max_bytes=262144):
    s = Storage(root or tmpdir("q"))
    s.fsync = False
    return FrameQueue(s, max_bytes)


def order(q):
    return [s for s, _ in q.batch(1000, 10 ** 7)]


def test_push_batch_ack_in_delivery_order():
    q = store()
    assert q.push(wire(1), H, 1) is True
    q.push(wire(2), L, 2)
    q.push(wire(3), A, 3)
    q.push(wire(4), AU, 4)
    q.push(wire(5), A, 5)  # a second alert's start
    assert order(q) == [3, 5, 1, 2, 4]  # alert-starts first, then by seq
    assert q.batch(10, 10 ** 6)[0][1] == wire(3)
    assert [s for s, _ in q.batch(2, 10 ** 6)] == [3, 5]
    q.ack([3, 1])
    assert order(q) == [5, 2, 4] and len(q) == 3
    assert q.newest(L) == wire(2) and q.newest(C) is None
    q.ack([3, 99])  # already gone, never queued: nothing happens
    assert len(q) == 3 and q.max_seq() == 5


def test_batch_respects_bytes_but_always_gives_one():
    q = store()
    for s in range(1, 6):
        q.push(wire(s, 1000), AU, s)
    assert len(q.batch(10, 2500)) == 2
    assert len(q.batch(10, 10)) == 1
    assert q.batch(0, 10 ** 6) == []


def test_frames_survive_a_reboot():
    root = tmpdir("q")
    q = store(root)
    for s in range(1, 4):
        q.push(wire(s), L, s)
    q.push(wire(4), A, 4)
    q.ack([2])
    q2 = store(root)
    assert q2.recover() == 3
    assert order(q2) == [4, 1, 3] and q2.max_seq() == 4
    assert q2.used_bytes == q.used_bytes == 3 * REC
    assert dict(q2.batch(10, 10 ** 6))[3] == wire(3)


def _bytes_held(obj, depth=0):
    """Bytes of frame data reachable from obj through lists, tuples, dicts and
    instance attributes (the storage object excepted)."""
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return len(obj)
    if depth > 4:
        return 0
    if isinstance(obj, dict):
        items = list(obj.values())
    elif isinstance(obj, (list, tuple)):
        items = obj
    elif isinstance(obj, FrameQueue):
        items = [v for k, v in obj.__dict__.items() if k != "storage"]
    else:
        return 0
    n = 0
    for v in items:
        n += _bytes_held(v, depth + 1)
    return n


def test_frames_are_read_from_flash_not_kept_in_ram():
    q = store()
    q.push(wire(1, 100), L, 1)
    # replace the record on flash behind the queue's back: batch must return the flash copy
    other = store(q.storage.root)
    other.push(wire(77, 100), L, 1)
    assert q.batch(1, 10 ** 6)[0][1] == wire(77, 100)
    q = store(max_bytes=10 ** 7)
    try:
        import tracemalloc  # CPython: count the heap too
    except ImportError:
        tracemalloc = None  # the VM's gc.mem_alloc counts garbage a collection left (conservative GC)
    if tracemalloc is not None:
        tracemalloc.start()
    for s in range(1, 61):
        q.push(wire(7, 4000), AU, s)
    if tracemalloc is not None:
        kept = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        assert kept < 30000, kept  # the index, not 240 KB of frames
    assert _bytes_held(q) == 0 and len(q) == 60
    assert len(q.batch(60, 10 ** 7)) == 60 and _bytes_held(q) == 0


def test_full_queue_drops_heartbeats_audio_then_locations_never_alert_frames():
    q = store(max_bytes=20 * REC)  # room for 20 test frames
    q.push(wire(1), A, 1)
    seq = 2
    for t in (AU, L, AU, ST, L, H, AU, L, CI, C, D, E, H):
        q.push(wire(seq), t, seq)
        seq += 1
    for t in (L, L, L, L, L, L):  # 20 frames: full
        q.push(wire(seq), t, seq)
        seq += 1
    assert len(q) == 20 and q.dropped == 0
    q.push(wire(seq), L, seq)  # drops the oldest heartbeat
    assert q.dropped_by_type == {H: 1} and 7 not in q.seqs()
    for _ in range(5):
        seq += 1
        q.push(wire(seq), L, seq)
    # then the other heartbeat, the status, the three audio chunks (oldest first)
    assert q.dropped_by_type == {H: 2, ST: 1, AU: 3} and q.count(AU) == 0
    seq += 1
    q.push(wire(seq), L, seq)  # then the check-in
    seq += 1
    q.push(wire(seq), L, seq)  # then the oldest location
    assert q.dropped_by_type[CI] == 1 and q.dropped_by_type[L] == 1 and 3 not in q.seqs()
    while seq < 60:
        seq += 1
        q.push(wire(seq), L, seq)
    kept = dict(q.batch(100, 10 ** 7))
    for s, t in ((1, A), (11, C), (12, D), (13, E)):
        assert kept.get(s) == wire(s), "frame %d (type %d) dropped" % (s, t)
    assert q.count(L) == 16 and q.newest(L) == wire(60)  # the newest locations remain
    assert q.used_bytes <= q.max_bytes and q.refused == 0


def test_a_new_frame_never_pushes_out_one_that_outranks_it():
    q = store(max_bytes=4 * REC)
    q.push(wire(1), A, 1)
    q.push(wire(2), L, 2)
    q.push(wire(3), L, 3)
    q.push(wire(4), AU, 4)
    assert q.push(wire(5), AU, 5) is True  # audio makes room from older audio
    assert q.seqs() == [1, 2, 3, 5]
    assert q.push(wire(6), AU, 6) is True
    assert q.push(wire(7), H, 7) is False  # a heartbeat does not push out audio: it is dropped
    assert q.seqs() == [1, 2, 3, 6] and q.refused == 1 and q.dropped == 3
    assert q.dropped_by_type == {AU: 2, H: 1}
    big = wire(8, 2 * 60 + 64)  # needs two records' room: audio 6 and location 2
    assert q.push(big, L, 8) is True
    assert q.seqs() == [1, 3, 8]
    assert q.storage.read("q/00000007.7") is None  # a refused frame leaves nothing on flash


def test_only_undroppable_frames_left_refuses_and_keeps_them():
    q = store(max_bytes=3 * REC)
    for s in range(1, 4):
        q.push(wire(s), A, s)
    e = raises(QueueFull, q.push, wire(4), C, 4)
    assert e.reason == "queue-full" and isinstance(e, StorageError)
    assert q.push(wire(5), AU, 5) is False  # droppable: dropped, not an error
    assert order(q) == [1, 2, 3] and q.used_bytes == 3 * REC
    e = raises(QueueFull, q.push, wire(6, 4 * REC), D, 6)  # larger than the whole queue
    assert e.reason == "queue-full"
    q.ack([2])
    q.push(wire(4), C, 4)  # room again
    assert order(q) == [1, 3, 4]


def test_flash_full_drops_audio_and_keeps_the_alert():
    st = FaultStorage(tmpdir("q"), full_after_bytes=1000)
    q = FrameQueue(st)
    q.push(wire(1, 300), AU, 1)
    q.push(wire(2, 300), AU, 2)
    q.push(wire(3, 300), L, 3)
    assert q.push(wire(4, 300), A, 4) is True  # no room on flash: the oldest audio goes
    assert q.seqs() == [2, 3, 4] and q.dropped == 1
    assert q.push(wire(5, 300), H, 5) is False  # a heartbeat is not worth the audio
    assert q.seqs() == [2, 3, 4] and q.refused == 1


def test_flash_full_with_nothing_to_drop_is_a_clear_error_and_loses_nothing():
    st = FaultStorage(tmpdir("q"), full_after_bytes=700)
    q = FrameQueue(st)
    q.push(wire(1, 300), A, 1)
    q.push(wire(2, 300), C, 2)
    e = raises(StorageError, q.push, wire(3, 300), E, 3)
    assert e.reason == "flash-full" and "flash-full" in str(e)
    assert order(q) == [1, 2] and len(q) == 2
    q2 = FrameQueue(Storage(st.root))
    assert q2.recover() == 2 and q2.torn == 0  # no stray .tmp either


def test_torn_and_misnamed_records_are_dropped_at_boot_and_only_they():
    root = tmpdir("q")
    q = store(root)
    q.push(wire(1), A, 1)
    q.push(wire(2), L, 2)
    q.push(wire(3), L, 3)
    st = q.storage
    raw = st.read("q/00000002.2")
    with open(st.path("q/00000002.2"), "wb") as f:
        f.write(raw[:len(raw) - 9])  # cut short
    with open(st.path("q/00000004.2.tmp"), "wb") as f:
        f.write(b"half a record")
    # a whole record under another record's name: removing seq 9 later would miss it
    with open(st.path("q/00000009.2"), "wb") as f:
        f.write(st.read("q/00000003.2"))
    q2 = store(root)
    assert q2.recover() == 2 and q2.torn == 3
    assert q2.seqs() == [1, 3]
    assert sorted(st.listdir("q")) == ["00000001.1", "00000003.2"]


def test_a_record_damaged_after_boot_is_skipped_and_counted():
    q = store()
    for s in range(1, 4):
        q.push(wire(s), L, s)
    path = q.storage.path("q/00000002.2")
    raw = bytearray(q.storage.read("q/00000002.2"))
    raw[20] ^= 1
    with open(path, "wb") as f:
        f.write(raw)
    assert order(q) == [1, 3] and q.corrupt == 1 and len(q) == 2


def test_frames_stream_off_flash_through_a_small_buffer():
    # what delivery sends: the same frames, order and limits as batch(), in pieces
    q = store()
    q.push(wire(1, 4200), AU, 1)  # an audio frame's size: over eight pieces
    q.push(wire(2), L, 2)
    q.push(wire(3), A, 3)
    q.push(wire(4, 512), L, 4)  # exactly one piece
    types = {1: AU, 2: L, 3: A, 4: L}
    for limits in ((1000, 10 ** 7), (2, 10 ** 7), (1000, 300)):
        want = [(seq, types[seq]) for seq, _ in q.batch(*limits)]
        assert [(e[0], e[1]) for e in q.entries(*limits)] == want
    buf = bytearray(512)
    for seq, ftype, size in q.entries(1000, 10 ** 7):
        got = b"".join([bytes(p) for p in q.pieces(seq, ftype, buf)])
        assert got == wire(seq, size) and got == q.read(seq, ftype)
        h = hashlib.sha256()
        assert q.check(seq, ftype, buf, h) is True
        assert h.digest() == hashlib.sha256(wire(seq, size)).digest()


def test_a_damaged_record_fails_its_check_and_leaves_the_queue():
    q = store()
    for s in range(1, 4):
        q.push(wire(s, 1500), L, s)
    path = q.storage.path("q/00000002.2")
    raw = bytearray(q.storage.read("q/00000002.2"))
    raw[1400] ^= 1  # in the third piece
    with open(path, "wb") as f:
        f.write(raw)
    buf = bytearray(512)
    assert q.check(1, L, buf) and not q.check(2, L, buf) and q.check(3, L, buf)
    assert q.seqs() == [1, 3] and q.corrupt == 1


# -- capacity, with real signed frames ------------------------------------------------
LOC = frames.pack_location(515007000, -1277000, 12, 3, frames.SRC_GNSS)


def real_frames():
    """A day of heartbeats, then a whole alert, as the device signs them (large
    seq, time and uptime values, so every integer takes its widest encoding)."""
    signer = frames.FrameSigner(b"\x00\x00\x00\x00\x00\x00\x00\xa7", ed25519.SigningKey(bytes(range(32))))
    seq = [70000]
    out = []

    def make(t, fields, audio=None):
        seq[0] += 1
        fields[frames.K_T] = t
        fields[frames.K_SEQ] = seq[0]
        fields[frames.K_TIME] = 1790000000 + seq[0]
        fields[frames.K_UP] = 3000000000
        if t in frames.ALERT_TYPES:
            fields[frames.K_SID] = 65535
        out.append((seq[0], t, signer.sign(fields, audio)))

    for _ in range(96):  # 24 h at the default 15 min
        make(H, {frames.K_BATT: 100, frames.K_HB: 900})
    prev = b"\xa5" * 8
    make(A, {frames.K_LOC: LOC, frames.K_BATT: 100, frames.K_TRIG: frames.TRIG_PRESSES})
    chunk = bytes((i * 37) & 255 for i in range(4000))  # 1 s of 8 kHz IMA-ADPCM
    for i in range(30):  # the default 30 s clip
        make(AU, {frames.K_PREV: prev, frames.K_CODEC: frames.CODEC_IMA_ADPCM, frames.K_RATE: 8000,
                  frames.K_OFF: 8000 * i, frames.K_AST: [-32768, 88], frames.K_NS: 8000}, chunk)
    for _ in range(40):  # 10 min of locations at the default 15 s
        make(L, {frames.K_LOC: LOC, frames.K_PREV: prev})
    make(E, {frames.K_PREV: prev, frames.K_WHY: frames.WHY_CENTRE, frames.K_BATT: 100})
    return out


def test_a_day_of_heartbeats_and_a_whole_alert_fit_the_default_queue():
    made = real_frames()
    need = 0
    for _, _, w in made:
        need += record_bytes(len(w))
    max_bytes = config.DEFAULTS["queue_max_bytes"]
    assert need <= max_bytes, (need, max_bytes)
    q = FrameQueue(Storage(tmpdir("cap")), max_bytes)
    q.storage.fsync = False
    for seq, t, w in made:
        assert q.push(w, t, seq) is True
    assert q.dropped == 0 and len(q) == 96 + 1 + 30 + 40 + 1
    assert q.count(AU) == 30 and q.count(L) == 40 and q.count(H) == 96
    got = q.batch(1000, 10 ** 7)
    assert got[0][0] == made[96][0]  # the alert-start goes first
    assert sorted(got) == sorted((s, w) for s, _, w in made)  # every frame back, byte for byte
