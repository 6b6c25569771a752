# Sotto frame payloads (docs/frames.md, version 1): field keys, frame types,
# the per-type schema, signing, hash-chain links and the packed location.
#
# FrameSigner.sign(fields) is the hot path of an alert: the alert-start frame
# is built and signed at once on trigger, so the key's expensive work is done
# when the signer is made (at boot) and a payload costs one small CBOR map and
# one Ed25519 signature. verify() (tests, diagnostics) is strict and fails
# closed with a FrameError carrying a reason code of docs/frames.md.
import hashlib
import struct

from micropython import const

from sotto import cbor, cose

VERSION = const(1)

# payload keys
K_V = const(0)
K_T = const(1)
K_SID = const(2)
K_SEQ = const(3)
K_TIME = const(4)
K_UP = const(5)
K_LOC = const(6)
K_BATT = const(7)
K_PREV = const(8)
K_TRIG = const(9)
K_FLAGS = const(10)
K_CODEC = const(11)
K_RATE = const(12)
K_OFF = const(13)
K_ADIG = const(14)
K_AST = const(15)
K_NS = const(16)
K_HB = const(17)
K_ST = const(18)
K_DROP = const(19)
K_WHY = const(20)
K_CMD = const(21)  # reply: the id of the centre's command it answers
K_RES = const(22)  # reply: RES_*
K_UNAUTH = const(23)  # status, heartbeat: answers not authenticated since boot
# device health (status, heartbeat; never a location)
K_FW = const(24)  # tstr: the running firmware version
K_CFGV = const(25)  # the applied configuration version
K_RST = const(26)  # reset cause (RST_*)
K_BOOTS = const(27)  # boots since provisioning
K_FAULTS = const(28)  # faults caught since boot
K_QD = const(29)  # frames waiting in the queue
K_CSQ = const(30)  # signal quality 0..31, 99 unknown
K_VISIT = const(31)  # check-in: the visit's id
K_DUE = const(32)  # check-in: the visit's end, device unix time s (0: time unknown)
K_DUR = const(33)  # check-in: seconds from now to the visit's end (0: the visit ended)
K_RX = const(34)  # status, heartbeat, alert-start: which receiver (RX_*) the frame was made for
K_PEND = const(35)  # status: tstr, the version staged for the next boot (docs/ota.md)
K_UPD = const(36)  # status: the last update's result, UPD_*
K_ERR = const(37)  # status: tstr <= 64 bytes: why a configuration was refused or an update failed
_K_LAST = const(37)  # the highest key of the format (SPEC-wire)
# Key masks come in two halves so that every mask is a small int on the
# device (31 bits: a `1 << 30` would be a heap-allocated big int): keys
# 0.._K_HI-1 in the low mask (1 << k), keys _K_HI.. in the high one (1 << (k - _K_HI)).
_K_HI = const(30)

# frame types (t)
ALERT_START = const(1)
LOCATION = const(2)
AUDIO = const(3)
CANCEL = const(4)
DURESS = const(5)
END = const(6)
HEARTBEAT = const(7)
CHECK_IN = const(8)
STATUS = const(9)
REPLY = const(10)  # the confirmation of a centre command: not an alert frame, no prev
ALERT_TYPES = (ALERT_START, LOCATION, AUDIO, CANCEL, DURESS, END)

