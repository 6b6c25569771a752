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


def test_the_receiver_decodes_what_the_device_encodes():
    samples = signal(4001, 9)
    ours, _ = firmware_encode(samples)
    pcm, _state = host_adpcm.decode(ours, 4001, 0, 0)
    assert len(pcm) == 4001
    err = sum(abs(a - b) for a, b in zip(samples[100:], pcm[100:], strict=True)) / 3901
    assert err < 700
