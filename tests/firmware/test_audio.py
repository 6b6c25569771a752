# The microphone pipeline (the encoder itself: test_adpcm.py): chunks of the
# configured length, each with the codec state before its first sample; reads
# of any size, even ones that end inside a 32-bit word; start/stop.
from fakehal import FakeHal
from fwtest import tmpdir
from sotto import adpcm
from sotto.audio import Audio
from test_adpcm import decode, i2s32, noise


def kept(chunk):
    """A chunk as the caller keeps it: poll() lends its data only until the next call."""
    return None if chunk is None else (bytes(chunk[0]),) + tuple(chunk[1:])


def test_pipeline_chunks_carry_the_state_before_their_first_sample():
    hal = FakeHal(tmpdir("audio"))
    a = Audio(hal, rate_hz=8000, chunk_ms=1000)
    a.start(0)
    chunks = []
    for t in range(0, 3100, 20):
        hal.set_time(t)
        c = kept(a.poll(t))
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


class ByteMic:
    """A HAL whose microphone hands out a fixed byte stream in reads of the
    given sizes (cycled), the way a driver may split its DMA blocks."""

    def __init__(self, data, sizes):
        self.data = data
        self.sizes = sizes
        self.at = 0
        self.reads = 0
        self.on = False

    def mic_start(self, rate_hz):
        self.on = True

    def mic_stop(self):
        self.on = False

    def mic_readinto(self, buf):
        n = min(len(buf), self.sizes[self.reads % len(self.sizes)], len(self.data) - self.at)
        self.reads += 1
        buf[0:n] = self.data[self.at:self.at + n]
        self.at += n
        return n


def direct(raw):
    out = bytearray(len(raw) // 8 + 1)
    st = adpcm.State()
    pos = adpcm.flush(out, adpcm.encode_i2s32(raw, len(raw), out, 0, st), st)
    return bytes(out[:pos])


def test_reads_split_inside_words_lose_nothing_and_stay_aligned():
    s = noise(5000, 11, 12000)
    raw = i2s32(s)
    for sizes in ([1023, 5, 2, 1, 770], [3, 4093], [1]):
        hal = ByteMic(raw, sizes)
        a = Audio(hal, rate_hz=8000, chunk_ms=250)  # 2000-sample chunks
        a.start(0)
        chunks = []
        for t in range(20000):
            c = kept(a.poll(t))
            if c is not None:
                chunks.append(c)
            if hal.at == len(raw):
                break
        tail = kept(a.flush())
        assert [c[1] for c in chunks] == [2000, 2000] and tail[1] == 1000
        assert b"".join(c[0] for c in chunks) + tail[0] == direct(raw)
        # every chunk decodes on its own from its recorded state
        whole = decode(direct(raw), 5000)
        assert decode(chunks[1][0], 2000, chunks[1][2], chunks[1][3]) == whole[2000:4000]
        assert decode(tail[0], 1000, tail[2], tail[3]) == whole[4000:]


def test_start_again_begins_a_fresh_clip():
    raw = i2s32(noise(1600, 2, 5000))
    hal = ByteMic(raw + raw + raw, [1024])  # the first clip reads ahead into its second chunk
    a = Audio(hal, rate_hz=8000, chunk_ms=200)
    a.start(0)
    first = kept(a.poll(0))
    a.stop()
    assert not hal.on
    a.start(0)
    second = kept(a.poll(0))
    assert first == second  # same samples, same fresh state (0, 0), offset back to 0
    assert second[2:] == (0, 0) and a.total_samples == 1600
