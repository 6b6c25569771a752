"""Host-side frames: the COSE_Sign1 envelope and its headers, hostile bytes, sizes,
the signature, the audio beside it and the time (host_tools.frames)."""

from __future__ import annotations

import cbor2
import framefactory as ff
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from host_frames_cases import (
    NOW,
    SEED,
    VALID,
    decode_error,
    device,
    every_kind,
    payload_of,
    reason_of,
    wire,
)

from host_tools import frames as F
from host_tools.frames import FrameError, Reason

# ---------------------------------------------------------------- envelope and headers


def cose_of(items: list) -> bytes:
    return cbor2.dumps(cbor2.CBORTag(18, items))


def parts(w: bytes):
    return list(cbor2.loads(w).value)


@pytest.mark.parametrize(("mutate", "reason"), [
    (lambda p: [p[0], p[1], p[2]], Reason.NOT_COSE_SIGN1),                 # three items
    (lambda p: p + [b""], Reason.NOT_COSE_SIGN1),                          # five items
    (lambda p: [p[0], p[1], None, p[3]], Reason.NOT_COSE_SIGN1),           # detached payload
    (lambda p: [p[0], [], p[2], p[3]], Reason.NOT_COSE_SIGN1),             # unprotected not a map
    (lambda p: [{1: -8}, p[1], p[2], p[3]], Reason.NOT_COSE_SIGN1),        # protected not a bstr
    (lambda p: [p[0], p[1], p[2], "sig"], Reason.NOT_COSE_SIGN1),
    (lambda p: [p[0], {4: b"SOTTO-42"}, p[2], p[3]], Reason.BAD_PROTECTED_HEADER),  # unsigned params
    (lambda p: [p[0], p[1], p[2], p[3][:63]], Reason.BAD_SIGNATURE),
    (lambda p: [p[0], p[1], p[2], p[3] + b"\x00"], Reason.BAD_SIGNATURE),
])


def test_cose_sign1_structure(mutate, reason):
    w = cose_of(mutate(parts(wire("alert-start"))))
    assert reason_of(w) == reason


@pytest.mark.parametrize(("header", "reason"), [
    (cbor2.dumps({1: -8, 4: b"SOTTO-42"}), None),
    (cbor2.dumps({1: -19, 4: b"SOTTO-42"}), None),                         # RFC 9864 Ed25519
    (cbor2.dumps({1: -7, 4: b"SOTTO-42"}), Reason.UNSUPPORTED_ALG),
    (cbor2.dumps({1: "EdDSA", 4: b"SOTTO-42"}), Reason.UNSUPPORTED_ALG),
    (cbor2.dumps({1: b"\xf8", 4: b"SOTTO-42"}), Reason.BAD_PROTECTED_HEADER),
    (cbor2.dumps({4: b"SOTTO-42"}), Reason.BAD_PROTECTED_HEADER),         # no alg
    (cbor2.dumps({1: -8}), Reason.MISSING_KID),
    (cbor2.dumps({1: -8, 4: "SOTTO-42"}), Reason.MISSING_KID),
    (cbor2.dumps({1: -8, 4: b"SOTTO-42-"}), Reason.MISSING_KID),
    (cbor2.dumps({1: -8, 2: [], 4: b"SOTTO-42"}), Reason.BAD_PROTECTED_HEADER),   # crit
    (cbor2.dumps({1: -8, 4: b"SOTTO-42", "x": 1}), Reason.BAD_PROTECTED_HEADER),
    (cbor2.dumps({4: b"SOTTO-42", 1: -8}), Reason.BAD_PROTECTED_HEADER),   # keys out of order
    (cbor2.dumps([1, -8]), Reason.BAD_PROTECTED_HEADER),
    (bytes.fromhex("a2012704c248534f54544f2d3432"), Reason.BAD_PROTECTED_HEADER),  # tag 2 inside
    (bytes.fromhex("a2012704"), Reason.BAD_PROTECTED_HEADER),             # truncated
    (cbor2.dumps({1: -8, 4: b"SOTTO-42"}) + b"\x00", Reason.BAD_PROTECTED_HEADER),
    (b"", Reason.BAD_PROTECTED_HEADER),
])


