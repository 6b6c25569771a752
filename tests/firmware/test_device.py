# The whole device over a fake HAL: the alert session, cancel and duress,
# heartbeats and battery, reboots, boot loops, faults. The modem is silent
# here (delivery is tested against the virtual modem on the host), so every
# frame stays in the queue where the tests read and verify it.
from fakehal import FakeHal, config, nmea
from fwtest import tmpdir
from sotto import frames, identity
from sotto.app import Device
from sotto.storage import Storage

FIX = (nmea("GNRMC,143000.00,A,5127.2700,N,00235.2740,W,0.8,45.0,221126,,,A")
       + nmea("GNGGA,143000.00,5127.2700,N,00235.2740,W,1,07,0.8,12.3,M,49.6,M,,"))


class Rig:
    def __init__(self, root=None, **cfg):
        self.root = root or tmpdir("dev")
        self.hal = FakeHal(self.root)
        st = Storage(self.root)
        if st.read("identity.key") is None:
            identity.create(st, self.hal.random_bytes)
        self.pub = identity.public_key(st)
        self.cfg = config(**cfg)
        self.t = 0
        self.boot()

    def boot(self):
        self.dev = Device(self.hal, self.cfg)
        assert self.dev.boot(self.t)

    def alert_then_taps(self, n, until_ms):
        """An alert (hold from 1 s), then n quick presses at 8 s; run until until_ms."""
        self.hal.press(1000, 3200)
        self.run(8000)
        self.taps(n, 8000)
        self.run(until_ms)

    def taps(self, n, at_ms):
        """n quick presses 300 ms apart from at_ms (3: cancel, 5: duress)."""
        for i in range(n):
            self.hal.press(at_ms + 300 * i, 100)

    def run(self, until_ms, gnss=True):
        while self.t < until_ms:
            if gnss and self.t % 1000 < 20 and self.hal.gnss_on:
                self.hal.gnss_uart.rx += FIX
            self.hal.set_time(self.t)
            wait = self.dev.step(self.t)
            self.t += max(1, min(wait, 1000))

    def frames(self):
        out = []
        for seq, wire in self.dev.queue.batch(10000, 10 ** 8):
            _kid, f, audio = frames.verify(wire, self.pub)
            out.append((seq, f, audio, wire))
        out.sort(key=lambda x: x[0])
        return out

    def of(self, ftype):
        return [x for x in self.frames() if x[1][frames.K_T] == ftype]


def test_alert_start_is_queued_first_at_once_with_location():
    r = Rig()
    r.hal.gnss_on = True
    r.run(2000)
    r.hal.press(3000, 3400)
    r.run(6001)
    starts = r.of(frames.ALERT_START)
    assert len(starts) == 1
    seq, f, _, _ = starts[0]
    assert f[frames.K_TRIG] == frames.TRIG_HOLD and f[frames.K_SID] >= 1
    lat, lon, acc, age, src = frames.unpack_location(f[frames.K_LOC])
    assert (lat, lon, src) == (514545000, -25879000, frames.SRC_GNSS)
    later = [x for x in r.frames() if x[0] > seq]
    assert all(x[1][frames.K_T] == frames.AUDIO for x in later)  # nothing before it but boot status
    assert r.dev.queue.batch(1, 10)[0][0] == seq  # and it leaves first
    assert r.hal.motor[0] == (6000, True)  # covert confirmation when the hold is recognised


