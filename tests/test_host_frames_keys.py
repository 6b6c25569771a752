"""Host-side frames: key sources and public key files, CBOR sequences and chain links
(host_tools.frames)."""

from __future__ import annotations

import dataclasses

import framefactory as ff
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from host_frames_cases import (
    NOW,
    PUBLIC_KEY,
    SEED,
    TAMPERED,
    VALID,
    wire,
)

from host_tools import frames as F
from host_tools.errors import UsageError
from host_tools.frames import FrameError, Reason
from host_tools.ids import format_device_id

# ---------------------------------------------------------------- keys and devices


def test_key_sources_mapping_and_resolver():
    w = wire("alert-start")
    assert F.verify_frame(w, {b"SOTTO-42": PUBLIC_KEY}).ok
    verdict = F.verify_frame(w, {b"OTHER-01": PUBLIC_KEY})
    assert verdict.reason == Reason.UNKNOWN_DEVICE and "SOTTO-42" in verdict.detail
    assert verdict.frame is not None and verdict.frame.seq == 1
    assert F.verify_frame(w, lambda kid: None).reason == Reason.UNKNOWN_DEVICE
    seen = []
    assert F.verify_frame(w, lambda kid: seen.append(kid) or PUBLIC_KEY).ok
    assert seen == [b"SOTTO-42"]

    def revoked(kid):
        raise FrameError(Reason.REVOKED_DEVICE, f"{format_device_id(kid)} was revoked")

    verdict = F.verify_frame(w, revoked)
    assert (verdict.ok, verdict.reason) == (False, Reason.REVOKED_DEVICE)
    assert verdict.detail == "SOTTO-42 was revoked"
    key = Ed25519PrivateKey.from_private_bytes(SEED).public_key()
    assert F.verify_frame(w, key).ok
    assert F.verify_frame(w, bytearray(PUBLIC_KEY)).ok


def test_a_malformed_key_is_a_usage_error_not_a_verdict():
    with pytest.raises(F.KeyFormatError) as info:
        F.verify_frame(wire("alert-start"), PUBLIC_KEY[:31])
    assert "32 bytes" in str(info.value)
    assert isinstance(info.value, UsageError)


def test_verify_trusts_only_frames_decode_made():
    frame = F.decode_frame(wire("heartbeat"))
    assert F.verify_frame(frame, PUBLIC_KEY).ok
    doctored = dataclasses.replace(frame, payload={**frame.payload, 4: 2_000_000_000})
    verdict = F.verify_frame(doctored, PUBLIC_KEY, now=NOW)
    assert verdict.ok and verdict.frame is not None
    assert verdict.frame.time == 0              # judged on the wire bytes, not the doctored map
    forged = dataclasses.replace(frame, wire=bytes.fromhex(TAMPERED[0][2]))
    assert F.verify_frame(forged, PUBLIC_KEY).reason == Reason.BAD_SIGNATURE


def test_verdict_raise_if_invalid():
    good = F.verify_frame(wire("end"), PUBLIC_KEY)
    assert good.raise_if_invalid().end_reason == 2
    bad = F.verify_frame(bytes.fromhex(TAMPERED[0][2]), PUBLIC_KEY)
    with pytest.raises(FrameError) as info:
        bad.raise_if_invalid()
    assert info.value.reason == Reason.BAD_SIGNATURE
    assert isinstance(info.value, ValueError)


def _private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(SEED)


def test_load_public_key_forms(tmp_path):
    pub = _private_key().public_key()
    pem = pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    der = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    files = {"key.pem": pem, "key.der": der, "key.raw": PUBLIC_KEY,
             "key.hex": PUBLIC_KEY.hex().encode() + b"\n"}
    for name, blob in files.items():
        (tmp_path / name).write_bytes(blob)
        assert F.public_key_bytes(F.load_public_key(tmp_path / name)) == PUBLIC_KEY, name
        assert F.public_key_bytes(F.load_public_key(str(tmp_path / name))) == PUBLIC_KEY, name
    assert F.public_key_bytes(F.load_public_key(PUBLIC_KEY.hex())) == PUBLIC_KEY
    assert F.public_key_bytes(F.load_public_key(PUBLIC_KEY.hex().upper())) == PUBLIC_KEY
    assert F.public_key_bytes(F.load_public_key(PUBLIC_KEY)) == PUBLIC_KEY


