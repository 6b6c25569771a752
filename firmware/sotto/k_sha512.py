# Kernel: SHA-512 (FIPS 180-4) on 16-bit limbs, without a heap allocation
# per operation.
#
# sotto.sha512 works on 64-bit Python ints: fast in the interpreter, but on a
# 32-bit MicroPython every 64-bit value is a heap object, about 120 KB of
# garbage per 128-byte block. Here a 64-bit word is four 16-bit limbs (limb 0
# the lowest) in an array('H'), every intermediate value is a small int
# (sotto/kern.py), and `sotto flash` builds the same source with viper for a
# device. As bytecode it is several times slower than sotto.sha512: the VM and
# CPython use it only to prove and measure it; tests check both give the same
# digests.
from array import array

from micropython import const

from sotto.kern import ptr8, ptr16, viper

_W = const(0)  # scratch layout (limbs): the message schedule, 80 words
_V = const(320)  # working variables a..h, 8 words
_T = const(352)  # new a and new e of a round
_SCRATCH = const(360)

_K = (
    b"\x42\x8a\x2f\x98\xd7\x28\xae\x22\x71\x37\x44\x91\x23\xef\x65\xcd\xb5\xc0\xfb\xcf\xec\x4d\x3b\x2f"
    b"\xe9\xb5\xdb\xa5\x81\x89\xdb\xbc\x39\x56\xc2\x5b\xf3\x48\xb5\x38\x59\xf1\x11\xf1\xb6\x05\xd0\x19"
    b"\x92\x3f\x82\xa4\xaf\x19\x4f\x9b\xab\x1c\x5e\xd5\xda\x6d\x81\x18\xd8\x07\xaa\x98\xa3\x03\x02\x42"
    b"\x12\x83\x5b\x01\x45\x70\x6f\xbe\x24\x31\x85\xbe\x4e\xe4\xb2\x8c\x55\x0c\x7d\xc3\xd5\xff\xb4\xe2"
    b"\x72\xbe\x5d\x74\xf2\x7b\x89\x6f\x80\xde\xb1\xfe\x3b\x16\x96\xb1\x9b\xdc\x06\xa7\x25\xc7\x12\x35"
    b"\xc1\x9b\xf1\x74\xcf\x69\x26\x94\xe4\x9b\x69\xc1\x9e\xf1\x4a\xd2\xef\xbe\x47\x86\x38\x4f\x25\xe3"
    b"\x0f\xc1\x9d\xc6\x8b\x8c\xd5\xb5\x24\x0c\xa1\xcc\x77\xac\x9c\x65\x2d\xe9\x2c\x6f\x59\x2b\x02\x75"
    b"\x4a\x74\x84\xaa\x6e\xa6\xe4\x83\x5c\xb0\xa9\xdc\xbd\x41\xfb\xd4\x76\xf9\x88\xda\x83\x11\x53\xb5"
    b"\x98\x3e\x51\x52\xee\x66\xdf\xab\xa8\x31\xc6\x6d\x2d\xb4\x32\x10\xb0\x03\x27\xc8\x98\xfb\x21\x3f"
    b"\xbf\x59\x7f\xc7\xbe\xef\x0e\xe4\xc6\xe0\x0b\xf3\x3d\xa8\x8f\xc2\xd5\xa7\x91\x47\x93\x0a\xa7\x25"
    b"\x06\xca\x63\x51\xe0\x03\x82\x6f\x14\x29\x29\x67\x0a\x0e\x6e\x70\x27\xb7\x0a\x85\x46\xd2\x2f\xfc"
    b"\x2e\x1b\x21\x38\x5c\x26\xc9\x26\x4d\x2c\x6d\xfc\x5a\xc4\x2a\xed\x53\x38\x0d\x13\x9d\x95\xb3\xdf"
    b"\x65\x0a\x73\x54\x8b\xaf\x63\xde\x76\x6a\x0a\xbb\x3c\x77\xb2\xa8\x81\xc2\xc9\x2e\x47\xed\xae\xe6"
    b"\x92\x72\x2c\x85\x14\x82\x35\x3b\xa2\xbf\xe8\xa1\x4c\xf1\x03\x64\xa8\x1a\x66\x4b\xbc\x42\x30\x01"
    b"\xc2\x4b\x8b\x70\xd0\xf8\x97\x91\xc7\x6c\x51\xa3\x06\x54\xbe\x30\xd1\x92\xe8\x19\xd6\xef\x52\x18"
    b"\xd6\x99\x06\x24\x55\x65\xa9\x10\xf4\x0e\x35\x85\x57\x71\x20\x2a\x10\x6a\xa0\x70\x32\xbb\xd1\xb8"
    b"\x19\xa4\xc1\x16\xb8\xd2\xd0\xc8\x1e\x37\x6c\x08\x51\x41\xab\x53\x27\x48\x77\x4c\xdf\x8e\xeb\x99"
    b"\x34\xb0\xbc\xb5\xe1\x9b\x48\xa8\x39\x1c\x0c\xb3\xc5\xc9\x5a\x63\x4e\xd8\xaa\x4a\xe3\x41\x8a\xcb"
    b"\x5b\x9c\xca\x4f\x77\x63\xe3\x73\x68\x2e\x6f\xf3\xd6\xb2\xb8\xa3\x74\x8f\x82\xee\x5d\xef\xb2\xfc"
    b"\x78\xa5\x63\x6f\x43\x17\x2f\x60\x84\xc8\x78\x14\xa1\xf0\xab\x72\x8c\xc7\x02\x08\x1a\x64\x39\xec"
    b"\x90\xbe\xff\xfa\x23\x63\x1e\x28\xa4\x50\x6c\xeb\xde\x82\xbd\xe9\xbe\xf9\xa3\xf7\xb2\xc6\x79\x15"
    b"\xc6\x71\x78\xf2\xe3\x72\x53\x2b\xca\x27\x3e\xce\xea\x26\x61\x9c\xd1\x86\xb8\xc7\x21\xc0\xc2\x07"
    b"\xea\xda\x7d\xd6\xcd\xe0\xeb\x1e\xf5\x7d\x4f\x7f\xee\x6e\xd1\x78\x06\xf0\x67\xaa\x72\x17\x6f\xba"
    b"\x0a\x63\x7d\xc5\xa2\xc8\x98\xa6\x11\x3f\x98\x04\xbe\xf9\x0d\xae\x1b\x71\x0b\x35\x13\x1c\x47\x1b"
    b"\x28\xdb\x77\xf5\x23\x04\x7d\x84\x32\xca\xab\x7b\x40\xc7\x24\x93\x3c\x9e\xbe\x0a\x15\xc9\xbe\xbc"
    b"\x43\x1d\x67\xc4\x9c\x10\x0d\x4c\x4c\xc5\xd4\xbe\xcb\x3e\x42\xb6\x59\x7f\x29\x9c\xfc\x65\x7e\x2a"
    b"\x5f\xcb\x6f\xab\x3a\xd6\xfa\xec\x6c\x44\x19\x8c\x4a\x47\x58\x17"
)  # the 80 round constants, big-endian (640 bytes)

