"""The host's check of a centre answer (centre_key.verify_answer, used when a technician
delivers a device's queue) takes alg -8 and -19, as docs/frames.md and the firmware do,
and nothing else."""

from __future__ import annotations

import hashlib

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from host_tools.receiver.centre_key import AnswerNotTrusted, CentreKey, kid_of, verify_answer


def _answer(key: Ed25519PrivateKey, public: bytes, alg: int, request: bytes) -> bytes:
    protected = cbor2.dumps({1: alg, 4: kid_of(public)}, canonical=True)
    body = cbor2.dumps({"req": hashlib.sha256(request).digest(), "results": [], "time": 1}, canonical=True)
    signature = key.sign(cbor2.dumps(["Signature1", protected, b"", body], canonical=True))
    return cbor2.dumps(cbor2.CBORTag(18, [protected, {}, body, signature]), canonical=True)


@pytest.mark.parametrize("alg,ok", [(-8, True), (-19, True), (-7, False), (-35, False), (8, False)])
def test_answer_algorithms(alg: int, ok: bool) -> None:
    key = Ed25519PrivateKey.generate()
    public = CentreKey(key).public_key
    body = _answer(key, public, alg, b"request")
    if ok:
        assert verify_answer(public, body, b"request")["time"] == 1
    else:
        with pytest.raises(AnswerNotTrusted):
            verify_answer(public, body, b"request")
