"""What signed, request-bound answers cost (docs/frames.md "The signed answer").

- device CPU to open an answer (decode, kid, Ed25519 verify, req) in the
  MicroPython VM, for 1 and 16 results, next to signing an alert-start frame in
  the same VM run (the one signature the alert path cannot avoid);
- the same verification with the centre key's comb table (sotto.ed25519.VerifyKey,
  built at boot) against plain ed25519.verify (comb for B, double-and-add for A);
- the table's one-time cost at boot against the base point's;
- wire bytes of an answer, signed against today's unsigned map (host, cbor2).

VM figures are VM figures: the ESP32 is 25-50x slower for big-integer crypto
(docs/architecture.md); a device estimate is VM ms x that factor.
"""

from __future__ import annotations

import hashlib

import cbor2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.common import Row, lower_is_better, vm_result

VM_SCRIPT = r"""
from vm_timing import best_of, report
import time, hashlib
from sotto import cbor, cose, ed25519, edwards, frames
from sotto.answer import Opener, centre_kid

CENTRE = ed25519.SigningKey(bytes(range(0xC0, 0xE0)))
DEVICE = ed25519.SigningKey(bytes(range(32)))
signer = frames.FrameSigner(b"SOTTO-42", DEVICE)
FIELDS = {1: 1, 2: 7, 3: 1001, 4: 1790000000, 5: 3600000,
          6: frames.pack_location(515007000, -1246000, 8, 2, 1), 7: 76, 9: 1}
REQ = hashlib.sha256(b"request body").digest()

def answer(n):
    payload = {"req": REQ, "time": 1790000007,
               "results": [{"status": "accepted", "device": b"SOTTO-42", "seq": 1001 + i} for i in range(n)]}
    return cose.Signer(centre_kid(CENTRE.public_key), CENTRE).sign(cbor.encode(payload))

A1 = answer(1)
A16 = answer(16)
t = time.ticks_ms()
opener = Opener(CENTRE.public_key)
table_ms = time.ticks_diff(time.ticks_ms(), t)

def plain_open(body):
    # the same checks with ed25519.verify (no table for the centre key)
    item = cbor.decode(body)
    kid, _alg, prot, payload, sig = cose.parse(item)
    assert kid == opener.kid
    assert ed25519.verify(CENTRE.public_key, cose.sig_structure(prot, payload), sig)
    assert cbor.decode(payload)["req"] == REQ

assert opener.open(A16, REQ)["results"][15]["seq"] == 1016


def base_table():
    edwards._Table.combs = []
    edwards.base_table()

cases = {
    "sign_alert_start": lambda: signer.sign(FIELDS),
    "open_1": lambda: opener.open(A1, REQ),
    "open_16": lambda: opener.open(A16, REQ),
    "plain_open_16": lambda: plain_open(A16),
    "centre_table": lambda: edwards.comb_table(edwards.neg(edwards.decode(CENTRE.public_key))),
    "base_table": base_table,
}
best = best_of(cases)
best["first_table_ms"] = table_ms
report(best)
"""

CENTRE_SEED = bytes(range(0xC0, 0xE0))


def answer_sizes(n_results: int) -> tuple[int, int]:
    """(signed, unsigned) bytes of a 200 answer for n frames."""
    payload = {"results": [{"status": "accepted", "device": b"SOTTO-42", "seq": 100000 + i}
                           for i in range(n_results)], "time": 1790000007}
    unsigned = cbor2.dumps(payload, canonical=True)
    key = Ed25519PrivateKey.from_private_bytes(CENTRE_SEED)
    pub = key.public_key().public_bytes_raw()
    signed_payload = cbor2.dumps({"req": hashlib.sha256(b"x").digest(), **payload}, canonical=True)
    prot = cbor2.dumps({1: -8, 4: hashlib.sha256(pub).digest()[:8]}, canonical=True)
    sig = key.sign(cbor2.dumps(["Signature1", prot, b"", signed_payload], canonical=True))
    signed = cbor2.dumps(cbor2.CBORTag(18, [prot, {}, signed_payload, sig]), canonical=True)
    return len(signed), len(unsigned)


def run() -> list[Row]:
    m = vm_result(VM_SCRIPT)
    rows = [
        lower_is_better("open a signed answer, 1 result (VM)", m["open_1"], "ms", m["sign_alert_start"],
                        note="decode + kid + Ed25519 verify + req; baseline: sign an alert-start, same run"),
        lower_is_better("open a signed answer, 16 results (VM)", m["open_16"], "ms", m["sign_alert_start"],
                        note="baseline: sign an alert-start frame, same run"),
        lower_is_better("verify with the centre key's comb table (VM)", m["open_16"], "ms",
                        m["plain_open_16"],
                        note="16 results; baseline: ed25519.verify (double-and-add for the key)"),
        lower_is_better("centre key comb table, once at boot (VM)", m["centre_table"], "ms", m["base_table"],
                        note="16 KB kept (VM, measured between calls); baseline: the base point's table"),
    ]
    for n in (1, 16):
        signed, unsigned = answer_sizes(n)
        rows.append(lower_is_better(f"answer bytes, {n} result{'s' if n > 1 else ''}, signed", signed, "B",
                                    unsigned, note=f"+{signed - unsigned} B: COSE envelope 19-20, "
                                                   "signature 66, req 38; baseline: unsigned map"))
    return rows


if __name__ == "__main__":
    for r in run():
        print(f"{r.name:55s} {r.value:9.2f} {r.unit:3s} baseline {r.baseline:9.2f}  x{r.ratio:.2f}  {r.note}")