_IV = (
    b"\x6a\x09\xe6\x67\xf3\xbc\xc9\x08\xbb\x67\xae\x85\x84\xca\xa7\x3b\x3c\x6e\xf3\x72\xfe\x94\xf8\x2b"
    b"\xa5\x4f\xf5\x3a\x5f\x1d\x36\xf1\x51\x0e\x52\x7f\xad\xe6\x82\xd1\x9b\x05\x68\x8c\x2b\x3e\x6c\x1f"
    b"\x1f\x83\xd9\xab\xfb\x41\xbd\x6b\x5b\xe0\xcd\x19\x13\x7e\x21\x79"
)


@viper
def _load_be(dst, off: int, src, soff: int, words: int):
    # words big-endian 64-bit words from src[soff:] into limbs dst[off:]
    pd = ptr16(dst)
    ps = ptr8(src)
    for k in range(words):
        b = soff + 8 * k
        d = off + 4 * k
        pd[d + 3] = (int(ps[b]) << 8) | int(ps[b + 1])
        pd[d + 2] = (int(ps[b + 2]) << 8) | int(ps[b + 3])
        pd[d + 1] = (int(ps[b + 4]) << 8) | int(ps[b + 5])
        pd[d] = (int(ps[b + 6]) << 8) | int(ps[b + 7])


