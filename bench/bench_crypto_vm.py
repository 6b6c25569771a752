"""Signing cost inside the MicroPython VM, each figure next to a baseline
measured in the same VM run.

- Ed25519 sign of an alert-start frame's Sig_structure: sotto.ed25519 against
  a naive RFC 8032 signer (bench/ref_ed25519_naive.py, same SHA-512);
- an alert-start frame built and signed (sotto.frames.FrameSigner) against the
  same frame built with cbor.encode and signed by the naive signer (target 3x);
- SHA-512 per 128-byte block: sotto.sha512 against a 32-bit-halves port
  (bench/ref_sha512_halves.py), and the VM's C hashlib.sha256 per 64-byte
  block as a reference;
- the signing key's one-time setup at boot (expanded key, comb table, public
  key) against the naive derivation of the public key.
"""

from __future__ import annotations

from pathlib import Path

from bench.common import Row, lower_is_better, vm_result

BENCH_DIR = Path(__file__).resolve().parent

VM_SCRIPT = r"""
from vm_timing import best_of, report
import sys, hashlib
sys.path.insert(0, '/ref')
import ref_ed25519_naive as naive
import ref_sha512_halves as halves
from sotto import cbor, cose, ed25519, edwards, frames, sha512

SEED = bytes(range(32))
KID = b"SOTTO-42"
key = ed25519.SigningKey(SEED)
signer = frames.FrameSigner(KID, key)
FIELDS = {1: 1, 2: 7, 3: 1001, 4: 1790000000, 5: 3600000,
          6: frames.pack_location(515007000, -1246000, 8, 2, 1), 7: 76, 9: 1}
PROT = cose.protected_header(KID)

def naive_frame():
    payload = dict(FIELDS)
    payload[0] = 1
    body = cbor.encode(payload)
    sig = naive.sign(SEED, cbor.encode(["Signature1", PROT, b"", body]))
    return cbor.encode(cbor.Tag(18, [PROT, {}, body, sig]))

wire = signer.sign(FIELDS)
assert naive_frame() == wire  # both paths make the same frame
TBS = cose.sig_structure(PROT, cbor.decode(wire).value[2])
assert naive.sign(SEED, TBS) == key.sign(TBS)


BLOCK = bytes(range(128))
H64 = list(sha512._IV)
H32 = list(halves.IV)
B64 = BLOCK[:64]
h256 = hashlib.sha256()

def reset_table():
    edwards._Table.combs = []
    return ed25519.SigningKey(SEED)

cases = {
    "sign": lambda: key.sign(TBS),
    "sign_naive": lambda: naive.sign(SEED, TBS),
    "frame": lambda: signer.sign(FIELDS),
    "frame_naive": naive_frame,
    "sha512_block": lambda: sha512._compress(H64, BLOCK, 0),
    "sha512_halves_block": lambda: halves.compress(H32, BLOCK, 0),
    "sha256_block": lambda: h256.update(B64),
    "key_setup": reset_table,
    "key_naive": lambda: naive.point_compress(naive.point_mul(naive.secret_expand(SEED)[0], naive.G)),
}
best = best_of(cases, 60)
best["tbs_bytes"] = len(TBS)
best["wire_bytes"] = len(wire)
report(best)
"""


def measure() -> dict[str, float]:
    """Run the measurements in one VM; return {case: ms per call}."""
    refs = [BENCH_DIR / "ref_ed25519_naive.py", BENCH_DIR / "ref_sha512_halves.py"]
    return vm_result(VM_SCRIPT, {"/ref": refs})


def run() -> list[Row]:
    m = measure()
    us = 1000.0
    return [
        lower_is_better("ed25519 sign, alert-start Sig_structure (VM)", m["sign"], "ms", m["sign_naive"],
                        note=f"{m['tbs_bytes']:.0f}-byte message; baseline: naive RFC 8032 signer"),
        lower_is_better("alert-start frame built + signed (VM)", m["frame"], "ms", m["frame_naive"],
                        target=">= 3x", note="baseline: cbor.encode + naive signer"),
        lower_is_better("sha512 per 128-byte block (VM)", m["sha512_block"] * us, "us",
                        m["sha512_halves_block"] * us, note="baseline: 32-bit halves"),
        lower_is_better("hashlib.sha256 (C) per 64-byte block (VM), reference", m["sha256_block"] * us, "us",
                        m["sha512_block"] * us, note="baseline: sotto.sha512 per 128-byte block"),
        lower_is_better("ed25519 key setup at boot (VM)", m["key_setup"], "ms", m["key_naive"],
                        note="comb table + public key; baseline: naive public key"),
    ]
