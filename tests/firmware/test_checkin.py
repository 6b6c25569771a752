# Timed check-in (sotto.checkin) on the whole Device: start, extend and end
# patterns with their frames and haptic answers, the reminder, the overrun
# alert (trig 3), and what is ignored. Runs under CPython and in the VM.
from fakehal import config, nmea
from fwtest import DeviceRig
from sotto import checkin, frames
from sotto.app import Device
from sotto.ticks import ticks_add, ticks_diff

CHECKIN = {"enabled": True, "minutes": 10, "extend_minutes": 5, "remind_min": 2}
FIX = (nmea("GNRMC,143000.00,A,5127.2700,N,00235.2740,W,0.8,45.0,221126,,,A")
       + nmea("GNGGA,143000.00,5127.2700,N,00235.2740,W,1,07,0.8,12.3,M,49.6,M,,"))


class Rig(DeviceRig):
    def __init__(self, **over):
        DeviceRig.__init__(self, "ci", **over)
        self.played = []
        self.dev.observer = self

    # the observer's hooks
    def frame_made(self, seq, ftype, wire):
        pass

    def frames_acked(self, seqs):
        pass

    def time_set(self, epoch_s, source):
        pass

    def haptic_played(self, name):
        self.played.append((self.t, name))

    def presses(self, n, gap=300):
        for i in range(n):
            self.hal.press(ticks_add(self.t, 100 + i * gap), 120)

    def names(self):
        return [n for _, n in self.played]


def test_start_extend_end_send_check_in_frames_and_answer_on_the_wrist():
    # no position at all: the answer comes at once, each frame after FIX_WAIT_MS without loc
    r = Rig(checkin=CHECKIN)
    r.presses(6)
    r.run(8000)
    assert checkin.STARTED in r.names() and r.dev.checkin.open and r.hal.gnss_on
    assert r.of(frames.CHECK_IN) == []
    r.run(checkin.FIX_WAIT_MS)
    ci = r.of(frames.CHECK_IN)
    assert len(ci) == 1 and 569 <= ci[0][frames.K_DUR] <= 600 and ci[0][frames.K_VISIT] == 1
    assert frames.K_LOC not in ci[0]
    r.presses(7)
    r.run(8000 + checkin.FIX_WAIT_MS)
    ci = r.of(frames.CHECK_IN)
    assert len(ci) == 2 and 269 <= ci[1][frames.K_DUR] <= 300 and ci[1][frames.K_VISIT] == 1
    assert checkin.EXTENDED in r.names()
    r.presses(8)
    r.run(8000 + checkin.FIX_WAIT_MS)
    ci = r.of(frames.CHECK_IN)
    assert len(ci) == 3 and ci[2][frames.K_DUR] == 0 and ci[2][frames.K_VISIT] == 1
    assert checkin.ENDED in r.names() and not r.dev.checkin.open
    r.run(15 * 60000)  # long past the visit's end: nothing more
    assert r.of(frames.ALERT_START) == [] and len(r.of(frames.CHECK_IN)) == 3
    # every answer feels different: three patterns, three names, in order
    wrist = [n for n in r.names() if n.startswith("visit-")]
    assert wrist == [checkin.STARTED, checkin.EXTENDED, checkin.ENDED]


def test_the_due_time_is_the_device_clock_plus_the_duration():
    r = Rig(checkin=CHECKIN)
    r.dev.clock.set_network(1750000000, r.t)
    r.presses(6)
    r.run(8000 + checkin.FIX_WAIT_MS)
    f = r.of(frames.CHECK_IN)[0]
    assert f[frames.K_DUE] - f[frames.K_TIME] == f[frames.K_DUR]
    assert abs(f[frames.K_DUE] - (1750000000 + 8 + 600)) <= 8


def test_a_fresh_fix_sends_the_check_in_at_once_with_the_gnss_position():
    r = Rig(checkin=CHECKIN)
    r.presses(6)
    r.run(8000)
    assert r.hal.gnss_on and r.of(frames.CHECK_IN) == []
    r.hal.gnss_uart.rx += FIX
    r.run(2000)
    ci = r.of(frames.CHECK_IN)
    assert len(ci) == 1 and ci[0][frames.K_DUR] >= 590
    assert frames.unpack_location(ci[0][frames.K_LOC])[4] == frames.SRC_GNSS
    r.run(checkin.FIX_WAIT_MS + 5000)  # the GNSS goes off again (no alert needs it)
    assert not r.hal.gnss_on


def test_an_end_right_after_a_start_sends_both_frames_in_order():
    r = Rig(checkin=CHECKIN)
    r.presses(6)
    r.run(8000)
    r.presses(8)
    r.run(8000)
    ci = r.of(frames.CHECK_IN)
    assert [f[frames.K_DUR] > 500 for f in ci] == [True]  # the start went when the end came
    r.run(checkin.FIX_WAIT_MS)
    ci = r.of(frames.CHECK_IN)
    assert [f[frames.K_VISIT] for f in ci] == [1, 1] and ci[1][frames.K_DUR] == 0


