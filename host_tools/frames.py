"""Sotto frames on the host: decode with cbor2, verify with cryptography.

docs/frames.md is the contract. This module shares no code with the firmware:
it is the independent implementation the receiver, `sotto frame` and the
evidence verifier trust.

    frame = decode_frame(wire)                 # structure and schema; raises FrameError
    verdict = verify_frame(wire, public_key)   # Verdict(ok, reason, detail, frame)

Decoding is fail-closed and safe on hostile bytes: before cbor2 sees anything,
a strict scanner checks that the bytes are well-formed CBOR in the core
deterministic encoding of RFC 8949 §4.2 (shortest heads, definite lengths,
sorted unique map keys, no floats, valid UTF-8), that lengths fit the buffer,
that nesting stays shallow and that no tag other than 18 appears (cbor2 gives
many tags a meaning of its own, none of which a frame uses). Every failure is a
FrameError carrying one of the reason codes of docs/frames.md.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
import string
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

import cbor2
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from host_tools.errors import SottoError, UsageError
from host_tools.ids import format_device_id

FORMAT_VERSION = 1
MAX_FRAME_BYTES = 64 * 1024     # the receiver's limit (`too-large`)
MAX_DEPTH = 16                  # containers and tags; a frame needs 4
MAX_FUTURE_S = 300              # `time-in-future` beyond the receiver's clock + 5 min
COSE_SIGN1_TAG = 18
ALG_EDDSA = -8                  # what devices emit
ALG_ED25519 = -19               # RFC 9864, fully specified Ed25519; accepted too
ACCEPTED_ALGS = (ALG_EDDSA, ALG_ED25519)
HEADER_ALG = 1
HEADER_KID = 4
KID_BYTES = 8
LINK_BYTES = 8
SIGNATURE_BYTES = 64
LOCATION_BYTES = 13

_U32 = 0xFFFFFFFF
_U64 = 0xFFFFFFFFFFFFFFFF


class Reason(str, Enum):
    """Why a frame was rejected: the reason codes of docs/frames.md."""

    MALFORMED_CBOR = "malformed-cbor"
    NOT_COSE_SIGN1 = "not-cose-sign1"
    BAD_PROTECTED_HEADER = "bad-protected-header"
    UNSUPPORTED_ALG = "unsupported-alg"
    MISSING_KID = "missing-kid"
    UNKNOWN_DEVICE = "unknown-device"
    REVOKED_DEVICE = "revoked-device"
    BAD_SIGNATURE = "bad-signature"
    AUDIO_MISSING = "audio-missing"
    AUDIO_UNEXPECTED = "audio-unexpected"
    AUDIO_DIGEST_MISMATCH = "audio-digest-mismatch"
    UNSUPPORTED_VERSION = "unsupported-version"
    UNKNOWN_FRAME_TYPE = "unknown-frame-type"
    MISSING_FIELD = "missing-field"
    BAD_FIELD = "bad-field"
    TIME_IN_FUTURE = "time-in-future"
    TOO_LARGE = "too-large"

    def __str__(self) -> str:
        return self.value


class FrameError(SottoError, ValueError):
    """A frame that cannot be accepted: `reason` (a Reason) and a `detail` for people."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class KeyFormatError(UsageError):
    """A public key given in a form this tool cannot read."""


class FrameType(IntEnum):
    """Frame types (`t`)."""

    ALERT_START = 1
    LOCATION = 2
    AUDIO = 3
    CANCEL = 4
    DURESS = 5
    END = 6
    HEARTBEAT = 7
    CHECK_IN = 8
    STATUS = 9

    @property
    def label(self) -> str:
        """The name docs/frames.md uses: `alert-start`, `check-in`, ..."""
        return self.name.lower().replace("_", "-")

    @property
    def article(self) -> str:
        """`a check-in`, `an alert-start`: for messages."""
        return ("an " if self.label[0] in "aeiou" else "a ") + self.label

    @property
    def in_alert(self) -> bool:
        """Alert frames carry `sid` and belong to one alert."""
        return self <= FrameType.END


SOURCE_NAMES = {1: "gnss", 2: "cell", 3: "last-known"}
TRIGGER_NAMES = {1: "hold", 2: "presses"}
CODEC_NAMES = {1: "IMA-ADPCM"}
FLAG_NAMES = {0: "duress", 1: "minimal mode", 2: "battery reserve"}
STATUS_NAMES = {1: "battery low", 2: "battery critical", 3: "battery reserve reached",
                4: "boot loop: minimal alert-only mode", 5: "queue full, frames dropped",
                6: "device started"}
