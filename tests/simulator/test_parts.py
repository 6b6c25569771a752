"""The simulator's parts: clock, tracks, WAV input, the GNSS it emits, the
scenario language's errors, the privacy check, fleets and the CLI."""

from __future__ import annotations

import array
import math
import subprocess
import sys
import wave
from pathlib import Path

import pytest
from framefactory import DeviceSim, pack_location, sign1
from sotto import power
from sotto.gnss import Gnss

from simulator.clock import VirtualClock
from simulator.expect import frames_on_air, privacy_leaks
from simulator.fleet import run_fleet
from simulator.peripherals import Battery, GnssReceiver, Microphone, read_wav
from simulator.scenario import ScenarioError, load, parse
from simulator.track import TrackError, load_track

REPO = Path(__file__).resolve().parents[2]


def test_clock_never_goes_back_and_ticks_wrap():
    c = VirtualClock(start_ms=(1 << 30) - 5)
    c.advance_to((1 << 30) + 10)
    assert c.ticks() == 10
    with pytest.raises(ValueError):
        c.advance_to(0)


def test_tracks_from_gpx_and_geojson():
    gpx = load_track(REPO / "scenarios/tracks/estate-visit.gpx")
    assert gpx.points[1][0] == 60.0  # from <time>
    lat, lon = gpx.at(30)
    assert lat == pytest.approx((51.4600 + 51.4602) / 2)
    gj = load_track(REPO / "scenarios/tracks/bristol-walk.geojson")
    assert gj.points[0][1:] == (51.4545, -2.5924)
    assert gj.points[-1][0] > 300  # no times: spaced at walking speed


def test_bad_track_says_what_is_wrong(tmp_path):
    p = tmp_path / "t.gpx"
    p.write_text("<gpx><trk>")
    with pytest.raises(TrackError, match="not valid GPX"):
        load_track(p)
    kml = tmp_path / "t.kml"
    kml.write_text("<kml/>")
    with pytest.raises(TrackError, match="use a .gpx or .geojson"):
        load_track(kml)


