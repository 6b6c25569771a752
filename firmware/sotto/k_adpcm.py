# Kernel: the IMA-ADPCM encoder's inner loop (two samples per pass), split
# out of sotto.adpcm so that `sotto flash` can also build it with
# @micropython.native for a device (the same code as machine code, about 1.5x
# faster there; sotto/kern.py). The VM and CPython run it as bytecode.
from micropython import const

from sotto.kern import native

_OFFSET = const(32768)  # the predictor is kept offset by this (see sotto.adpcm)


@native
def pairs(src, first, stop, stride, out, pos, st, rows, h):
    """Encode the sample pairs whose high bytes are at src[first:stop:2 *
    stride] into out from pos with st's state; returns the new pos. rows, h:
    sotto.adpcm's decision table and high-byte table."""
    r = rows[st.index]
    p = st.predictor + _OFFSET
    stride2 = stride * 2
    for i in range(first, stop, stride2):
        d = h[src[i]] + src[i - 1] - p
        if d >= 0:
            if d >= r[4]:
                if d >= r[6]:
                    if d >= r[7]:
                        c = 7
                        p += r[15]
                        r = r[20]
                    else:
                        c = 6
                        p += r[14]
                        r = r[19]
                elif d >= r[5]:
                    c = 5
                    p += r[13]
                    r = r[18]
                else:
                    c = 4
                    p += r[12]
                    r = r[17]
            elif d >= r[2]:
                if d >= r[3]:
                    c = 3
                    p += r[11]
                else:
                    c = 2
                    p += r[10]
                r = r[16]
            elif d >= r[1]:
                c = 1
                p += r[9]
                r = r[16]
            else:
                c = 0
                p += r[8]
                r = r[16]
        else:
            d = -d
            if d >= r[4]:
                if d >= r[6]:
                    if d >= r[7]:
                        c = 15
                        p -= r[15]
                        r = r[20]
                    else:
                        c = 14
                        p -= r[14]
                        r = r[19]
                elif d >= r[5]:
                    c = 13
                    p -= r[13]
                    r = r[18]
                else:
                    c = 12
                    p -= r[12]
                    r = r[17]
            elif d >= r[2]:
                if d >= r[3]:
                    c = 11
                    p -= r[11]
                else:
                    c = 10
                    p -= r[10]
                r = r[16]
            elif d >= r[1]:
                c = 9
                p -= r[9]
                r = r[16]
            else:
                c = 8
                p -= r[8]
                r = r[16]
        if p >> 16:
            p = 0 if p < 0 else 65535
        j = i + stride  # the second sample of the pair: high nibble
        d = h[src[j]] + src[j - 1] - p
        if d >= 0:
            if d >= r[4]:
                if d >= r[6]:
                    if d >= r[7]:
                        c |= 0x70
                        p += r[15]
                        r = r[20]
                    else:
                        c |= 0x60
                        p += r[14]
                        r = r[19]
                elif d >= r[5]:
                    c |= 0x50
                    p += r[13]
                    r = r[18]
                else:
                    c |= 0x40
                    p += r[12]
                    r = r[17]
            elif d >= r[2]:
                if d >= r[3]:
                    c |= 0x30
                    p += r[11]
                else:
                    c |= 0x20
                    p += r[10]
                r = r[16]
            elif d >= r[1]:
                c |= 0x10
                p += r[9]
                r = r[16]
            else:
                p += r[8]
                r = r[16]
        else:
            d = -d
            if d >= r[4]:
                if d >= r[6]:
                    if d >= r[7]:
                        c |= 0xF0
                        p -= r[15]
                        r = r[20]
                    else:
                        c |= 0xE0
                        p -= r[14]
                        r = r[19]
                elif d >= r[5]:
                    c |= 0xD0
                    p -= r[13]
                    r = r[18]
                else:
                    c |= 0xC0
                    p -= r[12]
                    r = r[17]
            elif d >= r[2]:
                if d >= r[3]:
                    c |= 0xB0
                    p -= r[11]
                else:
                    c |= 0xA0
                    p -= r[10]
                r = r[16]
            elif d >= r[1]:
                c |= 0x90
                p -= r[9]
                r = r[16]
            else:
                c |= 0x80
                p -= r[8]
                r = r[16]
        if p >> 16:
            p = 0 if p < 0 else 65535
        out[pos] = c
        pos += 1
    st.predictor = p - _OFFSET
    st.index = r[0]
    return pos