END_REASON_NAMES = {1: "ended on the device", 2: "closed by the monitoring centre",
                    3: "maximum duration", 4: "battery exhausted"}
ALG_NAMES = {ALG_EDDSA: "EdDSA", ALG_ED25519: "Ed25519"}

# --------------------------------------------------------------------------
# Strict CBOR scanner: well-formedness, deterministic encoding, bounds.


class _Malformed(Exception):
    def __init__(self, offset: int, detail: str) -> None:
        super().__init__(detail)
        self.offset = offset
        self.detail = detail


class _ForeignTag(_Malformed):
    def __init__(self, offset: int, tag: int) -> None:
        super().__init__(offset, f"CBOR tag {tag}")
        self.tag = tag


_MAJOR_NAMES = ("an unsigned integer", "a negative integer", "a byte string", "a text string",
                "an array", "a map", "a tag", "a simple value")


def _skip(buf: bytes, pos: int, end: int, strict: bool, depth: int) -> int:
    """Offset just past the data item at `pos`; raises _Malformed.

    strict: core deterministic encoding only, no floats, valid UTF-8, no tag
    but 18 (raises _ForeignTag). Otherwise plain well-formedness (RFC 8949
    appendix C), indefinite lengths included, so a sequence can still be split.
    """
    if pos >= end:
        raise _Malformed(pos, "truncated: a data item is missing")
    start = pos
    ib = buf[pos]
    major = ib >> 5
    ai = ib & 0x1F
    pos += 1
    if ai < 24:
        arg = ai
    elif ai <= 27:
        n = 1 << (ai - 24)
        if n > end - pos:
            raise _Malformed(start, "truncated inside the head of %s" % _MAJOR_NAMES[major])
        arg = int.from_bytes(buf[pos:pos + n], "big")
        pos += n
        if major == 7:
            if ai == 24:
                if arg < 32:
                    raise _Malformed(start, "simple value %d in two bytes (not well-formed)" % arg)
                return pos
            if strict:
                raise _Malformed(start, "a floating-point number (frames hold no floats)")
            return pos
        if strict and arg < (24 if n == 1 else 1 << (4 * n)):
            raise _Malformed(start, "%s in a longer head than needed (not deterministic)"
                             % ("a length" if 2 <= major <= 5 else "an integer" if major < 2 else "a tag"))
    elif ai == 31:
        if major in (0, 1, 6):
            raise _Malformed(start, "reserved additional information 31 for %s" % _MAJOR_NAMES[major])
        if major == 7:
            raise _Malformed(start, "a 'break' outside an indefinite-length item")
        if strict:
            raise _Malformed(start, "an indefinite-length item (not deterministic)")
        return _skip_indefinite(buf, pos, end, major, depth)
    else:
        raise _Malformed(start, "reserved additional information %d" % ai)

    if major <= 1 or major == 7:
        return pos
    if major <= 3:
        if arg > end - pos:
            raise _Malformed(start, "%s of %d bytes but only %d remain"
                             % (_MAJOR_NAMES[major], arg, end - pos))
        stop = pos + arg
        if major == 3 and strict:
            try:
                buf[pos:stop].decode("utf-8")
            except UnicodeDecodeError:
                raise _Malformed(start, "a text string that is not valid UTF-8") from None
        return stop
    if depth >= MAX_DEPTH:
        raise _Malformed(start, "nested deeper than %d levels" % MAX_DEPTH)
    if major == 4:
        if arg > end - pos:
            raise _Malformed(start, "an array of %d items but only %d bytes remain" % (arg, end - pos))
        for _ in range(arg):
            # fast path for the common small integer (one byte, always canonical)
            if pos < end and buf[pos] < 0x38 and buf[pos] & 0x1F < 24:
                pos += 1
            else:
                pos = _skip(buf, pos, end, strict, depth + 1)
        return pos
    if major == 5:
        if arg > (end - pos) // 2:
            raise _Malformed(start, "a map of %d entries but only %d bytes remain" % (arg, end - pos))
        last_key = b""
        for i in range(arg):
            if pos < end and buf[pos] < 0x38 and buf[pos] & 0x1F < 24:
                key_end = pos + 1
            else:
                key_end = _skip(buf, pos, end, strict, depth + 1)
            if strict:
                key = buf[pos:key_end]
                if i and key <= last_key:
                    raise _Malformed(pos, "duplicate map key" if key == last_key
                                     else "map keys out of order (not deterministic)")
                last_key = key
            if key_end < end and buf[key_end] < 0x38 and buf[key_end] & 0x1F < 24:
                pos = key_end + 1
            else:
                pos = _skip(buf, key_end, end, strict, depth + 1)
        return pos
    # major 6: a tag
    if strict and arg != COSE_SIGN1_TAG:
        raise _ForeignTag(start, arg)
    return _skip(buf, pos, end, strict, depth + 1)


