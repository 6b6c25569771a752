# The edwards25519 group for Ed25519 (RFC 8032 §5.1), in plain MicroPython.
#
# Field elements are Python ints mod p = 2**255 - 19: MicroPython's big ints
# are native mpz. Measured in the MicroPython VM, a 255-bit multiply costs
# 0.4 us and its reduction mod p 1.1 us, about 18 small-int operations in all;
# a product of limbs in Python bytecode would take hundreds. Points are
# extended coordinates (X, Y, Z, T) with x = X/Z, y = Y/Z, xy = T/Z
# (Hisil-Wong-Carter-Dawson 2008, a = -1); the addition formulas are complete,
# so no case needs a branch.
#
# Fixed-base multiplication s*B uses a Lim-Lee comb with 5 teeth and 2 combs:
# 26 doublings and 52 mixed additions per scalar, with a table of 2 x 32
# precomputed affine points (about 14 KB of ints on a 32-bit port) built once
# per boot by base_table(), about 8 ms in the VM.
# Every column adds a table entry, the identity for an all-zero column, so the
# sequence of field operations does not depend on the scalar's bits. (Big-int
# operation times still depend on operand values: no constant-time claim.)
from micropython import const

P = const(0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFED)
L = const(0x1000000000000000000000000000000014DEF9DEA2F79CD65812631A5CF5D3ED)
D = const(0x52036CEE2B6FFE738CC740797779E89800700A4D4141D8AB75EB4DCA135978A3)
D2 = const(0x2406D9DC56DFFCE7198E80F2EEF3D13000E0149A8283B156EBD69B9426B2F159)
SQRTM1 = const(0x2B8324804FC1DF0B2B4D00993DFBD7A72F431806AD2FE478C4EE1B274A0EA0B0)
_BX = const(0x216936D3CD6E53FEC0A4E231FDD6DC5C692CC7609525A7B2C9562D608F25D51A)
_BY = const(0x6666666666666666666666666666666666666666666666666666666666666658)

BASE = (_BX, _BY, 1, _BX * _BY % P)
IDENTITY = (0, 1, 1, 0)

# comb shape: _TEETH rows of _SPAN bits; each of the _COMBS combs covers
# _COLS columns of every row (_TEETH * _SPAN >= 253 bits of s mod L)
_TEETH = const(5)
_COMBS = const(2)
_COLS = const(26)
_SPAN = const(52)  # _COMBS * _COLS
_COL_MASK = const(0x3FFFFFF)  # 2**_COLS - 1
_IDLE_COLS = const(5)  # mul_comb2 calls idle() every 5 of its 26 columns (about 0.4 ms in the VM)


def inv(z):
    """1/z mod p (z != 0), as z**(p-2) by the usual addition chain: 254
    squarings and 11 multiplications; pow(x, 2**k, p) runs each run of
    squarings in C. (pow(z, p - 2, p) does about 500 multiplications.)"""
    p = P
    z2 = z * z % p
    z9 = pow(z2, 4, p) * z % p
    z11 = z9 * z2 % p
    t5 = z11 * z11 % p * z9 % p  # z**(2**5 - 1)
    t10 = pow(t5, 1 << 5, p) * t5 % p  # z**(2**10 - 1)
    t20 = pow(t10, 1 << 10, p) * t10 % p
    t40 = pow(t20, 1 << 20, p) * t20 % p
    t50 = pow(t40, 1 << 10, p) * t10 % p
    t100 = pow(t50, 1 << 50, p) * t50 % p
    t200 = pow(t100, 1 << 100, p) * t100 % p
    t250 = pow(t200, 1 << 50, p) * t50 % p
    return pow(t250, 1 << 5, p) * z11 % p  # z**(2**255 - 21)


def dbl(pt):
    p = P
    x, y, z, _ = pt
    a = x * x % p
    b = y * y % p
    c = 2 * z * z % p
    h = a + b
    e = h - (x + y) * (x + y) % p
    g = a - b
    f = c + g
    return (e * f % p, g * h % p, f * g % p, e * h % p)


