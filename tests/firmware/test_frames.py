# sotto.frames: the payload layer of docs/frames.md. Every frame kind signs and
# verifies, the schema holds, audio travels beside the signature, the hash
# chain links, and a location frame at its widest fits one SMS.
# Runs under CPython and in the MicroPython VM.
import hashlib

from fwtest import raises
from sotto import cbor, cose, ed25519, frames

SEED = bytes(range(32))
KID = b"SOTTO-42"
_STATE = []

LOC = frames.pack_location(515007000, -1277000, 12, 3, frames.SRC_GNSS)
PREV = b"\x01\x02\x03\x04\x05\x06\x07\x08"
BASE = {frames.K_SEQ: 41, frames.K_TIME: 1790000000, frames.K_UP: 600000}


def _signer():
    if not _STATE:
        key = ed25519.SigningKey(SEED)
        _STATE.append((frames.FrameSigner(KID, key), key.public_key))
    return _STATE[0]


def _fields(t, **extra):
    f = dict(BASE)
    f[frames.K_T] = t
    if t in frames.ALERT_TYPES:
        f[frames.K_SID] = 3
    for k, v in extra.items():
        f[int(k[1:])] = v
    return f


# one valid payload (without v) per frame kind
KINDS = [
    (frames.ALERT_START, dict(k6=LOC, k7=80, k9=frames.TRIG_HOLD)),
    (frames.ALERT_START, dict(k7=80, k9=frames.TRIG_PRESSES)),  # no position known
    (frames.LOCATION, dict(k6=LOC, k8=PREV)),
    (frames.CANCEL, dict(k8=PREV, k7=79)),
    (frames.DURESS, dict(k8=PREV, k6=LOC, k10=frames.FLAG_DURESS)),
    (frames.END, dict(k8=PREV, k20=frames.WHY_CENTRE)),
    (frames.HEARTBEAT, dict(k7=64, k17=900)),
    (frames.CHECK_IN, dict(k6=LOC, k7=64)),
    (frames.STATUS, dict(k7=9, k18=frames.ST_QUEUE_FULL, k19=12)),
]
AUDIO = bytes((i * 37) & 255 for i in range(4000))
AUDIO_FIELDS = dict(k8=PREV, k11=1, k12=8000, k13=8000, k15=[-1234, 40], k16=8000)


def test_every_kind_signs_and_verifies():
    signer, pub = _signer()
    for t, extra in KINDS:
        fields = _fields(t, **extra)
        wire = signer.sign(fields)
        kid, got, audio = frames.verify(wire, pub)
        want = dict(fields)
        want[frames.K_V] = 1
        assert (kid, got, audio) == (KID, want, None), t
        # the payload inside is the deterministic encoding of the map
        assert cbor.decode(wire).value[2] == cbor.encode(want)


def test_audio_travels_beside_the_signature():
    signer, pub = _signer()
    wire = signer.sign(_fields(frames.AUDIO, **AUDIO_FIELDS), audio=AUDIO)
    outer = cbor.decode(wire)
    assert isinstance(outer, list) and len(outer) == 2 and outer[1] == AUDIO
    payload = cbor.decode(outer[0].value[2])
    assert payload[frames.K_ADIG] == hashlib.sha256(AUDIO).digest()
    kid, fields, audio = frames.verify(wire, pub)
    assert audio == AUDIO and fields[frames.K_AST] == [-1234, 40]
    # only 4000 audio bytes + one COSE_Sign1 + 4 bytes of framing
    assert len(wire) == len(cbor.encode(outer[0])) + 4000 + 1 + 3


def _reason(wire):
    return raises(frames.FrameError, frames.verify, wire, _signer()[1]).code


def test_audio_reasons():
    signer, _ = _signer()
    wire = signer.sign(_fields(frames.AUDIO, **AUDIO_FIELDS), audio=AUDIO)
    outer = cbor.decode(wire)
    cose_bytes = cbor.encode(outer[0])
    assert _reason(cose_bytes) == "audio-missing"
    other = bytearray(AUDIO)
    other[100] ^= 1
    assert _reason(cbor.encode([outer[0], bytes(other)])) == "audio-digest-mismatch"
    assert _reason(cbor.encode([outer[0], "text"])) == "not-cose-sign1"
    hb = signer.sign(_fields(frames.HEARTBEAT, k7=50, k17=900))
    assert _reason(cbor.encode([cbor.decode(hb), AUDIO])) == "audio-unexpected"


