# The store-and-forward queue: every frame waits on flash until the receiver
# has acknowledged it.
#
# One file per frame under q/, named by sequence number and type, written with
# Storage.write_atomic (write, flush, rename): a power cut leaves either the
# whole record or a stale .tmp, never half a record under a real name. Each
# record carries a CRC-32 of the frame; recover() at boot drops what is torn
# (a .tmp, or a record whose CRC or name does not match) and keeps every other
# record.
#
# Only a small index lives in RAM: [seq, type, size] per frame, sorted by seq.
# Frames are read back from flash when delivery asks for them: streamed in
# pieces through a buffer the caller made once (entries(), check(), pieces():
# no allocation of a frame's size), or whole (batch(), read()).
#
# Bounded: when a push would pass max_bytes (or the flash is full), frames are
# dropped by kind, oldest first: heartbeats, then status frames, then audio,
# then check-ins, then locations. A frame is never dropped to make room for a
# frame of a kind that goes earlier (a new audio chunk does not push out a
# location: the chunk itself is dropped). Alert-start, cancel, duress and end
# frames are never dropped; if only they are left, push() raises QueueFull and
# nothing stored is lost.
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
# dropped first .. last; kinds not listed are never dropped
DROP_ORDER = (frames.HEARTBEAT, frames.STATUS, frames.AUDIO, frames.CHECK_IN, frames.LOCATION)
_KEEP = const(99)  # rank of the kinds that are never dropped

_log = Logger("queue")


class QueueFull(StorageError):
    """No room even after dropping everything droppable. reason "queue-full"."""

    def __init__(self, detail):
        StorageError.__init__(self, 28, "queue-full", DIR, detail)


def _name(seq, ftype):
    return "%s/%08x.%d" % (DIR, seq, ftype)


def _rank(ftype):
    for i in range(len(DROP_ORDER)):
        if DROP_ORDER[i] == ftype:
            return i
    return _KEEP


def record_bytes(frame_bytes):
    """What one frame of this size counts against max_bytes."""
    return frame_bytes + _OVERHEAD


