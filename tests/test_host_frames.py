"""Host-side frames: the vectors (valid and tampered, against our verifier and pycose),
every kind of frame and the payload schema (host_tools.frames). The vectors and
helpers are in tests/host_frames_cases.py."""

from __future__ import annotations

import hashlib

import cbor2
import framefactory as ff
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from host_frames_cases import (
    LOC,
    NOW,
    PUBLIC_KEY,
    SEED,
    TAMPERED,
    VALID,
    audio_of,
    device,
    every_kind,
    payload_of,
    reason_of,
    wire,
)
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.messages import Sign1Message

from host_tools import frames as F
from host_tools.frames import FrameError, FrameType, Reason

# ---------------------------------------------------------------- vectors


def test_vector_key_is_the_rfc8032_seed_key():
    key = Ed25519PrivateKey.from_private_bytes(SEED).public_key()
    assert F.public_key_bytes(key) == PUBLIC_KEY


@pytest.mark.parametrize("name", list(VALID))
def test_valid_vector_verifies(name):
    verdict = F.verify_frame(wire(name), PUBLIC_KEY, now=NOW)
    assert verdict.ok, verdict
    assert verdict.reason is None
    assert verdict.frame is not None and verdict.frame.type_name == name


@pytest.mark.parametrize("name", list(VALID))
def test_valid_vector_verifies_with_pycose(name):
    w = wire(name)
    item = cbor2.loads(w)
    cose = w[1:-len(cbor2.dumps(item[1]))] if isinstance(item, list) else w
    msg = Sign1Message.decode(cose)
    msg.key = OKPKey(crv=Ed25519, x=PUBLIC_KEY)
    assert msg.verify_signature()
    assert msg.payload == F.decode_frame(w).payload_bytes


@pytest.mark.parametrize(("name", "reason", "hexdata"), TAMPERED, ids=[t[0] for t in TAMPERED])
def test_tampered_vector_is_rejected_with_its_reason(name, reason, hexdata):
    verdict = F.verify_frame(bytes.fromhex(hexdata), PUBLIC_KEY, now=NOW)
    assert not verdict.ok
    assert verdict.reason == Reason(reason)
    assert verdict.detail


@pytest.mark.parametrize("name", ["flipped-signature-bit", "seq-changed-after-signing",
                                  "signed-by-another-key"])


def test_pycose_also_rejects_the_bad_signature_vectors(name):
    hexdata = next(t[2] for t in TAMPERED if t[0] == name)
    msg = Sign1Message.decode(bytes.fromhex(hexdata))
    msg.key = OKPKey(crv=Ed25519, x=PUBLIC_KEY)
    assert not msg.verify_signature()


def test_vectors_decode_to_what_was_sent():
    start = F.decode_frame(wire("alert-start"))
    assert (start.type, start.version, start.kid, start.device_id) == (FrameType.ALERT_START, 1,
                                                                       b"SOTTO-42", "SOTTO-42")
    assert (start.seq, start.sid, start.time, start.uptime_ms) == (1, 1, 1_790_000_001, 61_000)
    assert start.time_utc is not None and start.time_utc.isoformat() == "2026-09-21T14:13:21+00:00"
    assert (start.battery, start.trigger, start.prev, start.flags, start.alg) == (87, 2, None, 0, -8)
    assert start.location == F.Location(515007292, -1246254, 5, 3, 1)
    assert start.location.lat_deg == pytest.approx(51.5007292)
    assert start.location.lon_deg == pytest.approx(-0.1246254)
    assert start.location.source_name == "gnss"
    assert start.audio is None and start.is_alert

    loc = F.decode_frame(wire("location")).location
    assert loc is not None and (loc.lat_e7, loc.lon_e7, loc.source_name) == (-338688000, 1512093000, "cell")
    assert loc.accuracy_capped and loc.age_capped

    audio = F.decode_frame(wire("audio"))
    assert audio.audio == bytes(range(16))
    assert (audio.codec, audio.rate_hz, audio.audio_offset, audio.samples) == (1, 8000, 8000, 32)
    assert audio.adpcm_state == (-1234, 42)
    assert audio.audio_digest == hashlib.sha256(bytes(range(16))).digest()
    assert audio.cose == wire("audio")[1:-17]

    duress = F.decode_frame(wire("duress"))
    assert duress.duress and duress.flag_names == ["duress"]
    assert duress.location == F.Location(900000000, -1800000000, 12, 0, 3)
    assert F.decode_frame(wire("end")).end_reason == 2

    hb = F.decode_frame(wire("heartbeat"))
    assert hb.device_id == "00a1b2c3d4e5f607" and hb.time == 0 and hb.time_utc is None
    assert (hb.seq, hb.sid, hb.battery, hb.heartbeat_s, hb.location) == (42, None, 100, 900, None)
    assert not hb.is_alert
    checkin = F.decode_frame(wire("check-in"))
    assert (checkin.battery, checkin.location) == (0, None)
    status = F.decode_frame(wire("status"))
    assert (status.status, status.dropped, status.battery) == (5, 7, 15)
    cancel = F.decode_frame(wire("cancel"))
    assert (cancel.seq, cancel.sid, cancel.battery) == (102, 7, None)


