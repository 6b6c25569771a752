# Sequence numbers and alert ids never repeat: across reboots, power cuts at
# every flash write, a damaged slot; the flash is written in blocks, not per frame.
from faultstorage import FaultStorage
from fwtest import raises, tmpdir
from sotto.counters import SEQ_MAX, SID_MAX, CounterError, Counters
from sotto.storage import Storage


def quiet(root):
    st = Storage(root)
    st.fsync = False
    return st


def test_seqs_never_repeat_across_reboots_and_flash_is_written_in_blocks():
    root = tmpdir("ctr")
    seen = set()
    last = 0
    for boot in range(5):
        c = Counters(quiet(root))
        c.load()
        w0 = c.writes
        for _ in range(100):
            s = c.next_seq()
            assert s not in seen and s > last  # increasing, too: the queue sorts by seq
            seen.add(s)
            last = s
        assert c.writes - w0 <= 2  # 100 frames: one or two blocks of 64, not 100 writes
    assert min(seen) == 1


def test_top_up_keeps_flash_writes_off_the_alert_path():
    c = Counters(quiet(tmpdir("ctr")))
    c.load()
    for _ in range(60):
        c.next_seq()  # 4 left in the boot block
    assert c.top_up() is True
    w = c.writes
    for _ in range(48):  # an alert's first frames
        c.next_seq()
    assert c.writes == w
    assert c.top_up() is False or c.writes == w + 1


def test_seqs_continue_above_the_queue_floor():
    # both slots lost (flash damage) but frames still queued: never reuse their seqs
    c = Counters(quiet(tmpdir("ctr")))
    c.load(floor_seq=5000)
    assert c.next_seq() == 5001


def test_power_cut_at_every_counter_write_never_repeats_a_value():
    root = tmpdir("ctr")
    handed = []  # every value a caller received, over all boots
    sids = []
    n = 1
    while n <= 40:
        st = FaultStorage(root, cut_at=n % 7 + 1, cut_after=bool(n & 1))
        c = Counters(st)
        try:
            c.load()  # floor 0: the queue may be empty, the counters must hold alone
            for i in range(150):
                handed.append(c.next_seq())
                if i % 50 == 49:
                    sids.append(c.next_sid())
                if i % 40 == 0:
                    c.top_up()
        except CounterError as e:
            assert e.reason == "flash" and st.dead
        n += 1
    assert len(handed) == len(set(handed)) and len(handed) > 1000
    assert len(sids) == len(set(sids)) and len(sids) > 20
    c = Counters(quiet(root))
    c.load()
    assert c.next_seq() > max(handed) and c.next_sid() > max(sids)


def test_a_damaged_slot_is_stepped_over():
    root = tmpdir("ctr")
    st = quiet(root)
    c = Counters(st)
    c.load()
    last = [c.next_seq() for _ in range(70)][-1]  # crosses a block: both slots written since boot
    sid = c.next_sid()
    for name in ("ctr.a", "ctr.b"):
        raw = bytearray(st.read(name))
        raw[6] ^= 0x40  # a flipped bit in the newest slot's counters
        st.write_atomic(name, raw)
        c2 = Counters(quiet(root))
        c2.load()
        assert c2.recovered
        assert c2.next_seq() > last and c2.next_sid() > sid
        st.write_atomic(name, bytes(raw[:6]) + bytes([raw[6] ^ 0x40]) + bytes(raw[7:]))  # mend it


def test_both_slots_damaged_continue_above_the_floor():
    root = tmpdir("ctr")
    st = quiet(root)
    c = Counters(st)
    c.load()
    c.next_seq()
    st.write_atomic("ctr.a", b"garbage")
    st.write_atomic("ctr.b", b"")
    c2 = Counters(quiet(root))
    assert c2.load(floor_seq=77) is False and c2.recovered
    assert c2.next_seq() == 78


def test_alert_ids_are_not_spent_by_boots_without_alerts():
    root = tmpdir("ctr")
    for _ in range(50):  # a boot loop
        c = Counters(quiet(root))
        c.load()
        c.top_up()
    c = Counters(quiet(root))
    c.load()
    assert c.next_sid() == 1
    ids = [c.next_sid() for _ in range(6)]
    assert ids == [2, 3, 4, 5, 6, 7]


def test_sequence_space_used_up_is_an_error_not_a_repeat():
    root = tmpdir("ctr")
    c = Counters(quiet(root))
    c.load(floor_seq=SEQ_MAX - 2)
    assert c.next_seq() == SEQ_MAX - 1 and c.next_seq() == SEQ_MAX
    e = raises(CounterError, c.next_seq)
    assert e.reason == "exhausted"
    assert c.top_up() is False
    c2 = Counters(quiet(root))
    c2.load()
    assert raises(CounterError, c2.next_seq).reason == "exhausted"


def test_alert_ids_wrap_after_65535_alerts():
    c = Counters(quiet(tmpdir("ctr")))
    c.load(floor_sid=SID_MAX - 1)
    assert c.next_sid() == SID_MAX
    assert c.next_sid() == 1  # starts again rather than refuse an alert


def test_flash_failure_is_a_counter_error():
    root = tmpdir("ctr")
    st = FaultStorage(root, full_after_bytes=0)
    e = raises(CounterError, Counters(st).load)
    assert e.reason == "flash" and "flash-full" in str(e)