# flags bits, location sources, codec, trig, status and end reasons
FLAG_DURESS = const(1)
FLAG_MINIMAL = const(2)
FLAG_RESERVE = const(4)
FLAG_INSECURE_TLS = const(8)  # the device runs TLS without server authentication
FLAG_PRE_TRIGGER = const(16)  # audio: captured before the trigger (the RAM ring)
FLAG_CONFIG_INVALID = const(32)  # status, heartbeat: running on config.good or built-in defaults
SRC_GNSS = const(1)
SRC_CELL = const(2)
SRC_LAST_KNOWN = const(3)
CODEC_IMA_ADPCM = const(1)
TRIG_HOLD = const(1)
TRIG_PRESSES = const(2)
TRIG_CHECKIN = const(3)  # a check-in visit overran (sotto.checkin)
TRIG_NO_MOTION = const(4)  # still for motion.no_motion_s, pre-alarm not cancelled (sotto.motion)
TRIG_MAN_DOWN = const(5)  # free-fall, impact, stillness, pre-alarm not cancelled
ST_BATT_LOW = const(1)
ST_BATT_CRITICAL = const(2)
ST_BATT_RESERVE = const(3)
ST_BOOT_LOOP = const(4)
ST_QUEUE_FULL = const(5)
ST_STARTED = const(6)
ST_HEALTH = const(7)  # health report: after a configuration change (cfgv, or err if refused)
ST_CONFIG_INVALID = const(8)  # config.json missing or corrupt: running on a fallback
ST_RECEIVER_DOWN = const(9)  # rx names a receiver that has stopped answering
ST_NOT_THROUGH = const(10)  # the alert-start was not delivered within feedback.not_through_s
ST_UPDATE = const(11)  # an update's result (upd, and err when it failed or was refused)
RX_PRIMARY = const(0)
RX_SECONDARY = const(1)
# update results (upd); docs/ota.md
UPD_APPLIED = const(1)  # the new release runs and passed its health check
UPD_ROLLED_BACK = const(2)  # it failed its health check: the previous one runs again
UPD_STAGED = const(3)  # downloaded and verified: switched to at the next boot
UPD_BAD_SIGNATURE = const(4)  # the manifest is not signed by the release key
UPD_BAD_VERSION = const(5)  # a downgrade not allowed, or below the release's minimum
UPD_BAD_BOARD = const(6)  # not built for this board
UPD_BAD_FILE = const(7)  # a file did not match its SHA-256 or size
UPD_FLASH = const(8)  # the flash refused the staging (full or failing)
UPD_CENTRE = const(9)  # the centre could not give the release (withdrawn, unknown)
WHY_DEVICE = const(1)
WHY_CENTRE = const(2)
WHY_MAX_DURATION = const(3)
WHY_BATTERY = const(4)
# reply results (res)
RES_DONE = const(1)
RES_REFUSED = const(2)
RES_YES = const(3)
RES_NO = const(4)
RES_NO_ANSWER = const(5)
RES_UNKNOWN = const(6)
RES_INVALID = const(7)

# reset causes (rst), as machine.reset_cause() names them
RST_UNKNOWN = const(0)
RST_POWER_ON = const(1)
RST_HARD = const(2)
RST_WDT = const(3)
RST_DEEPSLEEP = const(4)
RST_SOFT = const(5)
RST_BROWNOUT = const(6)
ERR_MAX_BYTES = const(64)
FW_MAX_BYTES = const(32)

LOC_BYTES = const(13)
LINK_BYTES = const(8)
SMS_MAX_BYTES = const(140)
FRAME_HEAD_MAX = const(512)  # room for a frame's COSE_Sign1 part in sign_into()'s buffer
_U32 = const(0xFFFFFFFF)


def _bits(*keys):
    # keys below _K_HI only (a bit above 30 would be a big int on the device)
    m = 0
    for k in keys:
        if k >= _K_HI:
            raise ValueError("key %d belongs in the high mask (_hbits)" % k)
        m |= 1 << k
    return m


def _hbits(*keys):
    m = 0
    for k in keys:
        m |= 1 << (k - _K_HI)
    return m