def test_vectors_of_one_alert_form_a_chain():
    names = ["alert-start", "location", "audio", "duress", "end"]
    frames = [F.decode_frame(wire(n)) for n in names]
    assert frames[0].prev is None
    for before, after in zip(frames, frames[1:], strict=False):
        assert after.prev == F.chain_link(before.wire) == before.link
        # independently: the first 8 bytes of SHA-256 over the tagged COSE_Sign1 only
        assert after.prev == ff.chain_link(before.wire)
    assert frames[3].prev == hashlib.sha256(wire("audio")[1:-17]).digest()[:8]


def test_every_reason_code_has_a_case():
    """Each reason code of docs/frames.md is produced by at least one frame here."""
    d = device()
    start = d.alert_start(loc=LOC)
    revoked = FrameError(Reason.REVOKED_DEVICE, "key revoked on 2026-01-01")

    def resolver(kid):
        raise revoked

    produced = {Reason(t[1]) for t in TAMPERED}
    produced.add(F.verify_frame(start, {}).reason)                                  # unknown-device
    produced.add(F.verify_frame(start, resolver).reason)                            # revoked-device
    produced.add(F.verify_frame(b"\x82" + start + b"\x5a\x00\x01\x00\x00" + bytes(65536),
                                PUBLIC_KEY).reason)                                 # too-large
    assert produced == set(Reason)
    assert {r.value for r in Reason} == {
        "malformed-cbor", "not-cose-sign1", "bad-protected-header", "unsupported-alg", "missing-kid",
        "unknown-device", "revoked-device", "bad-signature", "audio-missing", "audio-unexpected",
        "audio-digest-mismatch", "unsupported-version", "unknown-frame-type", "missing-field",
        "bad-field", "time-in-future", "too-large"}


# ---------------------------------------------------------------- every kind from the factory


@pytest.mark.parametrize("kind", list(every_kind()))
def test_every_kind_verifies_and_names_its_type(kind):
    d = device()
    w = every_kind()[kind]
    verdict = F.verify_frame(w, d.public_key, now=d.time)
    assert verdict.ok, verdict
    assert verdict.frame.type.label == kind
    assert F.decode_frame(w) == verdict.frame


# docs/frames.md: the keys each frame type must carry (the rest it may carry are optional)
REQUIRED = {
    "alert-start": {0, 1, 2, 3, 4, 5, 7, 9},
    "location": {0, 1, 2, 3, 4, 5, 6, 8},
    "audio": {0, 1, 2, 3, 4, 5, 8, 11, 12, 13, 14, 15, 16},
    "cancel": {0, 1, 2, 3, 4, 5, 8},
    "duress": {0, 1, 2, 3, 4, 5, 8},
    "end": {0, 1, 2, 3, 4, 5, 8, 20},
    "heartbeat": {0, 1, 3, 4, 5, 7, 17},
    "check-in": {0, 1, 3, 4, 5, 7},
    "status": {0, 1, 3, 4, 5, 7, 18},
    "reply": {0, 1, 3, 4, 5, 21, 22},
}


def _present_keys(required: bool):
    return [(kind, key) for kind, w in every_kind().items() for key in sorted(payload_of(w))
            if (key in REQUIRED[kind]) == required]


@pytest.mark.parametrize(("kind", "key"), _present_keys(required=True))
def test_a_frame_without_a_required_key_is_missing_field(kind, key):
    d = device()
    w = every_kind()[kind]
    payload = {k: v for k, v in payload_of(w).items() if k != key}
    verdict = F.verify_frame(ff.resign(d, payload, audio=audio_of(w)), d.public_key)
    assert verdict.reason == Reason.MISSING_FIELD


