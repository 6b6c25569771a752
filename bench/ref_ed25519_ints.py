# Baseline for bench/bench_heap_vm.py: the Ed25519 signer as it was before the
# heap budget (issue 12), kept verbatim apart from the names: SHA-512 and the
# comb on Python ints (sotto.sha512._compress, sotto.edwards), nothing else.
# Runs in the MicroPython VM.
import struct

from sotto import edwards, sha512

_L = edwards.L
_M = 0xFFFFFFFFFFFFFFFF


def digest(*parts):
    msg = b"".join([x if type(x) is bytes else bytes(x) for x in parts])
    n = len(msg)
    msg += b"\x80" + bytes((111 - n) % 128) + struct.pack(">QQ", n >> 61, (n << 3) & _M)
    h = list(sha512._IV)
    for off in range(0, len(msg), 128):
        sha512._compress(h, msg, off)
    return struct.pack(">8Q", *h)


class SigningKey:
    def __init__(self, seed):
        h = digest(seed)
        a = int.from_bytes(h[:32], "little")
        a = (a & ((1 << 254) - 8)) | (1 << 254)
        self._s = a % _L
        self._prefix = h[32:]
        self.public_key = edwards.encode(edwards.mul_base(self._s))

    def sign(self, msg):
        r = int.from_bytes(digest(self._prefix, msg), "little") % _L
        rb = edwards.encode(edwards.mul_base(r))
        k = int.from_bytes(digest(rb, self.public_key, msg), "little") % _L
        return rb + ((r + k * self._s) % _L).to_bytes(32, "little")
