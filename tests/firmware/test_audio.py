# IMA-ADPCM encoder and the microphone pipeline. The encoder is checked against
# Python's audioop on the host (tests/test_adpcm_reference.py); here: state
# carried across chunks, I2S word conversion, chunking, no drift.
import struct

from fakehal import FakeHal
from fwtest import tmpdir
from sotto import adpcm
from sotto.audio import Audio


def pcm16(samples):
    b = bytearray(2 * len(samples))
    for i in range(len(samples)):
        struct.pack_into("<h", b, 2 * i, samples[i])
    return b


def i2s32(samples):
    b = bytearray(4 * len(samples))
    for i in range(len(samples)):
        struct.pack_into("<i", b, 4 * i, (samples[i] << 16) | 0x5A00)  # low byte noise is ignored
    return b


def tone(n, seed=1):
    out = []
    x = seed
    for i in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        out.append(((i * 37) % 200 - 100) * 150 + ((x >> 16) % 400) - 200)
    return out


def encode_all(samples, pieces):
    out = bytearray(len(samples))
    st = adpcm.State()
    pos = 0
    data = pcm16(samples)
    i = 0
    for n in pieces:
        pos = adpcm.encode_pcm16(memoryview(data)[2 * i:2 * (i + n)], 2 * n, out, pos, st)
        i += n
    pos = adpcm.flush(out, pos, st)
    return bytes(out[:pos]), st


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


def test_chunking_does_not_change_the_bytes():
    s = tone(1000)
    whole, st1 = encode_all(s, [1000])
    split, st2 = encode_all(s, [1, 333, 2, 500, 164])
    assert whole == split
    assert st1.snapshot() == st2.snapshot()
    assert len(whole) == 500


def test_odd_count_pads_the_last_byte():
    data, _ = encode_all(tone(7), [7])
    assert len(data) == 4 and data[3] >> 4 == 0


def triangle(n, period=80, amp=10000):
    out = []
    for i in range(n):
        k = i % period
        v = k if k < period // 2 else period - k
        out.append(v * 4 * amp // period - amp)
    return out


def test_round_trip_follows_the_signal():
    s = triangle(4000)
    data, _ = encode_all(s, [4000])
    back = decode(data, 4000)
    err = sum(abs(a - b) for a, b in zip(s[200:], back[200:])) // 3800
    assert err < 300  # the signal swings +-10000: the codec follows it closely


def test_i2s_words_keep_their_top_16_bits():
    s = tone(256)
    a = bytearray(128)
    b = bytearray(128)
    st_a, st_b = adpcm.State(), adpcm.State()
    adpcm.encode_pcm16(pcm16(s), 512, a, 0, st_a)
    adpcm.encode_i2s32(i2s32(s), 1024, b, 0, st_b)
    assert a == b


def test_extremes_clamp():
    s = [32767] * 50 + [-32768] * 50
    data, st = encode_all(s, [100])
    back = decode(data, 100)
    assert back[49] > 30000 and back[99] < -30000
    assert 0 <= st.index <= 88


def test_pipeline_chunks_carry_the_state_before_their_first_sample():
    hal = FakeHal(tmpdir("audio"))
    a = Audio(hal, rate_hz=8000, chunk_ms=1000)
    a.start(0)
    chunks = []
    for t in range(0, 3100, 20):
        hal.set_time(t)
        c = a.poll(t)
        if c is not None:
            chunks.append(c)
    assert [c[1] for c in chunks] == [8000, 8000, 8000]
    assert chunks[0][2:] == (0, 0)
    # each chunk decodes on its own from its recorded state, like the receiver does
    whole = decode(chunks[0][0] + chunks[1][0], 16000)
    alone = decode(chunks[1][0], 8000, chunks[1][2], chunks[1][3])
    assert alone == whole[8000:]
    assert a.total_samples == 24000
    tail = a.flush()
    assert tail is not None and 0 < tail[1] < 8000
    a.stop()
    assert not hal.mic.on


def test_pipeline_is_silent_when_stopped():
    hal = FakeHal(tmpdir("audio"))
    a = Audio(hal)
    hal.set_time(5000)
    assert a.poll(5000) is None
    assert a.flush() is None
