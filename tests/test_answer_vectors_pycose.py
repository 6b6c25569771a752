"""The golden vectors of the centre's signed answers (tests/vectors/answers/)
against implementations nobody here wrote: pycose verifies the good ones and
refuses the tampered ones, cbor2 re-encodes them to the same bytes, and the
committed files are what tools/make_answer_vectors.py makes. The firmware opens
the same files in tests/firmware/test_answer_vectors.py (CPython and the VM).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import cbor2
import pytest
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.messages import Sign1Message

REPO_ROOT = Path(__file__).resolve().parent.parent
ANSWERS = REPO_ROOT / "tests" / "vectors" / "answers"
SPEC = json.loads((ANSWERS / "answers.json").read_text())
GOOD = sorted(n for n, a in SPEC["answers"].items() if a["expect"] == "ok")
SIGNED_BAD = sorted(n for n, a in SPEC["answers"].items()
                    if a["expect"] in ("bad-signature", "wrong-kid", "wrong-request"))


def _generator() -> Any:
    sys.path.insert(0, str(REPO_ROOT / "tools"))
    try:
        import make_answer_vectors
    finally:
        sys.path.pop(0)
    return make_answer_vectors


def centre_public_key() -> bytes:
    return _generator().public_key(SPEC["keys"]["centre"]["seed"])


def body(name: str) -> bytes:
    return (ANSWERS / f"answer-{name}.cbor").read_bytes()


def req(name: str) -> bytes:
    return hashlib.sha256((ANSWERS / f"request-{name}.bin").read_bytes()).digest()


def verified(name: str, key: bytes) -> bool:
    msg = Sign1Message.decode(body(name))
    msg.key = OKPKey(crv=Ed25519, x=key)
    return bool(msg.verify_signature())


def test_committed_files_are_what_the_generator_makes() -> None:
    made = _generator().make(SPEC)
    assert sorted(made) == sorted(p.name for p in ANSWERS.iterdir() if p.suffix in (".cbor", ".bin"))
    for name, data in made.items():
        assert (ANSWERS / name).read_bytes() == data, f"{name}: run `make vectors`"


@pytest.mark.parametrize("name", GOOD)
def test_good_answers_verify_with_pycose_and_name_their_request(name: str) -> None:
    pub = centre_public_key()
    assert verified(name, pub)
    msg = Sign1Message.decode(body(name))
    assert cbor2.loads(msg.phdr_encoded) == {1: -8, 4: hashlib.sha256(pub).digest()[:8]}
    assert msg.uhdr == {}
    payload = cbor2.loads(msg.payload)
    assert payload["req"] == req(name)
    assert ("results" in payload) == (SPEC["answers"][name]["status"] == 200)
    # deterministic encoding: cbor2's canonical re-encoding gives the same bytes
    assert cbor2.dumps(cbor2.loads(body(name)), canonical=True) == body(name)
    assert cbor2.dumps(payload, canonical=True) == msg.payload


@pytest.mark.parametrize("name", SIGNED_BAD)
def test_tampered_answers_do_not_pass(name: str) -> None:
    expect = SPEC["answers"][name]["expect"]
    pub = centre_public_key()
    if expect == "wrong-request":
        assert verified(name, pub)  # a genuine signature, for another body
        assert cbor2.loads(Sign1Message.decode(body(name)).payload)["req"] != req(name)
    else:
        assert not verified(name, pub)


def test_unsigned_answers_are_bare_maps() -> None:
    # no tag 18, no signature: what answers were before they were signed
    for name in ("200-unsigned", "400-unsigned"):
        item = cbor2.loads(body(name))
        assert isinstance(item, dict) and not isinstance(item, cbor2.CBORTag)
        assert "req" in item  # even with the right req, nobody vouches for it


def test_answers_follow_the_pages_cddl() -> None:
    # the CDDL of docs/frames.md, read from the page and checked with zcbor
    from cddl_schema import load_schema

    schema = load_schema()
    for name in GOOD:
        assert schema.valid_cbor("answer", body(name)), name
        payload = cbor2.loads(Sign1Message.decode(body(name)).payload)
        rule = "signed-response" if SPEC["answers"][name]["status"] == 200 else "error-response"
        assert schema.valid(rule, payload), name
    # a signed answer without req, or an unsigned one, is no answer
    assert not schema.valid_cbor("answer", body("200-unsigned"))
    payload = cbor2.loads(Sign1Message.decode(body("200")).payload)
    assert not schema.valid("signed-response", {k: v for k, v in payload.items() if k != "req"})
    assert not schema.valid("command", {"id": 0, "op": "listening"})
    assert schema.valid("command", {"s": 30, "id": 2**53, "op": "more-audio", "sid": 7})
