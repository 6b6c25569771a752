# Check-in frames with a visit (keys 31 visit, 32 due, 33 dur), the new trig
# values (3 check-in-overdue, 4 no-motion, 5 man-down), and the key masks in
# two halves: every mask is a small int on the device (31 bits), so the
# schema check allocates no big int for keys up to 37 (docs/frames.md).
from fwtest import raises
from sotto import ed25519, frames

KID = b"SOTTO-42"
SIGNER = []
LOC = frames.pack_location(515007000, -1277000, 12, 3, frames.SRC_GNSS)


def _signer():
    if not SIGNER:
        key = ed25519.SigningKey(bytes(range(32)))
        SIGNER.append((frames.FrameSigner(KID, key), key.public_key))
    return SIGNER[0]


def _checkin(**extra):
    f = {frames.K_T: frames.CHECK_IN, frames.K_SEQ: 9, frames.K_TIME: 1790000000, frames.K_UP: 5000,
         frames.K_BATT: 80}
    for k, v in extra.items():
        f[int(k[1:])] = v
    return f


def test_check_in_with_a_visit_signs_and_verifies():
    signer, pub = _signer()
    for extra in (dict(k31=1, k32=1790001800, k33=1800, k6=LOC), dict(k31=7, k32=0, k33=0),
                  dict(k31=2**32 - 1, k32=1790000000, k33=604800)):
        wire = signer.sign(_checkin(**extra))
        fields = frames.verify(wire, pub)[1]
        for k, v in extra.items():
            assert fields[int(k[1:])] == v
    # a check-in without a visit is still valid (the old form)
    assert frames.verify(signer.sign(_checkin(k6=LOC)), pub)[1][frames.K_T] == frames.CHECK_IN


def test_check_in_sizes_against_one_sms():
    # keys 24 and up take two bytes each in CBOR: docs/frames.md gives these figures.
    # Check-ins never go by SMS (sotto.modem.fallback sends alert-start, location
    # and duress frames), so passing 140 bytes costs nothing; the sizes are pinned.
    signer, _ = _signer()
    loc = frames.pack_location(-900000000, -1800000000, 65535, 65535, frames.SRC_LAST_KNOWN)
    f = _checkin(k6=loc, k31=2**32 - 1, k32=2**32 - 1, k33=604800, k10=7)
    f[frames.K_SEQ] = f[frames.K_TIME] = f[frames.K_UP] = 2**32 - 1
    f[frames.K_BATT] = 100
    assert len(signer.sign(f)) == 149  # every field at its widest: over one SMS
    f = _checkin(k6=loc, k31=65535, k32=2**32 - 1, k33=65535)  # a visit under 18 h
    f[frames.K_SEQ] = f[frames.K_TIME] = f[frames.K_UP] = 2**32 - 1
    f[frames.K_BATT] = 100
    assert len(signer.sign(f)) == 143


def test_visit_fields_come_together_and_only_in_check_ins():
    for extra in (dict(k31=1), dict(k31=1, k32=5), dict(k32=5, k33=5), dict(k33=0)):
        f = _checkin(**extra)
        f[frames.K_V] = 1
        e = raises(frames.FrameError, frames.check_fields, f)
        assert e.code == "missing-field", extra
    hb = {frames.K_V: 1, frames.K_T: frames.HEARTBEAT, frames.K_SEQ: 1, frames.K_TIME: 0, frames.K_UP: 0,
          frames.K_BATT: 5, frames.K_HB: 900, frames.K_VISIT: 1, frames.K_DUE: 0, frames.K_DUR: 0}
    assert raises(frames.FrameError, frames.check_fields, hb).code == "bad-field"
    for k, v in ((31, 0), (33, 604801), (32, -1), (31, "1")):
        f = _checkin(k31=1, k32=1, k33=1)
        f[frames.K_V] = 1
        f[k] = v
        assert raises(frames.FrameError, frames.check_fields, f).code == "bad-field", (k, v)


def test_keys_without_a_meaning_here_are_refused_by_reason():
    for k in (24, 29, 30, 34, 37, 38, 64):
        f = _checkin()
        f[frames.K_V] = 1
        f[k] = 1
        assert raises(frames.FrameError, frames.check_fields, f).code == "bad-field", k


def test_trig_values_of_the_automatic_alerts():
    signer, pub = _signer()
    for trig in (frames.TRIG_CHECKIN, frames.TRIG_NO_MOTION, frames.TRIG_MAN_DOWN):
        f = {frames.K_T: frames.ALERT_START, frames.K_SID: 4, frames.K_SEQ: 3, frames.K_TIME: 0,
             frames.K_UP: 0, frames.K_BATT: 50, frames.K_TRIG: trig}
        assert frames.verify(signer.sign(f), pub)[1][frames.K_TRIG] == trig
    assert (frames.TRIG_CHECKIN, frames.TRIG_NO_MOTION, frames.TRIG_MAN_DOWN) == (3, 4, 5)
    f = {frames.K_V: 1, frames.K_T: frames.ALERT_START, frames.K_SID: 4, frames.K_SEQ: 3, frames.K_TIME: 0,
         frames.K_UP: 0, frames.K_BATT: 50, frames.K_TRIG: 6}
    assert raises(frames.FrameError, frames.check_fields, f).code == "bad-field"


def test_every_key_mask_is_a_small_int_on_the_device():
    small = 1 << 30  # MicroPython's small ints on a 32-bit port: below 2**30
    for t, (req, opt) in frames._SCHEMA.items():
        assert 0 <= req < small and 0 <= opt < small, t
    for t, (req, opt) in frames._SCHEMA_HI.items():
        assert 0 <= req < small and 0 <= opt < small, t
    # the high mask holds keys up to 37 (and beyond) as small ints too
    assert frames._hbits(30, 31, 32, 33, 34, 35, 36, 37) < small
    assert raises(ValueError, frames._bits, 30)
    assert frames._keys(0, frames._hbits(31, 33)) == [31, 33]


def test_high_keys_cost_no_allocation_in_the_check():
    # In MicroPython (the VM lane) a mask bit at 30 or above would be a big int on
    # the heap at every `|=`: the visit keys must cost what low keys cost. Under
    # CPython every int is an object, so only the VM measures this.
    import gc
    import sys

    if sys.implementation.name != "micropython":
        return
    plain = _checkin(k6=LOC)
    plain[frames.K_V] = 1
    visit = _checkin(k31=5, k32=1790001800, k33=1800)
    visit[frames.K_V] = 1

    def cost(fields, n=50):
        frames.check_fields(fields)  # warm: anything made once is made now
        gc.collect()
        before = gc.mem_alloc()
        for _ in range(n):
            frames.check_fields(fields)
        return gc.mem_alloc() - before

    a, b = cost(plain), cost(visit)
    # the visit frame has three keys where the plain one has one (loc): the loop
    # over the map allocates the same iterator; no big ints
    assert b <= a + 16, (a, b)
