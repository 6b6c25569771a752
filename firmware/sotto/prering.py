# Pre-trigger audio (config audio.pre_trigger, off by default): the last
# audio.pre_s seconds of microphone chunks, kept in RAM only, never written
# to flash and never sent except as the first audio chunks of an alert
# (flag pre-trigger, docs/frames.md). Privacy: docs/operator-guide.md.
#
# All memory is taken once, at boot: one bytearray for every slot's ADPCM
# codes and four small lists for each slot's length, samples and codec state.
# put() copies a chunk into the oldest slot and allocates nothing;
# a restart or power cut loses the ring, which is the point. capture() is
# the device's idle pass (sotto.app).
from micropython import const

PRE_POLL_MS = const(100)  # idle polls of the ring (a chunk lasts 250 ms or more)


class PreRing:
    def __init__(self, seconds, chunk_ms, chunk_bytes):
        self.slots = (seconds * 1000 + chunk_ms - 1) // chunk_ms
        self.chunk_bytes = chunk_bytes
        self._buf = bytearray(self.slots * chunk_bytes)
        self._mv = memoryview(self._buf)
        self._len = [0] * self.slots
        self._samples = [0] * self.slots
        self._pred = [0] * self.slots
        self._step = [0] * self.slots
        self._next = 0  # the slot put() fills next
        self.count = 0  # slots holding a chunk
        self.samples = 0  # samples held

    def clear(self):
        """Forget every chunk (the bytes are overwritten as new ones come)."""
        self.count = 0
        self.samples = 0
        self._next = 0

    def put(self, chunk):
        """Keep a chunk (data, samples, predictor, step index) from Audio.poll(),
        dropping the oldest when full."""
        data, samples, pred, step = chunk
        i = self._next
        n = len(data)
        if n > self.chunk_bytes:
            n = self.chunk_bytes  # never: a chunk is at most chunk_bytes
            data = data[:n]
        at = i * self.chunk_bytes
        self._buf[at:at + n] = data  # copied in place: no allocation (heap_lock test)
        if self.count == self.slots:
            self.samples -= self._samples[i]
        else:
            self.count += 1
        self._len[i] = n
        self._samples[i] = samples
        self._pred[i] = pred
        self._step[i] = step
        self.samples += samples
        self._next = (i + 1) % self.slots

    def get(self, k):
        """The k-th chunk held, oldest first: (data, samples, predictor, step
        index); data is a view of the ring, valid until the next put()."""
        i = (self._next - self.count + k) % self.slots
        at = i * self.chunk_bytes
        return self._mv[at:at + self._len[i]], self._samples[i], self._pred[i], self._step[i]


def capture(ring, audio, reserve, now_ms):
    """One idle pass (no alert live): the microphone feeds the ring (nothing is
    framed or stored); in battery reserve, where only alerts may spend the
    battery, the microphone is off and the ring empty. Returns how long the
    caller may sleep. Allocates nothing beyond what Audio.poll() does."""
    if reserve:
        if audio.running:
            audio.stop()
        ring.clear()
        return 60000
    if not audio.running:
        ring.clear()  # a new stream: the ring holds one stream only
        audio.start(now_ms)
    chunk = audio.poll(now_ms)
    if chunk is not None:
        ring.put(chunk)
        audio.release()
    return PRE_POLL_MS
