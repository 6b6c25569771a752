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


# -- issue 19: rounding, GPS week roll-over, the build date ---------------------

def test_coordinates_are_rounded_from_every_decimal_not_truncated():
    # 1e-7 degree is 6e-6 minute: a sixth or seventh decimal of minutes can move
    # the result by up to 1.7e-7 degree (2 cm), and truncating it always moved it
    # toward zero
    assert nm.coordinate_e7(b"4829.0005432", b"N", 2) == 484833424  # 48.48334238667
    assert nm.coordinate_e7(b"00022.0016599", b"W", 3) == -3666943  # 0.3666943317
    assert nm.coordinate_e7(b"5130.04375999", b"N", 2) == 515007293  # 51.5007293332
    assert nm.coordinate_e7(b"0000.000003", b"S", 2) == -1  # exactly 0.5e-7: half away from zero
    assert nm.coordinate_e7(b"0000.0000029", b"S", 2) == 0
    # more decimals than anyone sends still parse (the tenth and later are below 1e-10 minute)
    assert nm.coordinate_e7(b"4829.000543210000009", b"N", 2) == 484833424


def test_rmc_fix_is_rounded():
    g = Gnss()
    g.feed(nmea("GNRMC,120000.00,A,4829.0005432,N,00022.0016599,W,0.0,,150326,,,A"), 0)
    assert (g.lat_e7, g.lon_e7) == (484833424, -3666943)


def test_week_rollover_of_april_2019():
    # A Telit HE910 just after the 2019-04-06 roll-over reported a valid fix dated
    # 1999-08-22 (gpsd's regression log april6_2019, chipset note); a firmware built
    # before the roll-over (floor 2019-03-14) puts it 1024 weeks later.
    g = Gnss(floor_s=1552521600)  # 2019-03-14
    g.feed(nmea("GPRMC,000231.42,A,4829.0005,N,00022.0016,E,0.16,212.28,220899,,,A"), 1000)
    assert g.utc_s(1000) == 1554595351  # 2019-04-07 00:02:31
    assert g.rollovers == 1


def test_week_rollover_after_the_build_date():
    # today's firmware (built 2025 or later) and a receiver that lost 1024 weeks in
    # 2026: it reports 2006-11-05, the device uses 2026-06-21
    g = Gnss()
    g.feed(nmea("GNRMC,101500.00,A,5130.04375,N,00007.47752,W,0.0,,051106,,,A"), 0)
    assert g.utc_s(0) == 1782036900  # 2026-06-21 10:15:00
    assert g.rollovers == 1
    g.feed(nmea("GNRMC,101501.00,A,5130.04375,N,00007.47752,W,0.0,,210626,,,A"), 1000)
    assert g.utc_s(1000) == 1782036901 and g.rollovers == 1  # a right date stays as it is


def test_a_date_that_cannot_be_gnss_time_is_ignored():
    g = Gnss()
    g.feed(nmea("GPRMC,000000.00,A,5130.0,N,00007.0,W,0.0,,010180,,,A"), 0)  # before GPS began
    assert g.utc_s(0) is None and g.bad_dates == 1
    assert g.fix(0)[:2] == (515000000, -1166667)  # the position itself is good


def test_time_runs_on_across_a_receivers_week_rollover():
    # tests/data/nmea/week_rollover_2019.log: from 2019-04-06 23:59:42 UTC the
    # receiver's dates are 1024 weeks early (and one is garbled); a firmware built
    # before that day keeps one continuous time
    g = Gnss(floor_s=1552521600)  # built 2019-03-14
    start = 1554595175  # 2019-04-06 23:59:35, the log's first fix
    epoch = -1
    for line in read("week_rollover_2019.log").split(b"\n"):
        if line.startswith(b"$GPRMC,2") or line.startswith(b"$GPRMC,0"):
            epoch += 1
        g.feed(line + b"\n", epoch * 1000)
        if epoch >= 0:
            assert g.utc_s(epoch * 1000) == start + epoch, epoch
    assert epoch == 35 and g.rollovers == 28 and g.bad_dates == 0
