# A naive Ed25519 signer written straight from the description in RFC 8032
# §5.1, the baseline of bench_crypto_vm.py. Not shipped, never used for frames.
#
# What makes it naive, on purpose: every signature expands the secret and
# recomputes the public key (as §5.1.6 reads), scalar multiplication is plain
# double-and-add over one unified extended-coordinate addition (used for
# doubling too), and nothing is precomputed. It shares sotto.sha512 with the
# real signer, so the comparison isolates the Ed25519 work. Runs in the
# MicroPython VM and under CPython.
from sotto.sha512 import digest as sha512

p = 2**255 - 19
q = 2**252 + 27742317777372353535851937790883648493  # the group order L
d = -121665 * pow(121666, p - 2, p) % p


def _recover_x(y, sign):
    # x^2 = (y^2 - 1) / (d y^2 + 1); a square root by RFC 8032 §5.1.3
    x2 = (y * y - 1) * pow(d * y * y + 1, p - 2, p) % p
    x = pow(x2, (p + 3) // 8, p)
    if (x * x - x2) % p != 0:
        x = x * pow(2, (p - 1) // 4, p) % p
    if x & 1 != sign:
        x = p - x
    return x


_gy = 4 * pow(5, p - 2, p) % p
_gx = _recover_x(_gy, 0)
G = (_gx, _gy, 1, _gx * _gy % p)


def point_add(a, b):
    # add-2008-hwcd-3, complete for edwards25519
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % p
    bb = (y1 + x1) * (y2 + x2) % p
    cc = 2 * t1 * t2 * d % p
    dd = 2 * z1 * z2 % p
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % p, g * h % p, f * g % p, e * h % p)


def point_mul(s, pt):
    acc = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            acc = point_add(acc, pt)
        pt = point_add(pt, pt)
        s >>= 1
    return acc


def point_compress(pt):
    x, y, z, _ = pt
    zinv = pow(z, p - 2, p)
    x = x * zinv % p
    y = y * zinv % p
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def secret_expand(secret):
    h = sha512(secret)
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    return a, h[32:]


def sign(secret, msg):
    a, prefix = secret_expand(secret)
    pub = point_compress(point_mul(a, G))
    r = int.from_bytes(sha512(prefix + msg), "little") % q
    rs = point_compress(point_mul(r, G))
    k = int.from_bytes(sha512(rs + pub + msg), "little") % q
    s = (r + k * a) % q
    return rs + s.to_bytes(32, "little")