def test_protected_header(header, reason):
    d = device()
    payload = payload_of(every_kind()["heartbeat"])
    w = ff.sign1_raw(d.key, header, ff.canonical(payload))   # correctly signed over these bytes
    assert reason_of(w, d.public_key) == reason


def test_signature_covers_the_protected_header():
    d = device()
    protected, unprotected, payload, sig = parts(d.heartbeat())
    forged = cose_of([ff.protected_header(d.kid, -19), unprotected, payload, sig])
    assert reason_of(forged, d.public_key) == Reason.BAD_SIGNATURE


@pytest.mark.parametrize(("hexdata", "reason"), [
    ("", Reason.MALFORMED_CBOR),
    ("00", Reason.NOT_COSE_SIGN1),
    ("f6", Reason.NOT_COSE_SIGN1),
    ("a0", Reason.NOT_COSE_SIGN1),
    ("80", Reason.NOT_COSE_SIGN1),
    ("d2f6", Reason.NOT_COSE_SIGN1),
    ("d280", Reason.NOT_COSE_SIGN1),
    ("c0", Reason.NOT_COSE_SIGN1),                  # tag 0, even without content
    ("c074323032362d30392d32315431343a31333a32315a", Reason.NOT_COSE_SIGN1),   # tag 0 date
    ("c24101", Reason.NOT_COSE_SIGN1),              # bignum
    ("d9d9f7d2f6", Reason.NOT_COSE_SIGN1),          # self-described CBOR
    ("d818d2", Reason.NOT_COSE_SIGN1),              # tag 24 (embedded CBOR)
    ("d2", Reason.MALFORMED_CBOR),                  # tag 18 without content
    ("d81280", Reason.MALFORMED_CBOR),              # tag 18 in two bytes: not deterministic
    ("9f00ff", Reason.MALFORMED_CBOR),              # indefinite length
    ("5f4100ff", Reason.MALFORMED_CBOR),
    ("fb3ff0000000000000", Reason.MALFORMED_CBOR),  # float
    ("f818", Reason.MALFORMED_CBOR),                # simple value in two bytes, below 32
    ("ff", Reason.MALFORMED_CBOR),
    ("1c", Reason.MALFORMED_CBOR),                  # reserved additional information
    ("5bffffffffffffffff", Reason.MALFORMED_CBOR),  # a byte string of 2^64-1 bytes
    ("9bffffffffffffffff00", Reason.MALFORMED_CBOR),
    ("bbffffffffffffffff00", Reason.MALFORMED_CBOR),
    ("7f", Reason.MALFORMED_CBOR),
    ("6180", Reason.MALFORMED_CBOR),                # invalid UTF-8
    ("8281d28040", Reason.NOT_COSE_SIGN1),          # audio array with an array in front
    ("8281d280", Reason.MALFORMED_CBOR),            # ... and nothing after it
    ("82d28400a00040f6", Reason.NOT_COSE_SIGN1),    # audio beside something that is not bytes
])


def test_hostile_and_non_frame_bytes(hexdata, reason):
    data = bytes.fromhex(hexdata)
    assert reason_of(data) == reason
    assert decode_error(data).reason == reason


@pytest.mark.parametrize(("prefix", "reason"), [
    (b"\x81" * 60_000, Reason.MALFORMED_CBOR),      # deep nesting
    (b"\xc2" * 60_000, Reason.NOT_COSE_SIGN1),      # tags everywhere
    (b"\xd2" * 60_000, Reason.MALFORMED_CBOR),      # tag 18 nested too deep
    (b"\x9f" * 60_000, Reason.MALFORMED_CBOR),
    (b"\x82\xd2" * 30_000, Reason.MALFORMED_CBOR),
])


def test_deep_nesting_and_tag_towers_fail_cleanly(prefix, reason):
    data = prefix + b"\x00"
    assert reason_of(data) == reason
    with pytest.raises(FrameError):
        F.split_sequence(data)


