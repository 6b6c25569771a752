# A naive IMA-ADPCM encoder, the baseline for bench_audio_vm and
# bench_device_vm: written the obvious way (one function call per sample,
# struct.unpack per I2S word, a list of codes joined at the end), with its own
# copy of the standard tables. It produces the same bytes as sotto.adpcm (the
# benchmarks assert it), so the two are timed doing the same job.
import struct

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


def encode_sample(sample, state):
    pred, index = state
    step = STEPS[index]
    diff = sample - pred
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
    pred = pred - delta if code & 8 else pred + delta
    pred = max(-32768, min(32767, pred))
    index = max(0, min(88, index + INDEX[code]))
    state[0] = pred
    state[1] = index
    return code


def encode_i2s32(raw, state):
    """Encode 32-bit little-endian I2S words (top 16 bits); state = [pred, index]."""
    codes = []
    for i in range(0, len(raw), 4):
        word = struct.unpack("<i", raw[i:i + 4])[0]
        codes.append(encode_sample(word >> 16, state))
    out = bytearray()
    for i in range(0, len(codes), 2):
        hi = codes[i + 1] if i + 1 < len(codes) else 0
        out.append(codes[i] | (hi << 4))
    return bytes(out)
