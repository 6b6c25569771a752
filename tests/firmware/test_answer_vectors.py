# The golden answer vectors (tests/vectors/answers/, made with cbor2 and
# cryptography by tools/make_answer_vectors.py) opened by the firmware's own
# code: the good ones open to the payload the inputs describe, and the
# firmware signing that payload makes the very same bytes; each tampered one
# fails with its reason. Runs under CPython and in the MicroPython VM.
import hashlib
import json

from fwtest import unhex, vector_path
from sotto import cbor, cose, ed25519
from sotto.answer import AnswerError, Opener, centre_kid


def _read(name, mode="rb"):
    with open(vector_path(name), mode) as f:
        return f.read()


def _spec():
    return json.loads(_read("answers.json", "r"))


def _from_json(v):
    if isinstance(v, dict):
        if list(v) == ["hex"]:
            return unhex(v["hex"])
        return {k: _from_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_from_json(x) for x in v]
    return v


def _centre(spec):
    return ed25519.SigningKey(unhex(spec["keys"]["centre"]["seed"]))


def test_every_answer_vector_opens_or_fails_with_its_reason():
    spec = _spec()
    key = _centre(spec)
    opener = Opener(key.public_key)
    names = sorted(spec["answers"])
    assert len(names) >= 9
    for name in names:
        a = spec["answers"][name]
        body = _read("answer-%s.cbor" % name)
        req = hashlib.sha256(_read("request-%s.bin" % name)).digest()
        if a["expect"] == "ok":
            payload = opener.open(body, req)
            want = _from_json(a["payload"])
            want["req"] = req
            assert payload == want, name
            # the firmware signing the same payload makes the same bytes (deterministic CBOR, Ed25519)
            again = cose.Signer(centre_kid(key.public_key), key).sign(cbor.encode(want))
            assert again == body, name
        else:
            try:
                opener.open(body, req)
            except AnswerError as e:
                assert e.code == a["expect"], (name, e.code)
            else:
                raise AssertionError("%s opened" % name)


def test_the_200_vector_carries_what_the_device_acts_on():
    from sotto.modem import http

    spec = _spec()
    opener = Opener(_centre(spec).public_key)
    req = hashlib.sha256(_read("request-200.bin")).digest()
    answer = opener.open(_read("answer-200.cbor"), req)
    results, time_s, closed = http.parse_ack(answer, 2)
    assert results == [(http.ACCEPTED, 1002, None), (http.ACCEPTED, 1003, None)]
    assert time_s == 1790000007 and closed == [3]
    assert [c["op"] for c in http.commands_of(answer)] == ["listening", "ask"]
    err = opener.open(_read("answer-400.cbor"), hashlib.sha256(_read("request-400.bin")).digest())
    assert http.error_reason(err) == "malformed-cbor"