def _skip_indefinite(buf: bytes, pos: int, end: int, major: int, depth: int) -> int:
    if depth >= MAX_DEPTH:
        raise _Malformed(pos - 1, "nested deeper than %d levels" % MAX_DEPTH)
    count = 0
    while True:
        if pos >= end:
            raise _Malformed(pos, "truncated: an indefinite-length item lacks its 'break'")
        if buf[pos] == 0xFF:
            if major == 5 and count % 2:
                raise _Malformed(pos, "a 'break' between a map key and its value")
            return pos + 1
        if major in (2, 3) and (buf[pos] >> 5 != major or buf[pos] & 0x1F == 31):
            raise _Malformed(pos, "a chunk of an indefinite-length string that is not a definite %s"
                             % _MAJOR_NAMES[major][2:])
        pos = _skip(buf, pos, end, False, depth + 1)
        count += 1


def _loads(buf: bytes) -> Any:
    """cbor2 over bytes the strict scanner has accepted."""
    try:
        return cbor2.loads(buf)
    except Exception as e:  # any cbor2 failure on vetted bytes is still the input's fault
        raise FrameError(Reason.MALFORMED_CBOR, f"cbor2 could not decode it: {e}") from None


def _strict_item(buf: bytes, what: str, malformed: Reason, foreign: Reason) -> Any:
    """Decode `buf`, which must hold exactly one deterministically encoded item."""
    if not buf:
        raise FrameError(malformed, f"{what} is empty")
    try:
        end = _skip(buf, 0, len(buf), True, 0)
    except _ForeignTag as e:
        raise FrameError(foreign, f"{what}: {e.detail} at byte {e.offset}; "
                         "frames use no tag but 18") from None
    except _Malformed as e:
        raise FrameError(malformed, f"{what}: {e.detail} at byte {e.offset}") from None
    if end != len(buf):
        raise FrameError(malformed, f"{what}: {_bytes(len(buf) - end)} trailing after the CBOR item")
    return _loads(buf)


def split_sequence(data: bytes) -> list[bytes]:
    """A CBOR sequence (RFC 8742) into the exact bytes of each item.

    Only well-formedness is checked here, so one badly encoded frame does not
    hide the others: decode each item with decode_frame. Raises FrameError
    (malformed-cbor) when an item is not well-formed, since the items after it
    cannot be found.
    """
    buf = _as_bytes(data)
    items: list[bytes] = []
    pos = 0
    while pos < len(buf):
        try:
            nxt = _skip(buf, pos, len(buf), False, 0)
        except _Malformed as e:
            raise FrameError(Reason.MALFORMED_CBOR,
                             f"item {len(items) + 1} of the sequence (at byte {pos}): "
                             f"{e.detail} at byte {e.offset}") from None
        items.append(buf[pos:nxt])
        pos = nxt
    return items


def _as_bytes(data: Any) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"expected bytes, got {type(data).__name__}")


# --------------------------------------------------------------------------
# The payload schema.


@dataclass(frozen=True)
class Location:
    """A decoded `loc`: integers as sent, plus degrees for people."""

    lat_e7: int
    lon_e7: int
    accuracy_m: int      # 65535: that many metres or worse
    age_s: int           # 65535: that old or older
    source: int          # 1 gnss, 2 cell, 3 last known

    @property
    def lat_deg(self) -> float:
        return self.lat_e7 / 1e7

    @property
    def lon_deg(self) -> float:
        return self.lon_e7 / 1e7

    @property
    def source_name(self) -> str:
        return SOURCE_NAMES.get(self.source, f"source {self.source}")

    @property
    def accuracy_capped(self) -> bool:
        return self.accuracy_m == 0xFFFF

    @property
    def age_capped(self) -> bool:
        return self.age_s == 0xFFFF


