# sotto.ed25519 / sotto.edwards: every RFC 8032 §7.1 Ed25519 test vector, the
# strict verifier's rejections, the comb against plain double-and-add, and key
# hygiene. Runs under CPython and in the MicroPython VM.
from fwtest import raises, unhex
from rfc8032_vectors import ED25519
from sotto import ed25519, edwards


def test_rfc8032_public_keys():
    for sk, pk, _, _ in ED25519:
        assert ed25519.SigningKey(unhex(sk)).public_key == unhex(pk), sk


def test_rfc8032_signatures():
    for sk, _, msg, sig in ED25519:
        key = ed25519.SigningKey(unhex(sk))
        assert key.sign(unhex(msg)) == unhex(sig), sk
        # the same key signs again identically (deterministic, no state kept)
        assert key.sign(unhex(msg)) == unhex(sig), sk


def test_rfc8032_signatures_verify():
    for _, pk, msg, sig in ED25519:
        assert ed25519.verify(unhex(pk), unhex(msg), unhex(sig)) is True


def test_verify_rejects_tampering():
    _, pk, msg, sig = ED25519[2]  # TEST 3
    pk, msg, sig = unhex(pk), unhex(msg), unhex(sig)
    assert not ed25519.verify(pk, msg + b"\x00", sig)
    assert not ed25519.verify(pk, msg[:1], sig)
    for i in (0, 31, 32, 63):
        bad = bytearray(sig)
        bad[i] ^= 0x01
        assert not ed25519.verify(pk, msg, bytes(bad)), i
    other = unhex(ED25519[1][1])
    assert not ed25519.verify(other, msg, sig)
    assert not ed25519.verify(pk, msg, sig[:63])
    assert not ed25519.verify(pk[:31], msg, sig)


def test_verify_is_strict_about_encodings():
    _, pk, msg, sig = ED25519[0]
    pk, msg, sig = unhex(pk), unhex(msg), unhex(sig)
    # S + L is the same scalar mod L, but not canonical: RFC 8032 says reject
    s = int.from_bytes(sig[32:], "little") + edwards.L
    assert s < 2**256
    assert not ed25519.verify(pk, msg, sig[:32] + s.to_bytes(32, "little"))
    # a public key whose y is >= p does not decode
    assert edwards.decode((edwards.P + 1).to_bytes(32, "little")) is None
    assert not ed25519.verify((edwards.P + 1).to_bytes(32, "little"), msg, sig)
    # y = 2 is not on the curve (x^2 would not be a square)
    assert edwards.decode((2).to_bytes(32, "little")) is None
    # x = 0 with the sign bit set is not a valid encoding (y = 1, the identity)
    assert edwards.decode(((1 << 255) | 1).to_bytes(32, "little")) is None


def test_encode_decode_round_trip():
    for s in (1, 2, 7, 2**100 + 3, edwards.L - 1):
        enc = edwards.encode(edwards.mul_base(s))
        pt = edwards.decode(enc)
        assert pt is not None and edwards.encode(pt) == enc, s


def test_comb_matches_double_and_add():
    b = edwards.BASE
    for s in (0, 1, 2, 31, 2**26 - 1, 2**26, 2**52 + 5, 2**200 + 2**100 + 1,
              edwards.L - 1, edwards.L, 2**253 - 1):
        assert edwards.encode(edwards.mul_base(s)) == edwards.encode(edwards.mul(s, b)), s
    # L * B is the identity (encodes as y = 1)
    assert edwards.encode(edwards.mul_base(edwards.L)) == (1).to_bytes(32, "little")


def test_comb_of_any_point_and_the_joint_comb_match_double_and_add():
    a = edwards.decode(unhex(ED25519[1][1]))
    table = edwards.comb_table(a)
    for s in (0, 1, 3, 2**26 + 1, 2**200 + 7, edwards.L - 1, 2**253 - 1):
        assert edwards.encode(edwards.mul_comb(table, s)) == edwards.encode(edwards.mul(s, a)), s
    for sa, sb in ((0, 0), (1, 0), (0, 1), (5, 2**100 + 9), (edwards.L - 1, edwards.L - 2)):
        want = edwards.add(edwards.mul(sa, a), edwards.mul(sb, edwards.BASE))
        got = edwards.mul_comb2(table, sa, edwards.base_table(), sb)
        assert edwards.encode(got) == edwards.encode(want), (sa, sb)


def test_verify_key_agrees_with_verify_on_every_vector_and_tampering():
    for _, pk, msg, sig in ED25519:
        vk = ed25519.VerifyKey(unhex(pk))
        assert vk.verify(unhex(msg), unhex(sig)) is True
    _, pk, msg, sig = ED25519[2]
    vk = ed25519.VerifyKey(unhex(pk))
    pk, msg, sig = unhex(pk), unhex(msg), unhex(sig)
    assert not vk.verify(msg + b"\x00", sig)
    for i in (0, 31, 32, 63):
        bad = bytearray(sig)
        bad[i] ^= 0x01
        assert not vk.verify(msg, bytes(bad)), i
    assert not vk.verify(msg, sig[:63])
    s = int.from_bytes(sig[32:], "little") + edwards.L  # non-canonical S
    assert not vk.verify(msg, sig[:32] + s.to_bytes(32, "little"))
    other = ed25519.VerifyKey(unhex(ED25519[1][1]))
    assert not other.verify(msg, sig)
    for bad_key in (pk[:31], (edwards.P + 1).to_bytes(32, "little"), (2).to_bytes(32, "little")):
        assert isinstance(raises(ValueError, ed25519.VerifyKey, bad_key), ValueError)


def test_key_material_stays_out_of_repr_and_errors():
    seed = unhex(ED25519[0][0])
    key = ed25519.SigningKey(seed)
    text = repr(key)
    assert key.public_key.hex() in text
    assert seed.hex() not in text and key._prefix.hex() not in text
    e = raises(ValueError, ed25519.SigningKey, seed[:31])
    assert seed[:31].hex() not in str(e) and "32 bytes" in str(e)


def test_idle_runs_between_the_steps_of_a_signature_and_changes_nothing():
    # the device drains its microphone there (a signature outlasts the I2S ring)
    sk, _, msg, sig = ED25519[2]
    key = ed25519.SigningKey(unhex(sk))
    calls = []
    key.idle = lambda: calls.append(len(calls))
    assert key.sign(unhex(msg)) == unhex(sig)
    assert calls == [0, 1, 2]  # after the nonce hash, the base multiplication, the encoding
    key.idle = None
    assert key.sign(unhex(msg)) == unhex(sig)
    assert len(calls) == 3
