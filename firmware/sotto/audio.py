# The microphone pipeline: I2S words from the INMP441, 16-bit, 8 kHz mono,
# IMA-ADPCM in chunks (default 1 s).
#
# Capture runs at 8 kHz directly: the INMP441 accepts a word clock of 7.8 to
# 50 kHz (SCK 0.5-3.2 MHz; 8 kHz x 64 bits = 512 kHz) and its own decimation
# filter band-limits the signal to 0.423 x fs, so nothing needs resampling and
# aliasing is handled in the microphone. Each 32-bit word holds 24-bit data,
# left-justified; the encoder keeps its top 16 bits.
#
# All buffers are made once here, and the encoder's tables built (boot, not
# the alert): the capture buffer (reused on every read) and two chunk buffers
# for the ADPCM codes. service() drains whatever the I2S driver has into the
# encoder; a chunk that fills waits for poll() while the encoder goes on in
# the other buffer. poll() returns it as (data, samples, predictor,
# step_index): data is a memoryview of its buffer, lent to the caller until
# it calls release() or the next poll() or flush() (the device signs it into a
# frame at once, then releases it; keep bytes(data) to hold it longer), and
# predictor and step index are the codec
# state *before* the chunk's first sample (frame key `ast`). A chunk fills
# into the lent buffer never: the encoder waits instead (the HAL counts the
# overruns). The device calls service() also between the steps of signing a
# frame (a signature takes longer on the device than the I2S ring holds), so
# capture never waits for a frame to be made. A read that ends inside a word
# keeps those bytes for the next read, so the stream never slips out of word
# alignment.
from micropython import const

from sotto import adpcm

READ_SAMPLES = const(256)  # per I2S read: 1 KB of 32-bit words


class Audio:
    def __init__(self, hal, rate_hz=8000, chunk_ms=1000):
        self.hal = hal
        self.rate_hz = rate_hz
        self.chunk_samples = rate_hz * chunk_ms // 1000
        self._raw = bytearray(READ_SAMPLES * 4)
        self._mv = memoryview(self._raw)
        self.chunk_bytes = (self.chunk_samples + 1) // 2  # ADPCM codes of a whole chunk
        self._bufs = (bytearray(self.chunk_bytes), bytearray(self.chunk_bytes))
        self._cur = 0  # the buffer being filled
        self._out = self._bufs[0]
        self._lent = -1  # the buffer whose chunk poll() or flush() handed out last
        adpcm.prepare()  # the encoder's tables (about 11 KB), before any alert
        self._pos = 0
        self._rem = 0  # bytes of an incomplete word waiting at _raw[0:_rem]
        self._samples = 0  # samples in the chunk being filled
        self._state = adpcm.State()
        self._chunk_state = (0, 0)
        self._ready = None  # a finished chunk waiting for poll()
        self.running = False
        self.total_samples = 0  # since start(): the offset (`off`) of the chunk poll() returns next

    def start(self, now_ms=0):
        self._state = adpcm.State()
        self._chunk_state = (0, 0)
        self._pos = 0
        self._rem = 0
        self._samples = 0
        self._ready = None
        self._cur = 0
        self._out = self._bufs[0]
        self._lent = -1
        self.total_samples = 0
        self.hal.mic_start(self.rate_hz)
        self.running = True

    def stop(self):
        if self.running:
            self.hal.mic_stop()
            self.running = False

    def poll(self, now_ms=0):
        """A finished chunk, or None. Call often enough that the driver's own
        buffer does not overflow (the HAL counts overruns)."""
        if not self.running:
            return None
        self._lent = -1  # the caller is done with the chunk it had
        self.service()
        chunk = self._ready
        if chunk is not None:
            self._ready = None
            self._lent = 1 - self._cur
            self.total_samples += chunk[1]
        return chunk

    def release(self):
        """The caller is done with the chunk poll() or flush() gave it: its
        buffer may be filled again."""
        self._lent = -1

    def service(self):
        """Encode whatever the I2S driver holds; a chunk that fills waits for
        poll(). Stops reading only if a second chunk fills before poll() took
        the first (two seconds without a poll at the default chunk length)."""
        if not self.running:
            return
        hal = self.hal
        raw = self._raw
        while True:
            if self._samples >= self.chunk_samples:
                if self._ready is not None or self._lent == 1 - self._cur:
                    return  # no free buffer: the I2S ring waits (overruns if it fills)
                self._ready = self._finish()
                self._cur = 1 - self._cur
                self._out = self._bufs[self._cur]
            rem = self._rem
            end = (self.chunk_samples - self._samples) * 4  # whole words this chunk still takes
            if end > len(raw):
                end = len(raw)
            n = hal.mic_readinto(self._mv[rem:end])
            if not n:
                return
            n += rem
            whole = n & ~3
            if whole:
                if self._samples == 0:
                    self._chunk_state = self._state.snapshot()
                self._pos = adpcm.encode_i2s32(raw, whole, self._out, self._pos, self._state)
                self._samples += whole >> 2
            self._rem = n - whole
            for k in range(self._rem):  # at most 3 bytes of a split word
                raw[k] = raw[whole + k]

    def flush(self):
        """The chunk poll() would return next, else the partial chunk at the
        end of a clip, else None."""
        chunk = self._ready
        lent = 1 - self._cur
        if chunk is None and self._samples:
            chunk = self._finish()
            lent = self._cur
        self._ready = None
        if chunk is not None:
            self._lent = lent
            self.total_samples += chunk[1]
        return chunk

    def _finish(self):
        self._pos = adpcm.flush(self._out, self._pos, self._state)
        data = memoryview(self._out)[:self._pos]  # no copy: the buffer is lent (see the top)
        chunk = (data, self._samples, self._chunk_state[0], self._chunk_state[1])
        self._samples = 0
        self._pos = 0
        return chunk
