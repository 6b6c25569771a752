"""The firmware's NMEA reader against an independent parser (pynmea2), sentence by
sentence, over receiver logs (tests/nmea_corpus.py says which), and the same
logs through the reader in the MicroPython VM giving what CPython gives.

What must agree, for every line of every log:
- the checksum verdict (pynmea2 with check=True; lines our reader cannot hold,
  over nmea.LINE_MAX, or with bytes outside printable ASCII, are counted as
  dropped and compared by their count only);
- for RMC and GGA that both read: fix or no fix, latitude and longitude (ours,
  integers in 1e-7 degree, must be the nearest integer to pynmea2's float), the
  date and time of RMC (to the second), GGA's satellite count.
"""

from __future__ import annotations

import datetime
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pynmea2
import pytest
from sotto import nmea
from sotto.gnss import Gnss

from host_tools import vm
from tests.nmea_corpus import GPSD_DIR, OWN_DIR, REPO_ROOT, CorpusMissing, gpsd_logs, label, logs

try:
    LOGS = logs()
    MISSING: CorpusMissing | None = None
except CorpusMissing as e:  # the repository's own logs still run; test_the_gpsd_corpus_is_there fails
    LOGS = sorted(OWN_DIR.glob("*.log"))
    MISSING = e
_NO_FIX_MODES = ("N", "E", "M", "S")
_NO_FIX_QUALITY = ("", "0", "6", "7", "8")


@dataclass
class Tally:
    lines: int = 0
    compared: int = 0  # RMC / GGA read by both and compared field by field
    dropped: int = 0  # lines our reader cannot hold (too long, not printable)
    mismatches: list[str] = field(default_factory=list)


def _printable(line: bytes) -> bool:
    return all(32 <= c < 127 or c == 9 for c in line)


def _ours(line: bytes) -> tuple[str, Gnss]:
    """Our verdict on one line: 'accepted', 'rejected' (checksum or shape) or
    'dropped' (cannot be held); and the Gnss that read it."""
    g = Gnss(floor_s=0)  # floor 0: dates as the receiver gave them
    r = g.reader
    before = list(r.stats)
    g.feed(line + b"\r\n", 0)
    d = [a - b for a, b in zip(r.stats, before, strict=True)]
    if d[nmea.S_OVERFLOW]:
        return "dropped", g
    if d[nmea.S_SENTENCES] or d[nmea.S_UNKNOWN]:
        return "accepted", g
    return "rejected", g


def _near(ours: int, theirs: float) -> bool:
    return abs(ours - theirs * 1e7) <= 0.5 + 1e-6


def _epoch(msg) -> int | None:
    try:
        when = datetime.datetime.combine(msg.datestamp, msg.timestamp)
    except (ValueError, TypeError, AttributeError):
        return None
    if when.year < 1980 or when.year >= 2069:  # two-digit years: pynmea2 and we differ outside
        return None
    return int(when.replace(tzinfo=datetime.timezone.utc).timestamp())


def _compare(text: str, msg, g: Gnss, t: Tally, where: str) -> None:
    kind = msg.sentence_type
    if kind == "RMC":
        mode = getattr(msg, "mode_indicator", None) or ""
        fix = msg.status == "A" and mode[:1] not in _NO_FIX_MODES
    else:
        fix = str(msg.gps_qual if msg.gps_qual is not None else "") not in _NO_FIX_QUALITY
        sats = msg.num_sats
        if sats and sats.isdigit() and g.sats != int(sats):
            t.mismatches.append(f"{where}: satellites {g.sats} != {sats}: {text}")
    try:
        lat, lon = msg.latitude, msg.longitude
    except ValueError:  # pynmea2 cannot read the coordinates: then neither may we
        lat = lon = None
    if fix and lat is not None and msg.lat and msg.lon:
        if g.fix_ms is None:
            t.mismatches.append(f"{where}: no fix, pynmea2 reads {lat}, {lon}: {text}")
            return
        if not (_near(g.lat_e7, lat) and _near(g.lon_e7, lon)):
            t.mismatches.append(f"{where}: {g.lat_e7}, {g.lon_e7} != {lat}, {lon}: {text}")
            return
    elif g.fix_ms is not None:
        t.mismatches.append(f"{where}: fix {g.lat_e7}, {g.lon_e7} where pynmea2 reads none: {text}")
        return
    if kind == "RMC" and g.fix_ms is not None:
        theirs = _epoch(msg)
        ours = g.utc_s(0)
        if theirs is not None and ours != theirs:
            t.mismatches.append(f"{where}: time {ours} != {theirs}: {text}")
            return
    t.compared += 1


def differential(path: Path) -> Tally:
    t = Tally()
    for n, raw in enumerate(path.read_bytes().split(b"\n"), 1):
        # "$" begins a sentence wherever it is (a cut one before it is lost)
        for piece in raw.rstrip(b"\r").split(b"$")[1:]:
            _one(b"$" + piece, t, f"{label(path)}:{n}")
    return t


