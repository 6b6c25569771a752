"""The payload schema: field kinds and ranges, which keys each frame type needs or
allows, and the packed location."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from host_tools.frames.reasons import (
    _U32,
    COMMAND_ID_MAX,
    FLAGS_DEFINED,
    FORMAT_VERSION,
    LINK_BYTES,
    LOCATION_BYTES,
    SOURCE_NAMES,
    STATUS_NAMES,
    TEXT_MAX_BYTES,
    FrameError,
    FrameType,
    Reason,
)

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


def _is_uint(value: Any, lo: int, hi: int) -> bool:
    return type(value) is int and lo <= value <= hi  # bool is not an int here


@dataclass(frozen=True)
class _Field:
    key: int
    name: str
    kind: str          # "uint" or "bstr" or "tstr" or "ast" or "loc"
    lo: int = 0
    hi: int = _U32     # uint: every integer is bounded (docs/frames.md); for bstr the exact size is lo

    def check(self, value: Any) -> None:
        label = f"{self.name} ({self.key})"
        if self.kind == "uint":
            if not _is_uint(value, self.lo, self.hi):
                want = f"an integer {self.lo}..{self.hi}"
                if self.key == 10 and type(value) is int and value > 0:
                    want = f"bits 0..{FLAGS_DEFINED.bit_length() - 1} only (an undefined flag)"
                raise FrameError(Reason.BAD_FIELD, f"{label} must be {want}, got {_show(value)}")
        elif self.kind == "bstr":
            if not isinstance(value, bytes) or len(value) != self.lo:
                raise FrameError(Reason.BAD_FIELD, f"{label} must be {self.lo} bytes, got {_show(value)}")
        elif self.kind == "tstr":
            size = len(value.encode("utf-8", "surrogatepass")) if isinstance(value, str) else -1
            if not self.lo <= size <= self.hi:
                raise FrameError(Reason.BAD_FIELD, f"{label} must be text of 1..{self.hi} bytes, "
                                 f"got {_show(value)}")
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
    _Field(0, "v", "uint"),     # v and t have reason codes of their own (checked first)
    _Field(1, "t", "uint"),
    _Field(2, "sid", "uint", 1, 0xFFFF),
    _Field(3, "seq", "uint", 1, _U32),
    _Field(4, "time", "uint", 0, _U32),
    _Field(5, "up", "uint", 0, _U32),
    _Field(6, "loc", "loc"),
    _Field(7, "batt", "uint", 0, 100),
    _Field(8, "prev", "bstr", LINK_BYTES),
    _Field(9, "trig", "uint", 1, 5),
    _Field(10, "flags", "uint", 0, FLAGS_DEFINED),
    _Field(11, "codec", "uint", 1, 1),
    _Field(12, "rate", "uint", 1, _U32),    # Hz; 0 would make the audio unplayable
    _Field(13, "off", "uint", 0, _U32),
    _Field(14, "adig", "bstr", 32),
    _Field(15, "ast", "ast"),
    _Field(16, "ns", "uint", 0, _U32),
    _Field(17, "hb", "uint", 0, _U32),
    _Field(18, "st", "uint", 1, 11),
    _Field(19, "drop", "uint", 0, _U32),
    _Field(20, "why", "uint", 1, 4),
    _Field(21, "cmd", "uint", 1, COMMAND_ID_MAX),
    _Field(22, "res", "uint", 1, 7),
    _Field(23, "unauth", "uint", 0, _U32),
    _Field(24, "fw", "tstr", 1, TEXT_MAX_BYTES[24]),
    _Field(25, "cfgv", "uint", 0, _U32),
    _Field(26, "rst", "uint", 0, 6),
    _Field(27, "boots", "uint", 0, _U32),
    _Field(28, "faults", "uint", 0, _U32),
    _Field(29, "qd", "uint", 0, _U32),
    _Field(30, "csq", "uint", 0, 99),
    _Field(31, "visit", "uint", 1, _U32),      # check-in: the visit's id
    _Field(32, "due", "uint", 0, _U32),        # check-in: the visit's end, device unix time s (0: unknown)
    _Field(33, "dur", "uint", 0, 604_800),     # check-in: s from now to the end (0: the visit ended)
    _Field(34, "rx", "uint", 0, 1),        # which receiver: 0 primary, 1 secondary (dual path)
    _Field(35, "pend", "tstr", 1, TEXT_MAX_BYTES[35]),   # docs/ota.md: staged for the next boot
    _Field(36, "upd", "uint", 1, 9),        # the last update's result (UPDATE_RESULT_NAMES)
    _Field(37, "err", "tstr", 1, TEXT_MAX_BYTES[37]),
)}
_VISIT_KEYS = frozenset({31, 32, 33})   # a check-in's visit: all three or none
_STATUS_CODES = frozenset(STATUS_NAMES)   # st 1..11

_COMMON = frozenset({0, 1, 3, 4, 5})
_IN_ALERT = _COMMON | {2}
_HEALTH = frozenset({24, 25, 29, 30})   # fw, cfgv, qd, csq: status and heartbeat (never a location)
# frame type -> (required keys, optional keys); flags (10) is optional everywhere.
_SCHEMA: dict[FrameType, tuple[frozenset[int], frozenset[int]]] = {
    FrameType.ALERT_START: (_IN_ALERT | {7, 9}, frozenset({6, 34})),
    FrameType.LOCATION: (_IN_ALERT | {6, 8}, frozenset()),
    FrameType.AUDIO: (_IN_ALERT | {8, 11, 12, 13, 14, 15, 16}, frozenset()),
    FrameType.CANCEL: (_IN_ALERT | {8}, frozenset({7})),
    FrameType.DURESS: (_IN_ALERT | {8}, frozenset({6, 7})),
    FrameType.END: (_IN_ALERT | {8, 20}, frozenset({7})),
    FrameType.HEARTBEAT: (_COMMON | {7, 17}, frozenset({23, 34}) | _HEALTH),
    FrameType.CHECK_IN: (_COMMON | {7}, frozenset({6}) | _VISIT_KEYS),
    FrameType.STATUS: (_COMMON | {7, 18}, frozenset({19, 23, 26, 27, 28, 34, 35, 36, 37}) | _HEALTH),
    FrameType.REPLY: (_COMMON | {21, 22}, frozenset({2})),   # sid: the alert the command concerned
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
        raise FrameError(Reason.UNKNOWN_FRAME_TYPE, f"frame type {t} is not one of 1..{max(_TYPE_VALUES)}")
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
    if 18 in fields and fields[18] not in _STATUS_CODES:
        raise FrameError(Reason.BAD_FIELD, f"st (18) {fields[18]} is not a status code this tool knows "
                         f"({', '.join(str(c) for c in sorted(_STATUS_CODES))})")
    visit = _VISIT_KEYS & fields.keys()
    if visit and visit != _VISIT_KEYS:
        raise FrameError(Reason.MISSING_FIELD, "a check-in with a visit needs visit (31), due (32) and "
                         f"dur (33) together; it lacks {_field_label(min(_VISIT_KEYS - visit))}")
    if 19 in fields and fields[18] != _STATUS_QUEUE_FULL:
        raise FrameError(Reason.BAD_FIELD, f"drop (19) belongs only to status {_STATUS_QUEUE_FULL} "
                         f"(queue full), not status {fields[18]}")
    return ftype, fields