def test_non_deterministic_encodings_inside_a_signed_payload_are_malformed():
    d = device()
    protected = ff.protected_header(d.kid)
    good = ff.canonical(payload_of(d.heartbeat()))
    assert good[:3] == bytes.fromhex("a70001")
    variants = {
        "v in a 2-byte head": good[:2] + b"\x18\x01" + good[3:],
        "indefinite-length map": b"\xbf" + good[1:] + b"\xff",
        "duplicate key": bytes([good[0] + 1]) + good[1:3] + good[1:],
        "float": good[:2] + b"\xf9\x3c\x00" + good[3:],
    }
    for name, payload in variants.items():
        verdict = F.verify_frame(ff.sign1_raw(d.key, protected, payload), d.public_key)
        assert verdict.reason == Reason.MALFORMED_CBOR, name
    # a tag the format does not use, as a value: well-formed, but not a field's type
    tagged = good[:2] + b"\xc2\x41\x01" + good[3:]
    assert reason_of(ff.sign1_raw(d.key, protected, tagged), d.public_key) == Reason.BAD_FIELD


def test_too_large():
    big = b"\x82" + wire("audio")[1:-17] + b"\x5a\x00\x01\x00\x00" + bytes(65536)
    assert len(big) > F.MAX_FRAME_BYTES
    assert decode_error(big).reason == Reason.TOO_LARGE
    assert F.decode_frame(wire("audio"), max_bytes=len(wire("audio"))).seq == 3


def test_the_size_limit_is_64_kib_inclusive():
    d = device()
    d.alert_start()
    probe = ff.DeviceSim(**{**d.__dict__, "frames": []}).audio(bytes(100), offset=0, samples=200)
    cose_len = len(probe) - 1 - 2 - 100
    n = F.MAX_FRAME_BYTES - 1 - 3 - cose_len
    w = d.audio(bytes(n), offset=0, samples=200)
    assert len(w) == F.MAX_FRAME_BYTES == 65536
    assert F.verify_frame(w, d.public_key).ok
    assert reason_of(d.audio(bytes(n + 1), offset=0, samples=200), d.public_key) == Reason.TOO_LARGE


def test_sig_structure_is_the_rfc9052_one():
    for name in VALID:
        frame = F.decode_frame(wire(name))
        expected = cbor2.dumps(["Signature1", frame.protected, b"", frame.payload_bytes])
        assert frame.sig_structure == expected
        Ed25519PrivateKey.from_private_bytes(SEED).public_key().verify(frame.signature, expected)


def test_audio_bytes_are_checked_after_the_signature():
    d = device()
    d.alert_start()
    chunk = bytes(range(256)) * 16
    w = d.audio(chunk, offset=0, samples=8000)
    assert F.verify_frame(w, d.public_key).ok
    tail = w[-4096:]
    assert tail == chunk
    swapped = w[:-4096] + chunk[::-1]
    assert reason_of(swapped, d.public_key) == Reason.AUDIO_DIGEST_MISMATCH
    # with the wrong key the signature fails first: nobody learns about the audio
    assert reason_of(swapped, device(seed=bytes(32)).public_key) == Reason.BAD_SIGNATURE


def test_audio_frame_needs_its_audio_and_only_audio_frames_have_it():
    d = device()
    d.alert_start()
    w = d.audio(b"\x12" * 10, offset=0, samples=20)
    cose = w[1:-11]
    assert reason_of(cose, d.public_key) == Reason.AUDIO_MISSING
    hb = d.heartbeat()
    assert reason_of(b"\x82" + hb + b"\x40", d.public_key) == Reason.AUDIO_UNEXPECTED


def test_time_in_future_only_when_a_clock_is_given():
    d = device(time=1_800_000_000 - 1)
    w = d.heartbeat()                              # time 1_800_000_000
    assert F.verify_frame(w, d.public_key).ok
    assert F.verify_frame(w, d.public_key, now=1_800_000_000 - 300).ok
    verdict = F.verify_frame(w, d.public_key, now=1_800_000_000 - 301)
    assert verdict.reason == Reason.TIME_IN_FUTURE and verdict.frame is not None
    assert F.verify_frame(w, d.public_key, now=1_800_000_000 - 60, max_future_s=30).reason \
        == Reason.TIME_IN_FUTURE
    unknown = device(time=-1).heartbeat()          # time 0: the device did not know
    assert F.verify_frame(unknown, d.public_key, now=1_800_000_000).ok


def test_a_forged_frame_is_bad_signature_before_its_time_is_judged():
    d = device()
    payload = {**payload_of(d.heartbeat()), 4: 2_000_000_000}
    forged = ff.resign(device(seed=bytes(32)), payload)
    assert reason_of(forged, d.public_key, now=NOW) == Reason.BAD_SIGNATURE
