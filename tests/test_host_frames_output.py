"""Host-side frames for people and tools (describe, JSON), device ids, and the golden
vectors the firmware made (host_tools.frames)."""

from __future__ import annotations

import json
from pathlib import Path

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from host_frames_cases import (
    VALID,
    decode_error,
    wire,
)

from host_tools import frames as F
from host_tools.errors import UsageError
from host_tools.frames import FrameType, Reason
from host_tools.ids import DeviceIdError, format_device_id, parse_device_id

# ---------------------------------------------------------------- for people and tools


def test_describe_frame_reads_well():
    text = "\n".join(F.describe_frame(F.decode_frame(wire("alert-start"))))
    for words in ("alert-start (1)", "SOTTO-42", "2026-09-21 14:13:21 UTC", "51.5007292, -0.1246254",
                  "±5 m", "fix 3 s old", "source gnss", "87 %", "presses", "flags", "EdDSA (-8)"):
        assert words in text, words
    audio = "\n".join(F.describe_frame(F.decode_frame(wire("audio"))))
    for words in ("IMA-ADPCM, 8000 Hz, 32 samples (0.004 s)", "from sample 8000 (1.000 s",
                  "predictor -1234, step index 42", "audio bytes  16"):
        assert words in audio, words
    duress = "\n".join(F.describe_frame(F.decode_frame(wire("duress"))))
    flags_line = next(line for line in duress.splitlines() if line.startswith("flags"))
    assert flags_line.split() == ["flags", "duress"]
    loc = "\n".join(F.describe_frame(F.decode_frame(wire("location"))))
    assert "±65535 m or worse" in loc and "65535 s old or older" in loc and "source cell" in loc
    hb = "\n".join(F.describe_frame(F.decode_frame(wire("heartbeat"))))
    assert "unknown (0)" in hb and "every 900 s" in hb and "00a1b2c3d4e5f607" in hb


def test_frame_to_json_is_json():
    for name in VALID:
        obj = json.loads(json.dumps(F.frame_to_json(F.decode_frame(wire(name)))))
        assert obj["type"] == name
    start = F.frame_to_json(F.decode_frame(wire("alert-start")))
    assert start["location"] == {"lat_e7": 515007292, "lon_e7": -1246254, "lat": 51.5007292,
                                 "lon": -0.1246254, "accuracy_m": 5, "age_s": 3, "source": 1,
                                 "source_name": "gnss"}
    assert start["time_utc"] == "2026-09-21T14:13:21Z" and start["device"] == "SOTTO-42"
    audio = F.frame_to_json(F.decode_frame(wire("audio")))["audio"]
    assert audio["samples"] == 32 and audio["bytes"] == 16 and audio["adpcm_state"] == [-1234, 42]


def test_frame_error_is_a_sotto_error_and_a_value_error():
    e = decode_error(b"\x00")
    assert isinstance(e, ValueError) and e.reason == Reason.NOT_COSE_SIGN1
    assert str(e).startswith("not-cose-sign1: ")
    assert str(Reason.BAD_FIELD) == "bad-field"


# ---------------------------------------------------------------- device ids


@pytest.mark.parametrize(("text", "raw", "canonical"), [
    ("SOTTO-42", b"SOTTO-42", "SOTTO-42"),
    ("534f54544f2d3432", b"SOTTO-42", "SOTTO-42"),
    ("534F54544F2D3432", b"SOTTO-42", "SOTTO-42"),
    ("a.b_c-D9", b"a.b_c-D9", "a.b_c-D9"),
    ("0123456789abcdef", bytes.fromhex("0123456789abcdef"), "0123456789abcdef"),
    (" 00a1b2c3d4e5f607\n", bytes.fromhex("00a1b2c3d4e5f607"), "00a1b2c3d4e5f607"),
    ("4142434445464748", b"ABCDEFGH", "ABCDEFGH"),
    ("3031323334353637", b"01234567", "01234567"),
])


def test_device_ids(text, raw, canonical):
    assert parse_device_id(text) == raw
    assert format_device_id(raw) == canonical
    assert parse_device_id(canonical) == raw


@pytest.mark.parametrize(("text", "words"), [
    ("SOTTO-4", "7 characters"), ("SOTTO 42", "' ' is not allowed"), ("SOTTO/42", "'/'"),
    ("0123456789abcdeg", "'g' is not a hex digit"), ("", "0 characters"), ("ÅSOTTO42", "'Å'"),
    ("0x0123456789abcd", "'x' is not a hex digit"),
])


def test_bad_device_ids(text, words):
    with pytest.raises(DeviceIdError) as info:
        parse_device_id(text)
    assert words in str(info.value)
    assert isinstance(info.value, UsageError) and isinstance(info.value, ValueError)


def test_format_device_id_needs_8_bytes():
    with pytest.raises(DeviceIdError):
        format_device_id(b"SOTTO-4")
    assert format_device_id(b"SOTTO-4\x00") == "534f54544f2d3400"
    assert format_device_id(b"SOTTO 42") == "534f54544f203432"


# ---------------------------------------------------------------- golden vectors from the firmware

VECTORS_DIR = Path(__file__).resolve().parent / "vectors"


def golden_vectors() -> list[Path]:
    return sorted(VECTORS_DIR.glob("*.cbor")) if VECTORS_DIR.is_dir() else []


def test_golden_vectors_exist_once_their_directory_does():
    if not VECTORS_DIR.is_dir():
        pytest.skip("tests/vectors/ does not exist yet: `make vectors` creates it")
    vectors = golden_vectors()
    assert vectors, "tests/vectors/ holds no NAME.cbor: run `make vectors`"
    for path in vectors:
        assert path.with_suffix(".json").is_file(), f"{path.name} has no sibling .json"


@pytest.mark.parametrize("path", golden_vectors(), ids=lambda p: p.stem)
def test_golden_vector_verifies_with_the_host_verifier(path):
    inputs = json.loads(path.with_suffix(".json").read_text())
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(inputs["seed"])).public_key()
    data = path.read_bytes()
    frames = F.split_sequence(data)
    assert frames and b"".join(frames) == data
    for w in frames:
        verdict = F.verify_frame(w, key)
        assert verdict.ok, f"{path.name}: {verdict.reason}: {verdict.detail}"
        # the decoded payload re-encodes to the very bytes that were signed
        assert cbor2.dumps(dict(cbor2.loads(verdict.frame.payload_bytes)), canonical=True) \
            == verdict.frame.payload_bytes
    kind = str(inputs.get("kind", "")).replace("_", "-")
    labels = {F.decode_frame(w).type_name for w in frames}
    if kind in {t.label for t in FrameType}:
        assert kind in labels, f"{path.name}: kind {kind} but frames are {sorted(labels)}"