def add(p1, p2):
    p = P
    x1, y1, z1, t1 = p1
    x2, y2, z2, t2 = p2
    a = (y1 - x1) * (y2 - x2) % p
    b = (y1 + x1) * (y2 + x2) % p
    c = t1 * D2 % p * t2 % p
    d = 2 * z1 * z2 % p
    e = b - a
    f = d - c
    g = d + c
    h = b + a
    return (e * f % p, g * h % p, f * g % p, e * h % p)


def neg(pt):
    x, y, z, t = pt
    return ((-x) % P, y, z, (-t) % P)


def encode(pt):
    """The 32-byte encoding of a point: y, with the sign of x in bit 255."""
    x, y, z, _ = pt
    zi = inv(z)
    x = x * zi % P
    y = y * zi % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def decode(s):
    """The point a 32-byte encoding names (RFC 8032 §5.1.3), None if invalid."""
    if len(s) != 32:
        return None
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= P:
        return None
    p = P
    u = (y * y - 1) % p
    v = (D * y * y + 1) % p
    v3 = v * v * v % p
    x = u * v3 % p * pow(u * v3 * v3 % p * v % p, (p - 5) // 8, p) % p
    vx2 = v * x * x % p
    if vx2 != u:
        if vx2 != (-u) % p:
            return None
        x = x * SQRTM1 % p
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = p - x
    return (x, y, 1, x * y % p)


def mul(s, pt):
    """s * pt for 0 <= s < 2**253 and any point (verification only: not hot,
    not regular)."""
    q = IDENTITY
    for i in range(252, -1, -1):
        q = dbl(q)
        if (s >> i) & 1:
            q = add(q, pt)
    return q


def _to_niels(points):
    # affine (y + x, y - x, 2dxy) of each extended point, with one inversion
    p = P
    n = len(points)
    acc = [1] * n
    run = 1
    for i in range(n):
        acc[i] = run
        run = run * points[i][2] % p
    run = inv(run)
    out = [(0, 0, 0)] * n
    for i in range(n - 1, -1, -1):
        x, y, z, _ = points[i]
        zi = run * acc[i] % p
        run = run * z % p
        x = x * zi % p
        y = y * zi % p
        out[i] = ((y + x) % p, (y - x) % p, x * y % p * D2 % p)
    return out


class _Table:
    combs = []  # type: list


def comb_table(pt):
    """The comb tables of a fixed point (about 300 point operations): what
    mul_comb() takes. Built once for B, and once per boot for the centre's
    answer-signing key (sotto.answer)."""
    # basis[k][i] = 2**(i*_SPAN + k*_COLS) * pt
    basis = [[IDENTITY] * _TEETH for _ in range(_COMBS)]
    q = pt
    for n in range((_TEETH - 1) * _SPAN + (_COMBS - 1) * _COLS + 1):
        i, r = divmod(n, _SPAN)
        if r % _COLS == 0:
            basis[r // _COLS][i] = q
        q = dbl(q)
    combs = []
    for k in range(_COMBS):
        pts = [IDENTITY] * (1 << _TEETH)
        for c in range(1, 1 << _TEETH):
            low = c & -c
            i = 0
            while (1 << i) != low:
                i += 1
            pts[c] = basis[k][i] if c == low else add(pts[c - low], basis[k][i])
        niels = _to_niels(pts[1:])
        combs.append([(1, 1, 0)] + niels)
    return combs


def base_table():
    """The comb tables of B (built on the first call)."""
    if not _Table.combs:
        _Table.combs = comb_table(BASE)
    return _Table.combs


def release_table():
    """Drop the comb table (about 14 KB; built again on the next use)."""
    _Table.combs = []


def mul_base(s):
    """s * B for 0 <= s < 2**260, in extended coordinates."""
    return mul_comb(base_table(), s)


def _rows(s):
    # 26-bit chunks of s: small ints
    rows = []
    for i in range(_TEETH * _COMBS):
        rows.append((s >> (i * _COLS)) & _COL_MASK)
    return rows


def mul_comb(tables, s):
    """s * P for 0 <= s < 2**260, P the point of comb_table(P) = tables."""
    t0, t1 = tables
    p = P
    r0, r1, r2, r3, r4, r5, r6, r7, r8, r9 = _rows(s)
    # rows of comb 0: r0 r2 r4 r6 r8; of comb 1: r1 r3 r5 r7 r9
    x, y, z, t = 0, 1, 1, 0
    for j in range(_COLS - 1, -1, -1):
        if j != _COLS - 1:
            # double
            a = x * x % p
            b = y * y % p
            c = 2 * z * z % p
            h = a + b
            e = h - (x + y) * (x + y) % p
            g = a - b
            f = c + g
            x = e * f % p
            y = g * h % p
            z = f * g % p
            t = e * h % p
        c = ((r0 >> j) & 1) | ((r2 >> j) & 1) << 1 | ((r4 >> j) & 1) << 2 \
            | ((r6 >> j) & 1) << 3 | ((r8 >> j) & 1) << 4
        ypx, ymx, xy2d = t0[c]
        a = (y - x) * ymx % p
        b = (y + x) * ypx % p
        c = t * xy2d % p
        d = 2 * z
        e = b - a
        f = d - c
        g = d + c
        h = b + a
        x = e * f % p
        y = g * h % p
        z = f * g % p
        t = e * h % p
        c = ((r1 >> j) & 1) | ((r3 >> j) & 1) << 1 | ((r5 >> j) & 1) << 2 \
            | ((r7 >> j) & 1) << 3 | ((r9 >> j) & 1) << 4
        ypx, ymx, xy2d = t1[c]
        a = (y - x) * ymx % p
        b = (y + x) * ypx % p
        c = t * xy2d % p
        d = 2 * z
        e = b - a
        f = d - c
        g = d + c
        h = b + a
        x = e * f % p
        y = g * h % p
        z = f * g % p
        # T = e * h is not needed by the doubling that comes next
    return (x, y, z, e * h % p)


def _madd(x, y, z, t, entry):
    # (x, y, z, t) + an affine Niels entry (y + x, y - x, 2dxy)
    p = P
    ypx, ymx, xy2d = entry
    a = (y - x) * ymx % p
    b = (y + x) * ypx % p
    c = t * xy2d % p
    d = 2 * z
    e = b - a
    f = d - c
    g = d + c
    h = b + a
    return e * f % p, g * h % p, f * g % p, e * h % p


def mul_comb2(tables_a, sa, tables_b, sb, idle=None):
    """sa * A + sb * B (0 <= sa, sb < 2**260) for the points of two comb
    tables, sharing the doublings: what a verifier with a fixed key does.
    idle(), when given, is called every _IDLE_COLS columns (the device drains
    its microphone there: the whole takes longer than its I2S ring holds)."""
    a0, a1 = tables_a
    b0, b1 = tables_b
    ra = _rows(sa)
    rb = _rows(sb)
    p = P
    x, y, z, t = 0, 1, 1, 0
    for j in range(_COLS - 1, -1, -1):
        if j != _COLS - 1:
            if idle is not None and j % _IDLE_COLS == 0:
                idle()
            a = x * x % p
            b = y * y % p
            c = 2 * z * z % p
            h = a + b
            e = h - (x + y) * (x + y) % p
            g = a - b
            f = c + g
            x = e * f % p
            y = g * h % p
            z = f * g % p
            t = e * h % p
        for tab, r, k in ((a0, ra, 0), (a1, ra, 1), (b0, rb, 0), (b1, rb, 1)):
            c = ((r[k] >> j) & 1) | ((r[k + 2] >> j) & 1) << 1 | ((r[k + 4] >> j) & 1) << 2 \
                | ((r[k + 6] >> j) & 1) << 3 | ((r[k + 8] >> j) & 1) << 4
            x, y, z, t = _madd(x, y, z, t, tab[c])
    return (x, y, z, t)
