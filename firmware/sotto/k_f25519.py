# Kernel: Ed25519's fixed-base multiplication and point encoding on
# pre-allocated limb arrays, without a heap allocation per operation.
#
# sotto.edwards does this with Python ints: fast in the interpreter (the VM,
# CPython) but each field multiplication leaves about 176 bytes of garbage, so
# one signature churns about 128 KB of heap there. Here a field element is 22
# limbs of 12 bits in an array('H') and every intermediate value stays a small
# int (below 2**30, see sotto/kern.py), so the bytecode build allocates nothing
# per operation and the viper build that `sotto flash` makes for a device runs
# it as machine code. Same comb, same formulas, same table as sotto.edwards;
# tests check the two give the same bytes. As bytecode this is ~30x slower
# than the int version: the VM and CPython use it only to prove and measure it.
#
# Representation: value = sum(limb[i] << 12*i); limbs 0..20 < 4096, limb 21
# (bits 252..) <= 8 after every operation (_fold), so a value is below
# 2**255 + 2**252 and congruent mod p; only tobytes() reduces to the canonical
# form. Products: 22 limb products of at most 4095 * 4095 summed per column
# stay below 2**28.5.
from array import array

from micropython import const

from sotto.kern import native, ptr8, ptr16, ptr32, viper

_N = const(22)  # limbs per field element
_TEETH = const(5)  # the comb of sotto.edwards: 2 combs of 5 teeth, 26 columns
_COLS = const(26)
_COL_MASK = const(0x3FFFFFF)
_ENTRY = const(66)  # limbs per table entry: (y + x, y - x, 2dxy)
_IDLE_COLS = const(5)  # mul_comb2 calls idle() every 5 of its 26 columns, as sotto.edwards


@viper
def _fold(o, w):
    # w[0..21]: limbs of a value below 2**(12*22 + 14) (each < 2**26.7);
    # o: the same value mod p in the representation above.
    pw = ptr32(w)
    po = ptr16(o)
    c = 0
    for i in range(21):
        v = int(pw[i]) + c
        pw[i] = v & 0xFFF
        c = v >> 12
    v = int(pw[21]) + c
    pw[21] = v & 7
    c = (v >> 3) * 19  # 2**255 = 19 (mod p)
    for i in range(21):
        v = int(pw[i]) + c
        po[i] = v & 0xFFF
        c = v >> 12
    po[21] = int(pw[21]) + c


@viper
def mul(o, a, b, w):
    """o = a * b (o may be a or b); w: array('i', 44) scratch."""
    pa = ptr16(a)
    pb = ptr16(b)
    pw = ptr32(w)
    for i in range(44):
        pw[i] = 0
    for i in range(22):
        ai = int(pa[i])
        for j in range(22):
            pw[i + j] = int(pw[i + j]) + ai * int(pb[j])
    c = 0
    for i in range(43):  # columns -> 12-bit limbs (the carry out of column 42 is < 2**17)
        v = int(pw[i]) + c
        pw[i] = v & 0xFFF
        c = v >> 12
    pw[43] = c
    for i in range(22):  # 2**264 = 2**9 * 19 (mod p)
        pw[i] = int(pw[i]) + 9728 * int(pw[i + 22])
    _fold(o, w)


@viper
def add(o, a, b, w):
    """o = a + b."""
    pa = ptr16(a)
    pb = ptr16(b)
    pw = ptr32(w)
    for i in range(22):
        pw[i] = int(pa[i]) + int(pb[i])
    _fold(o, w)


@viper
def sub(o, a, b, w):
    """o = a - b (adds 2p limb by limb first: 2p's limbs are 8154, 8190 x 20,
    14, each above b's, so no limb goes negative)."""
    pa = ptr16(a)
    pb = ptr16(b)
    pw = ptr32(w)
    pw[0] = int(pa[0]) + 8154 - int(pb[0])
    for i in range(1, 21):
        pw[i] = int(pa[i]) + 8190 - int(pb[i])
    pw[21] = int(pa[21]) + 14 - int(pb[21])  # b's top limb is <= 8 (see _fold)
    _fold(o, w)


