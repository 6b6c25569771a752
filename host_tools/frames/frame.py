"""Frame (a decoded, not yet verified frame) and decode_frame: envelope, headers,
schema; chain links."""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from host_tools.frames.cbor_strict import (
    _MAJOR_NAMES,
    _as_bytes,
    _bstr_head,
    _bytes,
    _ForeignTag,
    _loads,
    _Malformed,
    _skip,
    _strict_item,
)
from host_tools.frames.reasons import (
    FLAG_CONFIG_INVALID,
    FLAG_INSECURE_TLS,
    FLAG_NAMES,
    FLAG_PRE_TRIGGER,
    HEADER_ALG,
    HEADER_KID,
    KID_BYTES,
    LINK_BYTES,
    MAX_FRAME_BYTES,
    FrameError,
    FrameType,
    Reason,
)
from host_tools.frames.schema import Location, _check_payload, _show, unpack_location
from host_tools.ids import format_device_id

# --------------------------------------------------------------------------
# Frames.

_DECODED = object()  # marks frames made by decode_frame (see Frame._origin)


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded frame. Fields are the exact bytes and values on the wire;
    properties give them typed and named. Not yet verified: see verify_frame."""

    wire: bytes                    # the whole frame as received
    cose: bytes                    # the tagged COSE_Sign1 (== wire unless audio rides beside it)
    protected: bytes               # the protected header bstr's content
    payload_bytes: bytes           # the payload bstr's content (what is signed)
    kid: bytes                     # 8-byte device id
    alg: int | str
    payload: Mapping[int, Any]     # key -> int | bytes | tuple (read-only)
    signature: bytes
    audio: bytes | None            # the audio bytes beside the signature (audio frames only)
    _origin: object = field(default=None, init=False, repr=False)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Frame) and other.wire == self.wire

    def __hash__(self) -> int:
        return hash(self.wire)

    def _get(self, key: int) -> Any:
        return self.payload.get(key)

    def _int(self, key: int) -> int | None:
        value = self.payload.get(key)
        return int(value) if value is not None else None

    def _raw(self, key: int) -> bytes | None:
        value = self.payload.get(key)
        return bytes(value) if value is not None else None

    @property
    def version(self) -> int:
        return int(self.payload[0])

    @property
    def type(self) -> FrameType:
        return FrameType(self.payload[1])

    @property
    def type_name(self) -> str:
        return self.type.label

    @property
    def is_alert(self) -> bool:
        return self.type.in_alert

    @property
    def device_id(self) -> str:
        return format_device_id(self.kid)

    @property
    def seq(self) -> int:
        return int(self.payload[3])

    @property
    def sid(self) -> int | None:
        return self._int(2)

    @property
    def time(self) -> int:
        """UTC epoch seconds; 0 when the device did not know the time."""
        return int(self.payload[4])

    @property
    def time_utc(self) -> datetime.datetime | None:
        """`time` as an aware UTC datetime; None when unknown or beyond datetime's range."""
        if not self.time:
            return None
        try:
            return datetime.datetime.fromtimestamp(self.time, tz=datetime.timezone.utc)
        except (OverflowError, ValueError, OSError):
            return None

    @property
    def uptime_ms(self) -> int:
        return int(self.payload[5])

    @property
    def location(self) -> Location | None:
        loc = self._get(6)
        return unpack_location(loc) if loc is not None else None

    @property
    def battery(self) -> int | None:
        return self._int(7)

    @property
    def prev(self) -> bytes | None:
        return self._raw(8)

    @property
    def trigger(self) -> int | None:
        return self._int(9)

    @property
    def flags(self) -> int:
        return int(self._get(10) or 0)

    @property
    def flag_names(self) -> list[str]:
        flags = self.flags
        return [FLAG_NAMES.get(bit, f"bit {bit}") for bit in range(flags.bit_length()) if flags >> bit & 1]

    @property
    def duress(self) -> bool:
        return bool(self.flags & 1)

    @property
    def codec(self) -> int | None:
        return self._int(11)

    @property
    def rate_hz(self) -> int | None:
        return self._int(12)

    @property
    def audio_offset(self) -> int | None:
        """Index of the chunk's first sample since the alert's audio began."""
        return self._int(13)

    @property
    def audio_digest(self) -> bytes | None:
        return self._raw(14)

    @property
    def adpcm_state(self) -> tuple[int, int] | None:
        """(predictor, step index) before the chunk's first sample."""
        ast = self._get(15)
        return (int(ast[0]), int(ast[1])) if ast is not None else None

    @property
    def samples(self) -> int | None:
        return self._int(16)

    @property
    def heartbeat_s(self) -> int | None:
        return self._int(17)

    @property
    def status(self) -> int | None:
        return self._int(18)

    @property
    def dropped(self) -> int | None:
        return self._int(19)

    @property
    def end_reason(self) -> int | None:
        return self._int(20)

    @property
    def command_id(self) -> int | None:
        """reply: the id of the centre command it answers."""
        return self._int(21)

    @property
    def result(self) -> int | None:
        """reply: the command's result (REPLY_RESULT_NAMES)."""
        return self._int(22)

    @property
    def unauth(self) -> int | None:
        """status / heartbeat: answers the device could not authenticate since it started."""
        return self._int(23)

    def _text(self, key: int) -> str | None:
        v = self.payload.get(key)
        return v if isinstance(v, str) else None

    @property
    def firmware(self) -> str | None:
        """fw (24): the running firmware version."""
        return self._text(24)

    @property
    def config_version(self) -> int | None:
        """cfgv (25): the configuration version the device runs."""
        return self._int(25)

    @property
    def reset_cause(self) -> int | None:
        return self._int(26)

    @property
    def boots(self) -> int | None:
        return self._int(27)

    @property
    def faults(self) -> int | None:
        return self._int(28)

    @property
    def queue_depth(self) -> int | None:
        return self._int(29)

    @property
    def signal(self) -> int | None:
        """csq (30): 0..31, 99 unknown."""
        return self._int(30)

    @property
    def error_text(self) -> str | None:
        """err (37): why a configuration was refused or is invalid."""
        return self._text(37)

    @property
    def pre_trigger(self) -> bool:
        """Flag bit 4: audio captured before the trigger."""
        return bool(self.flags & FLAG_PRE_TRIGGER)

    @property
    def config_invalid(self) -> bool:
        """Flag bit 5: the device runs on config.good or built-in defaults."""
        return bool(self.flags & FLAG_CONFIG_INVALID)

    @property
    def firmware_version(self) -> str | None:
        """status / heartbeat: the running application's version (docs/ota.md)."""
        v = self.payload.get(24)
        return v if isinstance(v, str) else None

    @property
    def update(self) -> tuple[int | None, str | None, str | None]:
        """status: (upd result, err, pend) of the device's updates (docs/ota.md)."""
        err, pend = self.payload.get(37), self.payload.get(35)
        return self._int(36), err if isinstance(err, str) else None, pend if isinstance(pend, str) else None

    @property
    def rx(self) -> int | None:
        """status / heartbeat / alert-start: the receiver the device was on (0 primary,
        1 secondary); with st 9 receiver-down, the receiver that stopped answering."""
        return self._int(34)

    @property
    def visit(self) -> int | None:
        """check-in: the visit's id (with due and dur)."""
        return self._int(31)

    @property
    def due(self) -> int | None:
        """check-in: the visit's end in the device's unix time (0: the device did not know the time)."""
        return self._int(32)

    @property
    def duration_s(self) -> int | None:
        """check-in: seconds from the frame to the visit's end; 0: the visit ended."""
        return self._int(33)

    @property
    def insecure_tls(self) -> bool:
        """Flag bit 3: the device runs TLS without server authentication (bench work)."""
        return bool(self.flags & FLAG_INSECURE_TLS)

    @property
    def link(self) -> bytes:
        """The link the next frame of this alert must carry as `prev`."""
        return hashlib.sha256(self.cose).digest()[:LINK_BYTES]

    @property
    def sig_structure(self) -> bytes:
        """The bytes the signature covers: ["Signature1", protected, h'', payload]
        (RFC 9052 §4.4), deterministically encoded."""
        return b"".join((b"\x84\x6aSignature1", _bstr_head(len(self.protected)), self.protected,
                         b"\x40", _bstr_head(len(self.payload_bytes)), self.payload_bytes))