def test_alert_session_audio_locations_chain_and_gnss():
    r = Rig()
    r.hal.press(1000, 3200)
    r.run(70000)
    alert = [x for x in r.frames() if frames.K_SID in x[1]]
    types = [x[1][frames.K_T] for x in alert]
    assert types[0] == frames.ALERT_START
    audio = [x for x in alert if x[1][frames.K_T] == frames.AUDIO]
    assert len(audio) == 30 and sum(x[1][frames.K_NS] for x in audio) == 30 * 8000
    assert [x[1][frames.K_OFF] for x in audio] == [i * 8000 for i in range(30)]
    locs = [x for x in alert if x[1][frames.K_T] == frames.LOCATION]
    assert len(locs) == 4  # every 15 s after the start at 4 s: 19, 34, 49, 64
    # the hash chain: each frame names the one before it
    for prev, cur in zip(alert, alert[1:]):
        assert cur[1][frames.K_PREV] == frames.chain_link(prev[3])
    assert r.hal.gnss_on
    r.run(4000 + 3600 * 1000 + 5000)
    end = r.of(frames.END)
    assert end and end[0][1][frames.K_WHY] == frames.WHY_MAX_DURATION
    r.run(r.t + 601 * 1000)
    assert not r.hal.gnss_on


def test_cancel_in_the_window_ends_the_alert():
    r = Rig()
    r.alert_then_taps(3, 15000)
    cancel = r.of(frames.CANCEL)
    assert len(cancel) == 1
    n = len(r.frames())
    r.run(60000)
    assert len(r.frames()) == n  # nothing after the cancel
    assert not r.dev.session.live


def test_duress_looks_like_cancel_but_the_alert_goes_on_flagged():
    slow = {"not_through_s": 120}  # the silent modem never delivers: no not-through pattern here
    r1 = Rig(feedback=slow)
    r1.alert_then_taps(3, 15000)
    r2 = Rig(feedback=slow)
    r2.alert_then_taps(5, 40000)
    # the officer's wrist feels the same answer in both cases
    def pulses(hal):
        t0 = hal.motor[-1][0] - 270  # the last answer: times relative to its start
        return [(t - t0, on) for t, on in hal.motor[-4:]]

    assert pulses(r1.hal) == pulses(r2.hal)
    assert len(r1.hal.motor) == len(r2.hal.motor) == 8  # alert answer, then the cancel's
    d = r2.of(frames.DURESS)
    assert len(d) == 1 and d[0][1][frames.K_FLAGS] & frames.FLAG_DURESS
    after = [x for x in r2.frames() if x[0] > d[0][0]]
    assert after and all(x[1][frames.K_FLAGS] & frames.FLAG_DURESS for x in after)
    assert r2.dev.session.live and not r2.of(frames.CANCEL)


def test_presses_during_an_alert_and_late_cancels_are_ignored():
    r = Rig(trigger={"cancel_window_s": 30})
    r.hal.press(1000, 3200)
    r.run(10000)
    r.hal.press(10000, 3500)  # the alert pattern again: same alert
    r.run(40000)
    r.taps(3, 40000)  # after the 30 s window
    r.run(50000)
    assert len(r.of(frames.ALERT_START)) == 1
    assert not r.of(frames.CANCEL) and r.dev.session.live
    assert r.dev.session.ignored == 2


def test_centre_closing_the_alert_sends_end():
    r = Rig()
    r.hal.press(1000, 3200)
    r.run(10000)
    sid = r.dev.session.sid
    r.dev.session.closed_by_centre([sid], r.t)
    end = r.of(frames.END)
    assert len(end) == 1 and end[0][1][frames.K_WHY] == frames.WHY_CENTRE


def test_heartbeats_carry_no_location_and_battery_thresholds():
    r = Rig(heartbeat_every_s=60)
    r.hal.gnss_on = True
    r.run(2000)
    r.run(5 * 60 * 1000 + 500)
    hb = r.of(frames.HEARTBEAT)
    assert len(hb) == 5
    assert all(frames.K_LOC not in x[1] and x[1][frames.K_HB] == 60 for x in hb)
    r.hal.mv = 3690  # about 19 %
    r.run(r.t + 11000)
    r.hal.mv = 3580  # about 8 %
    r.run(r.t + 11000)
    st = [x[1][frames.K_ST] for x in r.of(frames.STATUS)]
    assert st == [frames.ST_STARTED, frames.ST_BATT_LOW, frames.ST_BATT_CRITICAL]
    r.hal.mv = 3400  # reserve: heartbeats stop, alerts still go
    r.run(r.t + 11000)
    n = len(r.of(frames.HEARTBEAT))
    r.run(r.t + 5 * 60 * 1000)
    assert len(r.of(frames.HEARTBEAT)) == n
    r.hal.press(r.t + 100, 3200)
    r.run(r.t + 5000)
    start = r.of(frames.ALERT_START)
    assert len(start) == 1 and start[0][1][frames.K_FLAGS] & frames.FLAG_RESERVE