@pytest.mark.parametrize(("kind", "key"), _present_keys(required=False))
def test_a_frame_without_an_optional_key_is_fine(kind, key):
    d = device()
    w = every_kind()[kind]
    payload = {k: v for k, v in payload_of(w).items() if k != key}
    assert F.verify_frame(ff.resign(d, payload, audio=audio_of(w)), d.public_key).ok


def test_every_kind_carries_its_optional_keys_in_these_tests():
    optional = {kind: set(payload_of(w)) - REQUIRED[kind] for kind, w in every_kind().items()}
    assert optional["alert-start"] >= {6} and optional["duress"] >= {6, 10}
    assert optional["check-in"] >= {6} and optional["status"] >= {19}


@pytest.mark.parametrize(("kind", "key", "value"), [
    ("heartbeat", 6, LOC),              # heartbeats never carry a location (privacy)
    ("heartbeat", 2, 1),                # no sid outside an alert
    ("status", 8, bytes(8)),            # no prev outside an alert
    ("alert-start", 8, bytes(8)),       # alert-start starts the chain
    ("location", 7, 50),                # no battery in location or audio frames
    ("audio", 7, 50),
    ("location", 9, 1),
    ("cancel", 6, LOC),
    ("check-in", 20, 1),
    ("alert-start", 21, 0),             # not a key of the format at all
])


def test_a_key_the_type_does_not_list_is_bad_field(kind, key, value):
    d = device()
    w = every_kind()[kind]
    payload = {**payload_of(w), key: value}
    verdict = F.verify_frame(ff.resign(d, payload, audio=audio_of(w)), d.public_key)
    assert verdict.reason == Reason.BAD_FIELD
    assert str(key) in verdict.detail


@pytest.mark.parametrize(("kind", "key", "value", "ok"), [
    ("alert-start", 3, 2**32 - 1, True), ("alert-start", 3, 2**32, False), ("alert-start", 3, 0, False),
    ("alert-start", 2, 65535, True), ("alert-start", 2, 65536, False), ("alert-start", 2, 0, False),
    ("alert-start", 5, 2**32 - 1, True), ("alert-start", 5, 2**32, False),
    ("alert-start", 4, 2**32 - 1, True), ("alert-start", 4, 2**32, False), ("alert-start", 4, -1, False),
    ("alert-start", 7, 100, True), ("alert-start", 7, 101, False), ("alert-start", 7, True, False),
    ("alert-start", 9, 5, True), ("alert-start", 9, 6, False), ("alert-start", 9, "hold", False),
    ("alert-start", 10, 0, True), ("alert-start", 10, 63, True), ("alert-start", 10, 64, False),
    ("alert-start", 10, -1, False),
    ("alert-start", 6, LOC[:12], False), ("alert-start", 6, [1, 2], False),
    ("alert-start", 6, ff.pack_location(0, 1800000001, 0, 0, 1), False),
    ("alert-start", 6, ff.pack_location(0, 0, 0, 0, 0), False),
    ("alert-start", 6, ff.pack_location(-900000000, 1800000000, 0, 0, 2), True),
    ("location", 8, bytes(7), False), ("location", 8, bytes(8), True),
    ("audio", 11, 2, False), ("audio", 12, 0, False), ("audio", 14, bytes(31), False),
    ("audio", 15, [-32768, 88], True), ("audio", 15, [-32769, 0], False), ("audio", 15, [0, 89], False),
    ("audio", 15, [0, 0, 0], False), ("audio", 15, 0, False),
    ("end", 20, 4, True), ("end", 20, 5, False), ("end", 20, 0, False),
    ("status", 18, 0, False), ("status", 18, 9, False),
    ("status", 18, 11, False), ("status", 18, 12, False),
    ("status", 24, "0.1.0", True), ("status", 24, "x" * 33, False), ("status", 24, 1, False),
    ("status", 25, 2**32 - 1, True), ("status", 25, 2**32, False), ("status", 26, 6, True),
    ("status", 26, 7, False), ("status", 27, 2**32, False), ("status", 28, -1, False),
    ("status", 29, 0, True), ("status", 30, 99, True), ("status", 30, 100, False),
    ("status", 37, "x" * 64, True), ("status", 37, "é" * 33, False), ("status", 37, b"no", False),
    ("heartbeat", 24, "0.1.0", True), ("heartbeat", 30, 31, True), ("heartbeat", 37, "no", False),
    ("heartbeat", 26, 1, False), ("alert-start", 29, 1, False),
    ("status", 19, None, False), ("heartbeat", 17, b"", False),
    ("audio", 13, 2**32 - 1, True), ("audio", 13, 2**32, False), ("audio", 16, 2**32, False),
    ("heartbeat", 17, 2**32 - 1, True), ("heartbeat", 17, 2**32, False), ("status", 19, 2**32, False),
    ("heartbeat", 23, 2**32 - 1, True), ("heartbeat", 23, 2**32, False),
    ("reply", 21, 2**53, True), ("reply", 21, 2**53 + 1, False), ("reply", 21, 0, False),
    ("reply", 22, 7, True), ("reply", 22, 8, False), ("reply", 22, 0, False), ("reply", 2, 0, False),
    ("alert-start", 4, 2**63, False), ("alert-start", 4, 2**64 - 1, False),
])