def decode_frame(wire: bytes, *, max_bytes: int = MAX_FRAME_BYTES) -> Frame:
    """Decode and check one frame: envelope, headers and payload schema.

    Does not check the signature (verify_frame does). Raises FrameError with a
    Reason for anything docs/frames.md does not allow; TypeError if `wire` is
    not bytes-like.
    """
    buf = _as_bytes(wire)
    if len(buf) > max_bytes:
        raise FrameError(Reason.TOO_LARGE, f"{len(buf)} bytes; frames are at most {max_bytes}")
    if not buf:
        raise FrameError(Reason.MALFORMED_CBOR, "no bytes")
    try:
        end = _skip(buf, 0, len(buf), True, 0)
    except _ForeignTag as e:
        raise FrameError(Reason.NOT_COSE_SIGN1, f"{e.detail} at byte {e.offset}: a frame is "
                         "tag 18 (COSE_Sign1) or [tag 18, audio bytes]") from None
    except _Malformed as e:
        raise FrameError(Reason.MALFORMED_CBOR, f"{e.detail} at byte {e.offset}") from None
    if end != len(buf):
        raise FrameError(Reason.MALFORMED_CBOR, f"{_bytes(len(buf) - end)} trailing after the frame "
                         f"(at byte {end}); split a CBOR sequence into frames first")

    audio: bytes | None = None
    if buf[0] == 0xD2:                          # tag 18
        cose = buf
    elif buf[0] == 0x82:                        # [COSE_Sign1, audio]
        cose_end = _skip(buf, 1, len(buf), True, 1)
        cose = buf[1:cose_end]
        if cose[0] != 0xD2:
            raise FrameError(Reason.NOT_COSE_SIGN1, "an array whose first item is "
                             f"{_MAJOR_NAMES[cose[0] >> 5]}, not a tag-18 COSE_Sign1")
        if buf[cose_end] >> 5 != 2:
            raise FrameError(Reason.NOT_COSE_SIGN1, "the item beside the COSE_Sign1 is "
                             f"{_MAJOR_NAMES[buf[cose_end] >> 5]}, not the audio bytes")
        audio = _loads(buf[cose_end:])
    elif buf[0] >> 5 == 4:
        raise FrameError(Reason.NOT_COSE_SIGN1, "an array that is neither a tag-18 COSE_Sign1 nor "
                         "[COSE_Sign1, audio] (an untagged COSE_Sign1?)")
    else:
        raise FrameError(Reason.NOT_COSE_SIGN1, f"{_MAJOR_NAMES[buf[0] >> 5]}, not a tag-18 COSE_Sign1")

    content = _loads(cose).value
    if not isinstance(content, (list, tuple)) or len(content) != 4:
        what = f"an array of {len(content)} items" if isinstance(content, (list, tuple)) else _show(content)
        raise FrameError(Reason.NOT_COSE_SIGN1, f"tag 18 holds {what}, not [protected, unprotected, "
                         "payload, signature]")
    protected, unprotected, payload_bytes, signature = content
    items = ((0, "protected", protected, bytes), (1, "unprotected", unprotected, dict),
             (2, "payload", payload_bytes, bytes), (3, "signature", signature, bytes))
    for index, name, value, want in items:
        if not isinstance(value, want):
            extra = " (a detached payload is not allowed)" if index == 2 and value is None else ""
            raise FrameError(Reason.NOT_COSE_SIGN1, f"COSE_Sign1 item {index} ({name}) must be "
                             f"{'a byte string' if want is bytes else 'a map'}, got {_show(value)}{extra}")

    header = _strict_item(protected, "the protected header", Reason.BAD_PROTECTED_HEADER,
                          Reason.BAD_PROTECTED_HEADER)
    if not isinstance(header, dict):
        raise FrameError(Reason.BAD_PROTECTED_HEADER, f"the protected header is {_show(header)}, not a map")
    extra_params = [k for k in header if k not in (HEADER_ALG, HEADER_KID) or type(k) is not int]
    if extra_params:
        raise FrameError(Reason.BAD_PROTECTED_HEADER,
                         f"unexpected protected header parameter {extra_params[0]!r}; "
                         "a frame's protected header holds only alg (1) and kid (4)")
    if HEADER_ALG not in header:
        raise FrameError(Reason.BAD_PROTECTED_HEADER, "the protected header has no alg (1)")
    alg = header[HEADER_ALG]
    if type(alg) is not int and not isinstance(alg, str):
        raise FrameError(Reason.BAD_PROTECTED_HEADER, f"alg (1) must be an integer or text, got {_show(alg)}")
    kid = header.get(HEADER_KID)
    if kid is None:
        raise FrameError(Reason.MISSING_KID, "the protected header has no kid (4)")
    if not isinstance(kid, bytes) or len(kid) != KID_BYTES:
        raise FrameError(Reason.MISSING_KID,
                         f"kid (4) must be the {KID_BYTES}-byte device id, got {_show(kid)}")
    if unprotected:
        raise FrameError(Reason.BAD_PROTECTED_HEADER, "the unprotected header must be empty; it holds "
                         f"{', '.join(repr(k) for k in list(unprotected)[:4])}")

    payload = _strict_item(payload_bytes, "the payload", Reason.MALFORMED_CBOR, Reason.BAD_FIELD)
    ftype, fields = _check_payload(payload)
    if ftype == FrameType.AUDIO and audio is None:
        raise FrameError(Reason.AUDIO_MISSING, "an audio frame without its audio bytes "
                         "(expected [COSE_Sign1, audio])")
    if ftype != FrameType.AUDIO and audio is not None:
        raise FrameError(Reason.AUDIO_UNEXPECTED, f"{len(audio)} audio bytes beside {ftype.article} frame")

    frame = Frame(wire=buf, cose=cose, protected=protected, payload_bytes=payload_bytes, kid=kid, alg=alg,
                  payload=MappingProxyType(fields), signature=signature, audio=audio)
    object.__setattr__(frame, "_origin", _DECODED)
    return frame


