"""verify_frame: key lookup, alg, the signature over the COSE Sig_structure, the
audio digest, the time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from host_tools.frames.frame import _DECODED, Frame, decode_frame
from host_tools.frames.reasons import (
    ACCEPTED_ALGS,
    MAX_FUTURE_S,
    SIGNATURE_BYTES,
    FrameError,
    KeyFormatError,
    Reason,
)
from host_tools.ids import format_device_id

# --------------------------------------------------------------------------
# Verification.


@dataclass(frozen=True)
class Verdict:
    """The outcome of verify_frame: `ok`, or the `reason` and `detail` why not.
    `frame` is the decoded frame when decoding got that far."""

    ok: bool
    reason: Reason | None = None
    detail: str = ""
    frame: Frame | None = None

    def raise_if_invalid(self) -> Frame:
        """The verified frame; raises FrameError when the verdict is not ok."""
        if not self.ok or self.frame is None:
            raise FrameError(self.reason or Reason.BAD_SIGNATURE, self.detail)
        return self.frame


PublicKey = Ed25519PublicKey | bytes
KeySource = PublicKey | Mapping[bytes, PublicKey] | Callable[[bytes], PublicKey | None]


def _as_public_key(key: Any) -> Ed25519PublicKey:
    if isinstance(key, Ed25519PublicKey):
        return key
    if isinstance(key, (bytes, bytearray)):
        if len(key) != 32:
            raise KeyFormatError(f"an Ed25519 public key is 32 bytes, got {len(key)}")
        return Ed25519PublicKey.from_public_bytes(bytes(key))
    raise TypeError(f"expected an Ed25519 public key, got {type(key).__name__}")


def _resolve_key(source: KeySource, kid: bytes) -> Ed25519PublicKey:
    if isinstance(source, (Ed25519PublicKey, bytes, bytearray)):
        return _as_public_key(source)
    if isinstance(source, Mapping):
        key = source.get(kid)
    elif callable(source):
        key = source(kid)    # may raise FrameError(unknown-device / revoked-device)
    else:
        raise TypeError(f"expected a public key, a mapping or a callable, got {type(source).__name__}")
    if key is None:
        raise FrameError(Reason.UNKNOWN_DEVICE, f"no public key for device {format_device_id(kid)}")
    return _as_public_key(key)


def verify_frame(wire_or_frame: bytes | Frame, public_key: KeySource, *, now: float | None = None,
                 max_future_s: int = MAX_FUTURE_S) -> Verdict:
    """Decode (if needed) and verify one frame; never raises for a bad frame.

    public_key: the device's Ed25519 public key (object or 32 raw bytes), or a
    mapping kid -> key, or a callable kid -> key (None: unknown-device; it may
    raise FrameError with unknown-device or revoked-device itself).
    Checks, in order: structure and schema, key, alg (-8 or -19), signature
    over the COSE Sig_structure, the audio digest, and when `now` (epoch
    seconds) is given, that `time` is at most `max_future_s` ahead of it.
    """
    if isinstance(wire_or_frame, Frame) and wire_or_frame._origin is _DECODED:
        frame = wire_or_frame
    else:
        raw = wire_or_frame.wire if isinstance(wire_or_frame, Frame) else wire_or_frame
        try:
            frame = decode_frame(raw)
        except FrameError as e:
            return Verdict(False, e.reason, e.detail, None)
    try:
        key = _resolve_key(public_key, frame.kid)
    except FrameError as e:
        return Verdict(False, e.reason, e.detail, frame)
    if frame.alg not in ACCEPTED_ALGS:
        return Verdict(False, Reason.UNSUPPORTED_ALG,
                       f"alg {frame.alg!r}; frames are signed with EdDSA (-8) or Ed25519 (-19)", frame)
    if len(frame.signature) != SIGNATURE_BYTES:
        return Verdict(False, Reason.BAD_SIGNATURE,
                       f"the signature is {len(frame.signature)} bytes, not {SIGNATURE_BYTES}", frame)
    try:
        key.verify(frame.signature, frame.sig_structure)
    except InvalidSignature:
        return Verdict(False, Reason.BAD_SIGNATURE,
                       f"the signature does not verify with the key of device {frame.device_id}", frame)
    if frame.audio is not None:
        digest = hashlib.sha256(frame.audio).digest()
        if not hmac.compare_digest(digest, frame.audio_digest or b""):
            return Verdict(False, Reason.AUDIO_DIGEST_MISMATCH,
                           f"the {len(frame.audio)} audio bytes do not match adig (14)", frame)
    if now is not None and frame.time > now + max_future_s:
        return Verdict(False, Reason.TIME_IN_FUTURE,
                       f"time {frame.time} is {frame.time - int(now)} s ahead of the clock "
                       f"(at most {max_future_s} s allowed)", frame)
    return Verdict(True, None, "", frame)
