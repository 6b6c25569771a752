# IMA-ADPCM encoder (the IMA / DVI algorithm, as in WAV format 0x11): 4 bits
# per 16-bit sample, two codes per byte, the first sample in the low nibble.
#
# The state (predictor, step index) is carried across calls, so a clip can be
# encoded in chunks; each audio frame records the state before its first
# sample (frame key `ast`) and decodes on its own. The loops allocate nothing:
# the caller owns the output buffer.
#
# encode_i2s32() reads INMP441-style I2S words straight from the capture
# buffer (little-endian 32-bit, 24-bit data left-justified) and keeps their
# top 16 bits, so the conversion costs no second pass and no second buffer.
#
# Speed (this runs in the interpreter; sotto.k_adpcm holds it): the hot
# loop encodes two samples per pass into one byte, and replaces the textbook
# steps (three subtract-and-compare stages, index clamping, predictor sums) by
# one table row per step index: the seven decision thresholds, the eight
# predictor changes and direct references to the next rows. The predictor is
# kept offset by 32768 so one shift tells whether it needs clamping. The rows
# (about 10 KB) and the high-byte table (1 KB) are built by prepare() (the
# device's Audio does it at boot) or else on first use. _code1() is the textbook algorithm,
# used for a lone sample at either end of a call; tests check both agree with
# each other and, on the host, with Python's audioop.
from sotto import k_adpcm, kern

STEPS = (
    7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 19, 21, 23, 25, 28, 31, 34, 37, 41, 45,
    50, 55, 60, 66, 73, 80, 88, 97, 107, 118, 130, 143, 157, 173, 190, 209, 230,
    253, 279, 307, 337, 371, 408, 449, 494, 544, 598, 658, 724, 796, 876, 963,
    1060, 1166, 1282, 1411, 1552, 1707, 1878, 2066, 2272, 2499, 2749, 3024, 3327,
    3660, 4026, 4428, 4871, 5358, 5894, 6484, 7132, 7845, 8630, 9493, 10442,
    11487, 12635, 13899, 15289, 16818, 18500, 20350, 22385, 24623, 27086, 29794,
    32767,
)
INDEX = (-1, -1, -1, -1, 2, 4, 6, 8, -1, -1, -1, -1, 2, 4, 6, 8)


class State:
    """Encoder state: predictor, step index, and a low nibble waiting for its
    partner (-1 when none)."""

    def __init__(self, predictor=0, index=0):
        self.predictor = predictor
        self.index = index
        self.pending = -1

    def snapshot(self):
        return self.predictor, self.index


class _Rows:
    rows = []  # type: list  # built by _rows() on first use
    high = ()  # type: tuple  # high byte -> its part of the offset sample: (b ^ 0x80) << 8


def _rows():
    """Per step index a list: [index, T1..T7 (1..7), delta for magnitude
    0..7 (8..15), next row for magnitude 0-3, 4, 5, 6, 7 (16..20)]."""
    rows = [[0] * 21 for _ in range(89)]  # type: list
    for idx in range(89):
        step = STEPS[idx]
        r = rows[idx]
        r[0] = idx
        for m in range(1, 8):
            r[m] = (step if m & 4 else 0) + (step >> 1 if m & 2 else 0) + (step >> 2 if m & 1 else 0)
        for m in range(8):
            r[8 + m] = r[m] + (step >> 3) if m else step >> 3
        k = 16
        for adj in (-1, 2, 4, 6, 8):
            r[k] = rows[min(88, max(0, idx + adj))]
            k += 1
    _Rows.high = tuple(((b ^ 0x80) << 8) for b in range(256))
    _Rows.rows = rows
    return rows


def prepare():
    """Build the encoder's tables now (about 11 KB, once), not on first use."""
    if not _Rows.rows:
        _rows()


def _code1(s, st):
    """The textbook IMA step for one signed sample
    updates st, returns the code."""
    step = STEPS[st.index]
    diff = s - st.predictor
    code = 0
    if diff < 0:
        code = 8
        diff = -diff
    delta = step >> 3
    if diff >= step:
        code |= 4
        diff -= step
        delta += step
    if diff >= step >> 1:
        code |= 2
        diff -= step >> 1
        delta += step >> 1
    if diff >= step >> 2:
        code |= 1
        delta += step >> 2
    pred = st.predictor - delta if code & 8 else st.predictor + delta
    st.predictor = -32768 if pred < -32768 else 32767 if pred > 32767 else pred
    idx = st.index + INDEX[code]
    st.index = 0 if idx < 0 else 88 if idx > 88 else idx
    return code


def _sample(src, hi):
    s = (src[hi] << 8) | src[hi - 1]
    return s - 65536 if s > 32767 else s


def _encode(src, first, count, stride, out, pos, st):
    """Encode `count` samples whose high bytes are at src[first + k*stride]
    (low byte just before) into out from pos
    returns the new pos."""
    if count <= 0:
        return pos
    if st.pending >= 0:  # the partner of last call's odd sample
        out[pos] = st.pending | (_code1(_sample(src, first), st) << 4)
        pos += 1
        st.pending = -1
        first += stride
        count -= 1
    pairs = count >> 1
    if pairs:
        rows = _Rows.rows or _rows()
        pos = _PAIRS(src, first, first + pairs * 2 * stride, stride, out, pos, st, rows, _Rows.high)
    if count & 1:
        st.pending = _code1(_sample(src, first + pairs * 2 * stride), st)
    return pos


# the pair loop: the device's native build when `sotto flash` made one, else bytecode
_PAIRS = (kern.load("k_adpcm") or k_adpcm).pairs


def encode_pcm16(pcm, nbytes, out, pos, st):
    """Encode little-endian 16-bit samples (pcm[0:nbytes]) into out at pos;
    returns the new pos. An odd last sample waits in st.pending."""
    return _encode(pcm, 1, nbytes >> 1, 2, out, pos, st)


def encode_i2s32(raw, nbytes, out, pos, st):
    """Encode 32-bit I2S words (raw[0:nbytes]), keeping each word's top 16 bits."""
    return _encode(raw, 3, nbytes >> 2, 4, out, pos, st)


def flush(out, pos, st):
    """Write a pending odd code (high nibble 0)
    returns the new pos."""
    if st.pending >= 0:
        out[pos] = st.pending
        pos += 1
        st.pending = -1
    return pos
