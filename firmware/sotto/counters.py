# Sequence numbers (1..2^32-2) and alert session ids (1..65535) that never
# repeat, across reboots and power cuts too.
#
# Writing a counter to flash on every frame would wear it and cost time on the
# alert path, so a high-water mark is persisted in blocks: the file says "every
# value below `limit` may have been used". At boot the sequence numbers continue
# from the limit and reserve a new block at once; while running, a block is
# reserved ahead (top_up(), called when the device is idle) so the alert path
# normally never waits for flash. Alert ids are reserved only when an alert
# needs one (one small write, then three more alerts for free): reserving them
# at every boot would let a boot loop use up the 65535 ids in a day or two.
# Two slots (ctr.a / ctr.b) are written in turn, each with a generation and a
# CRC-32. write_atomic keeps a slot whole across a power cut; if the newest is
# damaged anyway (bad flash), the older one plus one block is still above every
# value handed out.
import struct
from binascii import crc32

from micropython import const

from sotto.log import Logger

# the last sequence number handed out: the persisted limit (one above it) must
# fit the slot's 32-bit field, so 2^32 - 1 itself is never used
SEQ_MAX = const(0xFFFFFFFE)
SID_MAX = const(65535)
_MAGIC = b"SCT1"
_FMT = ">4sIIII"  # magic, generation, seq limit, sid limit, crc32 of the rest
_SIZE = const(20)
_SLOTS = ("ctr.a", "ctr.b")

_log = Logger("counters")


class CounterError(Exception):
    """The counters cannot promise a fresh value (flash write failed, or the
    sequence space is used up). `reason` says which."""

    def __init__(self, reason, msg):
        super().__init__(msg)
        self.reason = reason


def _pack(gen, seq_limit, sid_limit):
    body = struct.pack(">4sIII", _MAGIC, gen, seq_limit, sid_limit)
    return body + struct.pack(">I", crc32(body) & 0xFFFFFFFF)


def _unpack(raw):
    if raw is None or len(raw) != _SIZE:
        return None
    magic, gen, seq_limit, sid_limit, crc = struct.unpack(_FMT, raw)
    if magic != _MAGIC or crc != crc32(raw[:16]) & 0xFFFFFFFF:
        return None
    return gen, seq_limit, sid_limit


class Counters:
    seq_block = 64
    sid_block = 4
    seq_low_water = 16  # top_up() reserves a new block when fewer remain

    def __init__(self, storage):
        self.storage = storage
        self._gen = 0
        self._seq = 1  # next value handed out
        self._sid = 1
        self._seq_limit = 1  # values below are reserved (may be used)
        self._sid_limit = 1
        self.writes = 0
        self.recovered = False  # True when a slot was damaged or missing after use

    def load(self, floor_seq=0, floor_sid=0):
        """At boot: continue above the persisted limits and above any value still
        seen elsewhere (floor_seq: the highest seq in the queue), then reserve."""
        found = []
        damaged = 0
        for name in _SLOTS:
            raw = self.storage.read(name)
            rec = _unpack(raw)
            if rec is not None:
                found.append(rec)
            elif raw is not None:
                damaged += 1
        seq_limit = sid_limit = 1
        gen = 0
        if found:
            found.sort()
            gen, seq_limit, sid_limit = found[-1]
            if damaged:
                # a newer slot may have been lost: step over whatever it reserved
                self.recovered = True
                seq_limit += self.seq_block
                sid_limit += self.sid_block
                _log.e("counter slot damaged; continuing above the other plus one block")
        elif damaged:
            self.recovered = True
            _log.e("both counter slots damaged; continuing above the queue's frames")
        self._gen = gen
        self._seq = max(seq_limit, floor_seq + 1, 1)
        self._sid = max(sid_limit, floor_sid + 1, 1)
        if self._sid > SID_MAX:
            self._sid = 1
        self._seq_limit = self._seq
        self._sid_limit = self._sid
        self._reserve(self.seq_block, 0)
        if len(found) < 2:
            # keep both slots valid, so one damaged slot never leaves us without a record
            self._reserve(0, 0)
        return bool(found)

    def _reserve(self, seq_n, sid_n):
        seq_limit = self._seq + seq_n if seq_n else self._seq_limit
        sid_limit = self._sid + sid_n if sid_n else self._sid_limit
        if seq_limit > SEQ_MAX + 1:
            seq_limit = SEQ_MAX + 1
        if sid_limit > SID_MAX + 1:
            sid_limit = SID_MAX + 1
        gen = self._gen + 1
        try:
            self.storage.write_atomic(_SLOTS[gen & 1], _pack(gen, seq_limit, sid_limit))
        except OSError as e:
            raise CounterError("flash", "cannot persist the counters: %s" % e) from None
        self.writes += 1
        self._gen = gen
        self._seq_limit = seq_limit
        self._sid_limit = sid_limit

    def next_seq(self):
        if self._seq > SEQ_MAX:
            raise CounterError("exhausted", "sequence numbers used up")
        if self._seq >= self._seq_limit:
            self._reserve(self.seq_block, 0)
        s = self._seq
        self._seq = s + 1
        return s

    def next_sid(self):
        if self._sid >= self._sid_limit:
            if self._sid > SID_MAX:
                # 65535 alerts on one device: start again rather than refuse an alert
                _log.e("alert ids used up; starting again at 1")
                self._sid = 1
            self._reserve(0, self.sid_block)
        s = self._sid
        self._sid = s + 1
        return s

    def top_up(self):
        """Reserve ahead while idle, so the alert path does not write flash.
        Returns True when it wrote."""
        if self._seq_limit - self._seq < self.seq_low_water and self._seq <= SEQ_MAX:
            self._reserve(self.seq_block, 0)
            return True
        return False

    @property
    def peek_seq(self):
        return self._seq
