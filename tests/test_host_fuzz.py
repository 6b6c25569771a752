"""Fuzzing the host decoder and verifier (hypothesis).

Random bytes, CBOR-shaped garbage and mutations of valid frames never crash
decode_frame / verify_frame / split_sequence (only FrameError escapes), never
verify as valid, and always come with a reason code. The strict scanner is also
checked against cbor2 as an oracle: whatever cbor2 encodes deterministically,
split_sequence cuts at the same places.

Examples per test stay modest so `make test` stays fast; for a longer run:
    SOTTO_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest -q tests/test_host_fuzz.py
"""

from __future__ import annotations

import os

import cbor2
import framefactory as ff
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from host_tools import frames as F
from host_tools.frames import FrameError, Reason

EXAMPLES = int(os.environ.get("SOTTO_FUZZ_EXAMPLES", "150"))
fuzz = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

DEVICE = ff.DeviceSim(kid=b"FUZZ-001", seed=bytes(range(32)))
PUBLIC_KEY = DEVICE.public_key
LOC = ff.pack_location(515007292, -1246254, 5, 3, ff.SRC_GNSS)


def _valid_frames() -> list[bytes]:
    d = ff.DeviceSim(kid=b"FUZZ-001", seed=bytes(range(32)))
    frames = [d.alert_start(loc=LOC), d.location(LOC), d.audio(bytes(range(64)), offset=0, samples=128),
              d.duress(), d.end(), d.heartbeat(), ff.check_in(d, loc=LOC), d.status(5, dropped=1)]
    c = ff.DeviceSim(kid=b"FUZZ-001", seed=bytes(range(32)), seq=50)
    c.alert_start()
    frames.append(c.cancel())
    return frames


VALID = _valid_frames()


def check_rejected(data: bytes) -> F.Verdict:
    """decode raises FrameError or succeeds; verify gives a verdict that is not ok."""
    try:
        F.decode_frame(data)
    except FrameError as e:
        assert isinstance(e.reason, Reason) and e.detail
    verdict = F.verify_frame(data, PUBLIC_KEY, now=2_000_000_000)
    assert not verdict.ok
    assert isinstance(verdict.reason, Reason) and verdict.detail
    return verdict


def test_the_valid_pool_verifies():
    assert all(F.verify_frame(w, PUBLIC_KEY).ok for w in VALID)


@fuzz
@given(st.binary(max_size=600))
def test_random_bytes(data):
    check_rejected(data)
    try:
        items = F.split_sequence(data)
    except FrameError as e:
        assert e.reason == Reason.MALFORMED_CBOR
    else:
        assert b"".join(items) == data


# CBOR heads chosen to reach the corners: indefinite lengths, breaks, huge
# declared lengths, tags (18 and others), floats, simple values, deep nesting.
HEADS = [bytes.fromhex(h) for h in (
    "00 17 18ff 19ffff 1affffffff 1bffffffffffffffff 20 38ff 3bffffffffffffffff "
    "40 41 4d 5840 5a00010000 5bffffffffffffffff 5f 60 61 7f 7bffffffffffffffff "
    "80 81 82 84 98ff 9f 9bffffffffffffffff a0 a1 a2 b8ff bf bbffffffffffffffff "
    "c0 c1 c2 c3 d2 d818 d9d9f7 d81c d81d dbffffffffffffffff "
    "f4 f5 f6 f7 f8ff f9 fa fb fc fd fe ff 0127 0448 a201270448 "
    "d2844d a05827 5840 584c").split()]


@fuzz
@given(st.lists(st.one_of(st.sampled_from(HEADS), st.binary(min_size=1, max_size=8)), max_size=40))
def test_cbor_shaped_garbage(parts):
    data = b"".join(parts)
    check_rejected(data)
    try:
        F.split_sequence(data)
    except FrameError as e:
        assert e.reason == Reason.MALFORMED_CBOR


MUTATIONS = st.sampled_from(["flip", "set", "insert", "delete", "truncate", "duplicate", "swap"])


@fuzz
@given(st.sampled_from(range(len(VALID))), st.lists(st.tuples(MUTATIONS, st.integers(0, 2**16),
                                                             st.integers(0, 255)), min_size=1, max_size=4))
def test_mutated_valid_frames_never_verify(index, edits):
    data = bytearray(VALID[index])
    for op, where, value in edits:
        if not data:
            break
        i = where % len(data)
        if op == "flip":
            data[i] ^= 1 << (value % 8)
        elif op == "set":
            data[i] = value
        elif op == "insert":
            data[i:i] = bytes([value])
        elif op == "delete":
            del data[i:i + 1 + value % 8]
        elif op == "truncate":
            del data[i:]
        elif op == "duplicate":
            data[i:i] = data[i:i + 1 + value % 16]
        elif op == "swap":
            j = (i + 1 + value) % len(data)
            data[i], data[j] = data[j], data[i]
    assume(bytes(data) != VALID[index])
    check_rejected(bytes(data))