def unpack_location(loc: bytes) -> Location:
    """The 13-byte packed location; FrameError(bad-field) when out of range."""
    if not isinstance(loc, bytes) or len(loc) != LOCATION_BYTES:
        raise FrameError(Reason.BAD_FIELD, f"loc (6) must be {LOCATION_BYTES} bytes, got {_show(loc)}")
    lat, lon, acc, age, src = struct.unpack(">iiHHB", loc)
    if not -900_000_000 <= lat <= 900_000_000:
        raise FrameError(Reason.BAD_FIELD, f"loc (6): latitude {lat / 1e7:.7f} degrees is out of range")
    if not -1_800_000_000 <= lon <= 1_800_000_000:
        raise FrameError(Reason.BAD_FIELD, f"loc (6): longitude {lon / 1e7:.7f} degrees is out of range")
    if src not in SOURCE_NAMES:
        raise FrameError(Reason.BAD_FIELD,
                         f"loc (6): source {src} is not 1 (gnss), 2 (cell) or 3 (last known)")
    return Location(lat, lon, acc, age, src)


def _bstr_head(n: int) -> bytes:
    """The shortest CBOR head of a byte string of n bytes."""
    if n < 24:
        return bytes((0x40 | n,))
    for ai, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * width):
            return bytes((0x40 | ai,)) + n.to_bytes(width, "big")
    raise ValueError("byte string too long for CBOR")


def _bytes(n: int) -> str:
    return f"{n} byte" if n == 1 else f"{n} bytes"


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return f"a {len(value)}-byte string"
    if type(value) is int:
        return str(value)
    if isinstance(value, str):
        return f"text {value[:20]!r}"
    if value is None or isinstance(value, bool):
        return str(value).lower()
    return type(value).__name__


def _is_uint(value: Any, lo: int = 0, hi: int = _U64) -> bool:
    return type(value) is int and lo <= value <= hi  # bool is not an int here


@dataclass(frozen=True)
class _Field:
    key: int
    name: str
    kind: str          # "uint" or "bstr" or "ast" or "loc"
    lo: int = 0
    hi: int = _U64     # for bstr: the exact size is lo

    def check(self, value: Any) -> None:
        label = f"{self.name} ({self.key})"
        if self.kind == "uint":
            if not _is_uint(value, self.lo, self.hi):
                want = ("an unsigned integer" if (self.lo, self.hi) == (0, _U64)
                        else f"an integer {self.lo}..{self.hi}")
                raise FrameError(Reason.BAD_FIELD, f"{label} must be {want}, got {_show(value)}")
        elif self.kind == "bstr":
            if not isinstance(value, bytes) or len(value) != self.lo:
                raise FrameError(Reason.BAD_FIELD, f"{label} must be {self.lo} bytes, got {_show(value)}")
        elif self.kind == "loc":
            unpack_location(value)
        elif self.kind == "ast":
            if (not isinstance(value, (list, tuple)) or len(value) != 2
                    or not (type(value[0]) is int and -32768 <= value[0] <= 32767)
                    or not _is_uint(value[1], 0, 88)):
                raise FrameError(Reason.BAD_FIELD, f"{label} must be [predictor -32768..32767, "
                                 f"step index 0..88], got {_show_ast(value)}")


def _show_ast(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(v) for v in value[:4]) + (", ...]" if len(value) > 4 else "]")
    return _show(value)


_FIELDS = {f.key: f for f in (
    _Field(0, "v", "uint"),
    _Field(1, "t", "uint"),
    _Field(2, "sid", "uint", 1, 0xFFFF),
    _Field(3, "seq", "uint", 1, _U32),
    _Field(4, "time", "uint"),
    _Field(5, "up", "uint", 0, _U32),
    _Field(6, "loc", "loc"),
    _Field(7, "batt", "uint", 0, 100),
    _Field(8, "prev", "bstr", LINK_BYTES),
    _Field(9, "trig", "uint", 1, 2),
    _Field(10, "flags", "uint"),
    _Field(11, "codec", "uint", 1, 1),
    _Field(12, "rate", "uint", 1, _U32),    # Hz; 0 would make the audio unplayable
    _Field(13, "off", "uint"),
    _Field(14, "adig", "bstr", 32),
    _Field(15, "ast", "ast"),
    _Field(16, "ns", "uint"),
    _Field(17, "hb", "uint"),
    _Field(18, "st", "uint", 1, 6),
    _Field(19, "drop", "uint"),
    _Field(20, "why", "uint", 1, 4),
)}

