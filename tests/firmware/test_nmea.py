# The NMEA 0183 reader on realistic logs (tests/data/nmea/): u-blox M8 output
# with every sentence it sends, the same with UBX binary packets in between,
# bit errors on the wire, a wrong baud rate at boot. Bad input is counted, never
# raised, and the good sentences around it still count.
import gc

from fakehal import nmea as checksummed
from fwtest import data_path
from sotto import nmea
from sotto.gnss import Gnss

UBLOX_LINES = 113  # 3 TXT + 10 epochs x 11 sentences
UBLOX_LAST = (515008192, -1244454)  # the last epoch, from the float track the log was made from
UBLOX_UTC = 1773565209  # 2026-03-15 09:00:09 UTC


def read(name):
    with open(data_path("nmea/" + name), "rb") as f:
        return f.read()


def collect(data, size=4096):
    seen = []
    r = nmea.NmeaReader(lambda kind, fields: seen.append((kind, fields[0])) or True)
    for i in range(0, len(data), size):
        r.feed(data[i:i + size])
    return r.stats_dict(), seen


def near(got, want, units=2):
    return abs(got[0] - want[0]) <= units and abs(got[1] - want[1]) <= units


def test_checksum_is_over_the_text_between_dollar_and_star():
    st, seen = collect(b"$GPGLL,4916.45,N,12311.12,W,225444,A*31\r\n"  # the classic NMEA example
                       b"$gpgll,4916.45,N,12311.12,W,225444,A*31\r\n"  # lower case: a different text
                       b"$GPGLL,4916.45,N,12311.12,W,225444,A*3f\r\n")
    assert st["sentences"] == 1 and st["bad_checksum"] == 2
    assert seen == [(nmea.OTHER, b"GPGLL")]


def test_a_ublox_receiver_every_sentence_understood():
    data = read("ublox_m8.log")
    for size in (1, 5, 61, 4096):
        st, seen = collect(data, size)
        assert st["sentences"] == UBLOX_LINES
        assert st["bad_checksum"] == st["garbled"] == st["unknown"] == st["overflow"] == st["noise"] == 0
        assert [k for k, _ in seen].count(nmea.RMC) == 10
        assert [k for k, _ in seen].count(nmea.GGA) == 10
    g = Gnss()
    g.feed(data, 0)
    lat, lon, acc, age, _src = g.fix(0)
    assert near((lat, lon), UBLOX_LAST)
    assert acc == 5 and age == 0 and g.sats == 8  # HDOP 0.90 x 5 m, rounded up
    assert g.utc_s(0) == UBLOX_UTC


def test_binary_packets_between_sentences_lose_no_sentence():
    # UBX packets (0xB5 0x62 ...) with "$", CR and LF inside them; one even holds
    # the start of an RMC: it is cut off by the packet's CR/LF and counted, not used
    data = read("ubx_binary_mixed.log")
    for size in (1, 64, 9999):
        st, seen = collect(data, size)
        assert st["sentences"] == UBLOX_LINES
        assert st["bad_checksum"] == 0
        assert st["garbled"] + st["overflow"] >= 28  # at least one bad line per packet
        assert st["noise"] > 0
        assert [k for k, _ in seen].count(nmea.RMC) == 10
    g = Gnss()
    g.feed(data, 0)
    assert near(g.fix(0)[:2], UBLOX_LAST) and g.utc_s(0) == UBLOX_UTC


def test_bit_errors_are_caught_by_the_checksum():
    st, seen = collect(read("bit_errors.log"))
    assert st["bad_checksum"] == 23  # every 5th line has one character changed
    assert st["sentences"] == UBLOX_LINES - 23
    assert st["garbled"] == 0
    g = Gnss()
    g.feed(read("bit_errors.log"), 0)
    assert g.fix(0) is not None


def test_wrong_baud_rate_noise_then_a_fix_in_the_south_east():
    g = Gnss()
    data = read("baud_mismatch.log")
    for i in range(0, len(data), 37):
        g.feed(data[i:i + 37], 0)
    st = g.stats
    assert st["noise"] >= 500 and st["sentences"] == 33
    lat, lon, acc, _age, _src = g.fix(0)
    assert near((lat, lon), (-338567844, 1512152967))  # Sydney: S and E hemispheres
    assert acc == 7  # HDOP 1.40 x 5 m
    assert g.utc_s(0) == 1798794002  # 2027-01-01 09:00:02


def test_an_over_long_line_is_counted_once_and_the_next_line_is_read():
    r = nmea.NmeaReader(lambda kind, fields: True)
    r.feed(b"$GP" + b"A" * 300 + b"\r\n$GPGLL,4916.45,N,12311.12,W,225444,A*31\r\n")
    st = r.stats_dict()
    assert st["overflow"] == 1 and st["noise"] == 0 and st["sentences"] == 1


def test_control_characters_inside_a_line_spoil_only_that_line():
    r = nmea.NmeaReader(lambda kind, fields: True)
    r.feed(b"$GPGLL,4916.45,\x00N,12311.12,W,225444,A*31\r\n$GPGLL,4916.45,N,12311.12,W,225444,A*31\n")
    st = r.stats_dict()
    assert st["garbled"] == 1 and st["noise"] == 0 and st["sentences"] == 1


def test_unknown_sentences_are_counted_not_parsed():
    st, seen = collect(checksummed("GPXYZ,1,2,3") + checksummed("PUBX,00,1") + checksummed("GBGSV,1,1,00"))
    assert st["unknown"] == 1 and st["sentences"] == 3 and st["bad_checksum"] == 0
    assert seen == [(nmea.OTHER, b"PUBX"), (nmea.OTHER, b"GBGSV")]  # proprietary and known kinds pass by


def test_feeding_allocates_nothing_per_character():
    if not hasattr(gc, "mem_alloc"):
        return  # CPython: the VM lane checks this
    r = nmea.NmeaReader(lambda kind, fields: True)
    noise = bytes(range(0, 36)) * 40  # no "$": every byte goes through the per-character path
    partial = b"$GPGLL,4916.45,N,12311.12,W,225444,A"  # inside a line, never finished
    r.feed(noise)
    r.feed(partial[:1])
    gc.collect()
    before = gc.mem_alloc()
    r.feed(noise)
    r.feed(partial)
    after = gc.mem_alloc()
    assert after - before < 64, after - before