class FrameQueue:
    def __init__(self, storage, max_bytes=262144):
        self.storage = storage
        self.max_bytes = max_bytes
        self._index = []  # [seq, ftype, size], sorted by seq
        self.used_bytes = 0
        self.dropped = 0  # frames lost to a full queue or flash (stored ones dropped + new ones refused)
        self.dropped_by_type = {}
        self.refused = 0  # of those, new frames not stored (a kind that goes before what is queued)
        self.torn = 0  # records discarded at recovery
        self.corrupt = 0  # records found unreadable after recovery (flash damage)
        self.on_ack = None  # fn(seqs) after ack(): the Device's observer hook
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
            rec = None if fn.endswith(".tmp") else self._parse(st.read(path))
            if rec is None or _name(rec[1], rec[0]) != path:
                if not fn.endswith(".tmp"):
                    _log.w("dropping torn record %s", fn)
                self.torn += 1
                try:
                    st.remove(path)
                except OSError as e:  # not indexed either way; the next boot tries again
                    _log.e("cannot remove %s: %s", fn, e)
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
        """Store a frame durably (done when this returns True). Makes room by
        the drop order; False when the frame itself was dropped by it (counted
        in dropped); raises QueueFull (nothing lost) for a frame that is never
        dropped, StorageError when the flash fails."""
        size = len(wire)
        cost = size + _OVERHEAD
        rank = _rank(ftype)
        if cost > self.max_bytes:
            if rank == _KEEP:
                raise QueueFull("frame of %d bytes larger than the queue" % size)
            return self._refuse(ftype, seq)
        need = self.used_bytes + cost - self.max_bytes
        if need > 0:
            victims = self._plan(need, rank)
            if victims is None:
                if rank == _KEEP:
                    raise QueueFull("%d bytes of frames that are never dropped" % self.used_bytes)
                return self._refuse(ftype, seq)
            for e in victims:
                self._drop(e)
        head = struct.pack(_HEAD, _MAGIC, ftype, seq, crc32(wire) & 0xFFFFFFFF)
        while True:
            try:
                self.storage.write_atomic(_name(seq, ftype), (head, wire))
                break
            except StorageError as e:
                if e.reason != "flash-full":
                    raise
                victims = self._plan(1, rank)  # the flash says how much: one at a time
                if victims is None:
                    if rank == _KEEP:
                        raise
                    return self._refuse(ftype, seq)
                self._drop(victims[0])
        self._insert([seq, ftype, size])
        self.used_bytes += cost
        return True

    def _plan(self, need, rank):
        """Frames to drop to free `need` bytes, dropping only kinds that go
        before `rank` or with it; None when that is not enough."""
        victims = []
        freed = 0
        for ftype in DROP_ORDER:
            if _rank(ftype) > rank:
                break
            for e in self._index:
                if e[1] == ftype:
                    victims.append(e)
                    freed += e[2] + _OVERHEAD
                    if freed >= need:
                        return victims
        return None

    def _insert(self, entry):
        idx = self._index
        i = len(idx)
        while i and idx[i - 1][0] > entry[0]:
            i -= 1
        if i and idx[i - 1][0] == entry[0]:
            old = idx[i - 1]
            self.used_bytes -= old[2] + _OVERHEAD
            idx[i - 1] = entry  # same seq pushed again: the new record replaced it
            if old[1] != entry[1]:
                try:
                    self.storage.remove(_name(old[0], old[1]))
                except OSError as e:
                    _log.e("cannot remove replaced record %d: %s", old[0], e)
        else:
            idx.insert(i, entry)

    def _count_drop(self, ftype):
        self.dropped += 1
        self.dropped_by_type[ftype] = self.dropped_by_type.get(ftype, 0) + 1

    def _drop(self, entry):
        self._remove(entry)
        self._count_drop(entry[1])
        _log.w("queue full: dropped frame %d (type %d)", entry[0], entry[1])

    def _refuse(self, ftype, seq):
        self._count_drop(ftype)
        self.refused += 1
        _log.w("queue full: frame %d (type %d) not stored", seq, ftype)
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
            i = 0
            while i < len(self._index):
                seq, ftype, size = self._index[i]
                i += 1
                if (ftype == frames.ALERT_START) != want_start:
                    continue
                if len(out) >= max_frames or (out and total + size > max_bytes):
                    return out
                wire = self._read(seq, ftype)
                if wire is None:
                    i -= 1  # _read took it off the index
                    continue
                out.append((seq, wire))
                total += size
        return out

    def read(self, seq, ftype):
        """A queued frame's bytes (a new object of its size: not for the hot
        path), or None when its record is damaged (then removed)."""
        return self._read(seq, ftype)

    def _read(self, seq, ftype):
        raw = self.storage.read(_name(seq, ftype))
        if self._parse(raw) is None:
            # flash damage after recovery: the frame cannot be sent as it was signed
            self._damaged(seq)
            return None
        return raw[_HEAD_BYTES:]

    def _damaged(self, seq):
        _log.e("record %d unreadable: removed", seq)
        self.corrupt += 1
        for e in self._index:
            if e[0] == seq:
                self._remove(e)
                break

    # -- delivery, streamed -------------------------------------------------------------
    def entries(self, max_frames, max_bytes):
        """[seq, ftype, size] of the frames batch() would give, in its order
        and within its limits, read from the index only."""
        out = []  # type: list
        total = 0
        for want_start in (True, False):
            for e in self._index:
                if (e[1] == frames.ALERT_START) != want_start:
                    continue
                if len(out) >= max_frames or (out and total + e[2] > max_bytes):
                    return out
                out.append(e)
                total += e[2]
        return out

    def check(self, seq, ftype, buf, h=None):
        """Read a record through buf (a bytearray made once, at least 16 bytes):
        True when it is whole and its CRC right, each piece of the frame also
        given to h.update() (h: a hashlib object, or None). A damaged record is
        removed from the queue (as batch() does) and False returned."""
        f = self.storage.open_read(_name(seq, ftype))
        if f is None:
            self._damaged(seq)
            return False
        try:
            mv = memoryview(buf)
            n = f.readinto(buf)
            if n < _HEAD_BYTES:
                self._damaged(seq)
                return False
            magic, _t, _s, want = struct.unpack_from(_HEAD, buf, 0)
            crc = 0
            start = _HEAD_BYTES
            while n:
                crc = crc32(mv[start:n], crc)
                if h is not None:
                    h.update(mv[start:n])
                n = f.readinto(buf)
                start = 0
        finally:
            f.close()
        if magic != _MAGIC or crc & 0xFFFFFFFF != want:
            self._damaged(seq)
            return False
        return True

    def pieces(self, seq, ftype, buf):
        """A queued frame's bytes read from flash into buf (a bytearray made
        once) piece by piece, the file opened once: a generator of memoryviews
        of buf, each valid until the next is taken (close() it when it is not
        run to its end). StorageError when the record is gone or shorter than
        its index entry says."""
        name = _name(seq, ftype)
        size = 0
        for e in self._index:
            if e[0] == seq:
                size = e[2]
                break
        f = self.storage.open_read(name)
        if f is None:
            raise StorageError(5, "io", name, "record gone")
        try:
            f.seek(_HEAD_BYTES)
            mv = memoryview(buf)
            left = size
            while left > 0:
                want = left if left < len(buf) else len(buf)
                n = f.readinto(mv[:want])
                if not n:
                    raise StorageError(5, "io", name, "record shorter than indexed")
                left -= n
                yield mv[:n]
        finally:
            f.close()

    def _find(self, seq):
        idx = self._index
        lo, hi = 0, len(idx)
        while lo < hi:
            mid = (lo + hi) >> 1
            if idx[mid][0] < seq:
                lo = mid + 1
            else:
                hi = mid
        return idx[lo] if lo < len(idx) and idx[lo][0] == seq else None

    def ack(self, seqs):
        """The receiver stored these frames: remove them for good. Seqs not
        (or no longer) queued are ignored."""
        for seq in seqs:
            e = self._find(seq)
            if e is not None:
                self._remove(e)
        if self.on_ack is not None:
            self.on_ack(seqs)

    def newest(self, ftype):
        """The newest frame of a type (e.g. a location, for the SMS fallback)."""
        for i in range(len(self._index) - 1, -1, -1):
            seq, t, _ = self._index[i]
            if t == ftype:
                wire = self._read(seq, t)
                if wire is not None:
                    return wire
        return None

    def frames_after(self, seq, types):
        """(seq, type, wire) of each queued frame of one of `types` with a seq
        above `seq`, oldest first (reads each from flash: a boot-time tool)."""
        for e in [e for e in self._index if e[0] > seq and e[1] in types]:
            wire = self._read(e[0], e[1])
            if wire is not None:
                yield e[0], e[1], wire

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
