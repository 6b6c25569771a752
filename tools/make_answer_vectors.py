"""Make the golden vectors of the centre's signed answers with cbor2 and cryptography.

`make vectors` runs this after tools/make_vectors.py: for every answer in
tests/vectors/answers/answers.json it writes answer-NAME.cbor (the HTTP body: a
COSE_Sign1 signed by the test centre key, or a tampered variant) and
request-NAME.bin (the request body it answers: frame vectors of tests/vectors/
one after another, or given bytes). Nothing here uses the firmware: the
firmware (tests/firmware/test_answer_vectors.py, in CPython and in the VM) and
pycose (tests/test_answer_vectors_pycose.py) check these bytes. `--check` writes
nothing and exits 1 if a committed file differs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import cbor2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

REPO_ROOT = Path(__file__).resolve().parent.parent
VECTORS_DIR = REPO_ROOT / "tests" / "vectors"
ANSWERS_DIR = VECTORS_DIR / "answers"
SPEC = ANSWERS_DIR / "answers.json"


def canonical(obj: Any) -> bytes:
    return cbor2.dumps(obj, canonical=True)


def public_key(seed_hex: str) -> bytes:
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex))
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def kid_of(pub: bytes) -> bytes:
    """The centre's kid: the first 8 bytes of SHA-256 of its public key."""
    return hashlib.sha256(pub).digest()[:8]


def from_json(value: Any) -> Any:
    """{"hex": ...} -> bytes, recursively."""
    if isinstance(value, dict):
        if set(value) == {"hex"}:
            return bytes.fromhex(value["hex"])
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


def request_body(request: Any) -> bytes:
    """The request body: frame vectors by name, concatenated, or {"hex": ...}."""
    if isinstance(request, dict):
        return bytes.fromhex(request["hex"])
    return b"".join((VECTORS_DIR / f"{name}.cbor").read_bytes() for name in request)


def sign1(seed_hex: str, kid: bytes, payload: bytes) -> bytes:
    protected = canonical({1: -8, 4: kid})
    to_sign = canonical(["Signature1", protected, b"", payload])
    sig = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex)).sign(to_sign)
    return canonical(cbor2.CBORTag(18, [protected, {}, payload, sig]))


def make(spec: dict[str, Any]) -> dict[str, bytes]:
    """{file name: bytes} of every answer vector and its request."""
    keys = spec["keys"]
    out: dict[str, bytes] = {}
    answers = spec["answers"]
    for name, a in answers.items():
        base = answers[a["like"]] if "like" in a else a
        request = request_body(base["request"])
        req_for = request_body(a["req_of"]) if "req_of" in a else request
        payload = canonical({"req": hashlib.sha256(req_for).digest(), **from_json(base["payload"])})
        signer = a.get("key", "centre")
        kid = kid_of(public_key(keys[a.get("kid", signer)]["seed"]))
        if a.get("unsigned"):
            body = payload
        else:
            body = sign1(keys[signer]["seed"], kid, payload)
        if "tamper" in a:  # flip one bit inside the signed payload, after signing
            word = a["tamper"].encode()
            at = body.index(word) + len(word) - 1
            body = body[:at] + bytes([body[at] ^ 0x20]) + body[at + 1:]
        out[f"answer-{name}.cbor"] = body
        out[f"request-{name}.bin"] = request
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare with the committed files; write nothing")
    args = parser.parse_args(argv)
    made = make(json.loads(SPEC.read_text()))
    differ = [n for n, data in made.items()
              if not (ANSWERS_DIR / n).exists() or (ANSWERS_DIR / n).read_bytes() != data]
    stale = sorted(p.name for p in ANSWERS_DIR.glob("*")
                   if p.suffix in (".cbor", ".bin") and p.name not in made)
    if args.check:
        for n in differ + stale:
            print(f"differs: tests/vectors/answers/{n}", file=sys.stderr)
        print(f"{len(made) - len(differ)} of {len(made)} answer files match")
        return 1 if differ or stale else 0
    for n in differ:
        (ANSWERS_DIR / n).write_bytes(made[n])
    for n in stale:
        (ANSWERS_DIR / n).unlink()
    print(f"{len(made)} answer files made with cbor2 + cryptography; {len(differ)} rewritten"
          + (f", {len(stale)} stale removed" if stale else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