@viper
def copy(o, a):
    po = ptr16(o)
    pa = ptr16(a)
    for i in range(22):
        po[i] = pa[i]


@viper
def load(o, table, off: int):
    """o = the field element at table[off:off + 22]."""
    po = ptr16(o)
    pt = ptr16(table)
    for i in range(22):
        po[i] = pt[off + i]


@viper
def sqn(o, a, n: int, w):
    """o = a ** (2 ** n), n >= 1."""
    mul(o, a, a, w)
    for _ in range(n - 1):
        mul(o, o, o, w)


@viper
def tobytes(out, a, w):
    """out[0:32] = the canonical little-endian encoding of a mod p."""
    pa = ptr16(a)
    pw = ptr32(w)
    po = ptr8(out)
    # a < 2**256: fold bit 255 and up once more, then a < 2**255 + 2**9 < 2p
    c = (int(pa[21]) >> 3) * 19
    for i in range(21):
        v = int(pa[i]) + c
        pw[i] = v & 0xFFF
        c = v >> 12
    pw[21] = (int(pa[21]) & 7) + c
    # a + 19 >= 2**255 exactly when a >= p: then the result is a + 19 - 2**255
    c = 19
    for i in range(21):
        v = int(pw[i]) + c
        pw[22 + i] = v & 0xFFF
        c = v >> 12
    v = int(pw[21]) + c
    pw[43] = v & 7
    ge = v >> 3  # 1 when a >= p
    for i in range(22):
        pw[i] = int(pw[i]) + ge * (int(pw[22 + i]) - int(pw[i]))
    acc = 0
    bits = 0
    k = 0
    for i in range(22):
        acc = acc | (int(pw[i]) << bits)
        bits += 12
        while bits >= 8 and k < 32:
            po[k] = acc & 0xFF
            acc = acc >> 8
            bits -= 8
            k += 1
    while k < 32:
        po[k] = acc & 0xFF
        acc = acc >> 8
        k += 1


def from_int(o, v):
    """o = the int v (0 <= v < 2**256), limb by limb (allocates: setup only)."""
    for i in range(_N):
        o[i] = (v >> (12 * i)) & 0xFFF


def fe():
    return array("H", bytes(2 * _N))


class _Ctx:
    # pre-allocated working set (setup()): the point (x, y, z, t), temporaries
    # a..h, the table entry being added, the product scratch w, the encoding
    table = None  # type: array | None  # 2 combs x 32 entries x _ENTRY limbs
    x = y = z = t = a = b = c = d = e = f = g = h = ypx = ymx = xy2d = fe()  # type: array
    w = array("i")  # type: array
    rows = array("i")  # type: array  # the 26-bit rows of two scalars
    out = bytearray()


def table_of(combs):
    """sotto.edwards' comb tables of a point (comb_table(): 2 lists of 32
    affine (y+x, y-x, 2dxy) int triples) in limbs: one array('H') of 8448
    bytes instead of about 16 KB of ints (allocates: at boot)."""
    tab = array("H", bytes(2 * 2 * 32 * _ENTRY))
    tmp = fe()
    k = 0
    for comb in combs:
        for entry in comb:
            for v in entry:
                from_int(tmp, v)
                for i in range(_N):
                    tab[k + i] = tmp[i]
                k += _N
    return tab


def setup(base_table):
    """Convert sotto.edwards' comb table of B (base_table() -> its combs) to
    limbs and make the working set; once per boot (a second call changes
    nothing)."""
    if _Ctx.table is not None:
        return
    _Ctx.table = table_of(base_table())
    for name in ("x", "y", "z", "t", "a", "b", "c", "d", "e", "f", "g", "h", "ypx", "ymx", "xy2d"):
        setattr(_Ctx, name, fe())
    _Ctx.w = array("i", bytes(4 * 44))
    _Ctx.rows = array("i", bytes(4 * 20))
    _Ctx.out = bytearray(32)


