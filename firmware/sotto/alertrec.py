# The live alert's record on flash: what the officer asked for and how far the
# alert has got, so that a power cut or a reset at any instant loses neither.
#
# One small file (NAME), replaced atomically by Storage.write_atomic. It is
# written
#   - the moment the alert pattern is recognised, before anything else (before
#     an alert id is reserved or a frame signed): `want` = alert-start, no sid
#     yet, `seq` = the last sequence number handed out so far. This is the
#     officer's intent; once it is on flash the alert cannot be lost;
#   - before a cancel or a duress frame is made (`want` = that frame), for the
#     same reason;
#   - after every frame of the alert is queued on flash (`want` = 0, `seq` and
#     `link` of that frame);
# and removed when the alert is over (its cancel or end frame is queued).
# A record whose write completed but whose rename the power cut off is used
# too (read()): the intent counts from the end of its first write.
#
# The record alone is not the truth about the chain: a power cut can fall
# between a frame reaching the queue and the record that names it. So at boot
# find() looks in the queue for frames of the alert newer than the record
# (seq above the record's); the newest of them gives the chain link, an
# alert-start there means the intent was carried out, a cancel or end there
# means the alert is over. The record's link is used only when no newer frame
# is queued (they were all acknowledged, or none was made).
import struct
from binascii import crc32

from micropython import const

from sotto import cbor, cose, frames
from sotto.log import Logger
from sotto.storage import TMP

NAME = "alert"
_VERSION = const(1)
# version, want, trig, duress, sid, utc_s of the pattern, seq, ms since the alert began, link
_FMT = ">BBBBHIII8s"
SIZE = const(30)  # struct.calcsize(_FMT) + 4 bytes of CRC-32

_log = Logger("alertrec")


class Record:
    def __init__(self, want=0, trig=0, duress=False, sid=0, utc_s=0, seq=0, elapsed_ms=0, link=b""):
        self.want = want  # frame type the officer asked for that may not be queued yet; 0: none
        self.trig = trig  # frames.TRIG_*: how the alert was raised
        self.duress = duress
        self.sid = sid  # 0: no alert id yet (an intent)
        self.utc_s = utc_s  # UTC of the alert pattern, 0 when unknown
        self.seq = seq  # frames with a higher seq were made after this record
        self.elapsed_ms = elapsed_ms
        self.link = link  # chain link of the alert's newest frame (b"": none yet)


def encode(r):
    body = struct.pack(_FMT, _VERSION, r.want, r.trig, 1 if r.duress else 0, r.sid,
                       r.utc_s & 0xFFFFFFFF, r.seq, r.elapsed_ms & 0xFFFFFFFF,
                       r.link or b"\x00" * frames.LINK_BYTES)
    return body + struct.pack(">I", crc32(body) & 0xFFFFFFFF)


def decode(raw):
    """The Record in raw, or None when it is missing or damaged."""
    if raw is None or len(raw) != SIZE:
        return None
    body = raw[:SIZE - 4]
    if struct.unpack(">I", raw[SIZE - 4:])[0] != crc32(body) & 0xFFFFFFFF:
        return None
    ver, want, trig, duress, sid, utc_s, seq, elapsed_ms, link = struct.unpack(_FMT, body)
    if ver != _VERSION:
        return None
    has_link = sid != 0 and want != frames.ALERT_START
    return Record(want, trig, bool(duress), sid, utc_s, seq, elapsed_ms, link if has_link else b"")


def read(storage):
    """The record at boot. A whole record left in NAME.tmp (the power went
    between its write and its rename; its CRC proves it whole) is newer than
    NAME: the interrupted replace is finished first."""
    rec = decode(storage.read(NAME + TMP))
    if rec is not None:
        try:
            write(storage, rec)
        except OSError as e:  # use it anyway; the next write replaces both
            _log.e("cannot finish the alert record's replace: %s", e)
        return rec
    raw = storage.read(NAME)
    rec = decode(raw)
    if rec is None and raw is not None:
        _log.e("alert record damaged (%d bytes)", len(raw))
    return rec


def remove(storage):
    """The alert is over. A stale NAME.tmp goes too (one a failed write left
    behind), or read() would take it for a newer record."""
    if storage.exists(NAME + TMP):
        storage.remove(NAME + TMP)
    storage.remove(NAME)


def write(storage, rec):
    storage.write_atomic(NAME, encode(rec))


def _fields(wire):
    """The payload map of one of our own queued frames (already CRC-checked by
    the queue, so the signature is not checked again), or None."""
    try:
        item, _, _ = frames.split(wire)
        fields = cbor.decode(cose.parse(item)[3])
    except ValueError:  # CBORError, FrameError, COSEError: not one of our frames after all
        return None
    return fields if isinstance(fields, dict) else None


class Found:
    """What the queue says happened after the record (see find())."""

    def __init__(self):
        self.sid = 0
        self.seq = 0  # the newest frame of the alert after the record; 0: none
        self.ftype = 0
        self.link = b""
        self.types = 0  # bit per frame type seen after the record


def find(rec, queue):
    """Frames of the record's alert queued after it (seq above rec.seq). An
    intent (sid 0) takes the sid of the first alert-start after it."""
    got = Found()
    got.sid = rec.sid
    for seq, ftype, wire in queue.frames_after(rec.seq, frames.ALERT_TYPES):
        fields = _fields(wire)
        if fields is None:
            continue
        sid = fields.get(frames.K_SID)
        if got.sid == 0 and ftype == frames.ALERT_START:
            got.sid = sid
        if sid != got.sid or got.sid == 0:
            continue
        got.seq = seq
        got.ftype = ftype
        got.link = frames.chain_link(wire)
        got.types |= 1 << ftype
    return got