_COMMON = _bits(K_V, K_T, K_SEQ, K_TIME, K_UP)
_IN_ALERT = _COMMON | _bits(K_SID)
_HEALTH = _bits(K_FW, K_CFGV, K_QD)
_HEALTH_FULL = _HEALTH | _bits(K_RST, K_BOOTS, K_FAULTS)
# (required, optional) keys below _K_HI per frame type; flags are optional everywhere
_SCHEMA = {
    ALERT_START: (_IN_ALERT | _bits(K_BATT, K_TRIG), _bits(K_LOC)),
    LOCATION: (_IN_ALERT | _bits(K_LOC, K_PREV), 0),
    AUDIO: (_IN_ALERT | _bits(K_PREV, K_CODEC, K_RATE, K_OFF, K_ADIG, K_AST, K_NS), 0),
    CANCEL: (_IN_ALERT | _bits(K_PREV), _bits(K_BATT)),
    DURESS: (_IN_ALERT | _bits(K_PREV), _bits(K_LOC, K_BATT)),
    END: (_IN_ALERT | _bits(K_PREV, K_WHY), _bits(K_BATT)),
    HEARTBEAT: (_COMMON | _bits(K_BATT, K_HB), _bits(K_UNAUTH) | _HEALTH),
    CHECK_IN: (_COMMON | _bits(K_BATT), _bits(K_LOC)),
    STATUS: (_COMMON | _bits(K_BATT, K_ST), _bits(K_DROP, K_UNAUTH) | _HEALTH_FULL),
    REPLY: (_COMMON | _bits(K_CMD, K_RES), _bits(K_SID)),
}
# keys _K_HI.. per frame type: (required, optional) high masks; a type not here takes none
_VISIT = _hbits(K_VISIT, K_DUE, K_DUR)  # a check-in's visit: all three or none
_RX = _hbits(K_RX)  # the second path: optional where the device is dual (sotto.paths)
_CSQ = _hbits(K_CSQ)
_SCHEMA_HI = {
    CHECK_IN: (0, _VISIT),
    ALERT_START: (0, _RX),
    HEARTBEAT: (0, _RX | _CSQ),
    STATUS: (0, _RX | _CSQ | _hbits(K_PEND, K_UPD, K_ERR)),
}
_TEXT = {K_FW: FW_MAX_BYTES, K_PEND: FW_MAX_BYTES, K_ERR: ERR_MAX_BYTES}
# value ranges of the integer fields: key -> (min, max); None: no upper bound
_RANGE = {
    K_V: (0, None), K_T: (0, None), K_SID: (1, 65535), K_SEQ: (1, _U32), K_TIME: (0, None),
    K_UP: (0, _U32), K_BATT: (0, 100), K_TRIG: (1, 5), K_FLAGS: (0, None),
    K_CODEC: (1, 1), K_RATE: (1, None), K_OFF: (0, None), K_NS: (0, None), K_HB: (0, None),
    K_ST: (1, 11), K_DROP: (0, None), K_WHY: (1, 4), K_UPD: (1, 9),
    K_CMD: (1, 1 << 53), K_RES: (1, 7), K_UNAUTH: (0, None),
    K_CFGV: (0, _U32), K_RST: (0, 6), K_BOOTS: (0, _U32), K_FAULTS: (0, _U32),
    K_QD: (0, _U32), K_CSQ: (0, 99),
    K_VISIT: (1, _U32), K_DUE: (0, None), K_DUR: (0, 604800), K_RX: (RX_PRIMARY, RX_SECONDARY),
}
_BYTES = {K_LOC: LOC_BYTES, K_PREV: LINK_BYTES, K_ADIG: 32}


class FrameError(ValueError):
    """A frame that cannot be made or does not verify: `code` is a reason
    code of docs/frames.md ("bad-field", "bad-signature", ...)."""

    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code


def check_fields(fields):
    """Check a payload map (with `v`) against docs/frames.md; raise FrameError."""
    if fields.get(K_V) != VERSION:
        raise FrameError("unsupported-version", "v is %r, not %d" % (fields.get(K_V), VERSION))
    t = fields.get(K_T)
    schema = _SCHEMA.get(t) if type(t) is int else None
    if schema is None:
        raise FrameError("unknown-frame-type", "t is %r" % (t,))
    required, optional = schema
    required_hi, optional_hi = _SCHEMA_HI.get(t, (0, 0))
    have = 0
    have_hi = 0  # keys _K_HI..: both masks stay small ints (no allocation)
    for k, v in fields.items():
        if type(k) is not int or not 0 <= k <= _K_LAST or (k not in _RANGE and k not in _BYTES
                                                             and k not in _TEXT and k != K_AST):
            raise FrameError("bad-field", "key %r not allowed" % (k,))
        if k < _K_HI:
            have |= 1 << k
        else:
            have_hi |= 1 << (k - _K_HI)
        if k in _TEXT:
            if not isinstance(v, str) or not v or len(v.encode()) > _TEXT[k]:
                raise FrameError("bad-field", "key %d must be text of 1..%d bytes" % (k, _TEXT[k]))
        elif k in _BYTES:
            if not isinstance(v, bytes) or len(v) != _BYTES[k]:
                raise FrameError("bad-field", "key %d must be %d bytes" % (k, _BYTES[k]))
            if k == K_LOC:
                unpack_location(v)
        elif k == K_AST:
            if not (isinstance(v, (list, tuple)) and len(v) == 2 and type(v[0]) is int
                    and type(v[1]) is int and -32768 <= v[0] <= 32767 and 0 <= v[1] <= 88):
                raise FrameError("bad-field", "ast must be [predictor, step index]")
        else:
            lo, hi = _RANGE[k]
            if type(v) is not int or v < lo or (hi is not None and v > hi):
                raise FrameError("bad-field", "key %d: %r out of range" % (k, v))
    extra = have & ~(required | optional | (1 << K_FLAGS))
    extra_hi = have_hi & ~(required_hi | optional_hi)
    if extra or extra_hi:
        raise FrameError("bad-field", "keys %s not allowed in type %d" % (_keys(extra, extra_hi), t))
    missing = required & ~have
    missing_hi = required_hi & ~have_hi
    if missing or missing_hi:
        raise FrameError("missing-field", "type %d lacks keys %s" % (t, _keys(missing, missing_hi)))
    if have_hi & _VISIT and have_hi & _VISIT != _VISIT:
        raise FrameError("missing-field", "a visit needs visit, due and dur together")
    if K_DROP in fields and fields[K_ST] != ST_QUEUE_FULL:
        raise FrameError("bad-field", "drop is only sent with st=%d" % ST_QUEUE_FULL)


