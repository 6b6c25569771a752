# sotto.answer: the centre's signed, request-bound answers are opened only
# when everything checks (signature, kid, req, the exact COSE_Sign1 shape);
# anything else is an AnswerError with the reason. Runs under CPython and in
# the MicroPython VM.
import hashlib

from deliveryfake import centre_key, opener, sign_answer
from fwtest import raises
from sotto import cbor, cose, ed25519
from sotto.answer import AnswerError, Opener, centre_kid

REQ = hashlib.sha256(b"the request body").digest()
GOOD = {"req": REQ, "results": [{"status": "accepted", "device": b"TEST-001", "seq": 5}], "time": 1790000000}


def code(body, req=REQ):
    return raises(AnswerError, opener().open, body, req).code


def test_a_good_answer_opens_to_its_payload():
    assert opener().open(sign_answer(GOOD), REQ) == GOOD
    # memoryview and bytearray bodies (the HTTP parser's buffer) open the same
    assert opener().open(memoryview(bytearray(sign_answer(GOOD))), REQ) == GOOD


def test_kid_is_the_first_8_bytes_of_sha256_of_the_key():
    pub = centre_key()[1]
    assert centre_kid(pub) == hashlib.sha256(pub).digest()[:8]
    assert opener().kid == centre_kid(pub)


def test_another_request_or_a_missing_req_never_matches():
    assert code(sign_answer(GOOD), hashlib.sha256(b"another body").digest()) == "wrong-request"
    no_req = dict(GOOD)
    del no_req["req"]
    assert code(sign_answer(no_req)) == "bad-answer"
    assert code(sign_answer(dict(GOOD, req=REQ[:31]))) == "bad-answer"
    assert code(sign_answer(dict(GOOD, req="x" * 32))) == "bad-answer"


def test_unsigned_and_other_keys_are_refused():
    assert code(cbor.encode(GOOD)) == "not-cose-sign1"  # today's unsigned map
    other = ed25519.SigningKey(bytes(range(32)))
    # another key under its own kid, and another key claiming the centre's kid
    assert code(sign_answer(GOOD, key=other)) == "wrong-kid"
    assert code(sign_answer(GOOD, key=other, kid=centre_kid(centre_key()[1]))) == "bad-signature"
    # a device frame (signed by a device key) is no answer either
    assert code(cose.Signer(b"SOTTO-42", other).sign(cbor.encode(GOOD))) == "wrong-kid"


def test_tampering_anywhere_is_refused():
    body = bytearray(sign_answer(GOOD))
    payload_at = bytes(body).find(b"accepted")
    for i, want in ((payload_at, "bad-signature"), (len(body) - 1, "bad-signature"),
                    (len(body) - 40, "bad-signature")):
        bad = bytearray(body)
        bad[i] ^= 0x01
        assert code(bytes(bad)) == want, i
    assert code(bytes(body) + b"\x00") == "malformed-cbor"  # trailing bytes
    assert code(bytes(body[:-1])) == "malformed-cbor"
    assert code(b"") == "malformed-cbor" and code(b"<html>ok</html>") == "malformed-cbor"


def test_shape_and_header_are_checked():
    key = centre_key()[0]
    kid = centre_kid(key.public_key)
    payload = cbor.encode(GOOD)
    prot = cose.protected_header(kid)
    sig = key.sign(cose.sig_structure(prot, payload))

    def wire(prot=prot, unprot=None, payload=payload, sig=sig, tag=18):
        return cbor.encode(cbor.Tag(tag, [prot, unprot or {}, payload, sig]))

    assert opener().open(wire(), REQ) == GOOD  # the parts put together by hand open too
    assert code(wire(tag=17)) == "not-cose-sign1"
    assert code(cbor.encode(cbor.Tag(18, [prot, {}, payload]))) == "not-cose-sign1"
    assert code(wire(unprot={4: kid})) == "bad-protected-header"
    assert code(wire(sig=sig[:63])) == "bad-signature"
    es256 = cbor.encode({1: -7, 4: kid})
    assert code(wire(prot=es256, sig=key.sign(cose.sig_structure(es256, payload)))) == "unsupported-alg"
    no_kid = cbor.encode({1: -8})
    assert code(wire(prot=no_kid, sig=key.sign(cose.sig_structure(no_kid, payload)))) == "missing-kid"
    not_map = cbor.encode([1, 2])
    assert code(wire(payload=not_map, sig=key.sign(cose.sig_structure(prot, not_map)))) == "bad-answer"
    # a payload that is not deterministic CBOR: the signature holds, the decoder refuses
    loose = b"\xa1\x63req\x58\x20" + REQ + b"\x00"  # trailing byte inside the payload bstr
    assert code(wire(payload=loose, sig=key.sign(cose.sig_structure(prot, loose)))) == "malformed-cbor"


def test_an_opener_needs_a_real_key():
    assert isinstance(raises(ValueError, Opener, bytes(31)), ValueError)
    assert isinstance(raises(ValueError, Opener, (2).to_bytes(32, "little")), ValueError)


def test_opening_lets_the_device_drain_its_microphone_between_steps():
    # the device sets Opener.idle to its microphone service: called all through
    # the verification (SHA-512 blocks, comb columns), and the result is the same
    calls = []
    o = Opener(centre_key()[1])
    o.idle = lambda: calls.append(1)
    big = dict(GOOD, results=GOOD["results"] * 16)  # a payload of several SHA-512 blocks
    assert o.open(sign_answer(big), REQ) == big
    assert len(calls) >= 8
    calls.clear()
    assert code_with(o, sign_answer(GOOD, key=ed25519.SigningKey(bytes(range(32))),
                                    kid=centre_kid(centre_key()[1]))) == "bad-signature"
    assert calls  # a forgery is drained through too, then refused


def code_with(o, body):
    return raises(AnswerError, o.open, body, REQ).code