@fuzz
@given(st.integers(0, 63), st.integers(1, 255))
def test_any_change_to_audio_bytes_is_a_digest_mismatch(index, xor):
    w = VALID[2]
    assert F.decode_frame(w).audio == bytes(range(64))
    data = bytearray(w)
    data[len(w) - 64 + index] ^= xor
    assert check_rejected(bytes(data)).reason == Reason.AUDIO_DIGEST_MISMATCH


VALUES = st.recursive(
    st.one_of(st.integers(-2**64, 2**64 - 1), st.binary(max_size=40), st.text(max_size=8), st.booleans(),
              st.none()),
    lambda inner: st.lists(inner, max_size=3), max_leaves=6)


@fuzz
@given(st.sampled_from(range(len(VALID))), st.dictionaries(st.integers(0, 23), VALUES, max_size=4),
       st.lists(st.integers(0, 23), max_size=3))
def test_correctly_signed_random_payloads_never_crash(index, changes, removals):
    """A signed payload with random keys and values: ok only if it follows the format."""
    w = VALID[index]
    item = cbor2.loads(w)
    cose = item[0] if isinstance(item, list) else item
    payload = dict(cbor2.loads(cose.value[2]))
    payload.update(changes)
    for key in removals:
        payload.pop(key, None)
    audio = item[1] if isinstance(item, list) else None
    signed = ff.resign(DEVICE, payload, audio=audio)
    verdict = F.verify_frame(signed, PUBLIC_KEY)
    if verdict.ok:
        frame = verdict.frame
        assert frame is not None and frame.payload_bytes == ff.canonical(payload)
        assert frame.type.label and frame.seq >= 1 and frame.link == ff.chain_link(signed)
    else:
        assert verdict.reason in {Reason.BAD_FIELD, Reason.MISSING_FIELD, Reason.UNSUPPORTED_VERSION,
                                  Reason.UNKNOWN_FRAME_TYPE, Reason.AUDIO_MISSING, Reason.AUDIO_UNEXPECTED,
                                  Reason.AUDIO_DIGEST_MISMATCH}
    assert not F.verify_frame(signed, ff.DeviceSim(seed=bytes(32)).public_key).ok


# Map keys of one encoded length only: cbor2's canonical order sorts shorter keys
# first (RFC 7049), RFC 8949 §4.2.1 sorts by bytes; they agree within one length.
CBOR_VALUES = st.recursive(
    st.one_of(st.integers(-2**64, 2**64 - 1), st.binary(max_size=300), st.text(max_size=30),
              st.booleans(), st.none()),
    lambda inner: st.one_of(st.lists(inner, max_size=5),
                            st.dictionaries(st.integers(0, 23), inner, max_size=5),
                            st.builds(lambda v: cbor2.CBORTag(18, v), inner)),
    max_leaves=20)


def nesting(value) -> int:
    if isinstance(value, cbor2.CBORTag):
        return 1 + nesting(value.value)
    if isinstance(value, (list, dict)):
        inner = value.values() if isinstance(value, dict) else value
        return 1 + max((nesting(v) for v in inner), default=0)
    return 0


@fuzz
@given(st.lists(CBOR_VALUES, max_size=5))
def test_split_sequence_agrees_with_cbor2(values):
    assume(all(nesting(v) < F.MAX_DEPTH for v in values))
    encoded = [cbor2.dumps(v, canonical=True) for v in values]
    assert F.split_sequence(b"".join(encoded)) == encoded
    for item in encoded:
        # deterministic CBOR as a payload is not malformed: whatever is wrong is the schema
        signed = ff.sign1_raw(DEVICE.key, ff.protected_header(DEVICE.kid), item)
        reason = F.verify_frame(signed, PUBLIC_KEY).reason
        assert reason not in (Reason.MALFORMED_CBOR, Reason.NOT_COSE_SIGN1, Reason.BAD_SIGNATURE)


@fuzz
@given(st.dictionaries(st.integers(0, 23), st.integers(0, 2**32 - 1), min_size=2, max_size=6), st.data())
def test_non_canonical_payloads_are_malformed(payload, data):
    """Shuffled keys or a longer head than needed are caught, whatever the values."""
    items = list(payload.items())
    order = data.draw(st.permutations(items))
    assume(order != sorted(items))
    shuffled = bytes([0xA0 + len(order)]) + b"".join(cbor2.dumps(k) + cbor2.dumps(v) for k, v in order)
    key, value = items[0]
    longer = bytes([0xA0 + len(items)]) + b"".join(
        cbor2.dumps(k) + (bytes([0x1B]) + v.to_bytes(8, "big") if k == key else cbor2.dumps(v))
        for k, v in sorted(items))
    for raw in (shuffled, longer):
        signed = ff.sign1_raw(DEVICE.key, ff.protected_header(DEVICE.kid), raw)
        assert F.verify_frame(signed, PUBLIC_KEY).reason == Reason.MALFORMED_CBOR
