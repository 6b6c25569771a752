# sotto.cbor against RFC 8949 Appendix A (the examples inside Sotto's subset)
# and against every rejection rule of the strict decoder. Runs under CPython
# and in the MicroPython VM.
from fwtest import raises, unhex
from sotto import cbor

# (value, encoding) from RFC 8949 Appendix A, deterministic and in the subset.
RFC_VALID = [
    (0, "00"), (1, "01"), (10, "0a"), (23, "17"), (24, "1818"), (25, "1819"),
    (100, "1864"), (1000, "1903e8"), (1000000, "1a000f4240"),
    (1000000000000, "1b000000e8d4a51000"),
    (18446744073709551615, "1bffffffffffffffff"),
    (-18446744073709551616, "3bffffffffffffffff"),
    (-1, "20"), (-10, "29"), (-100, "3863"), (-1000, "3903e7"),
    (False, "f4"), (True, "f5"), (None, "f6"),
    (b"", "40"), (b"\x01\x02\x03\x04", "4401020304"),
    ("", "60"), ("a", "6161"), ("IETF", "6449455446"), ('"\\', "62225c"),
    ("\u00fc", "62c3bc"), ("\u6c34", "63e6b0b4"), ("\U00010151", "64f0908591"),
    ([], "80"), ([1, 2, 3], "83010203"), ([1, [2, 3], [4, 5]], "8301820203820405"),
    (list(range(1, 26)),
     "98190102030405060708090a0b0c0d0e0f101112131415161718181819"),
    ({}, "a0"), ({1: 2, 3: 4}, "a201020304"),
    ({"a": 1, "b": [2, 3]}, "a26161016162820203"),
    (["a", {"b": "c"}], "826161a161626163"),
    ({"a": "A", "b": "B", "c": "C", "d": "D", "e": "E"},
     "a56161614161626142616361436164614461656145"),
    (cbor.Tag(1, 1363896240), "c11a514b67b0"),
    (cbor.Tag(23, b"\x01\x02\x03\x04"), "d74401020304"),
    (cbor.Tag(24, b"\x64IETF"), "d818456449455446"),
    (cbor.Tag(32, "http://www.example.com"),
     "d82076687474703a2f2f7777772e6578616d706c652e636f6d"),
    # bignum tag 2: outside the integer subset, still a well-formed tag of bytes
    (cbor.Tag(2, b"\x01" + bytes(8)), "c249010000000000000000"),
]

# RFC 8949 Appendix A examples the strict decoder must refuse, with the code.
RFC_REJECTED = [
    ("f90000", cbor.UNSUPPORTED), ("f93c00", cbor.UNSUPPORTED),  # half floats
    ("fa47c35000", cbor.UNSUPPORTED), ("fb3ff199999999999a", cbor.UNSUPPORTED),
    ("f97c00", cbor.UNSUPPORTED), ("f7", cbor.UNSUPPORTED),  # Infinity, undefined
    ("f0", cbor.UNSUPPORTED), ("f8ff", cbor.UNSUPPORTED),  # simple(16), simple(255)
    ("5f42010243030405ff", cbor.INDEFINITE),
    ("7f657374726561646d696e67ff", cbor.INDEFINITE),
    ("9fff", cbor.INDEFINITE), ("9f018202039f0405ffff", cbor.INDEFINITE),
    ("83018202039f0405ff", cbor.INDEFINITE),
    ("bf61610161629f0203ffff", cbor.INDEFINITE),
    ("826161bf61626163ff", cbor.INDEFINITE),
]

