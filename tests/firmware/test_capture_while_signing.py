# Capture never waits for a frame to be made: a signature and a flash write
# take a large share of what the microphone's I2S ring holds (224-256 ms), so
# the device drains the ring between their steps (Audio.service), a chunk that
# fills waits for poll() without stopping the encoder, and the session makes
# at most one audio frame per pass. The end-to-end lane measures the result at
# device speed (tools/vm/e2e.mjs: 0 overruns over a 60 s alert at F=25).
from fakehal import FakeHal, config
from fwtest import tmpdir
from sotto import frames, identity, trigger
from sotto.app import Device
from sotto.audio import Audio
from sotto.storage import Storage
from test_adpcm import i2s32, noise


class StreamHal:
    """A microphone that hands out a fixed stream, `per_read` bytes a read."""

    def __init__(self, data, per_read=1024):
        self.data = data
        self.per_read = per_read
        self.at = 0
        self.reads = 0

    def mic_start(self, rate_hz):
        pass

    def mic_stop(self):
        pass

    def mic_readinto(self, buf):
        n = min(len(buf), self.per_read, len(self.data) - self.at)
        buf[0:n] = self.data[self.at:self.at + n]
        self.at += n
        self.reads += 1
        return n


def test_a_finished_chunk_waits_for_poll_while_the_encoder_goes_on():
    raw = i2s32(noise(5000, 3, 9000))
    hal = StreamHal(raw)
    a = Audio(hal, rate_hz=8000, chunk_ms=250)  # 2000-sample chunks
    a.start(0)
    a.service()  # e.g. between the steps of a signature: nothing is handed over here
    assert a.total_samples == 0
    # the first chunk waits; the encoder went on into the second until it filled too
    assert hal.at == 4000 * 4
    first = a.poll(0)
    assert first[1] == 2000 and a.total_samples == 2000
    first = (bytes(first[0]),) + first[1:]  # lent until the next poll(): the caller copies what it keeps
    second = a.poll(0)  # it was waiting; the rest of the stream is read meanwhile
    assert second[1] == 2000 and a.total_samples == 4000 and hal.at == len(raw)
    second = (bytes(second[0]),) + second[1:]
    assert a.poll(0) is None
    tail = a.flush()
    assert tail[1] == 1000 and a.total_samples == 5000
    # nothing lost or reordered: the chunks decode as one stream
    from test_adpcm import decode

    whole = decode(first[0] + second[0] + tail[0], 5000)
    assert decode(second[0], 2000, second[2], second[3]) == whole[2000:4000]


class MicEverRead(FakeHal):
    """FakeHal whose microphone always has a block ready (as if time passed at
    every read) and which counts the reads made while a frame is signed."""

    def __init__(self, root):
        super().__init__(root)
        self.signing = False
        self.reads_while_signing = 0
        self.n = 0

    def mic_readinto(self, buf):
        if not self.mic.on:
            return 0
        if self.signing:
            self.reads_while_signing += 1
        self.n += 1
        if self.n % 2 == 0:
            return 0  # "nothing more for now": service() returns
        k = min(len(buf), 1024)
        for i in range(k):
            buf[i] = 0
        return k


def test_the_microphone_is_drained_while_a_frame_is_made():
    root = tmpdir("capture")
    hal = MicEverRead(root)
    identity.create(Storage(root), hal.random_bytes)
    dev = Device(hal, config())
    assert dev.boot(0)
    dev.session.event(trigger.ALERT, 10, dev.counters.next_sid)
    assert dev.audio.running
    sign_into = dev.signer.sign_into

    def watched(buf, fields, audio=None):
        hal.signing = True
        try:
            return sign_into(buf, fields, audio)
        finally:
            hal.signing = False

    dev.signer.sign_into = watched
    dev._emit(20, frames.LOCATION, {frames.K_SID: dev.session.sid,
                                    frames.K_LOC: frames.pack_location(0, 0, 5, 0, frames.SRC_GNSS),
                                    frames.K_PREV: bytes(8)})
    assert hal.reads_while_signing >= 3  # between every step of the signature
    before = hal.n
    dev._emit(30, frames.STATUS, {frames.K_BATT: 50, frames.K_ST: frames.ST_STARTED})
    assert hal.n - before >= 3 + 2 * 2  # and before and after the flash write


class TwoChunksAudio:
    """An audio source with a backlog: a chunk at every poll."""

    running = True

    def __init__(self):
        self.total_samples = 0
        self.polls = 0

    def start(self, now_ms):
        self.total_samples = 0

    def poll(self, now_ms):
        self.polls += 1
        self.total_samples += 8000
        return (b"\x00" * 4000, 8000, 0, 0)

    def release(self):
        pass

    def stop(self):
        self.running = False


def test_a_device_that_falls_behind_makes_one_audio_frame_per_pass():
    from sotto.session import Session

    made = []

    def emit(now_ms, ftype, fields, audio=None):
        made.append(ftype)
        return b"%d" % len(made)

    cfg = {"trigger": {"alert": {"hold_ms": 3000}, "cancel_window_s": 120}, "location_every_s": 15,
           "gnss_keep_on_s": 600, "alert_max_s": 3600,
           "audio": {"clip_s": 30, "chunk_ms": 1000, "rate_hz": 8000}}

    class Nothing:
        def fix(self, now_ms, utc_s=None):
            return None

        def confirm(self, now_ms):
            pass

    audio = TwoChunksAudio()
    s = Session(cfg, emit, Nothing(), audio, Nothing())
    s.event(trigger.ALERT, 0, lambda: 1)
    for t in (20, 40, 60):
        s.step(t)
    assert made.count(frames.AUDIO) == 3 and audio.polls == 3  # a backlog never makes a pass long


def test_a_released_chunk_frees_its_buffer_before_the_next_poll():
    # the session releases a chunk once its frame is made: a chunk that fills
    # during a long pass after that (e.g. opening an answer) does not wait for poll()
    raw = i2s32(noise(6000, 5, 9000))
    hal = StreamHal(raw)
    a = Audio(hal, rate_hz=8000, chunk_ms=250)  # 2000-sample chunks
    a.start(0)
    first = a.poll(0)
    assert first[1] == 2000 and hal.at == 4000 * 4  # the second chunk filled behind it
    a.service()
    assert hal.at == 4000 * 4  # its buffer is still lent: nothing more is read
    a.release()
    a.service()
    assert hal.at == 6000 * 4  # read on into the first buffer while the second waits for poll()