@native
def _double(x, y, z, t, a, b, c, e, f, g, h, w):
    # as sotto.edwards.dbl (a = -1 twisted Edwards, extended coordinates)
    mul(a, x, x, w)
    mul(b, y, y, w)
    mul(c, z, z, w)
    add(c, c, c, w)
    add(h, a, b, w)
    add(e, x, y, w)
    mul(e, e, e, w)
    sub(e, h, e, w)
    sub(g, a, b, w)
    add(f, c, g, w)
    mul(x, e, f, w)
    mul(y, g, h, w)
    mul(z, f, g, w)
    mul(t, e, h, w)


@native
def _madd(x, y, z, t, ypx, ymx, xy2d, a, b, c, d, e, f, g, h, w):
    # + the affine point (ypx, ymx, xy2d), as in sotto.edwards.mul_base
    sub(a, y, x, w)
    mul(a, a, ymx, w)
    add(b, y, x, w)
    mul(b, b, ypx, w)
    mul(c, t, xy2d, w)
    add(d, z, z, w)
    sub(e, b, a, w)
    sub(f, d, c, w)
    add(g, d, c, w)
    add(h, b, a, w)
    mul(x, e, f, w)
    mul(y, g, h, w)
    mul(z, f, g, w)
    mul(t, e, h, w)


def _lookup(tab, comb, col, ypx, ymx, xy2d):
    off = (comb * 32 + col) * _ENTRY
    load(ypx, tab, off)
    load(ymx, tab, off + _N)
    load(xy2d, tab, off + 2 * _N)


def _column(r0, r1, r2, r3, r4, j):
    return ((r0 >> j) & 1) | ((r1 >> j) & 1) << 1 | ((r2 >> j) & 1) << 2 \
        | ((r3 >> j) & 1) << 3 | ((r4 >> j) & 1) << 4


def _invert(o, z, t0, t1, t2, t3, w):
    # z ** (p - 2), the addition chain of sotto.edwards.inv
    mul(t0, z, z, w)  # z2
    sqn(t1, t0, 2, w)
    mul(t1, t1, z, w)  # z9
    mul(t0, t1, t0, w)  # z11
    mul(t2, t0, t0, w)
    mul(t2, t2, t1, w)  # t5 = z ** (2**5 - 1)
    sqn(t1, t2, 5, w)
    mul(t1, t1, t2, w)  # t10
    sqn(t2, t1, 10, w)
    mul(t2, t2, t1, w)  # t20
    sqn(t3, t2, 20, w)
    mul(t3, t3, t2, w)  # t40
    sqn(t3, t3, 10, w)
    mul(t3, t3, t1, w)  # t50
    sqn(t2, t3, 50, w)
    mul(t2, t2, t3, w)  # t100
    sqn(t1, t2, 100, w)
    mul(t1, t1, t2, w)  # t200
    sqn(t1, t1, 50, w)
    mul(t1, t1, t3, w)  # t250
    sqn(t1, t1, 5, w)
    mul(o, t1, t0, w)  # z ** (2**255 - 21)


def mul_base(s, idle=None):
    """The 32-byte encoding of s * B (0 <= s < 2**260), as
    sotto.edwards.encode(sotto.edwards.mul_base(s)); needs setup() first.
    Returns a buffer it reuses: copy it before the next call. idle(), if
    given, is called between the comb and the encoding."""
    C = _Ctx
    x, y, z, t = C.x, C.y, C.z, C.t
    a, b, c, d, e, f, g, h, w = C.a, C.b, C.c, C.d, C.e, C.f, C.g, C.h, C.w
    # s in ten 26-bit rows (small ints): comb 0 takes rows 0 2 4 6 8, comb 1 the odd ones
    r0 = s & _COL_MASK
    r1 = (s >> 26) & _COL_MASK
    r2 = (s >> 52) & _COL_MASK
    r3 = (s >> 78) & _COL_MASK
    r4 = (s >> 104) & _COL_MASK
    r5 = (s >> 130) & _COL_MASK
    r6 = (s >> 156) & _COL_MASK
    r7 = (s >> 182) & _COL_MASK
    r8 = (s >> 208) & _COL_MASK
    r9 = (s >> 234) & _COL_MASK
    _identity(C)
    ypx, ymx, xy2d = C.ypx, C.ymx, C.xy2d
    tab = C.table
    for j in range(_COLS - 1, -1, -1):
        if j != _COLS - 1:
            _double(x, y, z, t, a, b, c, e, f, g, h, w)
        _lookup(tab, 0, _column(r0, r2, r4, r6, r8, j), ypx, ymx, xy2d)
        _madd(x, y, z, t, ypx, ymx, xy2d, a, b, c, d, e, f, g, h, w)
        _lookup(tab, 1, _column(r1, r3, r5, r7, r9, j), ypx, ymx, xy2d)
        _madd(x, y, z, t, ypx, ymx, xy2d, a, b, c, d, e, f, g, h, w)
    if idle is not None:
        idle()
    return _encode(C)


