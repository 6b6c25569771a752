# Ed25519 signatures (RFC 8032 §5.1) in plain MicroPython.
#
# SigningKey does the per-key work once (at boot): the expanded secret scalar,
# the nonce prefix and the public key. sign() then costs two SHA-512 passes, one
# fixed-base comb multiplication and one field inversion.
# The secret never appears in a repr, a log line or an error message.
#
# Two engines, the same bytes: Python ints (sotto.sha512, sotto.edwards), the
# fastest in an interpreter, used in the MicroPython VM and under CPython; and
# the kernels sotto.k_sha512 / sotto.k_f25519, which allocate nothing per
# operation and which a device runs as viper machine code when `sotto flash`
# built them for its architecture (chosen here at import: NATIVE).
#
# A signature takes about 4 ms in the MicroPython VM, 100 ms or more on an
# ESP32: longer than the microphone's I2S ring can wait. `idle`, when set, is
# called between sign()'s four steps (each about a quarter of the whole), so
# the device can drain the ring while a frame is being signed.
from sotto import edwards, kern, sha512

_L = edwards.L


def _native_kernels():
    ks = kern.load("k_sha512")
    kf = kern.load("k_f25519")
    return (ks, kf) if ks is not None and kf is not None else None


NATIVE = _native_kernels()


def _mul_base_ints(s, idle=None):
    q = edwards.mul_base(s)
    if idle is not None:
        idle()
    return edwards.encode(q)


class SigningKey:
    def __init__(self, seed, kernels=None):
        """kernels: (SHA-512 module, field module) shaped like sotto.k_sha512 and
        sotto.k_f25519, or None for NATIVE when the device has it, else ints."""
        if len(seed) != 32:
            raise ValueError("Ed25519 seed must be 32 bytes, got %d" % len(seed))
        kernels = kernels or NATIVE
        if kernels:
            self._digest = kernels[0].digest
            kernels[1].setup(edwards.base_table)
            edwards.release_table()  # the kernel keeps its own copy, in limbs
            self._mul_base = kernels[1].mul_base
        else:
            self._digest = sha512.digest
            self._mul_base = _mul_base_ints
        h = self._digest(seed)
        a = int.from_bytes(h[:32], "little")
        a = (a & ((1 << 254) - 8)) | (1 << 254)  # clamp (RFC 8032 §5.1.5)
        # s*B and S = r + k*s mod L only depend on s mod L (B has order L)
        self._s = a % _L
        self._prefix = h[32:]
        self.public_key = bytes(self._mul_base(self._s))
        self.idle = None  # idle(): called between the steps of sign()

    def sign(self, msg):
        """The 64-byte signature of msg (bytes-like)."""
        idle = self.idle
        r = int.from_bytes(self._digest(self._prefix, msg), "little") % _L
        if idle is not None:
            idle()
        rb = bytes(self._mul_base(r, idle))  # calls idle() between the comb and the encoding
        if idle is not None:
            idle()
        k = int.from_bytes(self._digest(rb, self.public_key, msg), "little") % _L
        return rb + ((r + k * self._s) % _L).to_bytes(32, "little")

    def __repr__(self):
        return "SigningKey(public_key=%s)" % self.public_key.hex()


def verify(public_key, msg, sig):
    """True only for a valid signature (RFC 8032 §5.1.7, cofactorless, strict:
    non-canonical R, S >= L or a bad public key fail)."""
    if len(public_key) != 32 or len(sig) != 64:
        return False
    a = edwards.decode(bytes(public_key))
    if a is None:
        return False
    rb = bytes(sig[:32])
    s = int.from_bytes(sig[32:], "little")
    if s >= _L:
        return False
    k = int.from_bytes(sha512.digest(rb, public_key, msg), "little") % _L
    q = edwards.add(edwards.mul_base(s), edwards.neg(edwards.mul(k, a)))
    return edwards.encode(q) == rb


class VerifyKey:
    """A public key that verifies many signatures (the centre's answer key):
    the comb table of -A is built once (about 300 point operations), so
    verify() costs one joint comb multiplication s*B - k*A instead of a comb
    plus a double-and-add (bench/bench_answer_vm.py measures both). Same
    result as verify(). With the kernels (a device with the native build:
    NATIVE) the table is kept in limbs (k_f25519.table_of: 8.4 KB instead of
    about 16 KB of ints) and verify() runs on the kernels and B's limb table,
    which the signer has already made: no int table of B is built again."""

    def __init__(self, public_key, kernels=None):
        a = edwards.decode(bytes(public_key)) if len(public_key) == 32 else None
        if a is None:
            raise ValueError("not an Ed25519 public key")
        self.public_key = bytes(public_key)
        kernels = kernels or NATIVE
        table = edwards.comb_table(edwards.neg(a))
        self._kernels = kernels
        if kernels:
            kernels[1].setup(edwards.base_table)  # B's limbs: done already when the signer has them
            edwards.release_table()
            table = kernels[1].table_of(table)
        self._neg_a = table

    def verify(self, msg, sig, idle=None):
        """True only for a valid signature of msg (strict, as verify()); msg
        is bytes-like or a tuple of parts (hashed as one, not joined by the
        kernels). idle(), when given, is called between the steps (as
        SigningKey.idle)."""
        if len(sig) != 64:
            return False
        rb = bytes(sig[:32])
        s = int.from_bytes(sig[32:], "little")
        if s >= _L:
            return False
        parts = msg if isinstance(msg, tuple) else (msg,)
        kernels = self._kernels
        if kernels:
            k = int.from_bytes(kernels[0].digest(rb, self.public_key, *parts), "little") % _L
            if idle is not None:
                idle()
            return bytes(kernels[1].mul_comb2(self._neg_a, k, s, idle)) == rb
        k = int.from_bytes(sha512.digest(rb, self.public_key, *parts, idle=idle), "little") % _L
        if idle is not None:
            idle()
        q = edwards.mul_comb2(self._neg_a, k, edwards.base_table(), s, idle)
        if idle is not None:
            idle()
        return edwards.encode(q) == rb
