"""The strict CBOR scanner: well-formedness, core deterministic encoding (RFC 8949
§4.2), bounds and depth, checked before cbor2 sees the bytes; CBOR sequences."""

from __future__ import annotations

from typing import Any

import cbor2

from host_tools.frames.reasons import (
    COSE_SIGN1_TAG,
    MAX_DEPTH,
    FrameError,
    Reason,
)

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


class SequenceTooLong(FrameError):
    """A CBOR sequence with more items than the caller takes (reason too-large):
    raised as soon as item max_items + 1 begins, before the rest is scanned."""

    def __init__(self, max_items: int, pos: int) -> None:
        super().__init__(Reason.TOO_LARGE, f"more than {max_items} items (item {max_items + 1} "
                                           f"begins at byte {pos}); at most {max_items} per request")
        self.max_items = max_items


def split_sequence(data: bytes, max_items: int | None = None) -> list[bytes]:
    """A CBOR sequence (RFC 8742) into the exact bytes of each item.

    Only well-formedness is checked here, so one badly encoded frame does not
    hide the others: decode each item with decode_frame. Raises FrameError
    (malformed-cbor) when an item is not well-formed, since the items after it
    cannot be found. With max_items, raises SequenceTooLong (too-large) as soon
    as one more item begins, so a body of a million tiny items costs no more
    than max_items of them.
    """
    buf = _as_bytes(data)
    items: list[bytes] = []
    pos = 0
    end = len(buf)
    limit = end if max_items is None else max_items
    while pos < end:
        if len(items) >= limit:
            raise SequenceTooLong(limit, pos)
        try:
            nxt = _skip(buf, pos, end, False, 0)
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