def test_sequence_numbers_never_repeat_across_reboots():
    r = Rig()
    r.hal.press(1000, 3200)
    r.run(6000)
    seqs = set(x[0] for x in r.frames())
    r.dev.queue.ack(list(seqs))  # delivered: gone from the queue
    r.boot()  # reboot
    r.hal.press(r.t + 100, 3200)
    r.run(r.t + 6000)
    new = set(x[0] for x in r.frames())
    assert new and not (new & seqs)
    sids = set(x[1][frames.K_SID] for x in r.frames() if frames.K_SID in x[1])
    assert len(sids) == 1


def test_frames_queued_before_a_reboot_are_still_there():
    r = Rig()
    r.hal.press(1000, 3200)
    r.run(9000)
    before = [x[3] for x in r.frames()]
    r.boot()
    after = [x[3] for x in r.frames()]
    assert before == after[:len(before)]


def test_boot_loop_gives_minimal_mode():
    r = Rig()
    for _ in range(5):
        r.boot()  # resets within seconds of each other
    assert r.dev.minimal
    assert r.of(frames.STATUS)[-1][1][frames.K_ST] == frames.ST_BOOT_LOOP
    r.hal.press(r.t + 100, 3200)
    r.run(r.t + 20000)
    start = r.of(frames.ALERT_START)[0]
    assert start[1][frames.K_FLAGS] & frames.FLAG_MINIMAL
    assert not r.of(frames.AUDIO)  # alert-only
    r.run(r.t + 130000)  # stable uptime resets the count
    r.boot()
    assert not r.dev.minimal


def test_bad_config_or_missing_key_stops_with_the_reason():
    root = tmpdir("dev")
    hal = FakeHal(root)
    d = Device(hal)
    assert not d.boot(0)
    assert d.error.reason == "missing"
    assert d.step(0) == 1000  # idles, does not crash
    d = Device(hal, config(location_every_s="often"))
    assert not d.boot(0) and d.error.field == "location_every_s"


def test_a_part_that_raises_is_logged_and_the_device_goes_on():
    r = Rig()

    calls = [0]

    def boom(now_ms):
        calls[0] += 1
        raise RuntimeError("bug")

    r.dev.power.step = boom  # a bug in one part
    r.hal.press(1000, 3200)
    r.run(8000)
    assert r.dev.faults["power"] == calls[0] > 0
    assert r.of(frames.ALERT_START) and r.of(frames.AUDIO)  # the alert is unaffected


def test_an_alert_live_at_a_power_cut_carries_on_after_it():
    r = Rig()
    r.hal.press(1000, 3200)
    r.run(20000)
    before = [x for x in r.frames() if frames.K_SID in x[1]]
    sid = before[0][1][frames.K_SID]
    r.boot()  # the power came back: RAM is gone, the flash is not
    assert r.dev.session.live and r.dev.session.sid == sid
    r.run(r.t + 20000)
    alert = [x for x in r.frames() if frames.K_SID in x[1]]
    assert len(alert) > len(before) and all(x[1][frames.K_SID] == sid for x in alert)
    for prev, cur in zip(alert, alert[1:]):
        assert cur[1][frames.K_PREV] == frames.chain_link(prev[3])  # the chain runs through the cut
    assert [x for x in alert[len(before):] if x[1][frames.K_T] == frames.LOCATION]
    for i in range(3):
        r.hal.press(r.t + 100 + 300 * i, 100)
    r.run(r.t + 5000)
    assert r.of(frames.CANCEL)
    r.boot()
    assert not r.dev.session.live  # an alert that ended stays ended
