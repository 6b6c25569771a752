"""The host IMA-ADPCM decoder and WAV writer, against Python's audioop and a known signal."""

from __future__ import annotations

import io
import math
import random
import warnings
import wave
from array import array

import pytest

from host_tools import adpcm

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # deprecated in 3.11, gone in 3.13: an independent implementation while it lasts


def _swap_nibbles(data: bytes) -> bytes:
    """audioop packs the first sample in the high nibble; WAV IMA ADPCM (and Sotto) in the low one."""
    return bytes(((b >> 4) | (b << 4)) & 0xFF for b in data)


def _signal(n: int, seed: int = 1) -> array:
    rng = random.Random(seed)
    return array("h", [max(-32768, min(32767, int(12000 * math.sin(i / 7.0) + 9000 * math.sin(i / 61.0))
                                      + rng.randint(-3000, 3000))) for i in range(n)])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_decoder_matches_audioop_from_any_state(seed: int) -> None:
    pcm = _signal(4000, seed)
    rng = random.Random(seed)
    state = (rng.randint(-32768, 32767), rng.randint(0, 88))
    codes, after = audioop.lin2adpcm(pcm.tobytes(), 2, state)
    expected, expected_state = audioop.adpcm2lin(codes, 2, state)
    ours, our_state = adpcm.decode(_swap_nibbles(codes), len(pcm), *state)
    assert ours.tobytes() == expected
    assert our_state == expected_state == after


def test_encoder_matches_audioop() -> None:
    pcm = _signal(8000)
    codes, state = audioop.lin2adpcm(pcm.tobytes(), 2, None)
    ours, our_state = adpcm.encode(pcm)
    assert ours == _swap_nibbles(codes)
    assert our_state == state


def test_a_known_tone_comes_back() -> None:
    rate = 8000
    tone = array("h", [int(10000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(rate)])
    codes, _ = audioop.lin2adpcm(tone.tobytes(), 2, None)
    decoded, _ = adpcm.decode(_swap_nibbles(codes), rate)
    # after the step size adapts (a few ms), the error stays small next to the signal
    noise = sum((a - b) ** 2 for a, b in zip(tone[200:], decoded[200:], strict=True))
    power = sum(a * a for a in tone[200:])
    assert 10 * math.log10(power / noise) > 20
    # and it is a 440 Hz tone: 880 zero crossings a second
    crossings = sum(1 for a, b in zip(decoded[200:], decoded[201:], strict=False) if (a < 0) != (b < 0))
    assert abs(crossings - 880 * (rate - 200) / rate) < 10


def test_chunks_decode_alone_from_their_state() -> None:
    pcm = _signal(8000, 7)
    codes, _ = adpcm.encode(pcm)
    whole, _ = adpcm.decode(codes, 8000)
    first, state = adpcm.decode(codes[:2000], 4000)
    second, _ = adpcm.decode(codes[2000:], 4000, *state)
    assert (first + second) == whole


def test_odd_sample_counts_use_the_low_nibble_only() -> None:
    codes = bytes([0x7F, 0x07])       # samples: 0xF, 0x7, 0x7 (high nibble of the last byte is padding)
    three, _ = adpcm.decode(codes, 3)
    padded, _ = adpcm.decode(bytes([0x7F, 0xF7]), 3)
    assert list(three) == list(padded)
    assert len(three) == 3


@pytest.mark.parametrize("args, message", [
    ((b"\x00", 3), "need 2 bytes"),
    ((b"\x00", 1, 40000, 0), "predictor"),
    ((b"\x00", 1, 0, 89), "step index"),
    ((b"\x00", -1), "negative"),
])
def test_bad_input_is_a_clear_error(args: tuple, message: str) -> None:
    with pytest.raises(adpcm.AdpcmError) as e:
        adpcm.decode(*args)
    assert message in str(e.value)


def test_wav_is_16_bit_mono_pcm_little_endian() -> None:
    pcm = array("h", [0, 1, -1, 32767, -32768, 256])
    data = adpcm.wav_bytes(pcm, 8000)
    with wave.open(io.BytesIO(data)) as w:
        params = (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes())
        frames = w.readframes(10)
    assert params == (1, 2, 8000, 6)
    assert frames == b"\x00\x00\x01\x00\xff\xff\xff\x7f\x00\x80\x00\x01"
    assert adpcm.wav_bytes(pcm, 8000) == data     # deterministic: evidence is re-checked byte for byte
