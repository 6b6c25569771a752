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


def _encode(src, start, stop, stride, hi, out, pos, st):
    """Encode samples src[start:stop:stride] (16-bit value = src[i+hi]<<8 |
    src[i+hi-1], signed) into out from pos; returns the new pos."""
    steps = STEPS
    index_adj = INDEX
    pred = st.predictor
    idx = st.index
    pend = st.pending
    for i in range(start, stop, stride):
        s = (src[i + hi] << 8) | src[i + hi - 1]
        if s > 32767:
            s -= 65536
        step = steps[idx]
        diff = s - pred
        if diff < 0:
            code = 8
            diff = -diff
        else:
            code = 0
        vp = step >> 3
        if diff >= step:
            code |= 4
            diff -= step
            vp += step
        step >>= 1
        if diff >= step:
            code |= 2
            diff -= step
            vp += step
        step >>= 1
        if diff >= step:
            code |= 1
            vp += step
        if code & 8:
            pred -= vp
            if pred < -32768:
                pred = -32768
        else:
            pred += vp
            if pred > 32767:
                pred = 32767
        idx += index_adj[code]
        if idx < 0:
            idx = 0
        elif idx > 88:
            idx = 88
        if pend < 0:
            pend = code
        else:
            out[pos] = pend | (code << 4)
            pos += 1
            pend = -1
    st.predictor = pred
    st.index = idx
    st.pending = pend
    return pos


def encode_pcm16(pcm, nbytes, out, pos, st):
    """Encode little-endian 16-bit samples (pcm[0:nbytes]) into out at pos;
    returns the new pos. An odd last sample waits in st.pending."""
    return _encode(pcm, 0, nbytes - 1, 2, 1, out, pos, st)


def encode_i2s32(raw, nbytes, out, pos, st):
    """Encode 32-bit I2S words (raw[0:nbytes]), keeping each word's top 16 bits."""
    return _encode(raw, 0, nbytes - 3, 4, 3, out, pos, st)


def flush(out, pos, st):
    """Write a pending odd code (high nibble 0); returns the new pos."""
    if st.pending >= 0:
        out[pos] = st.pending
        pos += 1
        st.pending = -1
    return pos