def test_field_types_and_ranges(kind, key, value, ok):
    d = device()
    w = every_kind()[kind]
    payload = {**payload_of(w), key: value}
    verdict = F.verify_frame(ff.resign(d, payload, audio=audio_of(w)), d.public_key)
    assert verdict.ok == ok, verdict
    if not ok:
        assert verdict.reason == Reason.BAD_FIELD


def test_drop_belongs_only_to_queue_full_status():
    d = device()
    assert F.verify_frame(d.status(5, dropped=9), d.public_key).ok
    verdict = F.verify_frame(d.status(1, dropped=9), d.public_key)
    assert verdict.reason == Reason.BAD_FIELD and "drop" in verdict.detail


@pytest.mark.parametrize(("version", "reason"), [(0, Reason.UNSUPPORTED_VERSION),
                                                 (2, Reason.UNSUPPORTED_VERSION),
                                                 (b"\x01", Reason.BAD_FIELD)])


def test_version_is_checked_before_the_rest(version, reason):
    d = device()
    # a future version may use keys this one does not know: the answer is the version
    payload = {0: version, 1: 1, 99: "future"}
    assert reason_of(ff.resign(d, payload), d.public_key) == reason


@pytest.mark.parametrize(("t", "reason"), [(0, Reason.UNKNOWN_FRAME_TYPE), (11, Reason.UNKNOWN_FRAME_TYPE),
                                           (-1, Reason.UNKNOWN_FRAME_TYPE), ("alert", Reason.BAD_FIELD)])


def test_unknown_frame_types(t, reason):
    d = device()
    payload = {**payload_of(every_kind()["heartbeat"]), 1: t}
    assert reason_of(ff.resign(d, payload), d.public_key) == reason


@pytest.mark.parametrize("payload", [[1, 2], 7, b"", "text", None])
def test_a_payload_that_is_not_a_map_is_bad_field(payload):
    d = device()
    protected = ff.protected_header(d.kid)
    w = ff.sign1_raw(d.key, protected, cbor2.dumps(payload))
    assert reason_of(w, d.public_key) == Reason.BAD_FIELD


def test_an_empty_payload_is_malformed():
    d = device()
    w = ff.sign1_raw(d.key, ff.protected_header(d.kid), b"")
    assert reason_of(w, d.public_key) == Reason.MALFORMED_CBOR


@pytest.mark.parametrize("st", [7, 8])
def test_health_and_config_invalid_status_frames(st):
    d = device()
    payload = {k: v for k, v in payload_of(every_kind()["status"]).items() if k != 19}
    payload.update({18: st, 10: 32, 24: "0.1.0", 25: 4, 26: 3, 27: 12, 28: 1, 29: 2, 30: 99,
                    37: "trigger.duress: cannot be told apart from trigger.cancel"})
    verdict = F.verify_frame(ff.resign(d, payload), d.public_key)
    assert verdict.ok, verdict
    f = verdict.frame
    assert (f.firmware, f.config_version, f.reset_cause, f.boots, f.faults, f.queue_depth, f.signal) == \
        ("0.1.0", 4, 3, 12, 1, 2, 99)
    assert f.config_invalid and not f.pre_trigger and f.error_text.startswith("trigger.duress")
    out = F.frame_to_json(f)
    assert out["cfgv"] == 4 and out["err"] == f.error_text and "config-invalid" in out["flag_names"]
    text = "\n".join(F.describe_frame(f))
    assert "3: watchdog" in text
    assert "signal" in text and "unknown (99)" in text
