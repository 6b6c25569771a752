"""IMA-ADPCM on the host: the decoder for alert audio, and a 16-bit PCM WAV writer.

Audio frames (docs/frames.md, codec 1) carry IMA-ADPCM, 4 bits per sample, mono,
two samples per byte with the **low nibble first** (as in WAV's IMA ADPCM), and
in `ast` (key 15) the decoder state before the chunk's first sample: predictor
(-32768..32767) and step index (0..88). So every chunk decodes on its own, and a
lost chunk costs only its own samples.

    pcm, state = decode(chunk, samples, predictor, step_index)
    write_wav(path, pcm, rate_hz)

Pure Python with a precomputed (step index, code) table: a few million samples
per second, so an hour of 8 kHz audio decodes in seconds. No dependency on `audioop`
(deprecated, gone in Python 3.13); the tests check this decoder against it.
"""

from __future__ import annotations

import io
import os
import sys
import wave
from array import array
from collections.abc import Iterable

from host_tools.errors import SottoError

# IMA ADPCM (Interactive Multimedia Association, "Recommended Practices for
# Enhancing Digital Audio Compatibility in Multimedia Systems", 1992).
STEP_SIZES = (
    7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 19, 21, 23, 25, 28, 31, 34, 37, 41, 45,
    50, 55, 60, 66, 73, 80, 88, 97, 107, 118, 130, 143, 157, 173, 190, 209, 230,
    253, 279, 307, 337, 371, 408, 449, 494, 544, 598, 658, 724, 796, 876, 963,
    1060, 1166, 1282, 1411, 1552, 1707, 1878, 2066, 2272, 2499, 2749, 3024, 3327,
    3660, 4026, 4428, 4871, 5358, 5894, 6484, 7132, 7845, 8630, 9493, 10442, 11487,
    12635, 13899, 15289, 16818, 18500, 20350, 22385, 24623, 27086, 29794, 32767,
)
INDEX_ADJUST = (-1, -1, -1, -1, 2, 4, 6, 8, -1, -1, -1, -1, 2, 4, 6, 8)
MAX_STEP_INDEX = len(STEP_SIZES) - 1   # 88
PCM_MIN, PCM_MAX = -32768, 32767


class AdpcmError(SottoError, ValueError):
    """ADPCM input that cannot be decoded as described (bad state, too few bytes)."""


def _tables() -> tuple[list[int], list[int]]:
    """For every (step index, 4-bit code): the signed predictor change and the next step index."""
    diffs: list[int] = []
    nexts: list[int] = []
    for index, step in enumerate(STEP_SIZES):
        for code in range(16):
            diff = step >> 3
            if code & 4:
                diff += step
            if code & 2:
                diff += step >> 1
            if code & 1:
                diff += step >> 2
            diffs.append(-diff if code & 8 else diff)
            nexts.append(min(max(index + INDEX_ADJUST[code], 0), MAX_STEP_INDEX) * 16)
    return diffs, nexts


_DIFF, _NEXT = _tables()   # indexed by step_index * 16 + code


def check_state(predictor: int, step_index: int) -> None:
    """Raise AdpcmError unless (predictor, step_index) is a valid decoder state."""
    if type(predictor) is not int or not PCM_MIN <= predictor <= PCM_MAX:
        raise AdpcmError(f"predictor {predictor!r} is outside {PCM_MIN}..{PCM_MAX}")
    if type(step_index) is not int or not 0 <= step_index <= MAX_STEP_INDEX:
        raise AdpcmError(f"step index {step_index!r} is outside 0..{MAX_STEP_INDEX}")


def decode(data: bytes, samples: int, predictor: int = 0,
           step_index: int = 0) -> tuple[array, tuple[int, int]]:
    """Decode `samples` 4-bit codes from `data` (low nibble first), starting from
    the state (predictor, step_index). Returns the 16-bit samples (array 'h') and
    the state after the last one, which is the next chunk's starting state.

    Raises AdpcmError for a bad state or when `data` holds fewer than `samples` codes.
    """
    check_state(predictor, step_index)
    if samples < 0:
        raise AdpcmError(f"a negative number of samples ({samples})")
    if len(data) * 2 < samples:
        raise AdpcmError(f"{samples} samples need {(samples + 1) // 2} bytes, got {len(data)}")
    out = array("h", bytes(2 * samples))
    diff_table, next_table = _DIFF, _NEXT
    pred = predictor
    row = step_index * 16
    i = 0
    full_bytes = samples >> 1
    for byte in memoryview(data)[:full_bytes]:
        pred += diff_table[row + (byte & 15)]
        pred = PCM_MAX if pred > PCM_MAX else PCM_MIN if pred < PCM_MIN else pred
        row = next_table[row + (byte & 15)]
        out[i] = pred
        pred += diff_table[row + (byte >> 4)]
        pred = PCM_MAX if pred > PCM_MAX else PCM_MIN if pred < PCM_MIN else pred
        row = next_table[row + (byte >> 4)]
        out[i + 1] = pred
        i += 2
    if samples & 1:   # the last byte's high nibble is padding
        code = data[full_bytes] & 15
        pred += diff_table[row + code]
        pred = PCM_MAX if pred > PCM_MAX else PCM_MIN if pred < PCM_MIN else pred
        row = next_table[row + code]
        out[i] = pred
    return out, (pred, row >> 4)


def encode(pcm: Iterable[int], predictor: int = 0, step_index: int = 0) -> tuple[bytes, tuple[int, int]]:
    """The reference IMA-ADPCM encoder (low nibble first) for tests and tools:
    returns the codes and the state after the last sample."""
    check_state(predictor, step_index)
    pred, index = predictor, step_index
    codes: list[int] = []
    for sample in pcm:
        step = STEP_SIZES[index]
        delta = sample - pred
        code = 0
        if delta < 0:
            code = 8
            delta = -delta
        if delta >= step:
            code |= 4
            delta -= step
        if delta >= step >> 1:
            code |= 2
            delta -= step >> 1
        if delta >= step >> 2:
            code |= 1
        pred = min(max(pred + _DIFF[index * 16 + code], PCM_MIN), PCM_MAX)
        index = _NEXT[index * 16 + code] >> 4
        codes.append(code)
    if len(codes) & 1:
        codes.append(0)
    packed = bytes(codes[i] | codes[i + 1] << 4 for i in range(0, len(codes), 2))
    return packed, (pred, index)


def pcm_bytes(pcm: array) -> bytes:
    """16-bit samples as little-endian bytes (WAV's byte order) on any host."""
    if sys.byteorder == "little":
        return pcm.tobytes()
    swapped = array("h", pcm)
    swapped.byteswap()
    return swapped.tobytes()


def wav_bytes(pcm: array, rate_hz: int) -> bytes:
    """A mono 16-bit PCM WAV file holding `pcm` at `rate_hz`, as bytes.
    The same samples always give the same bytes (evidence is re-checked that way)."""
    if rate_hz <= 0:
        raise AdpcmError(f"a sample rate of {rate_hz} Hz")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate_hz)
        w.writeframes(pcm_bytes(pcm))
    return buf.getvalue()


def write_wav(path: str | os.PathLike[str], pcm: array, rate_hz: int) -> None:
    """Write `pcm` as a mono 16-bit PCM WAV file."""
    with open(path, "wb") as f:
        f.write(wav_bytes(pcm, rate_hz))
