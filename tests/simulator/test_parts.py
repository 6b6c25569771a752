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
    proc = subprocess.run([sys.executable, "-m", "host_tools.cli", "sim", "run", str(p), "--report",
                           str(tmp_path / "rep")], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 1
    assert "FAIL  cancelled" in proc.stdout and "FAILED: cancelled" in proc.stderr
    assert (tmp_path / "rep" / "timeline.svg").exists()
    bad = subprocess.run([sys.executable, "-m", "host_tools.cli", "sim", "run", str(tmp_path / "none.toml")],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert bad.returncode != 0 and "cannot read scenario" in bad.stderr
