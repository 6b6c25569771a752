"""The firmware's IMA-ADPCM encoder against independent implementations:
Python's `audioop` (an IMA/DVI ADPCM written in C, high nibble first) and the
receiver's decoder (host_tools.adpcm)."""

from __future__ import annotations

import math
import random
import struct
import warnings

import pytest
from sotto import adpcm

from host_tools import adpcm as host_adpcm

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import audioop
    except ImportError:  # Python 3.13 removed it; the host decoder check below still runs
        audioop = None


def signal(n: int, seed: int) -> list[int]:
    rnd = random.Random(seed)
    return [max(-32768, min(32767, int(12000 * math.sin(i / 9.0) + 6000 * math.sin(i / 2.3)
                                       + rnd.gauss(0, 800)))) for i in range(n)]


def firmware_encode(samples: list[int], pieces: int = 7) -> tuple[bytes, adpcm.State]:
    pcm = struct.pack(f"<{len(samples)}h", *samples)
    out = bytearray(len(samples))
    st = adpcm.State()
    pos = 0
    step = max(2, (len(pcm) // pieces) & ~1)
    for i in range(0, len(pcm), step):
        chunk = pcm[i:i + step]
        pos = adpcm.encode_pcm16(chunk, len(chunk), out, pos, st)
    pos = adpcm.flush(out, pos, st)
    return bytes(out[:pos]), st


def swap_nibbles(data: bytes) -> bytes:
    return bytes(((b & 15) << 4) | (b >> 4) for b in data)


@pytest.mark.skipif(audioop is None, reason="audioop is gone from this Python (3.13+)")
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_same_codes_and_state_as_audioop(seed):
    samples = signal(8000, seed)
    ours, st = firmware_encode(samples)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        theirs, (pred, index) = audioop.lin2adpcm(struct.pack("<8000h", *samples), 2, None)
    assert swap_nibbles(ours) == theirs
    assert (st.predictor, st.index) == (pred, index)


@pytest.mark.skipif(audioop is None, reason="audioop is gone from this Python (3.13+)")
@pytest.mark.parametrize("amp", [40, 3000, 40000])
def test_i2s_words_in_chunks_match_audioop_on_their_top_16_bits(amp):
    # 24-bit microphone data left-justified in 32-bit words, read 256 words at a
    # time with the state carried over, as the device's pipeline does
    rnd = random.Random(amp)
    full = 1 << 23
    words = [max(-full, min(full - 1, int(amp * 256 * math.sin(i / 5.0)) + rnd.randrange(-999, 999)))
             for i in range(8000)]
    raw = struct.pack(f"<{len(words)}i", *(w << 8 for w in words))
    out = bytearray(4000)
    st = adpcm.State()
    pos = 0
    for i in range(0, len(raw), 1020):  # 255 words: odd, so the lone-sample paths run too
        part = raw[i:i + 1020]
        pos = adpcm.encode_i2s32(part, len(part), out, pos, st)
    pos = adpcm.flush(out, pos, st)
    top16 = struct.pack(f"<{len(words)}h", *((w << 8) >> 16 for w in words))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        theirs, (pred, index) = audioop.lin2adpcm(top16, 2, None)
    assert swap_nibbles(bytes(out[:pos])) == theirs
    assert (st.predictor, st.index) == (pred, index)


def test_the_receiver_decodes_what_the_device_encodes():
    samples = signal(4001, 9)
    ours, st = firmware_encode(samples)
    pcm, state = host_adpcm.decode(ours, 4001, 0, 0)
    assert len(pcm) == 4001
    # the decoder ends exactly where the encoder's own prediction ended
    assert state == (st.predictor, st.index)
    err = sum(abs(a - b) for a, b in zip(samples[100:], pcm[100:], strict=True)) / 3901
    assert err < 700


def test_chunks_decode_on_their_own_at_the_receiver():
    samples = signal(24000, 4)
    pcm = struct.pack("<24000h", *samples)
    st = adpcm.State()
    chunks = []
    for i in range(0, len(pcm), 16000):  # 1 s chunks at 8 kHz
        ast = st.snapshot()
        out = bytearray(4000)
        pos = adpcm.flush(out, adpcm.encode_pcm16(pcm[i:i + 16000], 16000, out, 0, st), st)
        chunks.append((bytes(out[:pos]), ast))
    whole, _ = host_adpcm.decode(b"".join(c for c, _ in chunks), 24000, 0, 0)
    for k, (data, (pred, index)) in enumerate(chunks):
        alone, _ = host_adpcm.decode(data, 8000, pred, index)
        assert list(alone) == list(whole[8000 * k:8000 * (k + 1)])
