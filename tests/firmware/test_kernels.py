# The device kernels (sotto/k_*.py) as bytecode, under CPython and in the
# MicroPython VM: the same bytes as the int engines and the RFC vectors, and
# (in the VM, under micropython.heap_lock) no heap allocation per operation.
# The viper/native builds of the same source are compiled for xtensawin by
# tests/technician/test_native_kernels.py.
import hashlib

import micropython
from fwtest import unhex
from rfc8032_vectors import ED25519
from sotto import adpcm, ed25519, edwards, k_adpcm, k_f25519, k_sha512, kern, sha512

KERNELS = (k_sha512, k_f25519)


def _msg(n):
    return bytes((i * 131 + 7) & 0xFF for i in range(n))


def test_sha512_kernel_matches_the_int_engine_at_every_block_boundary():
    for n in (0, 1, 3, 111, 112, 113, 127, 128, 129, 239, 240, 255, 256, 257, 300):
        m = _msg(n)
        assert k_sha512.digest(m) == sha512.digest(m), n
        # split anywhere: the same digest
        assert k_sha512.digest(m[:n // 3], m[n // 3:]) == sha512.digest(m), n


def test_sha512_kernel_fips_vector():
    assert k_sha512.digest(b"abc") == unhex(
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
        "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f")


def test_sha512_kernel_matches_hashlib_where_there_is_one():
    if not hasattr(hashlib, "sha512"):  # the VM's hashlib has sha256 only
        return
    for n in (5, 200, 1000):
        assert k_sha512.digest(_msg(n)) == hashlib.sha512(_msg(n)).digest()


def test_field_kernel_fixed_base_matches_edwards():
    k_f25519.setup(edwards.base_table)
    for s in (0, 1, 2, 0x123456789ABCDEF, edwards.L - 1, (1 << 253) - 1, (1 << 260) - 1):
        want = edwards.encode(edwards.mul_base(s))
        assert bytes(k_f25519.mul_base(s)) == want, s


def test_field_kernel_joint_comb_matches_edwards():
    # what the centre's answers are verified with on a device: sa*A + sb*B
    k_f25519.setup(edwards.base_table)
    a = edwards.decode(unhex(ED25519[1][1]))
    combs = edwards.comb_table(a)
    tab = k_f25519.table_of(combs)
    assert len(tab) * 2 == 8448  # the limb table: 2 combs x 32 entries x 3 elements x 22 limbs x 2 bytes
    for sa, sb in ((0, 0), (1, 0), (0, 1), (edwards.L - 1, 12345), ((1 << 260) - 1, (1 << 253) + 7)):
        want = edwards.encode(edwards.mul_comb2(combs, sa, edwards.base_table(), sb))
        assert bytes(k_f25519.mul_comb2(tab, sa, sb)) == want, (sa, sb)


def test_verify_key_on_the_kernels_agrees_with_the_int_engine():
    for _, pk, msg, sig in ED25519:
        vk = ed25519.VerifyKey(unhex(pk), KERNELS)
        assert vk.verify(unhex(msg), unhex(sig)) is True
        assert vk.verify((unhex(msg)[:1], unhex(msg)[1:]), unhex(sig)) is True  # parts hash as one
    _, pk, msg, sig = ED25519[2]
    vk = ed25519.VerifyKey(unhex(pk), KERNELS)
    ints = ed25519.VerifyKey(unhex(pk))
    pk, msg, sig = unhex(pk), unhex(msg), unhex(sig)
    assert not vk.verify(msg + b"\x00", sig) and not ints.verify(msg + b"\x00", sig)
    for i in (0, 31, 32, 63):
        bad = bytearray(sig)
        bad[i] ^= 0x01
        assert not vk.verify(msg, bytes(bad)) and not ints.verify(msg, bytes(bad)), i
    s = int.from_bytes(sig[32:], "little") + edwards.L  # non-canonical S
    assert not vk.verify(msg, sig[:32] + s.to_bytes(32, "little"))
    calls = []
    assert vk.verify(msg, sig, lambda: calls.append(1)) and len(calls) >= 6  # the device's idle steps


def test_field_kernel_arithmetic_is_mod_p_and_canonical():
    p = edwards.P
    a, b, o = k_f25519.fe(), k_f25519.fe(), k_f25519.fe()
    k_f25519.setup(edwards.base_table)
    w = k_f25519._Ctx.w
    out = bytearray(32)
    cases = ((p - 1, p - 1), (p - 1, 1), (0, p - 1), (19, (1 << 255) - 20), (edwards.D, edwards.SQRTM1))
    for x, y in cases:
        k_f25519.from_int(a, x)
        k_f25519.from_int(b, y)
        for op, want in ((k_f25519.mul, x * y % p), (k_f25519.add, (x + y) % p), (k_f25519.sub, (x - y) % p)):
            op(o, a, b, w)
            k_f25519.tobytes(out, o, w)
            assert int.from_bytes(out, "little") == want, (x, y)


def test_signing_with_the_kernels_gives_the_rfc8032_signatures():
    for sk, pk, msg, sig in ED25519[:3]:
        key = ed25519.SigningKey(unhex(sk), KERNELS)
        assert key.public_key == unhex(pk)
        assert key.sign(unhex(msg)) == unhex(sig)


def test_vm_and_cpython_use_the_int_engines():
    # no native build exists off a device, so nothing is swapped in
    assert kern.load("k_sha512") is None and kern.load("k_f25519") is None
    assert ed25519.NATIVE is None and sha512._NATIVE is None
    assert adpcm._PAIRS is k_adpcm.pairs


def test_kernel_operations_allocate_nothing():
    # heap_lock makes any allocation a MemoryError in MicroPython (a no-op in
    # the CPython shim, where this checks only that the calls run)
    k_f25519.setup(edwards.base_table)
    k_sha512.digest(b"")  # builds its tables
    C = k_f25519._Ctx
    a, b, o, w = C.a, C.b, C.c, C.w
    k_f25519.from_int(a, edwards.D)
    k_f25519.from_int(b, edwards.SQRTM1)
    out = bytearray(32)
    block = _msg(128)
    S = k_sha512._Ctx
    micropython.heap_lock()
    try:
        k_f25519.mul(o, a, b, w)
        k_f25519.add(o, o, b, w)
        k_f25519.sub(o, o, a, w)
        k_f25519.sqn(o, o, 3, w)
        k_f25519.tobytes(out, o, w)
        k_f25519._double(C.x, C.y, C.z, C.t, C.a, C.b, C.c, C.e, C.f, C.g, C.h, w)
        k_f25519._madd(C.x, C.y, C.z, C.t, C.ypx, C.ymx, C.xy2d, C.a, C.b, C.c, C.d, C.e, C.f, C.g, C.h, w)
        k_sha512.compress(S.h, block, 0, S.s, S.k)
    finally:
        micropython.heap_unlock()
    assert out != bytes(32)


def test_signing_with_the_kernels_gives_the_device_its_idle_calls():
    sk, _, msg, sig = ED25519[1]
    key = ed25519.SigningKey(unhex(sk), KERNELS)
    calls = []
    key.idle = lambda: calls.append(1)
    assert key.sign(unhex(msg)) == unhex(sig)
    assert len(calls) == 3  # after the nonce hash, after the comb, after the encoding