def _encode(C):
    # the point (C.x, C.y, C.z) encoded: y/z with the sign of x/z, into C.out
    x, y, z, a, w = C.x, C.y, C.z, C.a, C.w
    _invert(a, z, C.b, C.c, C.d, C.e, w)
    mul(x, x, a, w)
    mul(y, y, a, w)
    out = C.out
    tobytes(out, x, w)
    sign = out[0] & 1
    tobytes(out, y, w)
    out[31] |= sign << 7
    return out


def _identity(C):
    x, y, z, t = C.x, C.y, C.z, C.t
    for i in range(_N):  # (0, 1, 1, 0)
        x[i] = 0
        y[i] = 0
        z[i] = 0
        t[i] = 0
    y[0] = 1
    z[0] = 1


def _rows(r, at, s):
    # s in ten 26-bit rows (small ints) at r[at:at + 10]
    for i in range(10):
        r[at + i] = (s >> (26 * i)) & _COL_MASK


def mul_comb2(tab_a, sa, sb, idle=None):
    """The 32-byte encoding of sa * A + sb * B (0 <= sa, sb < 2**260; tab_a =
    table_of(edwards.comb_table(A))), as sotto.edwards.encode(sotto.edwards.
    mul_comb2(...)): the doublings shared, the same order of additions. Needs
    setup() first; returns the buffer mul_base() also reuses. idle(), if
    given, is called every _IDLE_COLS columns and before the encoding."""
    C = _Ctx
    x, y, z, t = C.x, C.y, C.z, C.t
    a, b, c, d, e, f, g, h, w = C.a, C.b, C.c, C.d, C.e, C.f, C.g, C.h, C.w
    ypx, ymx, xy2d = C.ypx, C.ymx, C.xy2d
    tab_b = C.table
    r = C.rows
    _rows(r, 0, sa)
    _rows(r, 10, sb)
    _identity(C)
    for j in range(_COLS - 1, -1, -1):
        if j != _COLS - 1:
            if idle is not None and j % _IDLE_COLS == 0:
                idle()
            _double(x, y, z, t, a, b, c, e, f, g, h, w)
        _lookup(tab_a, 0, _column(r[0], r[2], r[4], r[6], r[8], j), ypx, ymx, xy2d)
        _madd(x, y, z, t, ypx, ymx, xy2d, a, b, c, d, e, f, g, h, w)
        _lookup(tab_a, 1, _column(r[1], r[3], r[5], r[7], r[9], j), ypx, ymx, xy2d)
        _madd(x, y, z, t, ypx, ymx, xy2d, a, b, c, d, e, f, g, h, w)
        _lookup(tab_b, 0, _column(r[10], r[12], r[14], r[16], r[18], j), ypx, ymx, xy2d)
        _madd(x, y, z, t, ypx, ymx, xy2d, a, b, c, d, e, f, g, h, w)
        _lookup(tab_b, 1, _column(r[11], r[13], r[15], r[17], r[19], j), ypx, ymx, xy2d)
        _madd(x, y, z, t, ypx, ymx, xy2d, a, b, c, d, e, f, g, h, w)
    if idle is not None:
        idle()
    return _encode(C)