def _keys(mask, mask_hi=0):
    return [k for k in range(_K_LAST + 1)
            if (k < _K_HI and mask & (1 << k)) or (k >= _K_HI and mask_hi & (1 << (k - _K_HI)))]


class FrameSigner:
    """Signs frames as one device: kid8 (the 8-byte device id) and an
    ed25519.SigningKey (made once at boot)."""

    def __init__(self, kid8, signing_key):
        self._cose = cose.Signer(kid8, signing_key)
        self.kid = self._cose.kid

    def sign_request(self, payload):
        """A COSE_Sign1 by the device over payload (CBOR bytes): the body of a
        request that is not a frame (sotto.otafetch's POST /v1/release-chunk)."""
        return self._cose.sign(payload)

    def sign(self, fields, audio=None):
        """Wire bytes of a frame: fields is the payload map without `v`
        (flags 0 is dropped). Audio frames pass their audio bytes: the
        signer adds `adig` and returns [COSE_Sign1, audio]."""
        signed = self._signed(fields, audio)
        if audio is not None:
            # one allocation for the whole frame (no copy of the audio first)
            return b"".join((b"\x82", signed, cbor.head(2, len(audio)),
                             audio if type(audio) is bytes else bytes(audio)))
        return signed

    def sign_into(self, buf, fields, audio=None):
        """sign(), written into buf (a bytearray made once, of at least
        frame_bytes(len(audio)) bytes) instead of a new object: returns a
        memoryview of the frame at the start of buf, valid until buf is written
        again. The device makes every frame this way, so an audio frame costs
        no allocation of its size (the COSE_Sign1 part is small). A frame that
        does not fit in buf comes back as new bytes instead (never lost)."""
        signed = self._signed(fields, audio)
        n = len(signed)
        if audio is None:
            if n > len(buf):
                return signed
            buf[0:n] = signed
            return memoryview(buf)[:n]
        head = cbor.head(2, len(audio))
        total = 1 + n + len(head) + len(audio)
        if total > len(buf):  # a buffer made too small: a configuration error, not the hot path
            return b"".join((b"\x82", signed, head, audio if type(audio) is bytes else bytes(audio)))
        buf[0] = 0x82
        buf[1:1 + n] = signed
        at = 1 + n
        buf[at:at + len(head)] = head
        at += len(head)
        buf[at:total] = audio
        return memoryview(buf)[:total]

    def _signed(self, fields, audio):
        # the tagged COSE_Sign1 of the payload (small: audio travels beside it)
        if K_V in fields or K_ADIG in fields:
            raise FrameError("bad-field", "v and adig are set by the signer")
        payload = dict(fields)
        payload[K_V] = VERSION
        if payload.get(K_FLAGS) == 0:
            del payload[K_FLAGS]
        if payload.get(K_T) == AUDIO:
            if audio is None:
                raise FrameError("audio-missing", "an audio frame needs its audio bytes")
            payload[K_ADIG] = hashlib.sha256(audio).digest()
        elif audio is not None:
            raise FrameError("audio-unexpected", "only audio frames carry audio")
        check_fields(payload)
        return self._cose.sign(cbor.encode(payload))