def _one(line: bytes, t: Tally, where: str) -> None:
    t.lines += 1
    verdict, g = _ours(line)
    if verdict == "dropped" or not _printable(line):
        t.dropped += 1
        return
    text = line.decode("ascii")
    try:
        msg = pynmea2.parse(text, check=True)
    except pynmea2.ChecksumError:
        if verdict == "accepted":
            t.mismatches.append(f"{where}: accepted, pynmea2 says bad checksum: {text}")
        return
    except pynmea2.ParseError:
        return  # malformed for pynmea2: ours may count it as unknown or garbled
    if verdict != "accepted":
        if "*" in text:  # pynmea2 also reads sentences without a checksum; we require one
            t.mismatches.append(f"{where}: rejected, pynmea2 reads it: {text}")
        return
    if getattr(msg, "sentence_type", None) in ("RMC", "GGA") and len(text.split("*")[0][1:]) >= 6:
        try:
            _compare(text, msg, g, t, where)
        except (ValueError, TypeError) as e:  # pynmea2 cannot convert a field
            if g.fix_ms is not None and msg.sentence_type == "RMC" and msg.status == "A":
                t.mismatches.append(f"{where}: pynmea2 {type(e).__name__} {e}: {text}")


@pytest.mark.parametrize("path", LOGS, ids=[label(p) for p in LOGS])
def test_reader_agrees_with_pynmea2(path: Path) -> None:
    t = differential(path)
    assert not t.mismatches, "\n".join(t.mismatches[:20])
    assert t.lines == 0 or t.compared + t.dropped <= t.lines


def test_the_gpsd_corpus_is_there() -> None:
    # real receivers' logs are not optional: without them the differential test would
    # only check the parser against logs written for it (tests/data/nmea/README.md)
    if MISSING is not None:
        raise MISSING
    names = {p.name for p in gpsd_logs()}
    assert len(names) == 154 and "april6_2019.log" in names
    assert all(p in LOGS for p in gpsd_logs())


def test_the_corpus_exercises_what_it_is_for() -> None:
    # the repository's own logs: fixes compared, sub-1e-5-minute decimals, a week
    # roll-over date; gpsd's: thousands of RMC/GGA from real receivers
    own = [p for p in LOGS if p.parent == OWN_DIR]
    tallies = {p.name: differential(p) for p in own}
    assert sum(t.compared for t in tallies.values()) >= 100
    assert tallies["week_rollover_2019.log"].compared >= 5
    assert tallies["high_precision.log"].compared >= 10
    gpsd = [differential(p) for p in gpsd_logs()]
    assert sum(t.compared for t in gpsd) >= 6000


def test_week_rollover_in_the_real_telit_log() -> None:
    # gpsd's april6_2019.log: a Telit HE910 just after the GPS week roll-over of
    # 2019-04-06 reports a valid fix dated 1999-08-22 (and one with the date "2208-1").
    # A firmware built before the roll-over (floor 2019-03-14) dates it 2019-04-07.
    path = GPSD_DIR / "april6_2019.log"
    if MISSING is not None:
        raise MISSING
    built_2019 = Gnss(floor_s=1552521600)
    as_sent = Gnss(floor_s=0)
    dated = []
    for i, line in enumerate(path.read_bytes().split(b"\n")):
        for g in (built_2019, as_sent):
            g.feed(line + b"\n", i * 1000)
        if b"RMC" in line and built_2019.utc_s(i * 1000) is not None:
            dated.append((built_2019.utc_s(i * 1000), as_sent.utc_s(i * 1000)))
    assert dated == [(1554595351, 935280151)]  # 2019-04-07 00:02:31, not 1999-08-22 00:02:31
    assert built_2019.rollovers == 1 and as_sent.rollovers == 0
    # the position is good: 48 29.0005 N, 0 22.0016 E
    assert built_2019.fix_ms is not None and (built_2019.lat_e7, built_2019.lon_e7) == (484833417, 3666933)


# -- the same logs in the MicroPython VM ---------------------------------------

_SCRIPT = r'''
import sys, os, hashlib, binascii
from sotto import nmea
from sotto.gnss import Gnss

def digest(path):
    g = Gnss(floor_s=FLOOR)
    h = hashlib.sha256()
    out = [0]
    def sentence(kind, f):
        ok = g._sentence(kind, f)
        if kind == nmea.RMC or kind == nmea.GGA:
            out[0] += 1
            h.update(("%d %s %s %d %d %d %s %d|" % (kind, ok, g.fix_ms, g.lat_e7, g.lon_e7, g.acc_m,
                      g._utc[0] if g._utc else None, g.sats)).encode())
        return ok
    g.reader._on = sentence
    with open(path, "rb") as fh:
        data = fh.read()
    for i in range(0, len(data), 61):  # odd chunks: lines cut anywhere
        g.feed(data[i:i + 61], i)
    return "%d %s %s %d %d" % (out[0], binascii.hexlify(h.digest()).decode(),
                               ",".join(str(x) for x in g.reader.stats), g.rollovers, g.bad_dates)

for name in sorted(os.listdir(ROOT)):
    print(name, digest(ROOT + "/" + name))
'''


def _script(root: str) -> str:
    # a floor of 2019-03-14 lets the roll-over log's correction show
    return f"ROOT = {root!r}\nFLOOR = 1552521600\n" + _SCRIPT


def test_vm_reads_every_log_as_cpython_does(tmp_path: Path) -> None:
    flat = tmp_path / "logs"
    flat.mkdir()
    for i, p in enumerate(LOGS):
        (flat / f"{i:04d}-{p.name}").write_bytes(p.read_bytes())
    cpython = subprocess.run(
        [sys.executable, "-c", _script(str(flat))], capture_output=True, text=True, check=True,
        env={"PYTHONPATH": f"{REPO_ROOT / 'firmware'}:{REPO_ROOT / 'shims'}", "PATH": "/usr/bin:/bin"})
    in_vm = vm.run_source(_script("/logs"), puts={flat: "/logs"})
    assert cpython.stdout.splitlines() == in_vm.splitlines()
    assert len(in_vm.splitlines()) == len(LOGS)