def test_tampering_and_garbage_reasons():
    signer, _ = _signer()
    wire = bytearray(signer.sign(_fields(frames.LOCATION, k6=LOC, k8=PREV)))
    i = wire.index(LOC)
    wire[i + 2] ^= 0x10  # the position moves: the signature no longer matches
    assert _reason(bytes(wire)) == "bad-signature"
    assert _reason(b"") == "malformed-cbor"
    assert _reason(b"\xd2\x84") == "malformed-cbor"
    assert _reason(bytes(wire) + b"\x00") == "malformed-cbor"
    assert _reason(cbor.encode([1, 2, 3])) == "not-cose-sign1"


def _raw_sign(payload_map):
    # a validly signed COSE_Sign1 around any payload, bypassing FrameSigner
    return cose.Signer(KID, ed25519.SigningKey(SEED)).sign(cbor.encode(payload_map))


def test_schema_reasons_on_verify():
    good = _fields(frames.HEARTBEAT, k7=50, k17=900)
    good[frames.K_V] = 1
    assert frames.verify(_raw_sign(good), _signer()[1])[1] == good
    for change, reason in [
        ({0: 2}, "unsupported-version"), ({1: 99}, "unknown-frame-type"), ({1: 0}, "unknown-frame-type"),
        ({17: None}, "missing-field"), ({2: 3}, "bad-field"), ({6: LOC}, "bad-field"),
        ({21: 1}, "bad-field"), ({7: 101}, "bad-field"), ({3: 0}, "bad-field"),
        ({3: 2**32}, "bad-field"), ({5: 2**32}, "bad-field"), ({7: True}, "bad-field"),
        ({4: -1}, "bad-field"), ({"x": 1}, "bad-field"),
    ]:
        bad = dict(good)
        for k, v in change.items():
            if v is None:
                del bad[k]
            else:
                bad[k] = v
        assert _reason(_raw_sign(bad)) == reason, change
    assert _reason(_raw_sign([1, 2])) == "bad-field"
    assert _reason(_raw_sign(b"\x00")) == "bad-field"


def test_signer_refuses_frames_a_receiver_would_reject():
    signer, _ = _signer()
    cases = [
        (_fields(frames.LOCATION, k8=PREV), "missing-field"),  # no loc
        (_fields(frames.HEARTBEAT, k7=50, k17=900, k6=LOC), "bad-field"),  # no location in heartbeats
        (_fields(frames.ALERT_START, k7=80, k9=1, k8=PREV), "bad-field"),  # alert-start has no prev
        (_fields(frames.LOCATION, k6=LOC[:12], k8=PREV), "bad-field"),
        (_fields(frames.END, k8=PREV, k20=5), "bad-field"),
        (_fields(frames.AUDIO, **AUDIO_FIELDS), "audio-missing"),
        (_fields(frames.ALERT_START, k7=80, k9=1, k0=1), "bad-field"),
        (_fields(frames.AUDIO, k14=bytes(32), **AUDIO_FIELDS), "bad-field"),
    ]
    for fields, reason in cases:
        assert raises(frames.FrameError, signer.sign, fields).code == reason, fields
    e = raises(frames.FrameError, signer.sign, _fields(frames.CANCEL, k8=PREV), audio=b"x")
    assert e.code == "audio-unexpected"
    bad_ast = dict(AUDIO_FIELDS, k15=[0, 89])
    e = raises(frames.FrameError, signer.sign, _fields(frames.AUDIO, **bad_ast), audio=b"x")
    assert e.code == "bad-field"


def test_zero_flags_are_omitted_and_fields_not_mutated():
    signer, pub = _signer()
    fields = _fields(frames.CANCEL, k8=PREV, k10=0)
    before = dict(fields)
    got = frames.verify(signer.sign(fields), pub)[1]
    assert frames.K_FLAGS not in got and fields == before


def test_hash_chain_links():
    signer, _ = _signer()
    start = signer.sign(_fields(frames.ALERT_START, k7=80, k9=1))
    link = frames.chain_link(start)
    assert link == hashlib.sha256(start).digest()[:8] and len(link) == frames.LINK_BYTES
    audio = signer.sign(_fields(frames.AUDIO, **dict(AUDIO_FIELDS, k8=link)), audio=AUDIO)
    cose_part = cbor.encode(cbor.decode(audio)[0])
    assert frames.chain_link(audio) == hashlib.sha256(cose_part).digest()[:8]
    nxt = signer.sign(_fields(frames.LOCATION, k6=LOC, k8=frames.chain_link(audio)))
    assert cbor.decode(cbor.decode(nxt).value[2])[frames.K_PREV] == frames.chain_link(audio)
    assert frames.chain_link(nxt) != frames.chain_link(audio) != link


