# The store-and-forward queue: every frame waits on flash until the receiver
# has acknowledged it.
#
# One file per frame under q/, named by sequence number and type, written with
# Storage.write_atomic (write, flush, rename): a power cut leaves either the
# whole record or a stale .tmp, never half a record under a real name. Each
# record carries a CRC-32 of the frame; recover() at boot drops what is torn
# (a .tmp, or a record whose CRC fails) and keeps every other record.
#
# Only a small index lives in RAM: (seq, type, size) per frame. Frames are read
# back from flash when delivery asks for a batch.
#
# Bounded: when a push would pass max_bytes (or the flash is full), the oldest
# frames are dropped in this order: audio, heartbeats, status and check-in,
# then locations. Alert-start, cancel, duress and end frames are never dropped;
# if only they are left, push() raises QueueFull and nothing stored is lost.
import struct
from binascii import crc32

from micropython import const

from sotto import frames
from sotto.log import Logger
from sotto.storage import StorageError

DIR = "q"
_MAGIC = b"SQR1"
_HEAD = ">4sBII"  # magic, frame type, seq, crc32 of the frame
_HEAD_BYTES = const(13)
_OVERHEAD = const(64)  # file system cost per record, counted against max_bytes
DROP_ORDER = (frames.AUDIO, frames.HEARTBEAT, frames.STATUS, frames.CHECK_IN, frames.LOCATION)

_log = Logger("queue")


class QueueFull(StorageError):
    """No room even after dropping everything droppable. reason "queue-full"."""

    def __init__(self, detail):
        StorageError.__init__(self, 28, "queue-full", DIR, detail)


def _name(seq, ftype):
    return "%s/%08x.%d" % (DIR, seq, ftype)


class FrameQueue:
    def __init__(self, storage, max_bytes=262144):
        self.storage = storage
        self.max_bytes = max_bytes
        self._index = []  # [seq, ftype, size], sorted by seq
        self.used_bytes = 0
        self.dropped = 0  # frames dropped because the queue or the flash was full
        self.dropped_by_type = {}
        self.torn = 0  # records discarded at recovery
        storage.makedirs(DIR)

    # -- boot ----------------------------------------------------------------------
    def recover(self):
        """Rebuild the index from flash, dropping only torn records; returns
        how many records were kept."""
        st = self.storage
        index = []
        used = 0
        for fn in st.listdir(DIR):
            path = DIR + "/" + fn
            if fn.endswith(".tmp"):
                st.remove(path)
                self.torn += 1
                continue
            raw = st.read(path)
            rec = self._parse(raw)
            if rec is None:
                _log.w("dropping torn record %s", fn)
                st.remove(path)
                self.torn += 1
                continue
            ftype, seq, size = rec
            index.append([seq, ftype, size])
            used += size + _OVERHEAD
        index.sort()
        self._index = index
        self.used_bytes = used
        return len(index)

    @staticmethod
    def _parse(raw):
        if raw is None or len(raw) < _HEAD_BYTES:
            return None
        magic, ftype, seq, crc = struct.unpack(_HEAD, raw[:_HEAD_BYTES])
        if magic != _MAGIC or crc32(memoryview(raw)[_HEAD_BYTES:]) & 0xFFFFFFFF != crc:
            return None
        return ftype, seq, len(raw) - _HEAD_BYTES

    # -- adding ----------------------------------------------------------------------
    def push(self, wire, ftype, seq):
        """Store a frame durably (done when this returns). Makes room by the
        drop order; raises QueueFull (nothing lost) or StorageError."""
        size = len(wire)
        cost = size + _OVERHEAD
        if cost > self.max_bytes:
            raise QueueFull("frame of %d bytes larger than the queue" % size)
        while self.used_bytes + cost > self.max_bytes:
            if not self._drop_one():
                raise QueueFull("%d bytes of frames that are never dropped" % self.used_bytes)
        head = struct.pack(_HEAD, _MAGIC, ftype, seq, crc32(wire) & 0xFFFFFFFF)
        while True:
            try:
                self.storage.write_atomic(_name(seq, ftype), (head, wire))
                break
            except StorageError as e:
                if e.reason != "flash-full" or not self._drop_one():
                    raise
        self._insert([seq, ftype, size])
        self.used_bytes += cost

    def _insert(self, entry):
        idx = self._index
        i = len(idx)
        while i and idx[i - 1][0] > entry[0]:
            i -= 1
        if i and idx[i - 1][0] == entry[0]:
            self.used_bytes -= idx[i - 1][2] + _OVERHEAD
            idx[i - 1] = entry  # same seq pushed again: the new record replaced it
        else:
            idx.insert(i, entry)

    def _drop_one(self):
        for ftype in DROP_ORDER:
            for entry in self._index:
                if entry[1] == ftype:
                    self._remove(entry)
                    self.dropped += 1
                    self.dropped_by_type[ftype] = self.dropped_by_type.get(ftype, 0) + 1
                    _log.w("queue full: dropped frame %d (type %d)", entry[0], ftype)
                    return True
        return False

    def _remove(self, entry):
        self.storage.remove(_name(entry[0], entry[1]))
        self._index.remove(entry)
        self.used_bytes -= entry[2] + _OVERHEAD

    # -- delivery ----------------------------------------------------------------------
    def batch(self, max_frames, max_bytes):
        """[(seq, wire), ...] in delivery order: alert-start frames first, then
        by seq; at most max_frames and (after the first) max_bytes."""
        out = []  # type: list
        total = 0
        for want_start in (True, False):
            for seq, ftype, size in self._index:
                if (ftype == frames.ALERT_START) != want_start:
                    continue
                if len(out) >= max_frames or (out and total + size > max_bytes):
                    return out
                wire = self._read(seq, ftype)
                if wire is None:
                    continue
                out.append((seq, wire))
                total += size
        return out

    def _read(self, seq, ftype):
        raw = self.storage.read(_name(seq, ftype))
        if self._parse(raw) is None:
            _log.e("record %d unreadable", seq)
            return None
        return raw[_HEAD_BYTES:]

    def ack(self, seqs):
        """The receiver stored these frames: remove them for good."""
        for seq in seqs:
            for entry in self._index:
                if entry[0] == seq:
                    self._remove(entry)
                    break

    def newest(self, ftype):
        """The newest frame of a type (e.g. a location, for the SMS fallback)."""
        for i in range(len(self._index) - 1, -1, -1):
            seq, t, _ = self._index[i]
            if t == ftype:
                return self._read(seq, t)
        return None

    def max_seq(self):
        return self._index[-1][0] if self._index else 0

    def seqs(self):
        return [e[0] for e in self._index]

    def count(self, ftype):
        n = 0
        for e in self._index:
            if e[1] == ftype:
                n += 1
        return n

    def __len__(self):
        return len(self._index)
