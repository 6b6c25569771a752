# Deterministic CBOR (RFC 8949) for the subset Sotto speaks: unsigned and
# negative integers (64-bit), byte strings, text strings, arrays, maps with
# integer or text keys, tags, false/true/null.
#
# encode() writes the core deterministic encoding of RFC 8949 §4.2.1: shortest
# heads, definite lengths, map keys sorted by their encoded bytes. decode() is
# strict: it rejects everything encode() would never write (indefinite lengths,
# non-shortest heads, unsorted or duplicate keys, floats and other simple
# values, trailing bytes, nesting deeper than max_depth, lengths beyond the
# buffer, ill-formed UTF-8) with a CBORDecodeError whose `code` says which rule
# broke. decode_item() reads one item of a CBOR sequence (RFC 8742) and returns
# where it ends. Same bytes and same errors under MicroPython and CPython.
import struct

from micropython import const

# error codes (CBORError.code)
EOF = const(1)  # the buffer ends inside an item, or a length runs past it
INDEFINITE = const(2)  # indefinite-length string, array or map
NOT_SHORTEST = const(3)  # an argument not in its shortest form
KEY_ORDER = const(4)  # map keys not in bytewise order of their encodings
DUPLICATE_KEY = const(5)
TRAILING = const(6)  # bytes after the one item decode() expects
DEPTH = const(7)  # nested deeper than max_depth
UNSUPPORTED = const(8)  # float, undefined or simple value, unsupported key type
MALFORMED = const(9)  # reserved additional information, stray "break"
BAD_TEXT = const(10)  # a text string that is not well-formed UTF-8
BAD_TYPE = const(11)  # encode: a value outside the subset
BAD_RANGE = const(12)  # encode: an integer outside -2**64 .. 2**64-1

MAX_DEPTH = const(8)
_U64 = 0xFFFFFFFFFFFFFFFF


class CBORError(ValueError):
    """A CBOR encode or decode failure: `code` is one of the codes above,
    `offset` the byte where decoding stopped (-1 when encoding)."""

    def __init__(self, code, msg, offset=-1):
        super().__init__(msg)
        self.code = code
        self.offset = offset


class CBORDecodeError(CBORError):
    pass


class CBOREncodeError(CBORError):
    pass


class Tag:
    """A tagged item: `tag` (uint) and `value`."""

    def __init__(self, tag, value):
        self.tag = tag
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Tag) and self.tag == other.tag and self.value == other.value

    def __ne__(self, other):
        return not self.__eq__(other)

    def __repr__(self):
        return "Tag(%d, %r)" % (self.tag, self.value)


# ---- encoder ---------------------------------------------------------------

def head(major, n):
    """The shortest head of major type `major` with argument n (0 <= n < 2**64)."""
    mt = major << 5
    if n < 24:
        return bytes((mt | n,))
    if n < 0x100:
        return bytes((mt | 24, n))
    if n < 0x10000:
        return struct.pack(">BH", mt | 25, n)
    if n < 0x100000000:
        return struct.pack(">BI", mt | 26, n)
    return struct.pack(">BQ", mt | 27, n)


def _enc(out, obj):
    if obj is None:
        out.append(0xF6)
    elif obj is False:
        out.append(0xF4)
    elif obj is True:
        out.append(0xF5)
    elif isinstance(obj, int):
        if obj >= 0:
            if obj > _U64:
                raise CBOREncodeError(BAD_RANGE, "integer %d above 2**64-1" % obj)
            if obj < 24:
                out.append(obj)
            else:
                out.extend(head(0, obj))
        else:
            n = -1 - obj
            if n > _U64:
                raise CBOREncodeError(BAD_RANGE, "integer %d below -2**64" % obj)
            out.extend(head(1, n))
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        out.extend(head(2, len(obj)))
        out.extend(obj)
    elif isinstance(obj, str):
        b = obj.encode("utf-8")
        out.extend(head(3, len(b)))
        out.extend(b)
    elif isinstance(obj, (list, tuple)):
        out.extend(head(4, len(obj)))
        for x in obj:
            _enc(out, x)
    elif isinstance(obj, dict):
        out.extend(head(5, len(obj)))
        pairs = [(encode(k), v) for k, v in obj.items()]
        pairs.sort(key=_first)
        for k, v in pairs:
            out.extend(k)
            _enc(out, v)
    elif isinstance(obj, Tag):
        out.extend(head(6, obj.tag))
        _enc(out, obj.value)
    else:
        raise CBOREncodeError(BAD_TYPE, "cannot encode %s" % type(obj).__name__)


def _first(pair):
    return pair[0]


def encode(obj):
    """The deterministic encoding of obj: int, bytes, str, list/tuple, dict,
    Tag, bool or None."""
    out = bytearray()
    _enc(out, obj)
    return bytes(out)


def encode_into(out, obj):
    """Append the encoding of obj to the bytearray `out`."""
    _enc(out, obj)


# ---- decoder ---------------------------------------------------------------

def _fail(code, msg, pos):
    raise CBORDecodeError(code, "%s at offset %d" % (msg, pos), pos)


