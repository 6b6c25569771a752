"""The virtual parts around the firmware: button, GNSS receiver, microphone,
battery and haptic motor. Each answers in terms of the virtual clock (ms)."""

from __future__ import annotations

import array
import datetime
import functools
import math
import random
import sys
import wave
from pathlib import Path

from sotto import power

from host_tools.errors import SottoError
from simulator.track import Track


class AudioFileError(SottoError, ValueError):
    """A WAV file the virtual microphone cannot play."""

    exit_code = 2  # `sotto sim run`: the scenario cannot run (1 is for a failed expectation)


# -- button ------------------------------------------------------------------------
class Button:
    """Scripted presses, as (time, pressed) edges with optional contact bounce."""

    def __init__(self, bounce_ms: int = 3) -> None:
        self.edges: list[tuple[int, bool]] = []
        self.bounce_ms = bounce_ms

    def press(self, at_ms: int, hold_ms: int) -> None:
        e = [(at_ms, True), (at_ms + hold_ms, False)]
        if self.bounce_ms:  # real contacts chatter for a few ms on both edges
            b = self.bounce_ms
            e += [(at_ms + b, False), (at_ms + 2 * b, True),
                  (at_ms + hold_ms + b, True), (at_ms + hold_ms + 2 * b, False)]
        self.edges = sorted(self.edges + e)

    def presses(self, at_ms: int, count: int, gap_ms: int = 300, hold_ms: int = 120) -> None:
        for i in range(count):
            self.press(at_ms + i * gap_ms, hold_ms)

    def take(self, now_ms: int) -> list[tuple[int, bool]]:
        out = [e for e in self.edges if e[0] <= now_ms]
        self.edges = [e for e in self.edges if e[0] > now_ms]
        return out

    def due(self, now_ms: int) -> list[tuple[int, bool]]:
        """What take(now_ms) would return, without taking it."""
        return [e for e in self.edges if e[0] <= now_ms]

    def next_edge_ms(self) -> int | None:
        return self.edges[0][0] if self.edges else None


# -- GNSS --------------------------------------------------------------------------
def _sentence(body: str) -> bytes:
    x = 0
    for c in body.encode():
        x ^= c
    return f"${body}*{x:02X}\r\n".encode()


def _dm(value: float, lat: bool) -> tuple[str, str]:
    hemi = ("N" if value >= 0 else "S") if lat else ("E" if value >= 0 else "W")
    v = abs(value)
    d = int(v)
    m = (v - d) * 60
    if round(m, 5) >= 60:
        d, m = d + 1, 0.0
    return (f"{d:02d}{m:08.5f}" if lat else f"{d:03d}{m:08.5f}"), hemi