_COMMON = frozenset({0, 1, 3, 4, 5})
_IN_ALERT = _COMMON | {2}
# frame type -> (required keys, optional keys); flags (10) is optional everywhere.
_SCHEMA: dict[FrameType, tuple[frozenset[int], frozenset[int]]] = {
    FrameType.ALERT_START: (_IN_ALERT | {7, 9}, frozenset({6})),
    FrameType.LOCATION: (_IN_ALERT | {6, 8}, frozenset()),
    FrameType.AUDIO: (_IN_ALERT | {8, 11, 12, 13, 14, 15, 16}, frozenset()),
    FrameType.CANCEL: (_IN_ALERT | {8}, frozenset({7})),
    FrameType.DURESS: (_IN_ALERT | {8}, frozenset({6, 7})),
    FrameType.END: (_IN_ALERT | {8, 20}, frozenset({7})),
    FrameType.HEARTBEAT: (_COMMON | {7, 17}, frozenset()),
    FrameType.CHECK_IN: (_COMMON | {7}, frozenset({6})),
    FrameType.STATUS: (_COMMON | {7, 18}, frozenset({19})),
}
_ALLOWED = {t: req | opt | {10} for t, (req, opt) in _SCHEMA.items()}
_STATUS_QUEUE_FULL = 5
_TYPE_VALUES = frozenset(int(t) for t in FrameType)


def _field_label(key: Any) -> str:
    f = _FIELDS.get(key) if type(key) is int else None
    return f"{f.name} ({key})" if f else f"key {key!r}"


def _check_payload(payload: Any) -> tuple[FrameType, dict[int, Any]]:
    """The frame type and a normalised copy of the payload map; raises FrameError."""
    if not isinstance(payload, dict):
        raise FrameError(Reason.BAD_FIELD, f"the payload must be a map, got {_show(payload)}")
    if 0 not in payload:
        raise FrameError(Reason.MISSING_FIELD, "the payload lacks v (0), the format version")
    version = payload[0]
    if type(version) is not int:
        raise FrameError(Reason.BAD_FIELD, f"v (0) must be an unsigned integer, got {_show(version)}")
    if version != FORMAT_VERSION:
        raise FrameError(Reason.UNSUPPORTED_VERSION,
                         f"format version {version}; this tool reads version {FORMAT_VERSION}")
    if 1 not in payload:
        raise FrameError(Reason.MISSING_FIELD, "the payload lacks t (1), the frame type")
    t = payload[1]
    if type(t) is not int:
        raise FrameError(Reason.BAD_FIELD, f"t (1) must be an unsigned integer, got {_show(t)}")
    if t not in _TYPE_VALUES:
        raise FrameError(Reason.UNKNOWN_FRAME_TYPE, f"frame type {t} is not one of 1..9")
    ftype = FrameType(t)
    required, allowed = _SCHEMA[ftype][0], _ALLOWED[ftype]
    for key in payload:
        if type(key) is not int or key not in allowed:
            if type(key) is not int or key not in _FIELDS:
                raise FrameError(Reason.BAD_FIELD, f"{_field_label(key)} is not part of the frame format")
            raise FrameError(Reason.BAD_FIELD, f"{_field_label(key)} is not allowed in {ftype.article} frame")
    missing = required - payload.keys()
    if missing:
        raise FrameError(Reason.MISSING_FIELD, f"{ftype.article} frame needs {_field_label(min(missing))}")
    fields: dict[int, Any] = {}
    for key, value in payload.items():
        spec = _FIELDS[key]
        if not (spec.kind == "uint" and type(value) is int and spec.lo <= value <= spec.hi):
            spec.check(value)
        fields[key] = tuple(value) if isinstance(value, list) else value
    if 19 in fields and fields[18] != _STATUS_QUEUE_FULL:
        raise FrameError(Reason.BAD_FIELD, f"drop (19) belongs only to status {_STATUS_QUEUE_FULL} "
                         f"(queue full), not status {fields[18]}")
    return ftype, fields


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