def test_an_overrun_raises_the_alert_with_trig_3_after_a_reminder():
    r = Rig(checkin=CHECKIN)
    r.presses(6)
    r.run(8000)
    start = r.t
    # the pattern is recognised within 8 s of its first press (the visit starts then)
    r.run(8 * 60000 - 8000 - 10000)  # before the reminder (2 min before the end)
    assert checkin.REMINDER not in r.names()
    r.run(20000)
    assert r.names().count(checkin.REMINDER) == 1
    r.run(2 * 60000 - 20000)
    assert r.of(frames.ALERT_START) == []
    r.run(20000)
    starts = r.of(frames.ALERT_START)
    assert len(starts) == 1 and starts[0][frames.K_TRIG] == frames.TRIG_CHECKIN
    assert r.dev.session.live and not r.dev.checkin.open and r.dev.checkin.overruns == 1
    # at the visit's end (the check-in frame went FIX_WAIT_MS after the start), not later
    up = starts[0][frames.K_UP] - r.of(frames.CHECK_IN)[0][frames.K_UP]
    assert 600000 - checkin.FIX_WAIT_MS <= up <= 601000 - checkin.FIX_WAIT_MS and ticks_diff(r.t, start) > 0
    r.run(60000)  # the usual alert session: location and audio follow
    assert r.of(frames.AUDIO) and r.of(frames.LOCATION) == r.of(frames.LOCATION)


def test_extend_or_end_with_no_visit_open_does_nothing():
    r = Rig(checkin=CHECKIN)
    r.presses(7)
    r.run(8000)
    r.presses(8)
    r.run(8000)
    assert r.of(frames.CHECK_IN) == [] and r.dev.checkin.ignored == 2
    assert [n for n in r.names() if n.startswith("visit-")] == []


def test_a_second_start_restarts_the_open_visit_with_the_same_id():
    r = Rig(checkin=CHECKIN)
    r.presses(6)
    r.run(8000)
    r.run(6 * 60000)
    r.presses(6)
    r.run(8000 + checkin.FIX_WAIT_MS)
    ci = r.of(frames.CHECK_IN)
    assert [f[frames.K_VISIT] for f in ci] == [1, 1] and ci[1][frames.K_DUR] >= 569
    r.run(6 * 60000)  # would have overrun under the first start
    assert r.of(frames.ALERT_START) == []


def test_visit_ids_do_not_repeat_across_a_restart():
    r = Rig(checkin=CHECKIN)
    r.presses(6)
    r.run(8000)
    r.presses(8)
    r.run(8000 + checkin.FIX_WAIT_MS)
    r.dev = Device(r.hal, config(checkin=CHECKIN))
    assert r.dev.boot(r.t)
    r.presses(6)
    r.run(8000 + checkin.FIX_WAIT_MS)
    assert [f[frames.K_VISIT] for f in r.of(frames.CHECK_IN)] == [1, 1, 2]


def test_check_in_is_off_by_default_and_its_patterns_mean_nothing_then():
    r = Rig()
    r.presses(6)
    r.run(8000)
    assert r.of(frames.CHECK_IN) == [] and not r.dev.checkin.open
    assert r.dev.checkin.patterns_for_trigger() == ()


def test_an_overrun_during_a_live_alert_raises_nothing_more():
    r = Rig(checkin=CHECKIN)
    r.presses(6)
    r.run(8000)
    r.hal.press(ticks_add(r.t, 100), 3500)  # the alert pattern
    r.run(8000)
    assert len(r.of(frames.ALERT_START)) == 1
    r.run(10 * 60000)
    starts = r.of(frames.ALERT_START)
    assert len(starts) == 1 and starts[0][frames.K_TRIG] == frames.TRIG_HOLD
    assert r.dev.checkin.overruns == 1 and not r.dev.checkin.open


def test_check_in_switched_on_by_the_centre_works_at_once():
    # the centre's `config` command (sotto.remote): the trigger learns the check-in
    # patterns and the visit length without a restart
    r = Rig()
    cmd = {"id": 1, "op": "config", "v": 2, "set": {"checkin.enabled": True, "checkin.minutes": 20}}
    r.dev.commands.run([cmd], r.t)
    assert r.dev.cfg["checkin"]["enabled"] and r.dev.checkin.patterns_for_trigger()
    r.presses(6)
    r.run(8000 + checkin.FIX_WAIT_MS)
    ci = r.of(frames.CHECK_IN)
    assert len(ci) == 1 and 1169 <= ci[0][frames.K_DUR] <= 1200 and r.dev.checkin.open
    r.dev.commands.run([dict(cmd, id=2, v=3, set={"checkin.minutes": 30})], r.t)
    assert r.dev.checkin.open and r.dev.checkin.visit_ms == 30 * 60000  # the open visit carries on
