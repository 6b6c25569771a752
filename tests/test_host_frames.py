"""Host-side frames: decode with cbor2, verify with cryptography (host_tools.frames).

The hex vectors below were made by tests/framefactory.py (cbor2 + cryptography,
an implementation of docs/frames.md that shares no code with host_tools.frames
or the firmware) with the RFC 8032 test seed 00 01 .. 1f, and are checked here
against both our verifier and pycose. Each tampered vector names the reason
code docs/frames.md says it must get.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import cbor2
import framefactory as ff
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.messages import Sign1Message

from host_tools import frames as F
from host_tools.errors import UsageError
from host_tools.frames import FrameError, FrameType, Reason
from host_tools.ids import DeviceIdError, format_device_id, parse_device_id

SEED = bytes(range(32))
PUBLIC_KEY = bytes.fromhex("03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8")
NOW = 1_790_000_100   # a clock shortly after the vectors' times

VALID = {
    "alert-start": (
        "d2844da201270448534f54544f2d3432a05827a90001010102010301041a6ab13b810519ee48064d1eb2633cffecfbd2"
        "00050003010718570902584097dd9a238626df4a662c1a0b6223205477dce8eeea5cde9986197c6fcf5c616a741e497b"
        "ecb92d9d75b23297bd8583c6cbabf64126486125737b74e76d4c0e01"
    ),
    "location": (
        "d2844da201270448534f54544f2d3432a0582ca80001010202010302041a6ab13b820519f230064debd008005a20b548"
        "ffffffff020848759bc8d7a64867da5840c99b9bd04251e52248bc5e443f5aa4e5ac551f29cfd34511528737809d9bef"
        "0032891a91751e1214799a9b832feb84d90a6f4856b386d46d65044d86b24cd503"
    ),
    "audio": (
        "82d2844da201270448534f54544f2d3432a05854ad0001010302010303041a6ab13b830519f61808487681c7a152d84e"
        "410b010c191f400d191f400e5820be45cb2605bf36bebde684841a28f0fd43c69850a3dce5fedba69928ee3a89910f82"
        "3904d1182a101820584003b10969ae2d1f1000ab0d2569170c976db33601a1985541eb0d1445a83e0dc5dad36d26befc"
        "067f3ae2512790afe288a6fa3b51d2543bd30a64adc8834c480850000102030405060708090a0b0c0d0e0f"
    ),
    "duress": (
        "d2844da201270448534f54544f2d3432a0582ea90001010502010304041a6ab13b840519fa00064d35a4e90094b62e00"
        "000c0000030848840180af8ff3d8670a01584064487c3f7120b54279385a28de0642c8e766c4f55c984294cb5b105826"
        "fdcdc0277b589071402ba9037254612ae1470b5a50db4cd4a7f05a882c66aff6248a00"
    ),
    "end": (
        "d2844da201270448534f54544f2d3432a05821a90001010602010305041a6ab13b850519fde80848deebd640b36695e7"
        "0a01140258401cff03a843a16072a374cfab8f5366aaf7e972d1c465a47b8c19b2e8d70aaaff25f4720edd2011978320"
        "9c2772f415da614619d8cfe27aef2f5b76645474ba0f"
    ),
    "heartbeat": (
        "d2844da20127044800a1b2c3d4e5f607a055a70001010703182a04000519ee48071864111903845840a9498c300a9484"
        "4272767fd0da0a8292f08ac849934575f043e0301aaf7b5cd68a7ea0926a7d53b09ae4995dd23650c6395d76ece12353"
        "9b42ef466337719805"
    ),
    "check-in": (
        "d2844da20127044800a1b2c3d4e5f607a050a60001010803182b04010519f23007005840d6860ce34576c93e90594adb"
        "8c8ee094880ceb5482229f029fa65dbf6f1d2cb6a117c7c990c0d50b288dae9bab659f497b5d1e9f9fbe6a44eb9d5c44"
        "61eb920b"
    ),
    "status": (
        "d2844da20127044800a1b2c3d4e5f607a054a80001010903182c04020519f618070f1205130758401e4dc8f78857c556"
        "4bad67d099eaa11a0a4d385e7ee4388e4d0db9147fd6c8fa980506d8bbd544d3395539f788c20d73f7dc4f4f7a0bdecd"
        "0b7043d8049beb09"
    ),
    "cancel": (
        "d2844da201270448534f54544f2d3432a0581ea7000101040207031866041a6ab13b820519f23008486893e6a6449fc7"
        "af5840fb52a4addaaaba39d7e7429b1a66c68c0f5d9008c6ee75bdecfb4864f2122fea69db46d43aa5bc329194c7535d"
        "415a91c089c69c69bc9e1b121e29ce1df93208"
    ),
}
TAMPERED = [
    ("flipped-signature-bit", "bad-signature",
     "d2844da201270448534f54544f2d3432a05827a90001010102010301041a6ab13b810519ee48064d1eb2633cffecfbd2"
     "00050003010718570902584097dd9a238626df4a662c1a0b6223205477dce8eeea5cde9986197c6fcf5c616a741e497b"
     "ecb92d9d75b23297bd8583c6cbabf64126486125737b74e76d4c0e00"),
    ("seq-changed-after-signing", "bad-signature",
     "d2844da201270448534f54544f2d3432a05827a90001010102010302041a6ab13b810519ee48064d1eb2633cffecfbd2"
     "00050003010718570902584097dd9a238626df4a662c1a0b6223205477dce8eeea5cde9986197c6fcf5c616a741e497b"
     "ecb92d9d75b23297bd8583c6cbabf64126486125737b74e76d4c0e01"),
    ("signed-by-another-key", "bad-signature",
     "d2844da201270448534f54544f2d3432a05827a90001010102010301041a6ab13b810519ee48064d1eb2633cffecfbd2"
     "000500030107185709025840419af3200c72244a3695da9176ad56afd635a71334e2b04a43cb86c9f74307c4c11738b7"
     "6eac5c952b4af26e5a6345f41d896e83a0ec35c2e963186f9906b002"),
    ("truncated", "malformed-cbor",
     "d2844da201270448534f54544f2d3432a05827a90001010102010301041a6ab13b810519ee48064d1eb2633cffecfbd2"
     "00050003010718570902584097dd9a238626df4a662c1a0b6223205477dce8eeea5cde9986197c6fcf5c616a741e497b"
     "ecb92d9d75b23297bd8583c6cbabf64126486125737b74e76d4c0e"),
    ("trailing-byte", "malformed-cbor",
     "d2844da201270448534f54544f2d3432a05827a90001010102010301041a6ab13b810519ee48064d1eb2633cffecfbd2"
     "00050003010718570902584097dd9a238626df4a662c1a0b6223205477dce8eeea5cde9986197c6fcf5c616a741e497b"
     "ecb92d9d75b23297bd8583c6cbabf64126486125737b74e76d4c0e0100"),
    ("seq-in-long-head", "malformed-cbor",
     "d2844da201270448534f54544f2d3432a05828a9000101010201031801041a6ab13b810519ee48064d1eb2633cffecfb"
     "d200050003010718570902584091d2974f472af54389aad878dc29948690b542459a4c6d45c3c1e9626bc5fb3f345883"
     "d6b64462d96c67b2c8952be4781aaeec570f43056394be853fb7d4a609"),
    ("payload-keys-unsorted", "malformed-cbor",
     "d2844da201270448534f54544f2d3432a05827a90902071857064d1eb2633cffecfbd200050003010519ee48041a6ab1"
     "3b8103010201010100015840f71027d43ab7b36d88cbc40a67652681de211b2b1f442a68cfc7fa924dfd5472e0a887d1"
     "a690cf2793ff4aa26c24e75f1c947caf2b3189ec2589c8859b0bf30c"),
    ("untagged-cose-sign1", "not-cose-sign1",
     "844da201270448534f54544f2d3432a05827a90001010102010301041a6ab13b810519ee48064d1eb2633cffecfbd200"
     "050003010718570902584097dd9a238626df4a662c1a0b6223205477dce8eeea5cde9986197c6fcf5c616a741e497bec"
     "b92d9d75b23297bd8583c6cbabf64126486125737b74e76d4c0e01"),
    ("tag-17-mac0", "not-cose-sign1",
     "d1844da201270448534f54544f2d3432a05827a90001010102010301041a6ab13b810519ee48064d1eb2633cffecfbd2"
     "00050003010718570902584097dd9a238626df4a662c1a0b6223205477dce8eeea5cde9986197c6fcf5c616a741e497b"
     "ecb92d9d75b23297bd8583c6cbabf64126486125737b74e76d4c0e01"),
    ("protected-extra-parameter", "bad-protected-header",
     "d2844fa3012703000448534f54544f2d3432a05827a90001010102010301041a6ab13b810519ee48064d1eb2633cffec"
     "fbd2000500030107185709025840ab4644d9cecdd3f7a2e8c6c383e08b855a7da64477c8f3eddb1a11f4ae0194d1a192"
     "47f9c18f896bc7620a5caf99dc21fe19db49ce4d3cc7a760a5c0edb48f00"),
    ("protected-empty", "bad-protected-header",
     "d28440a05827a90001010102010301041a6ab13b810519ee48064d1eb2633cffecfbd20005000301071857090258402a"
     "bb8922f1c457e8f14e6aeb59cc55c5f498dc4e74e88073880178a50dfdf68d467220661e7fb068fd60c58748301b6ea6"
     "c6f50a30a9e7ebd651f7f4d2e9a105"),
    ("alg-es256", "unsupported-alg",
     "d2844da201260448534f54544f2d3432a05827a90001010102010301041a6ab13b810519ee48064d1eb2633cffecfbd2"
     "00050003010718570902584068f7b7d1ae73deee0418d1f2c9b4cbff559eca5f0c80960a07c5a36ee324683786c510c6"
     "5428854acd65be7fb01339491bcc715c28b74f69770d36c329237309"),
    ("no-kid", "missing-kid",
     "d28443a10127a05827a90001010102010301041a6ab13b810519ee48064d1eb2633cffecfbd200050003010718570902"
     "58401f56ed57ee449482f31ea93afe8d8ba8a91597f885f3d88c543c9c5331be0af36d99229ad25255b22f57c9d3e293"
     "792acce6931738973182579697c3a90d8b0c"),
    ("kid-7-bytes", "missing-kid",
     "d2844ca201270447534f54544f2d34a05827a90001010102010301041a6ab13b810519ee48064d1eb2633cffecfbd200"
     "050003010718570902584030916e4dd15d731f062ff1a62875d7f465136d8df6d29746436848557df147cf9d932eaf8d"
     "b1493588f896d26ae7ad9d289e7b98d8a634039635ce5bd3711009"),
    ("audio-without-audio-bytes", "audio-missing",
     "d2844da201270448534f54544f2d3432a05854ad0001010302010303041a6ab13b830519f61808487681c7a152d84e41"
     "0b010c191f400d191f400e5820be45cb2605bf36bebde684841a28f0fd43c69850a3dce5fedba69928ee3a89910f8239"
     "04d1182a101820584003b10969ae2d1f1000ab0d2569170c976db33601a1985541eb0d1445a83e0dc5dad36d26befc06"
     "7f3ae2512790afe288a6fa3b51d2543bd30a64adc8834c4808"),
    ("audio-beside-alert-start", "audio-unexpected",
     "82d2844da201270448534f54544f2d3432a05827a90001010102010301041a6ab13b810519ee48064d1eb2633cffecfb"
     "d200050003010718570902584097dd9a238626df4a662c1a0b6223205477dce8eeea5cde9986197c6fcf5c616a741e49"
     "7becb92d9d75b23297bd8583c6cbabf64126486125737b74e76d4c0e014100"),
    ("audio-byte-changed", "audio-digest-mismatch",
     "82d2844da201270448534f54544f2d3432a05854ad0001010302010303041a6ab13b830519f61808487681c7a152d84e"
     "410b010c191f400d191f400e5820be45cb2605bf36bebde684841a28f0fd43c69850a3dce5fedba69928ee3a89910f82"
     "3904d1182a101820584003b10969ae2d1f1000ab0d2569170c976db33601a1985541eb0d1445a83e0dc5dad36d26befc"
     "067f3ae2512790afe288a6fa3b51d2543bd30a64adc8834c480850000102030405060708090a0b0c0d0eff"),
    ("version-2", "unsupported-version",
     "d2844da201270448534f54544f2d3432a05827a90002010102010301041a6ab13b810519ee48064d1eb2633cffecfbd2"
     "00050003010718570902584069f4c1e56b6d12f21fd67aa43783ecd7a9c11be73297f3f92905201e77971143b173077f"
     "16b8beea4bafc4b84f0feaf731f21452d4475d98c7c707fe9220450f"),
    ("frame-type-10", "unknown-frame-type",
     "d2844da201270448534f54544f2d3432a05827a90001010a02010301041a6ab13b810519ee48064d1eb2633cffecfbd2"
     "0005000301071857090258403bf5badd50d6bd20fcaf9c00ec75b06c03e6d07496704bc213566ba21d80e821950c1b0e"
     "190259a230dcf0cce59f34e7499457ba5ccf6f9d5edb9750cfb21404"),
    ("alert-start-without-battery", "missing-field",
     "d2844da201270448534f54544f2d3432a05824a80001010102010301041a6ab13b810519ee48064d1eb2633cffecfbd2"
     "00050003010902584024be29760819a8f8ad9cc9961d4072c39df2e05285c33b8ac3dfb7ecf2bf1e343f56622ce0e574"
     "1f819dd33760a2a85523a624085f7448fff3b55451d17f850e"),
    ("battery-101", "bad-field",
     "d2844da201270448534f54544f2d3432a05827a90001010102010301041a6ab13b810519ee48064d1eb2633cffecfbd2"
     "0005000301071865090258402e31117b305462fdf7d5521ea421338653f5db1b29bb75e7b1a109e0fff78124299e8ed6"
     "b805dc3e15a9c7e423d3689050d46fb865580a2bcd07338a029e9d06"),
    ("seq-0", "bad-field",
     "d2844da201270448534f54544f2d3432a05827a90001010102010300041a6ab13b810519ee48064d1eb2633cffecfbd2"
     "0005000301071857090258408c4a04875fd896e6e71b74fecc348a0042633bd17cf05ba4e5474e55dab50de8f8965ee1"
     "2e05cc41710357c2495ce9c8f822d201d8b2ffb892c7fae36f6bca0a"),
    ("unknown-key-21", "bad-field",
     "d2844da201270448534f54544f2d3432a05829aa0001010102010301041a6ab13b810519ee48064d1eb2633cffecfbd2"
     "0005000301071857090215005840f6280db0e924fcd9a82c177a019422d70969665883b80a2f722ded2aa4d6ab692acd"
     "42d32f491c0088406be11c28a52e6d5d01370db0aa80e4808c6e64f3a209"),
    ("latitude-beyond-pole", "bad-field",
     "d2844da201270448534f54544f2d3432a05827a90001010102010301041a6ab13b810519ee48064d35a4e90100000000"
     "000500000107185709025840f0af28268ee25c47108fa8ab072c876894ed272cc13bee4380bf02892068ddf1922c5820"
     "c795e6e29b89f9e71a52c54edc8c6e1c122d6dd4fbdf657c37234509"),
    ("time-an-hour-ahead", "time-in-future",
     "d2844da201270448534f54544f2d3432a05827a90001010102010301041a6ab149910519ee48064d1eb2633cffecfbd2"
     "000500030107185709025840d741f1cc3c577af74973a7fc25ef9acb37e9853ac8baa188002d32f2cdad0ea12b87bb44"
     "ff16da436e9197181f5360c73a074334ae5d4e74a0de4d77482c9c00"),
]


def wire(name: str) -> bytes:
    return bytes.fromhex(VALID[name])


def device(**kw) -> ff.DeviceSim:
    kw.setdefault("kid", b"SOTTO-42")
    kw.setdefault("seed", SEED)
    return ff.DeviceSim(**kw)


LOC = ff.pack_location(515007292, -1246254, 5, 3, ff.SRC_GNSS)


def every_kind() -> dict[str, bytes]:
    """One valid frame of every type, from the factory."""
    d = device()
    out = {"alert-start": d.alert_start(loc=LOC), "location": d.location(LOC),
           "audio": d.audio(bytes(4000), offset=0, samples=8000, state=(5, 7)),
           "duress": d.duress(loc=LOC), "end": d.end(why=3)}
    c = device(sid=1)
    c.alert_start()
    out["cancel"] = c.cancel()
    out["heartbeat"] = d.heartbeat()
    out["check-in"] = ff.check_in(d, loc=LOC)
    out["status"] = d.status(5, dropped=2)
    return out


def payload_of(w: bytes) -> dict:
    item = cbor2.loads(w)
    cose = item[0] if isinstance(item, (list, tuple)) else item
    return dict(cbor2.loads(cose.value[2]))


def audio_of(w: bytes) -> bytes | None:
    item = cbor2.loads(w)
    return item[1] if isinstance(item, (list, tuple)) else None


def reason_of(w: bytes, key=PUBLIC_KEY, **kw) -> Reason | None:
    return F.verify_frame(w, key, **kw).reason


def decode_error(w: bytes) -> FrameError:
    with pytest.raises(FrameError) as info:
        F.decode_frame(w)
    return info.value


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
    ("alert-start", 4, 2**64 - 1, True), ("alert-start", 4, -1, False),
    ("alert-start", 7, 100, True), ("alert-start", 7, 101, False), ("alert-start", 7, True, False),
    ("alert-start", 9, 3, False), ("alert-start", 9, "hold", False),
    ("alert-start", 10, 0, True), ("alert-start", 10, 7, True), ("alert-start", 10, -1, False),
    ("alert-start", 6, LOC[:12], False), ("alert-start", 6, [1, 2], False),
    ("alert-start", 6, ff.pack_location(0, 1800000001, 0, 0, 1), False),
    ("alert-start", 6, ff.pack_location(0, 0, 0, 0, 0), False),
    ("alert-start", 6, ff.pack_location(-900000000, 1800000000, 0, 0, 2), True),
    ("location", 8, bytes(7), False), ("location", 8, bytes(8), True),
    ("audio", 11, 2, False), ("audio", 12, 0, False), ("audio", 14, bytes(31), False),
    ("audio", 15, [-32768, 88], True), ("audio", 15, [-32769, 0], False), ("audio", 15, [0, 89], False),
    ("audio", 15, [0, 0, 0], False), ("audio", 15, 0, False),
    ("end", 20, 4, True), ("end", 20, 5, False), ("end", 20, 0, False),
    ("status", 18, 0, False), ("status", 18, 7, False),
    ("status", 19, None, False), ("heartbeat", 17, b"", False),
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


@pytest.mark.parametrize(("t", "reason"), [(0, Reason.UNKNOWN_FRAME_TYPE), (10, Reason.UNKNOWN_FRAME_TYPE),
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
