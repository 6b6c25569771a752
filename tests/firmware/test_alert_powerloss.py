# A power cut at every storage operation from the officer's pattern to the
# acknowledgement of the frame it made: the alert pattern (to the alert-start's
# ack), the duress pattern and the cancel pattern (to their frames' acks). For
# EVERY operation N (a write, rename or remove), once with N not done and once
# done just before the power goes, the device reboots and then:
#   - the officer's alert exists exactly once (one alert-start, none missing:
#     raised again at boot if its alert-start never reached the queue, with the
#     same trigger and the time of the pattern); only a cut that tears the very
#     first operation (the intent's write: nothing reached the flash) may lose
#     it, and then the officer felt no pulse;
#   - the "accepted" pulse never came before the intent was durable;
#   - a duress or cancel the officer felt the pulse for is carried out once;
#   - the chain runs unbroken through the cut, and nothing acknowledged or
#     queued is lost.
# Runs under CPython and in the MicroPython VM (the Device over the fake HAL,
# the storage fault seam of faultstorage.py).
from fakehal import FakeHal, config, nmea
from faultstorage import FaultStorage
from fwtest import tmpdir
from sotto import alertrec, app, frames, identity, startup
from sotto.storage import Storage

T0_UTC = 1795000000  # the centre's time, known before the pattern
HOLD = (1000, 3200)  # the alert pattern: a 3 s hold from 1 s
PATTERN_MS = 4000  # ... recognised then
# no audio (its frames would only lengthen every path); a location every 5 s
SETTINGS = {"location_every_s": 5, "audio": {"clip_s": 0, "chunk_ms": 1000, "rate_hz": 8000}}
FIX = (nmea("GNRMC,143000.00,A,5127.2700,N,00235.2740,W,0.8,45.0,221126,,,A")
       + nmea("GNGGA,143000.00,5127.2700,N,00235.2740,W,1,07,0.8,12.3,M,49.6,M,,"))
_verified = {}  # wire -> payload: every run makes the same key, so the same frames recur


def fields(wire, pub):
    f = _verified.get(wire)
    if f is None:
        f = _verified[wire] = frames.verify(wire, pub)[1]
    return f


def presses(hal, t, n):
    for i in range(n):
        hal.press(t + 300 * i, 100)


