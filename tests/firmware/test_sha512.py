# sotto.sha512 against the FIPS 180-4 / NIST example digests, and its
# incremental API against its one-shot API at every block boundary.
# Runs under CPython and in the MicroPython VM.
from fwtest import unhex
from sotto import sha512

# NIST "SHA-512" examples (FIPS 180-4 validation, and the classic test suite)
ABC_448 = "".join(chr(97 + i + j) for i in range(14) for j in range(4)).encode()
ABC_896 = "".join(chr(97 + i + j) for i in range(14) for j in range(8)).encode()
NIST = [
    (b"", "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
          "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"),
    (b"abc", "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
             "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"),
    (ABC_448, "204a8fc6dda82f0a0ced7beb8e08a41657c16ef468b228a8279be331a703c335"
              "96fd15c13b1b07f9aa1d3bea57789ca031ad85c7a71dd70354ec631238ca3445"),
    (ABC_896, "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018"
              "501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909"),
]
MILLION_A = ("e718483d0ce769644e2e42c7bc15b4638e1f98b13b2044285632a803afa973eb"
             "de0ff244877ea60a4cb0432ce577c31beb009c5c2c49aa2e4eadb217ad8cc09b")

# bytes 0, 1, 2, ... (mod 256) of each length, digests from CPython's hashlib:
# the padding edges (111/112 bytes: one or two final blocks) and block edges
EDGES = [
    (111, "a1a111449b198d9b1f538bad7f3fc1022b3a5b1a5e90a0bc860de8512746cbc3"
          "1599e6c834de3a3235327af0b51ff57bf7acf1974a73014d9c3953812edc7c8d"),
    (112, "c5fbd731d19d2ae1180f001be72c2c1aaba1d7b094b3748880e24593b8e117a7"
          "50e11c1bd867cc2f96dace8c8b74abd2d5c4f236be444e77d30d1916174070b9"),
    (127, "eab89674feaa34e27aebeeff3c0a4d70070bb872d5e9f186cf1dbbdee517b6e3"
          "5724d629ff025a5b07185e911ada7e3c8acf830aa0e4f71777bd2d44f504f7f0"),
    (128, "1dffd5e3adb71d45d2245939665521ae001a317a03720a45732ba1900ca3b835"
          "1fc5c9b4ca513eba6f80bc7b1d1fdad4abd13491cb824d61b08d8c0e1561b3f7"),
    (129, "1d9da57fbbdab09afb3506ab2d223d06109d65c1c8ad197f50138f714bc4c3f2"
          "fe5787922639c680acad1c651f955990425954ce2cba0c5cc83f2667d878eb0f"),
    (239, "cb4c7fd522756d5781ad3a4f590a1d862906b960e7720136cb3fb36b563caa1e"
          "a5689134291fa79c80ccc2b4092b41df32ebdcb36dbe79db483440228c1622a8"),
    (240, "6c48466c9f6c07e4ab762c696b7eeb35cfe236fca73683e5fab873ac3489b4d2"
          "eb3d7afcce7e8165dbbf37aded3b5b0c889c0b7e0f1790a8330d8677429d91a5"),
    (256, "1e7b80bc8edc552c8feeb2780e111477e5bc70465fac1a77b29b35980c3f0ce4"
          "a036a6c9462036824bd56801e62af7e9feba5c22ed8a5af877bf7de117dcac6d"),
]


def _counting(n):
    return bytes(i & 255 for i in range(n))


def test_nist_vectors_one_shot():
    for msg, want in NIST:
        assert sha512.digest(msg) == unhex(want), msg
        assert sha512.sha512(msg).digest() == unhex(want), msg


def test_nist_million_a_incremental():
    h = sha512.sha512()
    chunk = b"a" * 1000
    for _ in range(1000):
        h.update(chunk)
    assert h.digest() == unhex(MILLION_A)


def test_padding_and_block_edges():
    for n, want in EDGES:
        assert sha512.digest(_counting(n)) == unhex(want), n


def test_incremental_equals_one_shot_for_every_split():
    msg = _counting(300)
    whole = sha512.digest(msg)
    for cut in (0, 1, 63, 111, 112, 127, 128, 129, 200, 255, 256, 299, 300):
        h = sha512.sha512(msg[:cut])
        h.update(msg[cut:])
        assert h.digest() == whole, cut
    assert sha512.digest(msg[:5], msg[5:130], b"", msg[130:]) == whole
    # bytearray and memoryview inputs hash the same bytes
    assert sha512.digest(bytearray(msg)) == whole
    assert sha512.digest(memoryview(msg)[:128], memoryview(msg)[128:]) == whole


def test_digest_does_not_end_the_hash_and_copy_is_independent():
    h = sha512.sha512(b"ab")
    early = h.digest()
    assert early == sha512.digest(b"ab")
    c = h.copy()
    h.update(b"c")
    assert h.digest() == unhex(NIST[1][1])
    assert c.digest() == early
