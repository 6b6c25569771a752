"""The golden vectors in tests/vectors/ against the firmware and against
implementations nobody here wrote (cbor2, cryptography, pycose).

Each NAME.json holds the inputs (seed, kid, fields, audio); NAME.cbor the exact
wire bytes the firmware produced in the MicroPython VM (`make vectors`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import struct
import sys
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.messages import Sign1Message
from sotto import frames as fw_frames

REPO_ROOT = Path(__file__).resolve().parent.parent
VECTORS = REPO_ROOT / "tests" / "vectors"
NAMES = sorted(p.stem for p in VECTORS.glob("*.json"))

# docs/frames.md, written out again here (not imported from the firmware)
KEYS = {"v": 0, "t": 1, "sid": 2, "seq": 3, "time": 4, "up": 5, "loc": 6, "batt": 7, "prev": 8,
        "trig": 9, "flags": 10, "codec": 11, "rate": 12, "off": 13, "adig": 14, "ast": 15,
        "ns": 16, "hb": 17, "st": 18, "drop": 19, "why": 20, "cmd": 21, "res": 22, "unauth": 23,
        "fw": 24, "cfgv": 25, "rst": 26, "boots": 27, "faults": 28, "qd": 29, "csq": 30, "err": 37,
        "pend": 35, "upd": 36, "visit": 31, "due": 32, "dur": 33, "rx": 34}
TYPES = {"alert-start": 1, "location": 2, "audio": 3, "cancel": 4, "duress": 5, "end": 6,
         "heartbeat": 7, "check-in": 8, "status": 9, "reply": 10}


def _load_generator() -> Any:
    spec = importlib.util.spec_from_file_location("vectors_in_vm", REPO_ROOT / "tools" / "vectors_in_vm.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load_make_vectors() -> Any:
    sys.path.insert(0, str(REPO_ROOT / "tools"))
    try:
        import make_vectors
    finally:
        sys.path.pop(0)
    return make_vectors


def spec_of(name: str) -> dict[str, Any]:
    return json.loads((VECTORS / f"{name}.json").read_text())


def wire_of(name: str) -> bytes:
    return (VECTORS / f"{name}.cbor").read_bytes()


def public_key(spec: dict[str, Any]) -> bytes:
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(spec["seed"]))
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def expected_payload(spec: dict[str, Any]) -> dict[int, Any]:
    """The payload map the json documents, built with struct and hashlib."""
    out: dict[int, Any] = {KEYS["v"]: 1}
    for name, value in spec["fields"].items():
        if name == "loc":
            value = struct.pack(">iiHHB", value["lat_e7"], value["lon_e7"], min(value["acc_m"], 65535),
                                min(value["age_s"], 65535), value["source"])
        elif name == "prev":
            value = bytes.fromhex(value)
        out[KEYS[name]] = value
    if "audio" in spec:
        out[KEYS["adig"]] = hashlib.sha256(bytes.fromhex(spec["audio"])).digest()
    return out


def cose_part(wire: bytes) -> bytes:
    item = cbor2.loads(wire)
    return cbor2.dumps(item[0], canonical=True) if isinstance(item, list) else wire


def test_every_frame_kind_has_a_vector() -> None:
    assert {spec_of(n)["kind"] for n in NAMES} == set(TYPES)
    for name in NAMES:
        assert (VECTORS / f"{name}.cbor").exists(), name


def test_vm_regenerates_the_committed_bytes() -> None:
    made = _load_make_vectors().generate_in_vm()
    assert sorted(made) == NAMES
    for name in NAMES:
        assert made[name] == wire_of(name), f"{name}: the VM no longer makes the committed bytes"


@pytest.mark.parametrize("name", NAMES)
def test_cpython_generates_the_same_bytes(name: str) -> None:
    assert _load_generator().frame_from_spec(spec_of(name)) == wire_of(name)


@pytest.mark.parametrize("name", NAMES)
def test_vector_verifies_with_pycose(name: str) -> None:
    spec = spec_of(name)
    pub = public_key(spec)
    assert spec["public_key"] == pub.hex()
    msg = Sign1Message.decode(cose_part(wire_of(name)))
    msg.key = OKPKey(crv=Ed25519, x=pub)
    verified = msg.verify_signature()
    assert verified is True
    assert cbor2.loads(msg.phdr_encoded) == {1: -8, 4: bytes.fromhex(spec["kid"])}
    assert msg.uhdr == {}
    assert cbor2.loads(msg.payload) == expected_payload(spec)


@pytest.mark.parametrize("name", NAMES)
def test_vector_decodes_with_cbor2_and_verifies_with_cryptography(name: str) -> None:
    spec = spec_of(name)
    wire = wire_of(name)
    # deterministic encoding: cbor2's canonical re-encoding gives the same bytes
    assert cbor2.dumps(cbor2.loads(wire), canonical=True) == wire
    item = cbor2.loads(wire)
    audio = None
    if spec["kind"] == "audio":
        assert isinstance(item, list) and len(item) == 2
        item, audio = item
    assert isinstance(item, cbor2.CBORTag) and item.tag == 18
    protected, unprotected, payload, signature = item.value
    assert unprotected == {}
    to_sign = cbor2.dumps(["Signature1", protected, b"", payload], canonical=True)
    Ed25519PublicKey.from_public_bytes(public_key(spec)).verify(signature, to_sign)  # raises if bad
    fields = cbor2.loads(payload)
    assert fields == expected_payload(spec)
    assert fields[KEYS["t"]] == TYPES[spec["kind"]]
    if audio is not None:
        assert audio == bytes.fromhex(spec["audio"])
        assert hashlib.sha256(audio).digest() == fields[KEYS["adig"]]
    else:
        assert "audio" not in spec


@pytest.mark.parametrize("name", [n for n in NAMES if "after" in spec_of(n)])
def test_hash_chain_links_to_the_previous_vector(name: str) -> None:
    prev_name = spec_of(name)["after"]
    link = hashlib.sha256(cose_part(wire_of(prev_name))).digest()[:8]
    payload = cbor2.loads(cbor2.loads(cose_part(wire_of(name))).value[2])
    assert payload[KEYS["prev"]] == link
    assert spec_of(name)["fields"]["sid"] == spec_of(prev_name)["fields"]["sid"]


@pytest.mark.parametrize("name", NAMES)
def test_firmware_verify_accepts_each_vector(name: str) -> None:
    spec = spec_of(name)
    kid, fields, audio = fw_frames.verify(wire_of(name), public_key(spec))
    assert kid == bytes.fromhex(spec["kid"])
    assert fields == expected_payload(spec)
    assert (audio.hex() if audio is not None else None) == spec.get("audio")


@pytest.mark.parametrize("name", NAMES)
def test_host_frame_factory_builds_the_same_bytes(name: str) -> None:
    # tests/framefactory.py implements docs/frames.md with cbor2 + cryptography
    from framefactory import canonical, sign1

    spec = spec_of(name)
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(spec["seed"]))
    cose = sign1(key, bytes.fromhex(spec["kid"]), expected_payload(spec))
    wire = b"\x82" + cose + canonical(bytes.fromhex(spec["audio"])) if "audio" in spec else cose
    assert wire == wire_of(name)


def test_location_frames_fit_one_sms() -> None:
    sizes = {n: len(wire_of(n)) for n in NAMES if spec_of(n)["kind"] == "location"}
    assert sizes and max(sizes.values()) <= 140, sizes
    assert sizes["location-widest"] == 139  # the budget of docs/frames.md
