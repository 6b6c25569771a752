"""Host verify rate: host_tools.frames.verify_frame against its baselines.

Realistic frames (alert-start with a location, a location update, and an audio
frame with 1 s of IMA-ADPCM at 8 kHz = 4000 bytes beside the signature), made by
tests/framefactory.py. Each is verified in the same run by
  - host:    verify_frame(wire, key): strict scan, cbor2 decode, schema, Ed25519, audio digest;
  - raw:     cryptography's Ed25519 verify of the precomputed Sig_structure only
             (the floor: no decoding, no schema, no audio digest);
  - pycose:  Sign1Message.decode + verify_signature (for audio: cbor2 splits the
             outer array and the SHA-256 of the audio is compared too).
Ratios above 1 mean the host verifier is faster than the baseline.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import sys
from collections.abc import Callable
from pathlib import Path

import cbor2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.messages import Sign1Message

from bench.common import Row, best_of, higher_is_better
from host_tools.frames import decode_frame, verify_frame

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import framefactory as ff  # noqa: E402

CALLS = 300  # per timing; best of 5


def _frames() -> tuple[bytes, dict[str, bytes]]:
    d = ff.DeviceSim(kid=b"SOTTO-42", seed=bytes(range(32)))
    loc = ff.pack_location(515007292, -1246254, 8, 1, ff.SRC_GNSS)
    audio = random.Random(1).randbytes(4000)   # stands in for 8000 ADPCM samples
    frames = {"alert-start": d.alert_start(loc=loc), "location": d.location(loc),
              "audio 1 s": d.audio(audio, offset=0, samples=8000, state=(-120, 17))}
    return d.public_key, frames


def _raw(key: Ed25519PublicKey, wire: bytes) -> Callable[[], None]:
    frame = decode_frame(wire)
    signature, message = frame.signature, frame.sig_structure
    return lambda: key.verify(signature, message)


def _pycose(public: bytes, wire: bytes) -> Callable[[], bool]:
    key = OKPKey(crv=Ed25519, x=public)

    def check_cose(cose: bytes) -> bool:
        msg = Sign1Message.decode(cose)
        msg.key = key
        return bool(msg.verify_signature())

    if wire[0] != 0x82:
        return lambda: check_cose(wire)

    def check_audio() -> bool:
        _, audio = cbor2.loads(wire)
        cose = wire[1:len(wire) - len(cbor2.dumps(audio))]
        ok = check_cose(cose)
        digest = cbor2.loads(Sign1Message.decode(cose).payload)[14]
        return ok and hmac.compare_digest(hashlib.sha256(audio).digest(), digest)

    return check_audio


def run() -> list[Row]:
    public, frames = _frames()
    key = Ed25519PublicKey.from_public_bytes(public)
    rows: list[Row] = []
    for name, wire in frames.items():
        # every path must accept the frame, or its rate means nothing
        assert verify_frame(wire, key).ok and _pycose(public, wire)()
        _raw(key, wire)()
        host_rate = 1 / best_of(lambda w=wire: verify_frame(w, key), number=CALLS)
        raw_rate = 1 / best_of(_raw(key, wire), number=CALLS)
        pycose_rate = 1 / best_of(_pycose(public, wire), number=CALLS)
        size = f"{len(wire)} bytes on the wire"
        rows.append(higher_is_better(f"host verify {name} vs raw Ed25519", host_rate, "frames/s", raw_rate,
                                     note=f"{size}; baseline: cryptography verify of the Sig_structure only"))
        rows.append(higher_is_better(f"host verify {name} vs pycose", host_rate, "frames/s", pycose_rate,
                                     note=f"{size}; baseline: pycose decode + verify"))
    return rows
