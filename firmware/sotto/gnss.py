# The position the device would send now.
#
# Sentences from sotto.nmea update one current fix: position, accuracy (from
# HDOP), satellites and UTC. A fix is "current" while sentences keep
# confirming it; after that the newest one is still offered with its growing
# age. A last-known position is kept on flash (save()), so an alert straight
# after boot, indoors, still carries a location, marked as last-known and with
# its age. GNSS dates before the firmware's build date are a receiver's GPS
# week-number roll-over and are moved forward by 1024 weeks (sotto.nmea).
import struct
from binascii import crc32

from micropython import const

from sotto import frames, nmea
from sotto.build import BUILD_UTC_S
from sotto.ticks import ticks_diff

LASTFIX = "lastfix"
_FMT = ">iiHIx"  # lat_e7, lon_e7, acc_m, utc_s, pad; then crc32
UERE_DM = const(50)  # user equivalent range error, 5.0 m, in decimetres: acc = HDOP x UERE
ACC_UNKNOWN_M = const(100)  # accuracy when the receiver gives no HDOP yet
CURRENT_MS = const(5000)  # a fix older than this is no longer "current"
_NOT_A_FIX = (b"N", b"E", b"M", b"S")  # RMC mode indicators that carry no measured fix


class Gnss:
    def __init__(self, storage=None, floor_s=BUILD_UTC_S):
        self.storage = storage
        self.floor_s = floor_s  # no true date is earlier: the build date
        self.reader = nmea.NmeaReader(self._sentence)
        self._now = 0
        self.lat_e7 = self.lon_e7 = 0
        self.acc_m = ACC_UNKNOWN_M
        self.sats = 0
        self.fix_ms = None  # tick of the newest valid position; None: none this boot
        self._utc = None  # (utc_s, tick) from the newest RMC with a date
        self._saved = None  # (lat, lon, acc, utc_s) last known, from flash
        self.fixes = 0
        self.rollovers = 0  # dates moved forward by 1024 weeks
        self.bad_dates = 0  # dates that cannot be right, ignored
        if storage is not None:
            self._saved = self._load()

    # -- input -------------------------------------------------------------------
    def feed(self, data, now_ms):
        """Bytes from the GNSS UART (any chunking). Bad lines are counted."""
        self._now = now_ms
        self.reader.feed(data)

    def _sentence(self, kind, f):
        if kind == nmea.RMC:
            if len(f) < 10:
                return False
            if f[2] != b"A":
                return True  # void: no fix in this sentence (a valid report)
            if len(f) > 12 and f[12][:1] in _NOT_A_FIX:
                return True  # NMEA 2.3+ mode: not valid, estimated, manual or simulated
            lat = nmea.coordinate_e7(f[3], f[4], 2)
            lon = nmea.coordinate_e7(f[5], f[6], 3)
            utc = nmea.utc_seconds(f[9], f[1])
            if lat is None or lon is None:
                return False
            if utc is not None:
                fixed = nmea.unfold_week_rollover(utc, self.floor_s)
                if fixed is None:
                    self.bad_dates += 1
                else:
                    if fixed != utc:
                        self.rollovers += 1
                    self._utc = (fixed, self._now)
            self._position(lat, lon)
            return True
        if kind == nmea.GGA:
            if len(f) < 9:
                return False
            sats = nmea._decimal(f[7], 0)
            if sats >= 0:
                self.sats = sats  # in view of the solution, with or without a fix
            q = f[6]
            if q in (b"", b"0", b"6", b"7", b"8"):
                return True  # no fix, or estimated / manual / simulated: not a measured position
            lat = nmea.coordinate_e7(f[2], f[3], 2)
            lon = nmea.coordinate_e7(f[4], f[5], 3)
            if lat is None or lon is None:
                return False
            hdop_dm = nmea._decimal(f[8], 1)  # HDOP x 10
            if hdop_dm > 0:
                self.acc_m = max(1, (hdop_dm * UERE_DM + 50) // 100)
            self._position(lat, lon)
            return True
        return True

    def _position(self, lat, lon):
        self.lat_e7 = lat
        self.lon_e7 = lon
        self.fix_ms = self._now
        self.fixes += 1

    # -- output ------------------------------------------------------------------
    def has_fix(self, now_ms):
        return self.fix_ms is not None and ticks_diff(now_ms, self.fix_ms) < CURRENT_MS

    def utc_s(self, now_ms):
        """Epoch seconds from GNSS time (week roll-over undone), carried forward by the ticks since."""
        if self._utc is None:
            return None
        utc, at = self._utc
        return utc + ticks_diff(now_ms, at) // 1000

    def fix(self, now_ms, utc_s=None):
        """(lat_e7, lon_e7, acc_m, age_s, source) of the best position, or None.
        utc_s (from sotto.clock) dates a last-known position from flash."""
        if self.fix_ms is not None:
            age_s = ticks_diff(now_ms, self.fix_ms) // 1000
            return self.lat_e7, self.lon_e7, self.acc_m, age_s, frames.SRC_GNSS
        s = self._saved
        if s is None:
            return None
        if not utc_s:
            utc_s = self.utc_s(now_ms)
        if not utc_s or not s[3] or utc_s < s[3]:
            age_s = 65535  # unknown: "that long or older"
        else:
            age_s = utc_s - s[3]
        return s[0], s[1], s[2], age_s, frames.SRC_LAST_KNOWN

    def save(self, now_ms, utc_s=None):
        """Persist the current fix as the last-known position. Returns True if
        written. The caller rate-limits (flash wear)."""
        if self.storage is None or not self.has_fix(now_ms):
            return False
        if utc_s is None:
            utc_s = self.utc_s(now_ms) or 0
        fix_utc = utc_s - ticks_diff(now_ms, self.fix_ms) // 1000 if utc_s else 0
        body = struct.pack(_FMT, self.lat_e7, self.lon_e7, min(self.acc_m, 65535), fix_utc)
        self.storage.write_atomic(LASTFIX, body + struct.pack(">I", crc32(body) & 0xFFFFFFFF))
        self._saved = (self.lat_e7, self.lon_e7, self.acc_m, fix_utc)
        return True

    def _load(self):
        raw = self.storage.read(LASTFIX)
        size = struct.calcsize(_FMT)
        if raw is None or len(raw) != size + 4:
            return None
        if struct.unpack(">I", raw[size:])[0] != crc32(raw[:size]) & 0xFFFFFFFF:
            return None  # damaged: better no position than a wrong one
        return struct.unpack(_FMT, raw[:size])[:4]

    @property
    def last_known(self):
        return self._saved

    @property
    def stats(self):
        return self.reader.stats_dict()