@viper
def compress(h, block, off: int, s, k):
    """One 128-byte block at block[off:] into the state h (array('H', 32));
    s: array('H', 360) scratch; k: round constants as limbs (array('H', 320))."""
    ph = ptr16(h)
    p = ptr16(s)
    pk = ptr16(k)
    _load_be(s, 0, block, off, 16)
    for t in range(16, 80):
        # W[t] = s1(W[t-2]) + W[t-7] + s0(W[t-15]) + W[t-16]
        x = 4 * (t - 2)  # s1 = ROTR19 ^ ROTR61 ^ SHR6
        y = 4 * (t - 15)  # s0 = ROTR1 ^ ROTR8 ^ SHR7
        u = 4 * (t - 7)
        v = 4 * (t - 16)
        d = 4 * t
        c = 0
        for i in range(4):
            s1 = (int(p[x + ((i + 1) & 3)]) >> 3) ^ ((int(p[x + ((i + 2) & 3)]) & 7) << 13)
            s1 ^= (int(p[x + ((i + 3) & 3)]) >> 13) ^ ((int(p[x + (i & 3)]) & 0x1FFF) << 3)
            s1 ^= int(p[x + i]) >> 6
            if i < 3:
                s1 ^= (int(p[x + i + 1]) & 0x3F) << 10
            s0 = (int(p[y + i]) >> 1) ^ ((int(p[y + ((i + 1) & 3)]) & 1) << 15)
            s0 ^= (int(p[y + i]) >> 8) ^ ((int(p[y + ((i + 1) & 3)]) & 0xFF) << 8)
            s0 ^= int(p[y + i]) >> 7
            if i < 3:
                s0 ^= (int(p[y + i + 1]) & 0x7F) << 9
            c += s1 + s0 + int(p[u + i]) + int(p[v + i])
            p[d + i] = c & 0xFFFF
            c = c >> 16
    for i in range(32):
        p[_V + i] = ph[i]
    for t in range(80):
        # a..h at limb offsets _V + 0, 4, ..., 28
        c1 = 0
        c2 = 0
        ce = 0
        ca = 0
        for i in range(4):
            e0 = int(p[_V + 16 + ((i + 0) & 3)])
            e1 = int(p[_V + 16 + ((i + 1) & 3)])
            e2 = int(p[_V + 16 + ((i + 2) & 3)])
            e3 = int(p[_V + 16 + ((i + 3) & 3)])
            # S1(e) = ROTR14 ^ ROTR18 ^ ROTR41
            s1 = (e0 >> 14) ^ ((e1 & 0x3FFF) << 2)
            s1 ^= (e1 >> 2) ^ ((e2 & 3) << 14)
            s1 ^= (e2 >> 9) ^ ((e3 & 0x1FF) << 7)
            ch = int(p[_V + 24 + i]) ^ (e0 & (int(p[_V + 20 + i]) ^ int(p[_V + 24 + i])))
            c1 += int(p[_V + 28 + i]) + s1 + ch + int(pk[4 * t + i]) + int(p[4 * t + i])
            t1 = c1 & 0xFFFF
            c1 = c1 >> 16
            a0 = int(p[_V + ((i + 0) & 3)])
            a1 = int(p[_V + ((i + 1) & 3)])
            a2 = int(p[_V + ((i + 2) & 3)])
            a3 = int(p[_V + ((i + 3) & 3)])
            # S0(a) = ROTR28 ^ ROTR34 ^ ROTR39
            s0 = (a1 >> 12) ^ ((a2 & 0xFFF) << 4)
            s0 ^= (a2 >> 2) ^ ((a3 & 3) << 14)
            s0 ^= (a2 >> 7) ^ ((a3 & 0x7F) << 9)
            b = int(p[_V + 4 + i])
            cc = int(p[_V + 8 + i])
            c2 += s0 + ((a0 & b) | (cc & (a0 | b)))
            t2 = c2 & 0xFFFF
            c2 = c2 >> 16
            ce += int(p[_V + 12 + i]) + t1
            p[_T + 4 + i] = ce & 0xFFFF
            ce = ce >> 16
            ca += t1 + t2
            p[_T + i] = ca & 0xFFFF
            ca = ca >> 16
        for i in range(27, -1, -1):  # h = g, g = f, f = e, e = d, d = c, c = b, b = a
            p[_V + 4 + i] = p[_V + i]
        for i in range(4):
            p[_V + i] = p[_T + i]
            p[_V + 16 + i] = p[_T + 4 + i]
    for w in range(8):
        c = 0
        for i in range(4):
            c += int(ph[4 * w + i]) + int(p[_V + 4 * w + i])
            ph[4 * w + i] = c & 0xFFFF
            c = c >> 16


class _Ctx:
    k = None  # type: array | None  # round constants as limbs (built on first use)
    s = array("H")  # type: array  # scratch
    h = array("H")  # type: array  # state
    buf = bytearray()  # the last block(s) with the padding


def _setup():
    k = array("H", bytes(640))
    _load_be(k, 0, _K, 0, 80)
    _Ctx.s = array("H", bytes(2 * _SCRATCH))
    _Ctx.h = array("H", bytes(64))
    _Ctx.buf = bytearray(256)
    _Ctx.k = k
    return k


def digest(*parts):
    """SHA-512 of the concatenation of parts (bytes-like), in one call; the
    same as sotto.sha512.digest."""
    k = _Ctx.k
    if k is None:
        k = _setup()
    h = _Ctx.h
    s = _Ctx.s
    buf = _Ctx.buf
    _load_be(h, 0, _IV, 0, 8)
    fill = 0
    n = 0
    for part in parts:
        m = len(part)
        n += m
        pos = 0
        while pos < m:  # whole blocks straight from the part when nothing waits
            if fill == 0 and m - pos >= 128:
                compress(h, part, pos, s, k)
                pos += 128
                continue
            take = min(128 - fill, m - pos)
            buf[fill:fill + take] = memoryview(part)[pos:pos + take]
            fill += take
            pos += take
            if fill == 128:
                compress(h, buf, 0, s, k)
                fill = 0
    # padding: 0x80, zeros, the length in bits (messages below 2**26 bytes here)
    end = 256 if fill >= 112 else 128
    buf[fill] = 0x80
    for i in range(fill + 1, end):
        buf[i] = 0
    bits = n * 8
    for i in range(4):
        buf[end - 1 - i] = (bits >> (8 * i)) & 0xFF
    compress(h, buf, 0, s, k)
    if end == 256:
        compress(h, buf, 128, s, k)
    out = bytearray(64)
    for w in range(8):
        for i in range(4):
            v = h[4 * w + 3 - i]
            out[8 * w + 2 * i] = v >> 8
            out[8 * w + 2 * i + 1] = v & 0xFF
    return bytes(out)
