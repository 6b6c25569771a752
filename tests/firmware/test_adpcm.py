# The IMA-ADPCM encoder: a golden vector made with Python's audioop (an
# independent C implementation; tests/test_adpcm_reference.py compares against
# it directly on the host), the fast two-sample loop against the textbook
# single-sample step, state carried across calls split anywhere, 32-bit I2S
# words, clamping, and no allocation per sample.
import gc
import struct

from sotto import adpcm

# 64 samples: silence, a rise to full scale, -32768, small wiggles. Expected
# bytes: audioop.lin2adpcm (Python 3.11) with nibbles swapped to low-first.
GOLDEN_IN = ([0] * 4 + [i * i * 40 for i in range(1, 29)] + [32767] * 4 + [-32768] * 6
             + [(-1) ** i * (i * 13) for i in range(22)])
GOLDEN_OUT = "000077777724434334344433354343430200ffff098480808080808080008880"
GOLDEN_STATE = (-846, 67)


def pcm16(samples):
    b = bytearray(2 * len(samples))
    for i in range(len(samples)):
        struct.pack_into("<h", b, 2 * i, samples[i])
    return b


def i2s32(samples, low=0x5A00):
    b = bytearray(4 * len(samples))
    for i in range(len(samples)):
        struct.pack_into("<i", b, 4 * i, (samples[i] << 16) | low)  # low bits: below 16-bit resolution
    return b


def tone(n, seed=1):
    out = []
    x = seed
    for i in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        out.append(((i * 37) % 200 - 100) * 150 + ((x >> 16) % 400) - 200)
    return out


def noise(n, seed, amp):
    out = []
    x = seed
    for _ in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        out.append(max(-32768, min(32767, ((x >> 8) % (2 * amp + 1)) - amp)))
    return out


def encode_all(samples, pieces, state=None):
    out = bytearray(len(samples) // 2 + 1)
    st = state or adpcm.State()
    pos = 0
    data = pcm16(samples)
    i = 0
    for n in pieces:
        pos = adpcm.encode_pcm16(memoryview(data)[2 * i:2 * (i + n)], 2 * n, out, pos, st)
        i += n
    pos = adpcm.flush(out, pos, st)
    return bytes(out[:pos]), st


def textbook(samples):
    """The one-sample-at-a-time path (adpcm._code1) for every sample."""
    st = adpcm.State()
    codes = [adpcm._code1(s, st) for s in samples]
    if len(codes) & 1:
        codes.append(0)
    return bytes(codes[i] | (codes[i + 1] << 4) for i in range(0, len(codes), 2)), st


def decode(data, n, predictor=0, index=0):
    """A plain IMA-ADPCM decoder (low nibble first), to check round trips."""
    out = []
    for i in range(n):
        code = (data[i >> 1] >> (4 * (i & 1))) & 15
        step = adpcm.STEPS[index]
        d = step >> 3
        if code & 4:
            d += step
        if code & 2:
            d += step >> 1
        if code & 1:
            d += step >> 2
        predictor = max(-32768, min(32767, predictor - d if code & 8 else predictor + d))
        index = max(0, min(88, index + adpcm.INDEX[code]))
        out.append(predictor)
    return out


def test_golden_vector_from_audioop():
    data, st = encode_all(GOLDEN_IN, [64])
    assert data.hex() == GOLDEN_OUT
    assert st.snapshot() == GOLDEN_STATE
    i2s = i2s32(GOLDEN_IN)
    out = bytearray(32)
    st2 = adpcm.State()
    assert adpcm.encode_i2s32(i2s, len(i2s), out, 0, st2) == 32
    assert bytes(out).hex() == GOLDEN_OUT and st2.snapshot() == GOLDEN_STATE


def test_fast_loop_matches_the_textbook_step_on_every_kind_of_signal():
    for samples in (tone(2001), noise(2000, 3, 32767), noise(1500, 4, 300), noise(999, 5, 6),
                    [32767, -32768] * 300, [0] * 100 + [20000] * 50 + [-20000] * 51):
        fast, st1 = encode_all(samples, [len(samples)])
        slow, st2 = textbook(samples)
        assert fast == slow
        assert st1.snapshot() == st2.snapshot()


def test_chunking_does_not_change_the_bytes():
    s = tone(1000)
    whole, st1 = encode_all(s, [1000])
    for pieces in ([1, 333, 2, 500, 164], [1] * 7 + [993], [999, 1], [3] * 333 + [1]):
        split, st2 = encode_all(s, pieces)
        assert split == whole
        assert st1.snapshot() == st2.snapshot()
    assert len(whole) == 500


def test_state_carries_into_the_next_chunk_which_decodes_alone():
    s = noise(3000, 8, 9000)
    first, st = encode_all(s[:1600], [1600])
    ast = st.snapshot()
    second, _ = encode_all(s[1600:], [1400], adpcm.State(*ast))
    whole, _ = encode_all(s, [3000])
    assert first + second == whole
    assert decode(second, 1400, ast[0], ast[1]) == decode(whole, 3000)[1600:]


def test_odd_count_pads_the_last_byte():
    data, _ = encode_all(tone(7), [7])
    assert len(data) == 4 and data[3] >> 4 == 0


def test_round_trip_follows_the_signal():
    s = []
    for i in range(4000):  # a triangle, +-10000, period 80 samples (100 Hz)
        k = i % 80
        s.append((k if k < 40 else 80 - k) * 500 - 10000)
    data, _ = encode_all(s, [4000])
    back = decode(data, 4000)
    err = sum(abs(a - b) for a, b in zip(s[200:], back[200:])) // 3800
    assert err < 300


def test_i2s_words_keep_their_top_16_bits_and_their_sign():
    s = tone(256) + [-1, -32768, 32767, 0, -256, 255]
    a = bytearray(131)
    b = bytearray(131)
    st_a, st_b = adpcm.State(), adpcm.State()
    na = adpcm.encode_pcm16(pcm16(s), 2 * len(s), a, 0, st_a)
    for low in (0, 0x5A00, 0xFF00):
        st_b = adpcm.State()
        nb = adpcm.encode_i2s32(i2s32(s, low), 4 * len(s), b, 0, st_b)
        assert (na, bytes(a)) == (nb, bytes(b))
        assert st_a.snapshot() == st_b.snapshot()


def test_extremes_clamp():
    s = [32767] * 50 + [-32768] * 50
    data, st = encode_all(s, [100])
    back = decode(data, 100)
    assert back[49] > 30000 and back[99] < -30000
    assert 0 <= st.index <= 88 and -32768 <= st.predictor <= 32767


def test_encoding_allocates_nothing_per_sample():
    if not hasattr(gc, "mem_alloc"):
        return  # CPython: the VM lane checks this
    raw = i2s32(tone(2048))
    out = bytearray(1024)
    st = adpcm.State()
    adpcm.encode_i2s32(raw, 8, out, 0, st)  # tables built on first use
    gc.collect()
    before = gc.mem_alloc()
    pos = adpcm.encode_i2s32(raw, len(raw) - 4, out, 0, st)  # odd count: both lone-sample paths
    pos = adpcm.encode_i2s32(raw, 4, out, pos, st)
    after = gc.mem_alloc()
    assert pos == 1024
    assert after - before < 256, after - before  # a few small objects per call, none per sample