def test_load_public_key_refuses_private_keys_without_showing_them(tmp_path):
    priv = _private_key()
    pem = priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    path = tmp_path / "device.key"
    path.write_bytes(pem)
    with pytest.raises(F.KeyFormatError) as info:
        F.load_public_key(path)
    message = str(info.value)
    assert "private key" in message
    assert pem.decode().splitlines()[1] not in message


@pytest.mark.parametrize(("blob", "words"), [
    (b"-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n", "not a PEM public key"),
    (b"\x00" * 31, "neither"),
    (b"hello", "neither"),
])


def test_load_public_key_errors(tmp_path, blob, words):
    path = tmp_path / "k"
    path.write_bytes(blob)
    with pytest.raises(F.KeyFormatError) as info:
        F.load_public_key(path)
    assert words in str(info.value)


def test_load_public_key_rejects_other_key_types(tmp_path):
    pem = X25519PrivateKey.from_private_bytes(SEED).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    path = tmp_path / "x25519.pem"
    path.write_bytes(pem)
    with pytest.raises(F.KeyFormatError) as info:
        F.load_public_key(path)
    assert "not an Ed25519 public key" in str(info.value)


def test_load_public_key_never_echoes_hex():
    secretish = "ab" * 31 + "c"      # 63 hex digits: maybe a mistyped private seed
    with pytest.raises(F.KeyFormatError) as info:
        F.load_public_key(secretish)
    assert secretish not in str(info.value) and "63 hex digits" in str(info.value)
    with pytest.raises(F.KeyFormatError) as info:
        F.load_public_key("/no/such/key.pem")
    assert "/no/such/key.pem" in str(info.value)


# ---------------------------------------------------------------- sequences and links


def test_split_sequence_gives_each_frame_exact_bytes():
    frames = [wire(n) for n in VALID]
    assert F.split_sequence(b"".join(frames)) == frames
    assert F.split_sequence(b"") == []
    assert F.split_sequence(bytearray(frames[0])) == [frames[0]]


def test_split_sequence_keeps_a_badly_encoded_frame_apart():
    long_head = bytes.fromhex(next(t[2] for t in TAMPERED if t[0] == "seq-in-long-head"))
    indefinite = bytes.fromhex("9f0102ff")
    items = F.split_sequence(wire("alert-start") + long_head + indefinite + wire("end"))
    assert items == [wire("alert-start"), long_head, indefinite, wire("end")]
    verdicts = [F.verify_frame(i, PUBLIC_KEY) for i in items]
    assert [v.ok for v in verdicts] == [True, False, False, True]


@pytest.mark.parametrize("tail", ["5a00010000", "ff", "9f00", "a1", "1c", "bf00ff"])
def test_split_sequence_rejects_a_sequence_it_cannot_follow(tail):
    data = wire("alert-start") + bytes.fromhex(tail)
    with pytest.raises(FrameError) as info:
        F.split_sequence(data)
    assert info.value.reason == Reason.MALFORMED_CBOR
    assert "item 2" in info.value.detail


def test_chain_link_of_wire_and_frame_agree():
    for name in VALID:
        w = wire(name)
        assert F.chain_link(w) == F.chain_link(F.decode_frame(w)) == ff.chain_link(w)
        assert len(F.chain_link(w)) == 8
    with pytest.raises(FrameError):
        F.chain_link(b"\xd2")


def test_decode_is_typed_about_its_input():
    with pytest.raises(TypeError):
        F.decode_frame("d284")  # type: ignore[arg-type]