def _utf8_ok(b):
    # RFC 3629 well-formedness: no overlong forms, no surrogates, <= U+10FFFF.
    n = len(b)
    if not n or max(b) < 0x80:  # ASCII: nothing to check byte by byte
        return True
    i = 0
    while i < n:
        c = b[i]
        if c < 0x80:
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            k, lo, hi = 1, 0x80, 0xBF
        elif 0xE0 <= c <= 0xEF:
            k = 2
            lo = 0xA0 if c == 0xE0 else 0x80
            hi = 0x9F if c == 0xED else 0xBF
        elif 0xF0 <= c <= 0xF4:
            k = 3
            lo = 0x90 if c == 0xF0 else 0x80
            hi = 0x8F if c == 0xF4 else 0xBF
        else:
            return False
        if i + k >= n:
            return False
        if not lo <= b[i + 1] <= hi:
            return False
        for j in range(i + 2, i + 1 + k):
            if not 0x80 <= b[j] <= 0xBF:
                return False
        i += 1 + k
    return True


def _arg(buf, pos, end, ai):
    # The argument of a head whose additional information is ai (< 28), read
    # from buf[pos:]; returns (n, new pos).
    if ai < 24:
        return ai, pos
    size = 1 << (ai - 24)
    if pos + size > end:
        _fail(EOF, "head needs %d more bytes, %d left" % (size, end - pos), pos)
    if ai == 24:
        n = buf[pos]
        low = 24
    elif ai == 25:
        n = (buf[pos] << 8) | buf[pos + 1]
        low = 0x100
    elif ai == 26:
        n = struct.unpack_from(">I", buf, pos)[0]
        low = 0x10000
    else:
        n = struct.unpack_from(">Q", buf, pos)[0]
        low = 0x100000000
    if n < low:
        _fail(NOT_SHORTEST, "argument %d encoded in %d bytes" % (n, size), pos - 1)
    return n, pos + size


def _item(buf, pos, end, room):
    # room: how many more levels of arrays, maps and tags may open here
    if pos >= end:
        _fail(EOF, "item expected, buffer ends", pos)
    start = pos
    ib = buf[pos]
    major = ib >> 5
    ai = ib & 31
    pos += 1
    if major == 7:
        if ai == 20:
            return False, pos
        if ai == 21:
            return True, pos
        if ai == 22:
            return None, pos
        if ai == 31:
            _fail(MALFORMED, "unexpected break", start)
        if 28 <= ai <= 30:
            _fail(MALFORMED, "reserved additional information %d" % ai, start)
        _fail(UNSUPPORTED, "float or simple value 0x%02x" % ib, start)
    if ai >= 28:
        if ai == 31 and 2 <= major <= 5:
            _fail(INDEFINITE, "indefinite length (major type %d)" % major, start)
        _fail(MALFORMED, "reserved additional information %d" % ai, start)
    n, pos = _arg(buf, pos, end, ai)
    if major == 0:
        return n, pos
    if major == 1:
        return -1 - n, pos
    if major <= 3:
        if n > end - pos:
            _fail(EOF, "string of %d bytes, %d left" % (n, end - pos), start)
        b = bytes(buf[pos:pos + n])
        if major == 2:
            return b, pos + n
        if not _utf8_ok(b):
            _fail(BAD_TEXT, "text string is not well-formed UTF-8", start)
        return b.decode("utf-8"), pos + n
    if room <= 0:
        _fail(DEPTH, "nested too deep", start)
    room -= 1
    if major == 4:
        if n > end - pos:  # every item takes at least one byte
            _fail(EOF, "array of %d items, %d bytes left" % (n, end - pos), start)
        out = []
        for _ in range(n):
            x, pos = _item(buf, pos, end, room)
            out.append(x)
        return out, pos
    if major == 5:
        if 2 * n > end - pos:
            _fail(EOF, "map of %d pairs, %d bytes left" % (n, end - pos), start)
        obj = {}
        prev = None
        for _ in range(n):
            kpos = pos
            k, pos = _item(buf, pos, end, room)
            if not isinstance(k, (int, str)) or isinstance(k, bool):
                _fail(UNSUPPORTED, "map key of type %s" % type(k).__name__, kpos)
            kb = bytes(buf[kpos:pos])
            if prev is not None and kb <= prev:
                if kb == prev:
                    _fail(DUPLICATE_KEY, "duplicate map key %r" % (k,), kpos)
                _fail(KEY_ORDER, "map key %r out of order" % (k,), kpos)
            prev = kb
            obj[k], pos = _item(buf, pos, end, room)
        return obj, pos
    # major 6: tag
    x, pos = _item(buf, pos, end, room)
    return Tag(n, x), pos


def decode_item(buf, pos=0, max_depth=MAX_DEPTH):
    """Decode the item starting at buf[pos] (one item of a CBOR sequence);
    return (value, offset just past it). Raises CBORDecodeError."""
    return _item(buf, pos, len(buf), max_depth)


def decode(buf, max_depth=MAX_DEPTH):
    """Decode exactly one item filling all of buf. Raises CBORDecodeError."""
    obj, pos = decode_item(buf, 0, max_depth)
    if pos != len(buf):
        _fail(TRAILING, "%d bytes after the item" % (len(buf) - pos), pos)
    return obj


def split_sequence(buf, max_depth=MAX_DEPTH):
    """A CBOR sequence as [(value, start, end), ...], every item checked."""
    out = []
    pos = 0
    n = len(buf)
    while pos < n:
        obj, end = decode_item(buf, pos, max_depth)
        out.append((obj, pos, end))
        pos = end
    return out
