"""Build Sotto frames on the host with cbor2 and cryptography.

An implementation of docs/frames.md that shares no code with the firmware, for
host tests: the receiver, the frame verifier and the modem tests can make valid
frames (and deliberately broken ones) without running the firmware's
plain-Python Ed25519. Golden vectors made by the firmware are checked against
the same document, so the two implementations keep each other honest.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ALERT_START, LOCATION, AUDIO, CANCEL, DURESS, END, HEARTBEAT, CHECK_IN, STATUS, REPLY = range(1, 11)
SRC_GNSS, SRC_CELL, SRC_LAST_KNOWN = 1, 2, 3


def pack_location(lat_e7: int, lon_e7: int, acc_m: int, age_s: int, source: int) -> bytes:
    return struct.pack(">iiHHB", lat_e7, lon_e7, min(acc_m, 0xFFFF), min(age_s, 0xFFFF), source)


def canonical(obj: Any) -> bytes:
    return cbor2.dumps(obj, canonical=True)


def protected_header(kid: bytes, alg: int = -8) -> bytes:
    return canonical({1: alg, 4: kid})


def sign1(key: Ed25519PrivateKey, kid: bytes, payload: dict[int, Any], alg: int = -8) -> bytes:
    """Tagged COSE_Sign1 bytes of `payload` (a map with integer keys)."""
    protected = protected_header(kid, alg)
    payload_bytes = canonical(payload)
    to_sign = canonical(["Signature1", protected, b"", payload_bytes])
    signature = key.sign(to_sign)
    return canonical(cbor2.CBORTag(18, [protected, {}, payload_bytes, signature]))


def chain_link(wire: bytes) -> bytes:
    """First 8 bytes of SHA-256 over the frame's COSE_Sign1 (audio frames: COSE part)."""
    item = cbor2.loads(wire)
    cose = canonical(item[0]) if isinstance(item, list) else wire
    return hashlib.sha256(cose).digest()[:8]


@dataclass
class DeviceSim:
    """A host-side stand-in for a device: key, id, counters, one alert's chain."""

    kid: bytes = b"TEST-001"
    seed: bytes = bytes(range(32))
    seq: int = 0
    sid: int = 0
    time: int = 1_790_000_000
    up_ms: int = 60_000
    prev: bytes | None = None
    flags: int = 0
    frames: list[bytes] = field(default_factory=list)

    @property
    def key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.seed)

    @property
    def public_key(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def _common(self, ftype: int, in_alert: bool) -> dict[int, Any]:
        self.seq += 1
        self.time += 1
        self.up_ms += 1000
        fields: dict[int, Any] = {0: 1, 1: ftype, 3: self.seq, 4: self.time, 5: self.up_ms % 2**32}
        if in_alert:
            fields[2] = self.sid
            if self.prev is not None:
                fields[8] = self.prev
        if self.flags:
            fields[10] = self.flags
        return fields

    def _emit(self, fields: dict[int, Any], audio: bytes | None = None, in_alert: bool = True) -> bytes:
        cose = sign1(self.key, self.kid, fields)
        wire = b"\x82" + cose + canonical(audio) if audio is not None else cose
        if in_alert:
            self.prev = hashlib.sha256(cose).digest()[:8]
        self.frames.append(wire)
        return wire

    def alert_start(self, loc: bytes | None = None, battery: int = 80, trig: int = 1) -> bytes:
        self.sid += 1
        self.prev = None
        self.flags = 0
        fields = self._common(ALERT_START, True)
        fields.update({7: battery, 9: trig})
        if loc is not None:
            fields[6] = loc
        return self._emit(fields)

    def location(self, loc: bytes) -> bytes:
        fields = self._common(LOCATION, True)
        fields[6] = loc
        return self._emit(fields)

    def audio(self, chunk: bytes, offset: int, samples: int, state: tuple[int, int] = (0, 0)) -> bytes:
        fields = self._common(AUDIO, True)
        fields.update({11: 1, 12: 8000, 13: offset, 14: hashlib.sha256(chunk).digest(),
                       15: [state[0], state[1]], 16: samples})
        return self._emit(fields, audio=chunk)

    def cancel(self) -> bytes:
        return self._emit(self._common(CANCEL, True))

    def duress(self, loc: bytes | None = None) -> bytes:
        self.flags |= 1
        fields = self._common(DURESS, True)
        if loc is not None:
            fields[6] = loc
        return self._emit(fields)

    def end(self, why: int = 1) -> bytes:
        fields = self._common(END, True)
        fields[20] = why
        return self._emit(fields)

    def heartbeat(self, battery: int = 80, interval_s: int = 900,
                  extra: dict[int, Any] | None = None) -> bytes:
        fields = self._common(HEARTBEAT, False)
        fields.update({7: battery, 17: interval_s})
        fields.update(extra or {})      # health keys (24.., flags)
        return self._emit(fields, in_alert=False)

    def status(self, code: int, battery: int = 80, dropped: int | None = None, unauth: int | None = None,
               flags: int = 0, extra: dict[int, Any] | None = None) -> bytes:
        fields = self._common(STATUS, False)
        fields.update({7: battery, 18: code})
        fields.update(extra or {})      # health keys (24..30, 37)
        if dropped is not None:
            fields[19] = dropped
        if unauth is not None:
            fields[23] = unauth
        if flags:
            fields[10] = fields.get(10, 0) | flags
        return self._emit(fields, in_alert=False)

    def reply(self, cmd: int, res: int, sid: int | None = None) -> bytes:
        """A reply frame (t 10): the device's confirmation of centre command `cmd`."""
        fields = self._common(REPLY, False)
        fields.update({21: cmd, 22: res})
        if sid is not None:
            fields[2] = sid
        return self._emit(fields, in_alert=False)


# Helpers added for the host frame tests (tests/test_host_frames.py); the
# classes and functions above keep their behaviour.


def check_in(device: DeviceSim, loc: bytes | None = None, battery: int = 80,
             visit: tuple[int, int, int] | None = None) -> bytes:
    """A check-in frame from `device` (not part of an alert; carries the position if known);
    visit: (visit id, due, dur) of a timed check-in (keys 31..33)."""
    fields = device._common(CHECK_IN, False)
    fields[7] = battery
    if loc is not None:
        fields[6] = loc
    if visit is not None:
        fields[31], fields[32], fields[33] = visit
    return device._emit(fields, in_alert=False)


def resign(device: DeviceSim, payload: dict[int, Any], audio: bytes | None = None, alg: int = -8,
           kid: bytes | None = None) -> bytes:
    """Wire bytes of an arbitrary payload, correctly signed by `device`: for frames
    whose signature is fine but whose content is not."""
    cose = sign1(device.key, device.kid if kid is None else kid, payload, alg)
    return b"\x82" + cose + canonical(audio) if audio is not None else cose


def sign1_raw(key: Ed25519PrivateKey, protected: bytes, payload_bytes: bytes) -> bytes:
    """Tagged COSE_Sign1 over exactly these protected and payload bytes (which
    need not be deterministic CBOR): for frames that are signed but badly encoded."""
    to_sign = canonical(["Signature1", protected, b"", payload_bytes])
    return canonical(cbor2.CBORTag(18, [protected, {}, payload_bytes, key.sign(to_sign)]))