def chain_link(frame_or_wire: Frame | bytes) -> bytes:
    """The 8-byte link the next frame of the same alert carries as `prev`:
    SHA-256 of the tagged COSE_Sign1 (for an audio frame, the COSE part only)."""
    frame = frame_or_wire if isinstance(frame_or_wire, Frame) else decode_frame(frame_or_wire)
    return frame.link


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


# --------------------------------------------------------------------------
# Public keys.


def _key_from_blob(blob: bytes, where: str) -> Ed25519PublicKey:
    if b"PRIVATE KEY" in blob:
        raise KeyFormatError(f"{where} holds a private key; give the device's public key instead "
                             "(verification never needs the private key)")
    key: Any
    if blob.lstrip().startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(blob)
        except (ValueError, UnsupportedAlgorithm) as e:
            raise KeyFormatError(f"{where} is not a PEM public key this tool can read ({e})") from None
    elif len(blob) == 32:
        return Ed25519PublicKey.from_public_bytes(blob)
    else:
        text = blob.strip()
        if len(text) == 64 and all(chr(c) in string.hexdigits for c in text):
            return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text.decode("ascii")))
        try:
            key = serialization.load_der_public_key(blob)
        except (ValueError, UnsupportedAlgorithm):
            raise KeyFormatError(f"{where} holds neither a PEM or DER public key, 64 hex digits, "
                                 "nor 32 raw key bytes") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFormatError(f"{where} holds a {type(key).__name__.lstrip('_')}, not an Ed25519 public key")
    return key


def load_public_key(source: str | os.PathLike[str] | bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from 64 hex digits, a file (PEM, DER, 32 raw bytes
    or 64 hex digits) or 32 raw bytes. Raises KeyFormatError (a UsageError)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _key_from_blob(bytes(source), "the key bytes")
    text = os.fspath(source)
    stripped = text.strip()
    if len(stripped) == 64 and all(c in string.hexdigits for c in stripped):
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(stripped))
    path = Path(text)
    if path.is_file():
        try:
            blob = path.read_bytes()
        except OSError as e:
            raise KeyFormatError(f"cannot read key file {text}: {e.strerror}") from None
        return _key_from_blob(blob, f"key file {text}")
    if stripped and all(c in string.hexdigits for c in stripped):
        # Never echo hex: it might be someone's private seed typed by mistake.
        raise KeyFormatError(f"the key is {len(stripped)} hex digits; an Ed25519 public key is 64")
    raise KeyFormatError(f"no such key file: {text!r} (give a PEM public key file or 64 hex digits)")