def frame_bytes(audio_bytes=0):
    """How large a buffer sign_into() needs for a frame with this much audio
    (FRAME_HEAD_MAX for the COSE_Sign1 part: about 200 bytes are used)."""
    return audio_bytes + FRAME_HEAD_MAX


def split(wire):
    """(decoded COSE_Sign1 item, its bytes, audio or None) of a frame on the
    wire. Raises FrameError (malformed-cbor, not-cose-sign1)."""
    try:
        if wire and wire[0] == 0x82:  # [COSE_Sign1, audio]
            item, end = cbor.decode_item(wire, 1)
            audio = cbor.decode(memoryview(wire)[end:])
            if not isinstance(audio, bytes):
                raise FrameError("not-cose-sign1", "audio frame's second element is not bytes")
            return item, bytes(wire[1:end]), audio
        return cbor.decode(wire), bytes(wire), None
    except cbor.CBORError as e:
        raise FrameError("malformed-cbor", str(e)) from None


def chain_link(wire):
    """The `prev` of the next frame of the same alert: the first 8 bytes of
    SHA-256 over this frame's tagged COSE_Sign1 (audio frames: that part).
    wire: any bytes-like; the audio is neither decoded nor copied."""
    if wire and wire[0] == 0x82:
        try:
            _, end = cbor.decode_item(wire, 1)  # the COSE_Sign1 only: where it ends
        except cbor.CBORError as e:
            raise FrameError("malformed-cbor", str(e)) from None
        return hashlib.sha256(memoryview(wire)[1:end]).digest()[:LINK_BYTES]
    return hashlib.sha256(wire).digest()[:LINK_BYTES]


def verify(wire, public_key):
    """(kid, fields, audio) of a frame whose signature, schema and audio digest
    are all good; FrameError with the reason otherwise."""
    item, _, audio = split(wire)
    try:
        kid, payload = cose.verify(item, public_key)
    except cose.COSEError as e:
        raise FrameError(e.code, str(e)) from None
    try:
        fields = cbor.decode(payload)
    except cbor.CBORError as e:
        raise FrameError("malformed-cbor", "payload: %s" % e) from None
    if not isinstance(fields, dict):
        raise FrameError("bad-field", "payload is not a map")
    check_fields(fields)
    if fields[K_T] == AUDIO:
        if audio is None:
            raise FrameError("audio-missing", "audio frame without its audio bytes")
        if hashlib.sha256(audio).digest() != fields[K_ADIG]:
            raise FrameError("audio-digest-mismatch", "audio does not match adig")
    elif audio is not None:
        raise FrameError("audio-unexpected", "audio beside a frame of type %d" % fields[K_T])
    return kid, fields, audio


def pack_location(lat_e7, lon_e7, acc_m, age_s, source):
    """The 13-byte `loc`. Accuracy and age are clamped to 0..65535 (65535
    means that much or worse); latitude, longitude or source out of range
    raise ValueError (a wrong position is worse than none)."""
    if not -900000000 <= lat_e7 <= 900000000 or not -1800000000 <= lon_e7 <= 1800000000:
        raise ValueError("position out of range")
    if source not in (SRC_GNSS, SRC_CELL, SRC_LAST_KNOWN):
        raise ValueError("location source %r" % (source,))
    acc_m = 0 if acc_m < 0 else (65535 if acc_m > 65535 else acc_m)
    age_s = 0 if age_s < 0 else (65535 if age_s > 65535 else age_s)
    return struct.pack(">iiHHB", lat_e7, lon_e7, acc_m, age_s, source)


def unpack_location(loc):
    """(lat_e7, lon_e7, acc_m, age_s, source) of a 13-byte `loc`; FrameError
    (bad-field) if it is not one."""
    if len(loc) != LOC_BYTES:
        raise FrameError("bad-field", "loc is %d bytes, not %d" % (len(loc), LOC_BYTES))
    lat, lon, acc, age, src = struct.unpack(">iiHHB", loc)
    if not -900000000 <= lat <= 900000000 or not -1800000000 <= lon <= 1800000000 \
            or src not in (SRC_GNSS, SRC_CELL, SRC_LAST_KNOWN):
        raise FrameError("bad-field", "loc out of range")
    return lat, lon, acc, age, src
