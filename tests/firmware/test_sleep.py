# Light sleep between passes (sotto.app Device.rest -> hal.sleep_until): the
# device sleeps when idle until its next timer, wakes on the button, the
# accelerometer and the modem, a pattern pressed from sleep still decodes,
# heartbeats are still on time, nothing sleeps while an alert is live, and the
# first press wakes the modem from PSM without sending anything. Runs under
# CPython and in the MicroPython VM.
from looprig import LoopRig
from sotto import frames, motion
from sotto.ticks import ticks_add, ticks_diff

CAP_MS = 4000  # main.py: half the board's default watchdog timeout


class SleepRig(LoopRig):
    """LoopRig whose loop is main.py's: step, then rest; a sleep ends at its end or
    at the first button / accelerometer edge or modem event before it."""

    def __init__(self, **cfg):
        self.passes = []  # ticks of every pass
        self.slept_ms = 0
        self.ri_at = None  # ticks the modem has something to say (RI)
        super().__init__(**cfg)

    def step(self, most=1000):
        self.hal.set_time(self.t)
        self.passes.append(self.t)
        wait = self.dev.step(self.t)
        self.modem._deliver()
        slept = self.dev.rest(self.t, CAP_MS)
        if not slept:
            self.t = ticks_add(self.t, max(1, min(wait, 200, most)))
            return
        end = ticks_add(self.t, min(slept, most))
        for e in self.hal.edges + self.hal.accel:
            if ticks_diff(e[0], self.t) > 0 and ticks_diff(e[0], end) < 0:
                end = e[0]
        if self.ri_at is not None and ticks_diff(self.ri_at, self.t) > 0 and ticks_diff(self.ri_at, end) < 0:
            end = self.ri_at
        self.slept_ms += ticks_diff(end, self.t)
        self.t = end


def settled(**cfg):
    r = SleepRig(**cfg)
    r.run(60000)  # boot, the start-up status delivered, the connection closed after its linger
    return r


def test_an_idle_device_sleeps_and_still_sends_its_heartbeats_on_time():
    r = settled(heartbeat_every_s=60)
    t0, beats, n0 = r.t, r.dev.power.heartbeats, len(r.hal.sleeps)
    r.run(175000)
    assert r.dev.power.heartbeats - beats == 3
    assert len(r.hal.sleeps) - n0 > 30
    assert max(ms for _, ms in r.hal.sleeps) <= CAP_MS
    assert r.slept_ms > 140000  # most of the 175 s, though each heartbeat is posted awake
    assert len(r.received(frames.HEARTBEAT)) >= 3
    # each heartbeat made within one sleep's length of its due time
    due = [b for b in (ticks_add(r.dev.t_boot, 60000 * k) for k in range(1, 6))
           if ticks_diff(b, t0) > 0 and ticks_diff(b, r.t) <= 0]
    made = [p for p in r.passes if ticks_diff(p, t0) > 0]
    for b in due:
        assert any(0 <= ticks_diff(p, b) < 50 for p in made), b


def test_a_pattern_pressed_from_sleep_decodes_and_nothing_sleeps_while_the_alert_is_live():
    r = settled()
    press = ticks_add(r.t, 1234)  # in the middle of a sleep
    assert r.dev.sleep_ms(r.t) > 0 or r.hal.sleeps
    r.hal.press(press, 3200)  # the hold: recognised 3 s after the press
    r.run(6000)
    assert press in r.passes  # the press woke the loop at its own time
    assert r.dev.session.live
    n = len(r.hal.sleeps)
    r.run(20000)
    assert len(r.hal.sleeps) == n  # an alert session is open: the CPU stays up
    assert r.received(frames.ALERT_START)


def test_the_accelerometer_and_the_modem_wake_the_loop():
    r = settled()
    t = ticks_add(r.t, 777)
    r.hal.accel.append((t, motion.ACTIVE))
    r.run(2000)
    assert t in r.passes
    r.ri_at = ticks_add(r.t, 555)  # the modem's RI: an URC on its way
    ri = r.ri_at
    r.run(2000)
    assert ri in r.passes


def test_the_first_press_wakes_the_modem_and_sends_nothing():
    r = settled()
    r.modem.psm = "AT+CPSMS=1"  # the driver asked for PSM
    seen = len(r.server.seen)
    press = ticks_add(r.t, 500)
    r.hal.press(press, 100)  # one short press: not a pattern
    r.run(3000)
    ats = [t for t, name in r.modem.calls if name == "cmd AT"]
    assert ats and 0 <= ticks_diff(ats[0], press) < 100
    assert len(r.server.seen) == seen  # nothing left the device
    assert r.dev.delivery.wakes == 1
    assert [x for x in r.hal.motor if ticks_diff(x[0], press) >= 0] == []  # covert: no haptic
