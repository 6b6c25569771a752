# sotto.cose: the COSE_Sign1 envelope of docs/frames.md, built and checked.
# Runs under CPython and in the MicroPython VM. (Host tests verify the same
# bytes with pycose and cryptography: tests/test_vectors.py.)
import hashlib

from fwtest import raises
from sotto import cbor, cose, ed25519

SEED = bytes(range(32))
KID = b"SOTTO-42"
_KEY = []


def _key():
    if not _KEY:
        _KEY.append(ed25519.SigningKey(SEED))
    return _KEY[0]


def _item(protected=None, unprotected=None, payload=b"\xa0", sig=None, tag=18):
    prot = cose.protected_header(KID) if protected is None else protected
    if sig is None:
        sig = _key().sign(cose.sig_structure(prot, payload))
    return cbor.Tag(tag, [prot, {} if unprotected is None else unprotected, payload, sig])


def test_signer_output_is_the_deterministic_encoding():
    payload = cbor.encode({0: 1, 1: 7, 3: 9})
    wire = cose.Signer(KID, _key()).sign(payload)
    prot = cose.protected_header(KID)
    assert prot == b"\xa2\x01\x27\x04\x48" + KID
    sig = _key().sign(cose.sig_structure(prot, payload))
    assert wire == cbor.encode(cbor.Tag(18, [prot, {}, payload, sig]))
    assert wire[:2] == b"\xd2\x84"
    assert cbor.decode(wire) == cbor.Tag(18, [prot, {}, payload, sig])


def test_sig_structure_bytes():
    # RFC 9052 §4.4: ["Signature1", body_protected, external_aad, payload]
    tbs = cose.sig_structure(b"\xa1\x01\x27", b"hi")
    assert tbs == b"\x84\x6aSignature1\x43\xa1\x01\x27\x40\x42hi"


def test_verify_returns_kid_and_payload():
    wire = cose.Signer(KID, _key()).sign(b"\xa1\x00\x01")
    assert cose.verify(cbor.decode(wire), _key().public_key) == (KID, b"\xa1\x00\x01")


def test_verify_accepts_fully_specified_ed25519_alg():
    prot = cbor.encode({1: cose.ALG_ED25519, 4: KID})
    assert cose.verify(_item(protected=prot), _key().public_key)[0] == KID


def _code(item, public_key=None):
    e = raises(cose.COSEError, cose.verify, item, public_key or _key().public_key)
    return e.code


def test_each_broken_envelope_has_its_reason():
    good = _item()
    assert _code(good.value) == "not-cose-sign1"
    assert _code(cbor.Tag(98, good.value)) == "not-cose-sign1"
    assert _code(cbor.Tag(18, good.value[:3])) == "not-cose-sign1"
    assert _code(cbor.Tag(18, [good.value[0], {}, "text", good.value[3]])) == "not-cose-sign1"
    assert _code(_item(unprotected={4: KID})) == "bad-protected-header"
    assert _code(_item(protected=b"\xff")) == "bad-protected-header"
    assert _code(_item(protected=cbor.encode([1, -8]))) == "bad-protected-header"
    assert _code(_item(protected=cbor.encode({4: KID}))) == "bad-protected-header"
    assert _code(_item(protected=cbor.encode({1: -7, 4: KID}))) == "unsupported-alg"
    assert _code(_item(protected=cbor.encode({1: "EdDSA", 4: KID}))) == "unsupported-alg"
    assert _code(_item(protected=cbor.encode({1: -8}))) == "missing-kid"
    assert _code(_item(protected=cbor.encode({1: -8, 4: b"SHORT"}))) == "missing-kid"
    assert _code(_item(protected=cbor.encode({1: -8, 3: 0, 4: KID}))) == "bad-protected-header"
    assert _code(_item(sig=bytes(63))) == "bad-signature"


def test_signature_binds_header_payload_and_key():
    good = _item(payload=b"\xa1\x00\x01")
    prot, _, payload, sig = good.value
    assert _code(cbor.Tag(18, [prot, {}, b"\xa1\x00\x02", sig])) == "bad-signature"
    other_kid = cbor.encode({1: -8, 4: b"SOTTO-43"})
    assert _code(cbor.Tag(18, [other_kid, {}, payload, sig])) == "bad-signature"
    other_key = ed25519.SigningKey(hashlib.sha256(b"other").digest())
    assert _code(good, other_key.public_key) == "bad-signature"
    flipped = bytearray(sig)
    flipped[10] ^= 0x80
    assert _code(cbor.Tag(18, [prot, {}, payload, bytes(flipped)])) == "bad-signature"


def test_signer_needs_an_eight_byte_kid():
    e = raises(ValueError, cose.Signer, b"SOTTO", _key())
    assert "8 bytes" in str(e)
