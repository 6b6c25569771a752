# SHA-512 compression on 32-bit halves (hi, lo): the textbook way to keep
# MicroPython's 31-bit small ints in play, kept as the baseline of
# bench_crypto_vm.py. A plain loop, like a first port would be written; its
# words still pass 2**30, so half of its values are big ints anyway, and it
# needs more than twice the operations of 64-bit words (sotto.sha512).
# Not shipped. Runs in the MicroPython VM and under CPython.
import struct

from sotto.sha512 import _IV, _K

M = 0xFFFFFFFF
KH = [k >> 32 for k in _K]
KL = [k & M for k in _K]
IV = []
for _x in _IV:
    IV += [_x >> 32, _x & M]


def compress(H, block, off=0):
    m = M
    v = struct.unpack_from(">32I", block, off)
    wh = [v[i] for i in range(0, 32, 2)]
    wl = [v[i] for i in range(1, 32, 2)]
    for t in range(16, 80):
        h = wh[t - 15]
        lo = wl[t - 15]
        s0h = ((h >> 1) | (lo << 31)) ^ ((h >> 8) | (lo << 24)) ^ (h >> 7)
        s0l = ((lo >> 1) | (h << 31)) ^ ((lo >> 8) | (h << 24)) ^ ((lo >> 7) | (h << 25))
        h = wh[t - 2]
        lo = wl[t - 2]
        s1h = ((h >> 19) | (lo << 13)) ^ ((lo >> 29) | (h << 3)) ^ (h >> 6)
        s1l = ((lo >> 19) | (h << 13)) ^ ((h >> 29) | (lo << 3)) ^ ((lo >> 6) | (h << 26))
        x = (s0l & m) + (s1l & m) + wl[t - 7] + wl[t - 16]
        wl.append(x & m)
        wh.append(((s0h & m) + (s1h & m) + wh[t - 7] + wh[t - 16] + (x >> 32)) & m)
    ah, al, bh, bl, ch, cl, dh, dl, eh, el, fh, fl, gh, gl, hh, hl = H
    for t in range(80):
        s1h = ((eh >> 14) | (el << 18)) ^ ((eh >> 18) | (el << 14)) ^ ((el >> 9) | (eh << 23))
        s1l = ((el >> 14) | (eh << 18)) ^ ((el >> 18) | (eh << 14)) ^ ((eh >> 9) | (el << 23))
        lo = hl + (s1l & m) + (gl ^ (el & (fl ^ gl))) + KL[t] + wl[t]
        hi = hh + (s1h & m) + (gh ^ (eh & (fh ^ gh))) + KH[t] + wh[t] + (lo >> 32)
        lo &= m
        s0h = ((ah >> 28) | (al << 4)) ^ ((al >> 2) | (ah << 30)) ^ ((al >> 7) | (ah << 25))
        s0l = ((al >> 28) | (ah << 4)) ^ ((ah >> 2) | (al << 30)) ^ ((ah >> 7) | (al << 25))
        lo2 = (s0l & m) + ((al & bl) | (cl & (al | bl)))
        hi2 = (s0h & m) + ((ah & bh) | (ch & (ah | bh)))
        hh, hl, gh, gl, fh, fl = gh, gl, fh, fl, eh, el
        x = dl + lo
        el = x & m
        eh = (dh + hi + (x >> 32)) & m
        dh, dl, ch, cl, bh, bl = ch, cl, bh, bl, ah, al
        x = lo + lo2
        al = x & m
        ah = (hi + hi2 + (x >> 32)) & m
    new = (ah, al, bh, bl, ch, cl, dh, dl, eh, el, fh, fl, gh, gl, hh, hl)
    for i in range(0, 16, 2):
        x = H[i + 1] + new[i + 1]
        H[i + 1] = x & m
        H[i] = (H[i] + new[i] + (x >> 32)) & m


def digest(msg):
    n = len(msg)
    data = msg + b"\x80" + bytes((111 - n) % 128) + struct.pack(">QQ", 0, n * 8)
    H = list(IV)
    for off in range(0, len(data), 128):
        compress(H, data, off)
    return struct.pack(">16I", *H)