class Run:
    """One device over one flash directory; storage ops counted from arm()."""

    def __init__(self):
        self.root = tmpdir("cut")
        self.hal = FakeHal(self.root)
        identity.create(Storage(self.root), self.hal.random_bytes)
        self.pub = identity.public_key(Storage(self.root))
        self.cfg = config(**SETTINGS)
        self.t = 0
        self.acked = {}  # seq -> wire: what the "receiver" stored
        self.pulses_alive = 0  # accepted pulses given while the power was on
        self.st = None
        self.boot(faulty=True)

    def boot(self, faulty=False):
        real = startup.Storage  # the boot sequence makes the device's Storage
        startup.Storage = FaultStorage if faulty else Storage
        try:
            self.dev = app.Device(self.hal, self.cfg)
            self.hal.set_time(self.t)
            assert self.dev.boot(self.t)
        finally:
            startup.Storage = real
        self.dev.storage.fsync = False
        if faulty:
            self.st = self.dev.storage
            confirm = self.dev.haptic.confirm

            def counted(now_ms):
                if not self.st.dead:
                    self.pulses_alive += 1
                confirm(now_ms)

            self.dev.haptic.confirm = counted
        self.dev.clock.set_network(T0_UTC + self.t // 1000, self.t)

    def arm(self, n, after):
        self.st.cut_at = self.st.ops + n
        self.st.cut_after = after
        self.st.whole_writes = after  # "after" a write: its .tmp is whole, the rename never came
        self.st.count_removes = True

    def step_to(self, until_ms, ack_type=0):
        """Run; acknowledge (as the receiver does) the first queued frame of
        ack_type. Returns True when it was acknowledged; stops when the power dies."""
        while self.t < until_ms:
            self.hal.set_time(self.t)
            if self.hal.gnss_on and self.t % 1000 < 100:
                self.hal.gnss_uart.rx += FIX
            wait = self.dev.step(self.t)
            if self.st is not None and self.st.dead:
                return False
            if ack_type and self.ack(ack_type):
                return not (self.st is not None and self.st.dead)
            self.t += max(1, min(wait, 100))
        return False

    def ack(self, ftype):
        for seq, wire in self.dev.queue.batch(1000, 10 ** 8):
            if self.fields(wire)[frames.K_T] == ftype:
                self.acked[seq] = wire
                try:
                    self.dev.queue.ack([seq])
                except OSError:
                    assert self.st.dead  # the power died removing it
                return True
        return False

    def ack_all(self):
        for seq, wire in self.dev.queue.batch(1000, 10 ** 8):
            self.acked[seq] = wire
            self.dev.queue.ack([seq])

    def fields(self, wire):
        return fields(wire, self.pub)

    def reboot(self):
        """The power comes back 5 s later: RAM gone, the flash as the cut left it."""
        self.st = None
        self.t += 5000
        self.boot()

    def alert_frames(self):
        got = dict(self.acked)
        for seq, wire in self.dev.queue.batch(1000, 10 ** 8):
            got[seq] = wire
        out = []
        for seq in sorted(got):
            f = self.fields(got[seq])
            if frames.K_SID in f:
                out.append((f, got[seq]))
        return out


def check_chain(alert, what):
    starts = [f for f, _ in alert if f[frames.K_T] == frames.ALERT_START]
    assert len(starts) == 1, "%s: %d alert-starts" % (what, len(starts))
    assert alert[0][0][frames.K_T] == frames.ALERT_START, what
    for (_, w0), (f1, _) in zip(alert, alert[1:]):
        assert f1[frames.K_PREV] == frames.chain_link(w0), "%s: chain broken at %d" % (what, f1[frames.K_SEQ])
        assert f1[frames.K_SID] == alert[0][0][frames.K_SID], what


def alert_then(run):
    """Raise the alert, deliver everything; the button is released by then."""
    run.hal.press(*HOLD)
    run.step_to(HOLD[0] + HOLD[1] + 500)
    run.ack_all()


def sweep(prepare, pattern, ack_type, verify):
    """Every cut point from `pattern` (after prepare) to the ack of a frame of
    ack_type, both kinds of cut. Returns the number of cut points."""
    points = 0
    for after in (False, True):
        n = 0
        while True:
            n += 1
            run = Run()
            prepare(run)
            pulses = run.pulses_alive
            run.arm(n, after)
            pattern(run)
            done = run.step_to(run.t + 8000, ack_type)
            if done and not run.st.dead:
                assert n > 3, "the whole path took %d storage operations" % (n - 1)
                break
            assert run.st.dead, "cut %d: stopped without a cut" % n
            points += 1
            what = "cut at op %d %s" % (n, "after" if after else "before")
            pulsed = run.pulses_alive > pulses
            run.reboot()
            run.step_to(run.t + 6000)  # a location frame (every 5 s) after the reboot
            verify(run, n, after, pulsed, what)
    return points


def test_the_alert_pattern_survives_a_cut_at_every_operation_until_its_ack():
    def verify(run, n, after, pulsed, what):
        alert = run.alert_frames()
        if not alert:
            # only a torn first write (the intent) may lose it, and then without a pulse
            assert n == 1 and not after and not pulsed, what + ": the alert was lost"
            assert not run.dev.session.live
            return
        check_chain(alert, what)
        start = alert[0][0]
        assert start[frames.K_TRIG] == frames.TRIG_HOLD, what
        # dated by the pattern (the network time known then), not by the reboot (unknown then)
        assert abs(start[frames.K_TIME] - (T0_UTC + PATTERN_MS // 1000)) <= 1, what
        assert run.dev.session.live and run.dev.session.sid == start[frames.K_SID], what
        assert not run.dev.session.duress, what

    def pattern(run):
        run.hal.press(*HOLD)

    def prepare(run):
        run.step_to(900)
        run.ack_all()  # the boot status frame is delivered

    assert sweep(prepare, pattern, frames.ALERT_START, verify) >= 10


def test_the_accepted_pulse_comes_only_once_the_intent_is_on_flash():
    run = Run()
    run.step_to(900)
    ops = run.st.ops
    seen = []
    confirm = run.dev.haptic.confirm

    def watch(now_ms):
        seen.append((run.st.ops - ops, alertrec.read(Storage(run.root)) is not None))
        confirm(now_ms)

    run.dev.haptic.confirm = watch
    run.hal.press(*HOLD)
    run.step_to(PATTERN_MS + 100)
    assert seen == [(2, True)]  # after the intent's write and rename, before any counter or frame
    assert run.pulses_alive == 1 and run.dev.session.live


def test_a_duress_survives_a_cut_at_every_operation_until_its_ack():
    def verify(run, n, after, pulsed, what):
        alert = run.alert_frames()
        check_chain(alert, what)
        duress = [f for f, _ in alert if f[frames.K_T] == frames.DURESS]
        assert len(duress) <= 1, what + ": duress frame made twice"
        if pulsed:
            assert duress and run.dev.session.duress, what + ": the officer's duress was lost"
        if duress:
            later = [f for f, _ in alert if f[frames.K_SEQ] > duress[0][frames.K_SEQ]]
            assert later and all(f[frames.K_FLAGS] & frames.FLAG_DURESS for f in later), what
        assert run.dev.session.live, what + ": a duress keeps the alert live"

    def prepare(run):
        alert_then(run)

    def pattern(run):
        presses(run.hal, run.t + 100, 5)

    assert sweep(prepare, pattern, frames.DURESS, verify) >= 6


def test_a_cancel_survives_a_cut_at_every_operation_until_its_ack():
    def verify(run, n, after, pulsed, what):
        alert = run.alert_frames()
        check_chain(alert, what)
        cancels = [f for f, _ in alert if f[frames.K_T] == frames.CANCEL]
        assert len(cancels) <= 1, what + ": cancel frame made twice"
        if pulsed:
            assert cancels, what + ": the officer's cancel was lost"
        assert run.dev.session.live == (not cancels), what
        if cancels:
            assert alert[-1][0][frames.K_T] == frames.CANCEL, what + ": frames after the cancel"
            assert alertrec.read(Storage(run.root)) is None, what + ": the record outlived the alert"

    def prepare(run):
        alert_then(run)

    def pattern(run):
        presses(run.hal, run.t + 100, 3)

    assert sweep(prepare, pattern, frames.CANCEL, verify) >= 6
