# NMEA 0183 from the GNSS UART: RMC and GGA from any talker ($GP, $GN, $GL,
# $GA, $BD, ...), checksums validated.
#
# feed() takes whatever the UART gave (any chunking) and copies bytes into one
# pre-allocated line buffer: nothing is allocated per character. Each complete
# line is checked and parsed once. A truncated, garbled, over-long or unknown
# line is counted and dropped; nothing here raises on bad input.
#
# Coordinates become integers in 1e-7 degrees with integer arithmetic only, so
# CPython and MicroPython give the same numbers.
#
# Dates: RMC carries a two-digit year, and a receiver whose firmware did not
# expect a GPS week-number roll-over (1999-08-22, 2019-04-07) reports a date
# 1024 weeks (19.6 years) early - a Telit HE910 in April 2019 gave 1999-08-22.
# unfold_week_rollover() moves such a date forward by whole periods until it is
# no earlier than the firmware's build date, the pivot gpsd (timebase.c) and NTP
# ("basedate") use.
from micropython import const

LINE_MAX = const(96)  # NMEA says 82 characters; some receivers send a little more

RMC = const(1)
GGA = const(2)
OTHER = const(3)  # a valid sentence we do not use (GSA, GSV, VTG, TXT, ...)

# stats slots
S_SENTENCES = const(0)
S_BAD_CHECKSUM = const(1)
S_GARBLED = const(2)
S_UNKNOWN = const(3)
S_OVERFLOW = const(4)
S_NOISE = const(5)
STAT_NAMES = ("sentences", "bad_checksum", "garbled", "unknown", "overflow", "noise")
# valid sentences we do not need; anything else is counted as unknown
_KNOWN = (b"GSA", b"GSV", b"VTG", b"GLL", b"TXT", b"ZDA", b"GNS", b"GST", b"DTM", b"GBS", b"GRS")


def _hexval(c):
    if 48 <= c <= 57:
        return c - 48
    if 65 <= c <= 70:
        return c - 55
    if 97 <= c <= 102:
        return c - 87
    return -1


def _decimal(field, places):
    """An unsigned decimal field as an int scaled by 10**places (truncated);
    -1 when it is not one."""
    if not field:
        return -1
    whole = 0
    frac = 0
    n = 0
    seen_dot = False
    for c in field:
        if c == 46 and not seen_dot:  # "."
            seen_dot = True
            continue
        if not 48 <= c <= 57:
            return -1
        if seen_dot:
            if n < places:
                frac = frac * 10 + c - 48
                n += 1
        else:
            whole = whole * 10 + c - 48
    while n < places:
        frac *= 10
        n += 1
    return whole * 10 ** places + frac


_MINUTE_DECIMALS_MAX = const(10)  # digits of minutes used (1e-10 minute: far below 1e-7 degree)


