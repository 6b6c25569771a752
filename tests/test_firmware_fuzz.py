"""Fuzz the firmware's CBOR decoder and frame verifier under CPython (hypothesis).

Random bytes and mutated golden vectors must never crash sotto.cbor or
sotto.frames with anything but their own error classes, a mutated frame must
never verify, and every rejection carries a reason code of docs/frames.md.
Whatever the strict decoder accepts must also be what cbor2 reads, and must
re-encode to the same bytes. (The same mutation fuzz runs inside the
MicroPython VM: tests/firmware/test_fuzz_frames.py.) More examples:
SOTTO_FUZZ_EXAMPLES=5000 pytest tests/test_firmware_fuzz.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import cbor2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sotto import cbor, frames

VECTORS = Path(__file__).resolve().parent / "vectors"
NAMES = sorted(p.stem for p in VECTORS.glob("*.cbor"))
WIRES = {n: (VECTORS / f"{n}.cbor").read_bytes() for n in NAMES}
SEED = bytes.fromhex(json.loads((VECTORS / "alert-start.json").read_text())["seed"])
PUB = Ed25519PrivateKey.from_private_bytes(SEED).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
REASONS = {
    "malformed-cbor", "not-cose-sign1", "bad-protected-header", "unsupported-alg", "missing-kid",
    "bad-signature", "audio-missing", "audio-unexpected", "audio-digest-mismatch",
    "unsupported-version", "unknown-frame-type", "missing-field", "bad-field",
}
EXAMPLES = int(os.environ.get("SOTTO_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _has_tag(value: Any) -> bool:
    if isinstance(value, cbor.Tag):
        return True
    if isinstance(value, list):
        return any(_has_tag(v) for v in value)
    if isinstance(value, dict):
        return any(_has_tag(v) for v in value.values())
    return False


def check_decoder(data: bytes) -> None:
    """The strict decoder either rejects with its own error, or accepts exactly
    one deterministic encoding that cbor2 reads as the same value."""
    try:
        value = cbor.decode(data)
    except cbor.CBORDecodeError as e:
        assert isinstance(e.code, int) and 1 <= e.code <= cbor.BAD_TEXT
        assert -1 <= e.offset <= len(data)
        return
    assert cbor.encode(value) == data
    # cbor2 reads semantic tags (dates, bignums) into its own types, or rejects
    # their contents: compare only tag-free items
    if not _has_tag(value):
        assert cbor2.loads(data) == value


def check_verify_rejects(data: bytes) -> str:
    try:
        frames.verify(data, PUB)
    except frames.FrameError as e:
        assert e.code in REASONS, e.code
        return e.code
    raise AssertionError("a mutated frame verified")


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    check_decoder(data)
    check_verify_rejects(data)


@st.composite
def mutated_vector(draw: st.DrawFn) -> bytes:
    wire = bytearray(WIRES[draw(st.sampled_from(NAMES))])
    original = bytes(wire)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "delete", "insert", "truncate"]))
        i = draw(st.integers(0, max(len(wire) - 1, 0)))
        if op == "flip" and wire:
            wire[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and wire:
            wire[i] = draw(st.integers(0, 255))
        elif op == "delete" and wire:
            del wire[i:i + draw(st.integers(1, 8))]
        elif op == "insert":
            wire[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "truncate":
            del wire[i:]
    data = bytes(wire)
    if data == original:  # a mutation that undid itself: force one real change
        data = data[:-1]
    return data


@FUZZ
@given(mutated_vector())
def test_mutated_vectors_never_verify(data: bytes) -> None:
    check_decoder(data)
    check_verify_rejects(data)


def test_each_vector_verifies_before_mutation() -> None:
    # the mutation tests mean something only if the originals are valid
    for name, wire in WIRES.items():
        assert frames.verify(wire, PUB)[0] == b"SOTTO-42", name


values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64 - 1) | st.binary(max_size=40)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.integers(-(2**64), 2**64 - 1) | st.text(max_size=8), inner, max_size=5),
    max_leaves=20,
)


@FUZZ
@given(values)
def test_encoder_round_trips_and_cbor2_agrees(value: Any) -> None:
    data = cbor.encode(value)
    assert cbor.decode(data) == value
    assert cbor2.loads(data) == value
    # RFC 8949 §4.2.1 sorts map keys bytewise; cbor2's canonical mode sorts
    # length-first (RFC 7049). They agree whenever the keys of each map have
    # encodings of one length, as in every map of docs/frames.md.
    if _uniform_key_lengths(value):
        assert cbor2.dumps(value, canonical=True) == data


def _uniform_key_lengths(value: Any) -> bool:
    if isinstance(value, list):
        return all(_uniform_key_lengths(v) for v in value)
    if isinstance(value, dict):
        if len({len(cbor.encode(k)) for k in value}) > 1:
            return False
        return all(_uniform_key_lengths(v) for v in value.values())
    return True