# Each rule of the decoder, broken once.
REJECTED = [
    ("", cbor.EOF), ("18", cbor.EOF), ("1a0000", cbor.EOF), ("1b00000000000000", cbor.EOF),
    ("4401020304ff", cbor.TRAILING), ("0000", cbor.TRAILING),
    ("440102", cbor.EOF), ("62c3", cbor.EOF), ("830102", cbor.EOF), ("a10102a1", cbor.TRAILING),
    ("a201", cbor.EOF), ("9bffffffffffffffff", cbor.EOF), ("5bffffffffffffffff00", cbor.EOF),
    ("bbffffffffffffffff", cbor.EOF), ("c1", cbor.EOF),
    ("1817", cbor.NOT_SHORTEST), ("190017", cbor.NOT_SHORTEST), ("1900ff", cbor.NOT_SHORTEST),
    ("1a0000ffff", cbor.NOT_SHORTEST), ("1b00000000ffffffff", cbor.NOT_SHORTEST),
    ("3817", cbor.NOT_SHORTEST), ("5800", cbor.NOT_SHORTEST), ("7800", cbor.NOT_SHORTEST),
    ("9800", cbor.NOT_SHORTEST), ("b800", cbor.NOT_SHORTEST), ("d80100", cbor.NOT_SHORTEST),
    ("a203040102", cbor.KEY_ORDER), ("a2616201616102", cbor.KEY_ORDER),
    ("a2616101000a", cbor.KEY_ORDER),  # ints sort before text (0x00 < 0x61)
    ("a21818011700", cbor.KEY_ORDER),  # 24 (0x1818) before 23 (0x17)
    ("a201020103", cbor.DUPLICATE_KEY), ("a2616101616102", cbor.DUPLICATE_KEY),
    ("a14001", cbor.UNSUPPORTED), ("a1800a", cbor.UNSUPPORTED), ("a1f500", cbor.UNSUPPORTED),
    ("a1f600", cbor.UNSUPPORTED),
    ("1c", cbor.MALFORMED), ("3d", cbor.MALFORMED), ("fe", cbor.MALFORMED), ("ff", cbor.MALFORMED),
    ("1f", cbor.MALFORMED), ("df00", cbor.MALFORMED),
    ("61ff", cbor.BAD_TEXT), ("62c0af", cbor.BAD_TEXT), ("63eda080", cbor.BAD_TEXT),
    ("64f4908080", cbor.BAD_TEXT), ("63e08080", cbor.BAD_TEXT), ("62c328", cbor.BAD_TEXT),
]


def test_rfc8949_examples_encode_exactly():
    for value, hexed in RFC_VALID:
        assert cbor.encode(value) == unhex(hexed), (value, hexed)


def test_rfc8949_examples_decode_exactly():
    for value, hexed in RFC_VALID:
        got = cbor.decode(unhex(hexed))
        assert got == value, (hexed, got)
        # bool stays bool, ints stay ints (True == 1 in Python)
        assert type(got) is type(value), (hexed, type(got))


def test_rfc8949_examples_outside_the_subset_are_rejected():
    for hexed, code in RFC_REJECTED:
        e = raises(cbor.CBORDecodeError, cbor.decode, unhex(hexed))
        assert e.code == code, (hexed, e.code, code)


def test_each_strictness_rule_rejects_with_its_code():
    for hexed, code in REJECTED:
        e = raises(cbor.CBORDecodeError, cbor.decode, unhex(hexed))
        assert e.code == code, (hexed, e.code, code, str(e))
        assert isinstance(e, ValueError) and isinstance(e, cbor.CBORError)


def test_decode_errors_name_the_offset():
    e = raises(cbor.CBORDecodeError, cbor.decode, unhex("8301021817"))
    assert e.code == cbor.NOT_SHORTEST
    assert e.offset == 3
    assert "offset 3" in str(e)


def test_nesting_bound():
    deep_ok = unhex("81" * cbor.MAX_DEPTH + "00")
    assert cbor.decode(deep_ok) is not None
    too_deep = unhex("81" * (cbor.MAX_DEPTH + 1) + "00")
    assert raises(cbor.CBORDecodeError, cbor.decode, too_deep).code == cbor.DEPTH
    tags = unhex("c1" * (cbor.MAX_DEPTH + 1) + "00")
    assert raises(cbor.CBORDecodeError, cbor.decode, tags).code == cbor.DEPTH
    assert cbor.decode(unhex("818100"), max_depth=2) == [[0]]
    assert raises(cbor.CBORDecodeError, cbor.decode, unhex("818100"), max_depth=1).code == cbor.DEPTH