def coordinate_e7(field, hemi, deg_digits):
    """ddmm.mmmm / dddmm.mmmm with N/S/E/W into 1e-7 degrees, rounded half away
    from zero from every decimal the receiver gave; None if invalid."""
    n = len(field)
    dot = deg_digits + 2
    if n < dot or (n > dot and field[dot] != 46):  # "."
        return None
    deg = _decimal(field[:deg_digits], 0)
    if deg < 0:
        return None
    # minutes as the exact fraction num / 10**k
    num = 0
    k = 0
    for i in range(deg_digits, n):
        if i == dot:
            continue
        c = field[i]
        if not 48 <= c <= 57:
            return None
        if i > dot:
            if k == _MINUTE_DECIMALS_MAX:
                continue
            k += 1
        num = num * 10 + c - 48
    scale = 10 ** k
    if num >= 60 * scale:
        return None
    # 1e-7 degree = 6e-6 minute: e7 = num * 10**6 / (6 * 10**k), rounded half up.
    # Up to 6 decimals the numbers stay small integers (< 2**30).
    if k <= 6:
        numer = num * 10 ** (6 - k)
        den = 6
    else:
        numer = num
        den = 6 * 10 ** (k - 6)
    value = deg * 10000000 + (numer + den // 2) // den
    limit = 900000000 if deg_digits == 2 else 1800000000
    if value > limit:
        return None
    if hemi in (b"S", b"W"):
        return -value
    if hemi in (b"N", b"E"):
        return value
    return None


def days_from_civil(y, m, d):
    """Days since 1970-01-01 of a Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def utc_seconds(date_field, time_field):
    """Epoch seconds from RMC's ddmmyy and hhmmss(.ss); None if invalid."""
    if len(date_field) != 6 or len(time_field) < 6:
        return None
    d = _decimal(date_field[0:2], 0)
    m = _decimal(date_field[2:4], 0)
    y = _decimal(date_field[4:6], 0)
    s = time_of_day(time_field)
    if d < 1 or d > 31 or m < 1 or m > 12 or y < 0 or s is None:
        return None
    year = 2000 + y if y < 80 else 1900 + y  # two digits: GNSS began in 1980
    return days_from_civil(year, m, d) * 86400 + s


WEEK_ROLLOVER_S = const(619315200)  # 1024 weeks
GPS_EPOCH_S = const(315964800)  # 1980-01-06: no GNSS date is earlier
_UNFOLD_MAX = const(3)  # periods a date may be moved (a receiver from 1980 reaches 2039)


def unfold_week_rollover(utc_s, floor_s):
    """A GNSS date moved forward by 1024-week periods until it is no earlier than
    floor_s (the build date); None when it cannot be a GNSS date at all."""
    if utc_s is None or utc_s < GPS_EPOCH_S:
        return None
    n = 0
    while utc_s < floor_s:
        if n == _UNFOLD_MAX:
            return None
        utc_s += WEEK_ROLLOVER_S
        n += 1
    return utc_s


def time_of_day(field):
    if len(field) < 6:
        return None
    hh = _decimal(field[0:2], 0)
    mm = _decimal(field[2:4], 0)
    ss = _decimal(field[4:6], 0)
    if hh < 0 or hh > 23 or mm < 0 or mm > 59 or ss < 0 or ss > 60:
        return None
    return hh * 3600 + mm * 60 + ss


class NmeaReader:
    """Collects lines from UART bytes and hands each valid sentence's fields
    (a list of bytes, without talker prefix) to on_sentence(kind, fields)."""

    def __init__(self, on_sentence):
        self._buf = bytearray(LINE_MAX)
        self._mv = memoryview(self._buf)
        self._n = -1  # -1: outside a line (waiting for "$"); -2: skipping a bad one
        self._on = on_sentence
        self.stats = [0] * len(STAT_NAMES)

    def feed(self, data):
        buf = self._buf
        n = self._n
        for c in data:
            if c == 36:  # "$" starts a line (and ends a truncated one)
                if n > 0:
                    self.stats[S_GARBLED] += 1
                n = 0
            elif c == 10 or c == 13:
                if n > 0:
                    self._line(n)
                n = -1
            elif n < 0:
                if n == -1:
                    self.stats[S_NOISE] += 1  # bytes between lines (binary, line noise)
            elif n >= LINE_MAX:
                self.stats[S_OVERFLOW] += 1
                n = -2  # the rest of this line is skipped, not counted again
            elif c < 32 or c > 126:
                self.stats[S_GARBLED] += 1
                n = -2
            else:
                buf[n] = c
                n += 1
        self._n = n

    def _line(self, n):
        buf = self._buf
        star = n - 3
        if star < 1 or buf[star] != 42:  # "*hh" at the end
            self.stats[S_GARBLED] += 1
            return
        hi = _hexval(buf[star + 1])
        lo = _hexval(buf[star + 2])
        if hi < 0 or lo < 0:
            self.stats[S_GARBLED] += 1
            return
        want = (hi << 4) | lo
        x = 0
        for i in range(star):
            x ^= buf[i]
        if x != want:
            self.stats[S_BAD_CHECKSUM] += 1
            return
        fields = bytes(self._mv[:star]).split(b",")
        head = fields[0]
        if head[0:1] == b"P" and len(head) >= 4:  # proprietary: $P + maker (PUBX, PMTK001, ...)
            self.stats[S_SENTENCES] += 1
            self._on(OTHER, fields)
            return
        if len(head) != 5:  # talker (2) + sentence (3)
            self.stats[S_GARBLED] += 1
            return
        kind = head[2:]
        self.stats[S_SENTENCES] += 1
        if kind == b"RMC":
            self._dispatch(RMC, fields)
        elif kind == b"GGA":
            self._dispatch(GGA, fields)
        elif kind in _KNOWN:
            self._on(OTHER, fields)
        else:
            self.stats[S_UNKNOWN] += 1

    def _dispatch(self, kind, fields):
        if not self._on(kind, fields):
            self.stats[S_GARBLED] += 1

    def stats_dict(self):
        d = {}
        for i in range(len(STAT_NAMES)):
            d[STAT_NAMES[i]] = self.stats[i]
        return d