FrameParts = tuple[Any, ...]


def frame_parts(frame: Frame) -> FrameParts:
    """What a decoded frame is made of besides its wire bytes, in plain values (for a
    process of ours that decoded it to hand it back: decoded_from_parts)."""
    cose = None if frame.cose is frame.wire else frame.cose
    return (cose, frame.protected, frame.payload_bytes, frame.kid, frame.alg, dict(frame.payload),
            frame.signature, frame.audio)


def decoded_from_parts(wire: bytes, parts: FrameParts) -> Frame:
    """The Frame that decode_frame(wire) returned in another process of ours (the
    receiver's verify helpers), rebuilt from frame_parts without decoding again.
    Only for parts our own decode_frame made: never for anything from outside."""
    cose, protected, payload_bytes, kid, alg, fields, signature, audio = parts
    frame = Frame(wire=wire, cose=wire if cose is None else cose, protected=protected,
                  payload_bytes=payload_bytes, kid=kid, alg=alg, payload=MappingProxyType(fields),
                  signature=signature, audio=audio)
    object.__setattr__(frame, "_origin", _DECODED)
    return frame


def chain_link(frame_or_wire: Frame | bytes) -> bytes:
    """The 8-byte link the next frame of the same alert carries as `prev`:
    SHA-256 of the tagged COSE_Sign1 (for an audio frame, the COSE part only)."""
    frame = frame_or_wire if isinstance(frame_or_wire, Frame) else decode_frame(frame_or_wire)
    return frame.link