def test_encoder_sorts_keys_by_encoded_bytes():
    # 10 (0x0a) < 23 (0x17) < 24 (0x1818) < 100 (0x1864) < -1 (0x20) < "a" (0x6161) < "aa"
    value = {"aa": 0, "a": 1, -1: 2, 100: 3, 24: 4, 23: 5, 10: 6}
    want = unhex("a7" "0a06" "1705" "181804" "186403" "2002" "616101" "62616100")
    assert cbor.encode(value) == want
    assert cbor.decode(want) == value


def test_encoder_shortest_heads_at_every_boundary():
    for n, hexed in [(23, "17"), (24, "1818"), (255, "18ff"), (256, "190100"),
                     (65535, "19ffff"), (65536, "1a00010000"), (2**32 - 1, "1affffffff"),
                     (2**32, "1b0000000100000000")]:
        assert cbor.encode(n) == unhex(hexed), n
        assert cbor.decode(unhex(hexed)) == n
        neg = cbor.encode(-1 - n)
        assert neg[0] >> 5 == 1 and neg[1:] == unhex(hexed)[1:], n
    assert cbor.encode(b"x" * 24)[:2] == unhex("5818")
    assert cbor.encode("y" * 256)[:3] == unhex("790100")


def test_encoder_refuses_what_is_outside_the_subset():
    for bad in (1.5, 2**64, -(2**64) - 1, {1, 2}, object()):
        e = raises(cbor.CBOREncodeError, cbor.encode, bad)
        assert e.code in (cbor.BAD_TYPE, cbor.BAD_RANGE), bad
    assert raises(cbor.CBOREncodeError, cbor.encode, [1, {2: 2.5}]).code == cbor.BAD_TYPE


def test_bytes_like_inputs_decode_alike():
    raw = unhex("a26161016162820203")
    for buf in (raw, bytearray(raw), memoryview(raw)):
        assert cbor.decode(buf) == {"a": 1, "b": [2, 3]}
    got = cbor.decode(memoryview(unhex("824101f6")))
    assert got == [b"\x01", None] and type(got[0]) is bytes
    wide = unhex("83" "1a000f4240" "1b000000e8d4a51000" "3903e7")
    assert cbor.decode(memoryview(wide)) == [1000000, 1000000000000, -1000]
    assert cbor.decode_item(memoryview(b"\x00" + wide), 1) == ([1000000, 1000000000000, -1000], 19)


def test_sequence_items_with_offsets():
    seq = cbor.encode(cbor.Tag(18, [b"\xa0", {}, b"", b""])) + cbor.encode([1, b"ab"]) + cbor.encode(7)
    value, end = cbor.decode_item(seq, 0)
    assert value == cbor.Tag(18, [b"\xa0", {}, b"", b""]) and end == 7
    value, end2 = cbor.decode_item(seq, end)
    assert value == [1, b"ab"] and end2 == 12
    items = cbor.split_sequence(seq)
    assert [(s, e) for _, s, e in items] == [(0, 7), (7, 12), (12, 13)]
    assert [v for v, _, _ in items][2] == 7
    assert cbor.split_sequence(b"") == []
    broken = seq + unhex("83")
    assert raises(cbor.CBORDecodeError, cbor.split_sequence, broken).code == cbor.EOF


def test_receiver_answer_shape_round_trips():
    answer = {"results": [{"status": "accepted", "device": b"SOTTO-42", "seq": 7},
                          {"status": "rejected", "device": None, "seq": None,
                           "reason": "bad-signature"}],
              "time": 1790000000, "closed": [3]}
    wire = cbor.encode(answer)
    assert cbor.decode(wire) == answer
    # keys by encoded bytes: "time" (0x64...) before "closed" (0x66...) before "results" (0x67...)
    assert wire.index(b"time") < wire.index(b"closed") < wire.index(b"results")


def test_tag_equality_and_repr():
    assert cbor.Tag(18, [1]) == cbor.Tag(18, [1])
    assert cbor.Tag(18, [1]) != cbor.Tag(17, [1])
    assert cbor.Tag(18, [1]) != [1]
    assert repr(cbor.Tag(1, 2)) == "Tag(1, 2)"