def public_key_bytes(key: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of an Ed25519 public key."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


# --------------------------------------------------------------------------
# For people and for tools.


def _utc_text(frame: Frame) -> str:
    if not frame.time:
        return "unknown (0)"
    when = frame.time_utc
    if when is None:
        return f"{frame.time} (beyond the calendar)"
    return f"{when:%Y-%m-%d %H:%M:%S} UTC (epoch {frame.time})"


def _location_text(loc: Location) -> str:
    acc = f"±{loc.accuracy_m} m" + (" or worse" if loc.accuracy_capped else "")
    age = f"fix {loc.age_s} s old" + (" or older" if loc.age_capped else "")
    return f"{loc.lat_deg:.7f}, {loc.lon_deg:.7f}  {acc}, {age}, source {loc.source_name}"


def describe_frame(frame: Frame, extra: list[tuple[str, str]] | None = None) -> list[str]:
    """Lines that show a frame to a person (labels left, values right);
    `extra` rows (label, value) go at the end."""
    rows: list[tuple[str, str]] = [("type", f"{frame.type_name} ({int(frame.type)})"),
                                   ("device", frame.device_id), ("seq", str(frame.seq))]
    if frame.sid is not None:
        rows.append(("alert", f"session {frame.sid}"))
    rows.append(("time", _utc_text(frame)))
    rows.append(("uptime", f"{frame.uptime_ms / 1000:.3f} s ({frame.uptime_ms} ms)"))
    loc = frame.location
    if loc is not None:
        rows.append(("location", _location_text(loc)))
    elif frame.type in (FrameType.ALERT_START, FrameType.DURESS, FrameType.CHECK_IN):
        rows.append(("location", "none (no position known)"))
    if frame.battery is not None:
        rows.append(("battery", f"{frame.battery} %"))
    if frame.trigger is not None:
        rows.append(("trigger", TRIGGER_NAMES.get(frame.trigger, str(frame.trigger))))
    if frame.status is not None:
        rows.append(("status", f"{frame.status}: {STATUS_NAMES.get(frame.status, '?')}"))
    if frame.dropped is not None:
        rows.append(("dropped", f"{frame.dropped} frames"))
    if frame.end_reason is not None:
        rows.append(("ended", f"{frame.end_reason}: {END_REASON_NAMES.get(frame.end_reason, '?')}"))
    if frame.heartbeat_s is not None:
        rows.append(("heartbeat", f"every {frame.heartbeat_s} s"))
    rows.append(("flags", ", ".join(frame.flag_names) or "none"))
    if frame.type == FrameType.AUDIO:
        rate = frame.rate_hz or 1
        ns = frame.samples or 0
        state = frame.adpcm_state or (0, 0)
        off = frame.audio_offset or 0
        codec = CODEC_NAMES.get(frame.codec or 0, str(frame.codec))
        rows.append(("audio", f"{codec}, {frame.rate_hz} Hz, {ns} samples ({ns / rate:.3f} s) "
                     f"from sample {off} ({off / rate:.3f} s into the alert's audio)"))
        rows.append(("adpcm state", f"predictor {state[0]}, step index {state[1]}"))
        rows.append(("audio bytes", f"{len(frame.audio or b'')}"))
        rows.append(("adig", (frame.audio_digest or b"").hex()))
    if frame.prev is not None:
        rows.append(("prev", frame.prev.hex()))
    rows.append(("link", f"{frame.link.hex()} (the next frame's prev)"))
    alg_name = ALG_NAMES.get(frame.alg, "unsupported") if isinstance(frame.alg, int) else "unsupported"
    rows.append(("alg", f"{alg_name} ({frame.alg!r})"))
    rows.append(("size", f"{len(frame.wire)} bytes on the wire"))
    rows += extra or []
    width = max(len(label) for label, _ in rows)
    return [f"{label.ljust(width)}  {value}" for label, value in rows]


def frame_summary(frame: Frame) -> str:
    """One line: type, device, seq, alert session."""
    sid = f" sid {frame.sid}" if frame.sid is not None else ""
    return f"{frame.type_name} device {frame.device_id} seq {frame.seq}{sid}"


def frame_to_json(frame: Frame) -> dict[str, Any]:
    """A JSON-ready dict of the frame: names as in docs/frames.md, bytes as hex."""
    out: dict[str, Any] = {
        "type": frame.type_name, "t": int(frame.type), "v": frame.version,
        "device": frame.device_id, "kid": frame.kid.hex(), "alg": frame.alg,
        "seq": frame.seq, "sid": frame.sid, "time": frame.time,
        "time_utc": frame.time_utc.isoformat().replace("+00:00", "Z") if frame.time_utc else None,
        "up_ms": frame.uptime_ms, "flags": frame.flags, "flag_names": frame.flag_names,
        "prev": frame.prev.hex() if frame.prev is not None else None, "link": frame.link.hex(),
        "size": len(frame.wire),
    }
    loc = frame.location
    if loc is not None:
        out["location"] = {"lat_e7": loc.lat_e7, "lon_e7": loc.lon_e7, "lat": loc.lat_deg, "lon": loc.lon_deg,
                           "accuracy_m": loc.accuracy_m, "age_s": loc.age_s, "source": loc.source,
                           "source_name": loc.source_name}
    for key, name in ((7, "battery"), (9, "trigger"), (17, "heartbeat_s"), (18, "status"),
                      (19, "dropped"), (20, "why")):
        if key in frame.payload:
            out[name] = frame.payload[key]
    if frame.type == FrameType.AUDIO:
        out["audio"] = {"codec": frame.codec, "rate_hz": frame.rate_hz, "offset": frame.audio_offset,
                        "samples": frame.samples, "adpcm_state": list(frame.adpcm_state or ()),
                        "adig": (frame.audio_digest or b"").hex(), "bytes": len(frame.audio or b"")}
    out["signature"] = frame.signature.hex()
    return out