class GnssReceiver:
    """Emits RMC + GGA once a second while powered, from a track.

    Start-up: a receiver without valid ephemeris (first power-on, after
    `cold_start()`, after the device lost all power, or off for longer than
    EPHEMERIS_S) needs ttff_s for a fix (a cold start); one that had a fix
    recently needs hot_ttff_s. It sends void sentences until then. `signal` off
    gives void sentences (indoors, tunnel); hdop sets the reported accuracy."""

    EPHEMERIS_S = 4 * 3600  # broadcast ephemeris stays usable for about four hours

    def __init__(self, track: Track, epoch_s: int, ttff_s: float = 10.0, hdop: float = 0.9,
                 talker: str = "GN", hot_ttff_s: float = 2.0) -> None:
        self.track = track
        self.epoch_s = epoch_s
        self.ttff_ms = int(ttff_s * 1000)
        self.hot_ttff_ms = int(min(hot_ttff_s, ttff_s) * 1000)
        self.hdop = hdop
        self.talker = talker
        self.signal = True
        self.powered = False
        self._on_at = 0
        self._acquire_ms = self.ttff_ms
        self._last_fix_ms: int | None = None  # when it last had a fix (None: no ephemeris)
        self._next_ms = 0
        self.buffer = bytearray()
        self.sentences = 0
        self.starts: list[tuple[int, str]] = []  # (t_ms, "cold"/"hot") at each power-on

    def power(self, on: bool, now_ms: int) -> None:
        if on and not self.powered:
            self._on_at = now_ms
            self._next_ms = (now_ms // 1000 + 1) * 1000
            hot = self._last_fix_ms is not None and now_ms - self._last_fix_ms <= self.EPHEMERIS_S * 1000
            self._acquire_ms = self.hot_ttff_ms if hot else self.ttff_ms
            self.starts.append((now_ms, "hot" if hot else "cold"))
        self.powered = on
        if not on:
            self.buffer.clear()

    def cold_start(self) -> None:
        """Forget the ephemeris: the next power-on (or this one, if on) takes ttff_s."""
        self._last_fix_ms = None
        if self.powered:
            self._on_at = self._next_ms - 1000
            self._acquire_ms = self.ttff_ms

    def next_event_ms(self) -> int | None:
        return self._next_ms if self.powered else None

    def advance(self, now_ms: int) -> None:
        while self.powered and self._next_ms <= now_ms:
            self.buffer += self._epoch(self._next_ms)
            self._next_ms += 1000
        if len(self.buffer) > 1024:  # the UART's receive buffer overflows: oldest bytes lost
            del self.buffer[:len(self.buffer) - 1024]

    def _epoch(self, t_ms: int) -> bytes:
        when = datetime.datetime.fromtimestamp(self.epoch_s + t_ms / 1000, datetime.timezone.utc)
        hms = when.strftime("%H%M%S") + ".00"
        date = when.strftime("%d%m%y")
        tk = self.talker
        fixed = self.signal and t_ms - self._on_at >= self._acquire_ms
        self.sentences += 2
        if fixed:
            self._last_fix_ms = t_ms
        else:
            return (_sentence(f"{tk}RMC,{hms},V,,,,,,,{date},,,N")
                    + _sentence(f"{tk}GGA,{hms},,,,,0,00,99.99,,,,,,"))
        lat, lon = self.track.at(t_ms / 1000)
        la, ns = _dm(lat, True)
        lo, ew = _dm(lon, False)
        return (_sentence(f"{tk}RMC,{hms},A,{la},{ns},{lo},{ew},0.5,0.0,{date},,,A")
                + _sentence(f"{tk}GGA,{hms},{la},{ns},{lo},{ew},1,09,{self.hdop:.1f},30.0,M,49.6,M,,"))

    def read(self, n: int) -> bytes | None:
        if not self.buffer:
            return None
        out = bytes(self.buffer[:n])
        del self.buffer[:n]
        return out


class GnssUart:
    """The GNSS receiver as the firmware's UART sees it."""

    def __init__(self, rx: GnssReceiver) -> None:
        self.rx = rx

    def any(self) -> int:
        return len(self.rx.buffer)

    def read(self, n: int = -1) -> bytes | None:
        return self.rx.read(len(self.rx.buffer) if n is None or n < 0 else n)

    def write(self, b: bytes) -> int:
        return len(b)

    def peek(self) -> bytes:
        """What read() would return now, without taking it."""
        return bytes(self.rx.buffer)


# -- microphone --------------------------------------------------------------------
def read_wav(path: str | Path, rate_hz: int = 8000) -> array.array:
    """A WAV file (PCM 8/16/24/32-bit, any rate, any channels) as 16-bit mono
    samples at rate_hz (linear interpolation)."""
    try:
        with wave.open(str(path), "rb") as w:
            ch, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            raw = w.readframes(n)
    except (OSError, wave.Error, EOFError) as e:
        raise AudioFileError(f"cannot play {path}: {e}; give a PCM WAV file") from None
    if width not in (1, 2, 3, 4):
        raise AudioFileError(f"{path}: {8 * width}-bit samples are not supported")
    mono = []
    step = width * ch
    for i in range(0, len(raw) - step + 1, step):
        acc = 0
        for c in range(ch):
            b = raw[i + c * width:i + (c + 1) * width]
            if width == 1:
                acc += (b[0] - 128) << 8  # 8-bit WAV is unsigned
            else:
                acc += int.from_bytes(b, "little", signed=True) >> (8 * (width - 2))
        mono.append(acc // ch)
    if not mono:
        raise AudioFileError(f"{path} has no samples")
    out = array.array("h")
    ratio = rate / rate_hz
    for k in range(int(len(mono) / ratio)):
        x = k * ratio
        i = int(x)
        f = x - i
        a = mono[i]
        b = mono[i + 1] if i + 1 < len(mono) else a
        out.append(max(-32768, min(32767, int(a + (b - a) * f))))
    return out


@functools.lru_cache(maxsize=4)
def synthetic_voice(seconds: float = 4.0, rate_hz: int = 8000, seed: int = 7) -> array.array:
    """A voice-like test signal: a gliding harmonic tone in syllables, with noise.
    Cached (a fleet shares one); callers must not modify it."""
    rnd = random.Random(seed)
    out = array.array("h")
    for i in range(int(seconds * rate_hz)):
        t = i / rate_hz
        f0 = 140 + 40 * math.sin(2 * math.pi * 0.7 * t)
        env = max(0.0, math.sin(2 * math.pi * 2.5 * t)) ** 0.5
        v = sum(math.sin(2 * math.pi * f0 * k * t) / k for k in (1, 2, 3, 4))
        out.append(int(max(-32767, min(32767, 9000 * env * v + rnd.gauss(0, 300)))))
    return out


class Microphone:
    """An INMP441 as the I2S driver delivers it: 32-bit little-endian words
    (24-bit data left-justified, low byte zero), as many as the sample clock
    produced since start. The source loops when it runs out."""

    def __init__(self, samples: array.array, rate_hz: int = 8000) -> None:
        if not len(samples):
            raise AudioFileError("the microphone needs at least one sample")
        self.samples = samples
        self.source_rate = rate_hz
        self.rate_hz = 0
        self.on = False
        self._t0 = 0
        self._delivered = 0
        self.now_ms = 0
        # the words the microphone sends, made once: 16-bit sample in bits 31..16,
        # the 24-bit converter's next 8 bits as a fixed pattern, bits 7..0 zero
        words = array.array("i", ((v << 16) | 0x7F00 for v in samples))
        if words.itemsize != 4:  # pragma: no cover - every supported platform has a 32-bit C int
            raise RuntimeError("array('i') is not 32-bit here")
        if sys.byteorder != "little":  # pragma: no cover
            words.byteswap()
        self._words = words.tobytes()

    def start(self, rate_hz: int) -> None:
        self.rate_hz = rate_hz
        self.on = True
        self._t0 = self.now_ms
        self._delivered = 0

    def stop(self) -> None:
        self.on = False

    def _ready(self) -> int:
        """Words produced since start and not yet read."""
        if not self.on:
            return 0
        return max(0, (self.now_ms - self._t0) * self.rate_hz // 1000 - self._delivered)

    def _copy(self, mv: memoryview, n: int) -> None:
        """The next n words into mv, with wrap-around at the end of the source."""
        src = self._words
        pos = 4 * (self._delivered % len(self.samples))
        done = 0
        while done < 4 * n:
            take = min(4 * n - done, len(src) - pos)
            mv[done:done + take] = src[pos:pos + take]
            done += take
            pos = 0

    def readinto(self, buf: bytearray | memoryview) -> int:
        n = min(self._ready(), len(buf) // 4)
        if n <= 0:
            return 0
        self._copy(memoryview(buf).cast("B"), n)
        self._delivered += n
        return 4 * n

    def peek(self) -> bytes:
        """Every word readinto() would give now (whatever the buffer), without taking them."""
        out = bytearray(4 * self._ready())
        self._copy(memoryview(out), len(out) // 4)
        return bytes(out)


# -- battery -----------------------------------------------------------------------
class Battery:
    """State of charge that drains with time (faster during an alert); the
    firmware reads it as millivolts through the same curve it converts back."""

    def __init__(self, pct: float = 90.0, idle_pct_per_h: float = 0.8, alert_pct_per_h: float = 30.0) -> None:
        self.pct = pct
        self.idle_pct_per_h = idle_pct_per_h
        self.alert_pct_per_h = alert_pct_per_h
        self.busy = False

    def drain(self, dt_ms: int) -> None:
        rate = self.alert_pct_per_h if self.busy else self.idle_pct_per_h
        self.pct = max(0.0, self.pct - rate * dt_ms / 3_600_000)

    def mv(self) -> int:
        pct = self.pct
        curve = power.CURVE
        for i in range(1, len(curve)):
            (v0, p0), (v1, p1) = curve[i - 1], curve[i]
            if pct <= p1:
                return int(v0 + (v1 - v0) * (pct - p0) / (p1 - p0)) + 1
        return curve[-1][0]