def test_wav_of_any_rate_is_resampled_to_8k(tmp_path):
    p = tmp_path / "tone.wav"
    rate = 44100
    with wave.open(str(p), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        frames = array.array("h")
        for i in range(rate):  # 1 s of 1 kHz, stereo
            v = int(10000 * math.sin(2 * math.pi * 1000 * i / rate))
            frames.extend((v, v))
        w.writeframes(frames.tobytes())
    pcm = read_wav(p)
    assert len(pcm) == 8000
    # still a 1 kHz tone: 8 samples per period at 8 kHz
    crossings = sum(1 for a, b in zip(pcm, pcm[1:], strict=False) if a < 0 <= b)
    assert 990 <= crossings <= 1010


def test_microphone_delivers_inmp441_words_at_the_sample_clock():
    mic = Microphone(array.array("h", [1000, -1000] * 100))
    mic.now_ms = 0
    mic.start(8000)
    buf = bytearray(4096)
    mic.now_ms = 10
    assert mic.readinto(buf) == 80 * 4  # 10 ms at 8 kHz
    assert int.from_bytes(buf[0:4], "little", signed=True) >> 16 == 1000
    assert mic.readinto(buf) == 0


def test_gnss_sentences_parse_in_the_firmware_with_the_track_position():
    from simulator.track import standing

    rx = GnssReceiver(standing(51.4545, -2.5879), epoch_s=1_748_854_800, ttff_s=3)
    rx.power(True, 0)
    g = Gnss()
    for t in range(0, 6000, 1000):
        rx.advance(t + 1000)
        g.feed(rx.read(4096) or b"", t + 1000)
        if t < 2000:
            assert g.fix(t + 1000) is None  # still acquiring
    fix = g.fix(6000)
    assert fix[0] == 514545000 and fix[1] == -25879000
    assert g.stats["bad_checksum"] == g.stats["garbled"] == 0
    assert g.utc_s(6000) == 1_748_854_806


def test_battery_mv_reads_back_as_the_same_percentage():
    for pct in (95, 50, 21, 19, 9, 4):
        assert abs(power.percent(Battery(pct).mv()) - pct) <= 1


def test_scenario_errors_name_the_field():
    with pytest.raises(ScenarioError, match="duration_s"):
        parse({})
    with pytest.raises(ScenarioError, match=r"events\[0\].action"):
        parse({"duration_s": 10, "events": [{"at_s": 1, "action": "explode"}]})
    with pytest.raises(ScenarioError, match=r"'coverage' takes no 'hold_ms'"):
        parse({"duration_s": 10, "events": [{"at_s": 1, "action": "coverage", "hold_ms": 3}]})
    with pytest.raises(ScenarioError, match="expect.alerts_visible"):
        parse({"duration_s": 10, "expect": {"alerts_visible": 1}})
    with pytest.raises(ScenarioError, match="fault"):
        parse({"duration_s": 10, "events": [{"at_s": 1, "action": "modem", "fault": "melt"}]})


def test_broken_toml_is_a_clear_error(tmp_path):
    p = tmp_path / "x.toml"
    p.write_text("name = [")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load(p)


def test_privacy_check_flags_what_it_cannot_prove_harmless():
    class Rec:
        def __init__(self, payload):
            self.payload, self.submitted_ms = payload, 0

    class Fake:
        class modem:
            air = []

        class smsc:
            records = []

    d = DeviceSim()
    d.alert_start()
    # a heartbeat that carries a location: the schema forbids it, so it cannot be read as harmless
    bad = sign1(d.key, d.kid, {0: 1, 1: 7, 3: 5, 4: 0, 5: 0, 7: 80, 17: 900, 6: pack_location(1, 2, 3, 4, 1)})
    Fake.smsc.records = [Rec(d.location(pack_location(1, 2, 3, 4, 1))), Rec(bad)]
    assert len(frames_on_air(Fake)) == 2
    leaks = privacy_leaks(Fake)
    assert len(leaks) == 1 and "unreadable frame by sms" in leaks[0]  # the alert's location is fine
    Fake.smsc.records = [Rec(d.location(pack_location(1, 2, 3, 4, 1))), Rec(d.heartbeat())]
    assert privacy_leaks(Fake) == []


def test_fleet_every_frame_accepted(tmp_path):
    sc = load(REPO / "scenarios/false_alarm_cancelled.toml")
    fr = run_fleet(sc, 3, tmp_path)
    assert fr.ok, fr.lines()
    assert fr.made == fr.stored > 3 * 10
    assert len(fr.latencies_ms) > 0 and all(x >= 0 for x in fr.latencies_ms)


def test_sim_run_cli_exit_status_names_the_failure(tmp_path):
    text = (REPO / "scenarios/false_alarm_cancelled.toml").read_text().replace("cancelled = true",
                                                                              "cancelled = false")
    p = tmp_path / "s.toml"
    p.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "sotto_cli", "sim", "run", str(p), "--report",
                           str(tmp_path / "rep")], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 1
    assert "FAIL  cancelled" in proc.stdout and "FAILED: cancelled" in proc.stderr
    assert (tmp_path / "rep" / "timeline.svg").exists()
    bad = subprocess.run([sys.executable, "-m", "sotto_cli", "sim", "run", str(tmp_path / "none.toml")],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert bad.returncode == 2 and "cannot read scenario" in bad.stderr


# -- the simulated HAL, the peripherals' behaviour over time ------------------------------


def test_sim_hal_reads_boards_through_the_firmwares_own_check(tmp_path):
    from simulator.hal import BoardFileError, load_board

    board = load_board("sotto-ref-s3")
    assert board["gnss"]["uart"] != board["modem"]["uart"]
    bad = dict(board, haptic={"pin": board["button"]["pin"]})  # one GPIO used twice
    (tmp_path / "twice.json").write_text(__import__("json").dumps(bad))
    with pytest.raises(BoardFileError) as e:
        load_board("twice", tmp_path)
    msg = str(e.value)
    assert "haptic.pin" in msg and "already used" in msg and "twice.json" in msg
    with pytest.raises(BoardFileError) as e:
        load_board("nonesuch", tmp_path)
    assert "known boards: twice" in str(e.value)


def test_sim_hal_offers_the_whole_hal_interface(tmp_path):
    from sotto import hal as fw_hal

    from simulator.device import DeviceSpec, VirtualDevice

    class Rx:  # enough of a receiver to build a device (no network is used)
        pki = None
        host, port, sms_url = "127.0.0.1", 9, "http://127.0.0.1:9/v1/sms"

    dev = VirtualDevice(DeviceSpec(device_id=b"HALTEST1"), VirtualClock(), Rx(), tmp_path)
    missing = [m for m in fw_hal.MEMBERS + ("arm_watchdog",) if not hasattr(dev.hal, m)]
    assert missing == []
    assert dev.hal.board["name"] == "sotto-ref-s3"
    assert dev.hal.random_bytes(16) != dev.hal.random_bytes(16)
    # seeded: the same scenario makes the same key and the same timeline every run
    twin = VirtualDevice(DeviceSpec(device_id=b"HALTEST1"), VirtualClock(), Rx(), tmp_path / "b")
    other = VirtualDevice(DeviceSpec(device_id=b"HALTEST1", seed=2), VirtualClock(), Rx(), tmp_path / "c")
    first = VirtualDevice(DeviceSpec(device_id=b"HALTEST1"), VirtualClock(), Rx(), tmp_path / "d")
    assert twin.hal.random_bytes(32) == first.hal.random_bytes(32) != other.hal.random_bytes(32)


def _first_fix_ms(rx: GnssReceiver, g: Gnss, start_ms: int, limit_ms: int = 40_000) -> int | None:
    for t in range(start_ms, start_ms + limit_ms, 1000):
        rx.advance(t + 1000)
        g.feed(rx.read(4096) or b"", t + 1000)
        fix = g.fix(t + 1000)
        if fix is not None and fix[4] == 1:  # SRC_GNSS
            return t + 1000 - start_ms
    return None


def test_gnss_cold_start_then_hot_start_then_cold_again(tmp_path):
    from sotto.storage import Storage

    from simulator.track import standing

    rx = GnssReceiver(standing(51.4545, -2.5879), epoch_s=1_748_854_800, ttff_s=12, hot_ttff_s=2)
    g = Gnss(Storage(str(tmp_path)))
    rx.power(True, 0)
    assert 12_000 <= _first_fix_ms(rx, g, 0) <= 13_000  # no ephemeris yet: cold
    rx.power(False, 20_000)
    g = Gnss(Storage(str(tmp_path / "b")))
    rx.power(True, 30_000)
    assert _first_fix_ms(rx, g, 30_000) <= 3_000  # a fix 10 s ago: hot
    rx.power(False, 40_000)
    rx.cold_start()
    g = Gnss(Storage(str(tmp_path / "c")))
    rx.power(True, 50_000)
    assert _first_fix_ms(rx, g, 50_000) >= 12_000
    assert [k for _, k in rx.starts] == ["cold", "hot", "cold"]


def test_gnss_signal_loss_gives_void_sentences_and_poor_hdop_is_reported(tmp_path):
    from sotto.storage import Storage

    from simulator.track import standing

    rx = GnssReceiver(standing(51.4545, -2.5879), epoch_s=1_748_854_800, ttff_s=1, hdop=0.9)
    rx.power(True, 0)
    rx.advance(5000)
    good = rx.read(4096)
    rx.hdop = 8.5
    rx.advance(6000)
    poor = rx.read(4096)
    rx.signal = False
    rx.advance(7000)
    void = rx.read(4096)
    assert b",A," in good and b",0.9," in good
    assert b",8.5," in poor
    assert b"RMC" in void and b",V," in void and b",A," not in void
    g = Gnss(Storage(str(tmp_path)))
    g.feed(good + poor, 6000)
    assert g.stats["bad_checksum"] == 0


def test_microphone_loops_its_source_without_gaps():
    mic = Microphone(array.array("h", [1, 2, 3]))
    mic.now_ms = 0
    mic.start(8000)
    buf = bytearray(4 * 10)
    mic.now_ms = 1  # 8 samples due
    n = mic.readinto(buf)
    assert n == 32
    got = [int.from_bytes(buf[i:i + 4], "little", signed=True) for i in range(0, n, 4)]
    assert [w >> 16 for w in got] == [1, 2, 3, 1, 2, 3, 1, 2]
    assert all(w & 0xFF == 0 for w in got)  # 24-bit data, low byte zero
    mic.now_ms = 2
    n = mic.readinto(buf)
    assert [int.from_bytes(buf[i:i + 4], "little", signed=True) >> 16 for i in range(0, n, 4)][:2] == [3, 1]


# -- the privacy check over the air ------------------------------------------------------


class _AirFake:
    """Just what the privacy check reads of a virtual device."""

    def __init__(self, made, posts, tls=True):
        from simulator.vmodem import AirRecord

        self.made = made
        self.modem = type("M", (), {})()
        self.modem.air = []
        for t, body in posts:
            plain = (b"POST /v1/frames HTTP/1.1\r\nHost: r\r\nContent-Type: application/cbor-seq\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body)) + body
            self.modem.air.append(AirRecord(t, "up", "data", len(plain) + (22 if tls else 0), plain, "r"))
        self.smsc = type("S", (), {"records": []})()


def test_privacy_check_follows_the_alert_and_wants_tls():
    d = DeviceSim()
    start = d.alert_start()
    loc = d.location(pack_location(1, 2, 3, 4, 1))
    cancel = d.cancel()
    late = d.location(pack_location(1, 2, 3, 4, 1))  # same sid, after the alert ended
    kinds = [(1, start), (2, loc), (4, cancel), (2, late)]  # alert-start, location, cancel, location
    made = [(i * 1000, i + 1, t, w) for i, (t, w) in enumerate(kinds)]
    ok = _AirFake(made[:3], [(1000, start + loc), (3000, cancel)])
    assert privacy_leaks(ok) == []
    sent = frames_on_air(ok)
    assert [t for t, _, _ in sent] == [1000, 1000, 3000]  # each frame with its own time
    after = _AirFake(made, [(1000, start + loc + cancel), (5000, late)])
    assert privacy_leaks(after) == ["seq 4 (location) by data outside an alert"]
    clear = _AirFake(made[:3], [(1000, start + loc + cancel)], tls=False)
    assert privacy_leaks(clear) == ["seq 2 (location) by data without TLS"]


# -- power cuts at the worst moments, and a firmware crash ---------------------------------


@pytest.mark.parametrize("flash_op", [
    1,  # the frame's write is torn: the frame never existed, the chain carries on from the one before
    2,  # the frame is on flash, its alert record not yet: the link comes from the queued frame
    3,  # the alert record's write is torn: the same
    4,  # the alert record is written too: nothing is lost
])
def test_power_cut_during_a_flash_operation_of_a_live_alert(tmp_path, flash_op):
    from simulator.run import run_scenario
    from simulator.scenario import Event

    sc = load(REPO / "scenarios/power_cut_mid_alert.toml")
    sc.events = [e for e in sc.events if e.action != "power_cut"]
    sc.events.append(Event(45_000, "power_cut", {"off_s": 10, "flash_op": flash_op}))
    result = run_scenario(sc, tmp_path)
    dev = result.device
    assert dev.power_cuts == 1 and dev.boots == 2
    faults = [text for _, kind, text in dev.timeline if kind == "fault"]
    assert any(text.startswith("power died") for text in faults)
    assert [c.line() for c in result.failures] == []


def test_a_firmware_crash_resets_the_device_as_main_py_does(tmp_path):
    from simulator.run import run_scenario

    sc = load(REPO / "scenarios/false_alarm_cancelled.toml")
    sc.events = []
    sc.expect = {"all_frames_verified": True}
    sc.duration_ms = 20_000
    calls = {"n": 0}
    import simulator.run as run_mod

    real_boot = run_mod.VirtualDevice.boot

    def boot_then_break(self):
        real_boot(self)
        if self.device is not None and self.boots == 1:
            step = self.device.step

            def crashing(now_ms):
                calls["n"] += 1
                if calls["n"] == 3:
                    raise MemoryError("memory allocation failed")
                return step(now_ms)

            self.device.step = crashing

    run_mod.VirtualDevice.boot = boot_then_break
    try:
        result = run_scenario(sc, tmp_path)
    finally:
        run_mod.VirtualDevice.boot = real_boot
    dev = result.device
    assert dev.crashes == 1 and dev.boots == 2
    crash = next(t for t, kind, text in dev.timeline if kind == "fault" and "crashed" in text)
    reboot = [t for t, kind, text in dev.timeline if kind == "device" and text == "boot 2"]
    assert reboot == [crash + 2000]
    assert result.ok


def test_scenario_values_are_checked_before_anything_runs():
    cases = [
        ({"duration_s": 10, "device": {"battery_pct": "full"}}, "device.battery_pct: must be float, not str"),
        ({"duration_s": 10, "device": {"battery_pct": 140}}, "device.battery_pct: a state of charge"),
        ({"duration_s": 10, "device": {"colour": "red"}}, "device: unknown key(s) ['colour']"),
        ({"duration_s": 10, "events": [{"at_s": 11, "action": "sos"}]}, "after the end of the scenario"),
        ({"duration_s": 10, "events": [{"at_s": 1, "action": "battery", "pct": -3}]}, "events[0].pct"),
        ({"duration_s": 10, "events": [{"at_s": 1, "action": "power_cut", "flash_op": 1.5}]},
         "events[0].flash_op: must be int"),
        ({"duration_s": 10, "expect": {"location_source": "wifi"}}, "one of gnss, cell, last-known"),
        ({"duration_s": True}, "duration_s"),
        ({"duration_s": 10, "expect": {"alert_flags": ["reserve"]}}, "duress, minimal mode, battery reserve"),
        ({"duration_s": 10, "expect": {"statuses": ["battery-flat"]}}, "expect.statuses: each one of"),
    ]
    for data, words in cases:
        with pytest.raises(ScenarioError) as e:
            parse(data)
        assert words in str(e.value), (data, str(e.value))
        assert e.value.exit_code == 2
    sc = parse({"duration_s": 10, "device": {"hot_ttff_s": 1, "seed": 3},
                "events": [{"at_s": 10, "action": "gnss_cold_start"},
                           {"at_s": 2, "action": "power_cut", "flash_op": 2, "off_s": 1}]})
    assert [(e.at_ms, e.action) for e in sc.events] == [(2000, "power_cut"), (10000, "gnss_cold_start")]
    assert sc.hot_ttff_s == 1.0
