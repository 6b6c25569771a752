# A small deterministic mutation fuzz of sotto.cbor and sotto.frames.verify
# that runs inside the MicroPython VM as well as under CPython (the hypothesis
# fuzz in tests/test_firmware_fuzz.py runs under CPython only). Frames of every
# kind are signed here, then bit-flipped, overwritten, cut and spliced: the
# decoder may only raise CBORDecodeError, and no mutant may verify.
from sotto import cbor, ed25519, frames

SEED = bytes(range(100, 132))
KID = b"FUZZ-001"
REASONS = (
    "malformed-cbor", "not-cose-sign1", "bad-protected-header", "unsupported-alg", "missing-kid",
    "bad-signature", "audio-missing", "audio-unexpected", "audio-digest-mismatch",
    "unsupported-version", "unknown-frame-type", "missing-field", "bad-field",
)
MUTANTS_PER_FRAME = 40


class _Rng:
    # xorshift on 30 bits: the same sequence under CPython and MicroPython,
    # and every value stays a small int in the VM
    def __init__(self, seed):
        self.x = seed & 0x3FFFFFFF or 1

    def below(self, n):
        x = self.x
        x ^= (x << 13) & 0x3FFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0x3FFFFFFF
        self.x = x
        return x % n


def _frames():
    key = ed25519.SigningKey(SEED)
    signer = frames.FrameSigner(KID, key)
    loc = frames.pack_location(-338688000, 1512093000, 15, 1, frames.SRC_GNSS)
    link = b"\x11" * 8
    base = {frames.K_SID: 9, frames.K_SEQ: 77, frames.K_TIME: 1790000000, frames.K_UP: 12345}
    out = [
        signer.sign(_f(base, 1, {6: loc, 7: 50, 9: 1})),
        signer.sign(_f(base, 2, {6: loc, 8: link})),
        signer.sign(_f(base, 3, {8: link, 11: 1, 12: 8000, 13: 0, 15: [5, 6], 16: 64}),
                    audio=bytes(range(32))),
        signer.sign(_f(base, 5, {8: link, 10: 1})),
        signer.sign(_f({frames.K_SEQ: 78, frames.K_TIME: 0, frames.K_UP: 1}, 9, {7: 5, 18: 2})),
    ]
    return key.public_key, out


def _f(base, t, extra):
    d = dict(base)
    d[frames.K_T] = t
    for k, v in extra.items():
        d[k] = v
    return d


def _mutate(rng, wire):
    # bytes slicing only: MicroPython's bytearray has no slice deletion
    b = wire
    for _ in range(1 + rng.below(3)):
        op = rng.below(5)
        i = rng.below(len(b)) if b else 0
        if op == 0 and b:
            b = b[:i] + bytes([b[i] ^ (1 << rng.below(8))]) + b[i + 1:]
        elif op == 1 and b:
            b = b[:i] + bytes([rng.below(256)]) + b[i + 1:]
        elif op == 2 and b:
            b = b[:i] + b[i + 1 + rng.below(8):]
        elif op == 3:
            b = b[:i] + bytes([rng.below(256) for _ in range(1 + rng.below(8))]) + b[i:]
        else:
            b = b[:i]
    return b if b != wire else b[:-1]


def test_mutated_frames_never_crash_the_decoder_nor_verify():
    pub, wires = _frames()
    rng = _Rng(20251122)
    seen = {}
    for wire in wires:
        assert frames.verify(wire, pub)[0] == KID  # the originals are good
        for _ in range(MUTANTS_PER_FRAME):
            m = _mutate(rng, wire)
            try:
                cbor.decode(m)
            except cbor.CBORDecodeError as e:
                assert 1 <= e.code <= cbor.BAD_TEXT
            try:
                frames.verify(m, pub)
            except frames.FrameError as e:
                assert e.code in REASONS, e.code
                seen[e.code] = seen.get(e.code, 0) + 1
                continue
            raise AssertionError("a mutant verified: %s" % m.hex())
    # the fuzz reached both the decoder's and the signature's rejections
    assert seen.get("malformed-cbor", 0) > 0 and seen.get("bad-signature", 0) > 0, seen


def test_random_bytes_never_crash_the_decoder():
    rng = _Rng(7)
    for _ in range(400):
        data = bytes([rng.below(256) for _ in range(rng.below(40))])
        try:
            cbor.decode(data)
        except cbor.CBORDecodeError:
            pass
        try:
            cbor.split_sequence(data)
        except cbor.CBORDecodeError:
            pass
