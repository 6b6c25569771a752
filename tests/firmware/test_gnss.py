# NMEA parsing and the best fix, from realistic logs (good, cold start, bad).
from fakehal import nmea
from fwtest import data_path, tmpdir
from sotto import frames
from sotto import nmea as nm
from sotto.gnss import Gnss
from sotto.storage import Storage


def read(name):
    with open(data_path("nmea/" + name), "rb") as f:
        return f.read()


def feed_in_chunks(g, data, size, now_ms=0):
    for i in range(0, len(data), size):
        g.feed(data[i:i + size], now_ms)


def test_coordinates_to_1e7_degrees():
    assert nm.coordinate_e7(b"4807.038", b"N", 2) == 481173000
    assert nm.coordinate_e7(b"01131.000", b"E", 3) == 115166667
    assert nm.coordinate_e7(b"00235.2740", b"W", 3) == -25879000
    assert nm.coordinate_e7(b"3351.0000", b"S", 2) == -338500000
    assert nm.coordinate_e7(b"4807.038", b"X", 2) is None
    assert nm.coordinate_e7(b"48o7.038", b"N", 2) is None
    assert nm.coordinate_e7(b"4861.000", b"N", 2) is None  # 61 minutes
    assert nm.coordinate_e7(b"9100.000", b"N", 2) is None


def test_utc_from_rmc_date_and_time():
    assert nm.utc_seconds(b"230394", b"123519") == 764426119  # 1994-03-23 12:35:19
    assert nm.utc_seconds(b"221126", b"143000.00") == 1795357800  # 2026-11-22 14:30:00 UTC
    assert nm.utc_seconds(b"321126", b"143000") is None
    assert nm.utc_seconds(b"221126", b"256000") is None


def test_a_good_walk_from_every_talker_in_any_chunking():
    data = read("walk_good.log")
    for size in (1, 7, 64, 4096):
        g = Gnss()
        feed_in_chunks(g, data, size)
        st = g.stats
        assert st["sentences"] == 132
        assert st["bad_checksum"] == st["garbled"] == st["overflow"] == st["unknown"] == 0
        lat, lon, acc, age, src = g.fix(0)
        assert (lat, lon, src) == (514550900, -25870150, frames.SRC_GNSS)  # 51.4545 + 59e-5, -2.5879 + 885e-6
        assert acc == 6  # last GGA: HDOP 1.1 x 5 m
        assert g.sats == 7 + 59 % 5
        assert g.utc_s(0) == 1795357800 + 59
        assert g.utc_s(2500) == 1795357800 + 61


def test_cold_start_has_no_fix_until_the_receiver_has_one():
    data = read("cold_start.log")
    lines = data.split(b"\n")
    g = Gnss()
    for line in lines[:10]:
        g.feed(line + b"\n", 0)
    assert g.fix(0) is None and g.utc_s(0) is None
    for line in lines[10:]:
        g.feed(line + b"\n", 5000)
    assert g.fix(5000)[2] == 12  # HDOP 2.4
    assert g.fix(9000)[3] == 4  # age grows without new sentences
    assert not g.has_fix(11000)


def test_bad_lines_are_counted_never_raised_and_good_ones_still_used():
    g = Gnss()
    g.feed(read("bad_mixed.log"), 0)
    st = g.stats
    assert st["bad_checksum"] == 1
    assert st["garbled"] == 3  # no checksum, truncated by the next "$", bad fields
    assert st["unknown"] == 1
    assert st["overflow"] == 1
    assert st["noise"] > 0
    assert g.fixes == 3  # the three good position sentences
    assert g.fix(0)[0] == 514545100  # the second epoch's position


def test_random_bytes_never_raise():
    g = Gnss()
    x = 12345
    buf = bytearray(512)
    for _ in range(40):
        for i in range(len(buf)):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            buf[i] = (x >> 16) & 0xFF
            if buf[i] == 0x30:
                buf[i] = 0x24  # plenty of "$"
        g.feed(bytes(buf), 0)
    assert g.stats["sentences"] <= 1


def test_void_fix_and_no_quality_mean_no_position():
    g = Gnss()
    g.feed(nmea("GPRMC,120000,V,4807.038,N,01131.000,E,,,221126,,"), 0)
    g.feed(nmea("GPGGA,120000,4807.038,N,01131.000,E,0,00,99.9,,,,,,"), 0)
    assert g.fix(0) is None
    assert g.stats["garbled"] == 0


def test_last_known_position_survives_a_reboot_with_its_age():
    root = tmpdir("gnss")
    g = Gnss(Storage(root))
    g.feed(nmea("GNRMC,143000.00,A,5127.2700,N,00235.2740,W,0.8,45.0,221126,,,A"), 1000)
    g.feed(nmea("GNGGA,143000.00,5127.2700,N,00235.2740,W,1,07,0.8,12.3,M,49.6,M,,"), 1000)
    assert g.save(3000)
    g2 = Gnss(Storage(root))  # after a reboot, indoors: no sentences
    assert g2.fix(0) == (514545000, -25879000, 4, 65535, frames.SRC_LAST_KNOWN)  # no clock yet
    t = 1795357800 + 600
    # dated at the fix, not at the save
    assert g2.fix(0, utc_s=t) == (514545000, -25879000, 4, 600, frames.SRC_LAST_KNOWN)


def test_damaged_last_known_file_gives_no_position_rather_than_a_wrong_one():
    root = tmpdir("gnss")
    g = Gnss(Storage(root))
    g.feed(nmea("GNRMC,143000.00,A,5127.2700,N,00235.2740,W,0.8,45.0,221126,,,A"), 0)
    g.save(0)
    st = Storage(root)
    raw = bytearray(st.read("lastfix"))
    raw[3] ^= 0x40
    st.write_atomic("lastfix", raw)
    assert Gnss(Storage(root)).fix(0) is None


def test_rmc_mode_not_valid_or_estimated_is_no_fix():
    g = Gnss()
    g.feed(nmea("GNRMC,143000.00,A,5127.2700,N,00235.2740,W,0.8,45.0,221126,,,N"), 0)
    g.feed(nmea("GNRMC,143001.00,A,5127.2700,N,00235.2740,W,0.8,45.0,221126,,,E,V"), 0)
    g.feed(nmea("GNGGA,143001.00,5127.2700,N,00235.2740,W,6,04,3.0,12.3,M,49.6,M,,"), 0)
    assert g.fix(0) is None
    assert g.sats == 4  # satellites are reported even without a fix
    assert g.stats["garbled"] == 0


def test_a_fix_from_this_boot_beats_the_stored_one_and_save_needs_a_current_fix():
    root = tmpdir("gnss")
    g = Gnss(Storage(root))
    g.feed(nmea("GNRMC,143000.00,A,5127.2700,N,00235.2740,W,0.8,45.0,221126,,,A"), 0)
    assert g.save(1000)
    g2 = Gnss(Storage(root))
    assert not g2.save(0)  # nothing current to save: the stored position stays
    g2.feed(nmea("GPRMC,150000.00,A,5130.0000,N,00010.0000,W,0.0,,221126,,,A"), 100)
    assert g2.fix(2100)[:2] == (515000000, -1666667) and g2.fix(2100)[3:] == (2, frames.SRC_GNSS)
    assert g2.last_known[:2] == (514545000, -25879000)
    assert g2.save(2100)
    assert Gnss(Storage(root)).fix(0)[:2] == (515000000, -1666667)