def test_widest_location_frame_fits_one_sms():
    signer, pub = _signer()
    widest = 0
    for lat, lon in ((-900000000, -1800000000), (900000000, 1800000000), (-1, -1)):
        fields = {
            frames.K_T: frames.LOCATION, frames.K_SID: 65535, frames.K_SEQ: 2**32 - 1,
            frames.K_TIME: 2**32 - 1, frames.K_UP: 2**32 - 1, frames.K_PREV: b"\xff" * 8,
            frames.K_FLAGS: frames.FLAG_DURESS | frames.FLAG_MINIMAL | frames.FLAG_RESERVE,
            frames.K_LOC: frames.pack_location(lat, lon, 10**6, 10**6, frames.SRC_LAST_KNOWN),
        }
        wire = signer.sign(fields)
        assert frames.verify(wire, pub)[1][frames.K_SEQ] == 2**32 - 1
        widest = max(widest, len(wire))
    assert widest <= frames.SMS_MAX_BYTES, widest
    assert widest == 139  # the budget in docs/frames.md, to the byte


def test_pack_location_layout_and_clamping():
    loc = frames.pack_location(-900000000, 1800000000, 70000, -5, frames.SRC_CELL)
    assert len(loc) == 13
    assert loc == b"\xca\x5b\x17\x00\x6b\x49\xd2\x00\xff\xff\x00\x00\x02"
    assert frames.unpack_location(loc) == (-900000000, 1800000000, 65535, 0, 2)
    assert frames.unpack_location(LOC) == (515007000, -1277000, 12, 3, 1)
    for bad in ((900000001, 0, 1, 1, 1), (0, -1800000001, 1, 1, 1), (0, 0, 1, 1, 4), (0, 0, 1, 1, 0)):
        raises(ValueError, frames.pack_location, *bad)
    assert raises(frames.FrameError, frames.unpack_location, LOC[:12]).code == "bad-field"
    assert raises(frames.FrameError, frames.unpack_location, b"\x7f" + LOC[1:]).code == "bad-field"


def test_widest_frame_of_each_kind_and_the_one_that_does_not_fit_an_sms():
    # every field at its widest; only a duress frame carrying both loc and
    # batt passes 140 bytes (docs/frames.md: omit batt to fit one SMS)
    signer, _ = _signer()
    wide = {frames.K_SID: 65535, frames.K_SEQ: 2**32 - 1, frames.K_TIME: 2**32 - 1,
            frames.K_UP: 2**32 - 1, frames.K_FLAGS: 7}
    loc = frames.pack_location(-900000000, -1800000000, 65535, 65535, frames.SRC_LAST_KNOWN)
    link = b"\xff" * 8
    kinds = [
        (frames.ALERT_START, {6: loc, 7: 100, 9: 2}, 134),
        (frames.LOCATION, {6: loc, 8: link}, 139),
        (frames.CANCEL, {8: link, 7: 100}, 127),
        (frames.DURESS, {8: link, 6: loc}, 139),
        (frames.DURESS, {8: link, 6: loc, 7: 100}, 142),
        (frames.END, {8: link, 20: 4, 7: 100}, 129),
        (frames.HEARTBEAT, {7: 100, 17: 2**32 - 1}, 119),
        (frames.CHECK_IN, {6: loc, 7: 100}, 128),
        (frames.STATUS, {7: 100, 18: 5, 19: 2**32 - 1}, 121),
    ]
    for t, extra, size in kinds:
        fields = dict(wide)
        fields[frames.K_T] = t
        if t not in frames.ALERT_TYPES:
            del fields[frames.K_SID]
        for k, v in extra.items():
            fields[k] = v
        assert len(signer.sign(fields)) == size, (t, extra)


def test_drop_count_only_with_queue_full_status_and_rate_at_least_one():
    signer, _ = _signer()
    base = {frames.K_T: frames.STATUS, frames.K_SEQ: 9, frames.K_TIME: 0, frames.K_UP: 1,
            frames.K_BATT: 50, frames.K_DROP: 3}
    ok = dict(base)
    ok[frames.K_ST] = frames.ST_QUEUE_FULL
    assert len(signer.sign(ok)) > 0
    wrong = dict(base)
    wrong[frames.K_ST] = frames.ST_STARTED
    err = raises(frames.FrameError, signer.sign, wrong)
    assert err.code == "bad-field"
    audio = {frames.K_T: frames.AUDIO, frames.K_SID: 1, frames.K_SEQ: 10, frames.K_TIME: 0,
             frames.K_UP: 1, frames.K_PREV: b"\x00" * 8, frames.K_CODEC: 1, frames.K_RATE: 0,
             frames.K_OFF: 0, frames.K_AST: [0, 0], frames.K_NS: 2}
    err = raises(frames.FrameError, signer.sign, audio, b"\x00")
    assert err.code == "bad-field"
