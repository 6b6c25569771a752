# Man-down and no-motion (sotto.motion): the state machines from
# accelerometer edges, the pre-alarm and its cancel window, the alert's trig,
# and the false alarms that must stay quiet (sitting down, a device put on a
# table, a drop without a fall, walking, driving). Under CPython and in the VM.
from fwtest import DeviceRig
from sotto import frames, motion
from sotto.config import DEFAULTS
from sotto.motion import ACTIVE, FALL, IMPACT, STILL, Motion
from sotto.ticks import ticks_add

ON = {"no_motion": True, "man_down": True}


class Wrist:
    def __init__(self):
        self.played = []
        self.confirms = 0

    def play(self, name, pattern, now_ms, first=False):
        self.played.append((now_ms, name))
        return True

    def confirm(self, now_ms):
        self.confirms += 1


def machine(**over):
    m = dict(DEFAULTS["motion"])
    m.update(over)
    raised = []
    wrist = Wrist()
    mo = Motion({"motion": m}, wrist, lambda now, trig: raised.append((now, trig)))
    return mo, wrist, raised


def drive(mo, edges, until_ms, step_ms=100):
    """Feed edges (sorted) and step every step_ms up to until_ms."""
    edges = list(edges)
    t = 0
    while t <= until_ms:
        while edges and edges[0][0] <= t:
            e = edges.pop(0)
            mo.edge(e[0], e[1])
        mo.step(t)
        t += step_ms


def test_both_are_off_by_default():
    mo, _, raised = machine()
    drive(mo, [(0, STILL)], 600000, 1000)
    drive(mo, [(0, FALL), (200, IMPACT), (400, STILL)], 100000, 1000)
    assert not mo.enabled and raised == [] and mo.pre_alarms == 0


def test_no_motion_pre_alarm_at_t_then_the_alert_with_trig_4():
    mo, wrist, raised = machine(no_motion=True)
    drive(mo, [(1000, STILL)], 120900)
    assert mo.pre == 0 and raised == []
    drive(mo, [], 121000)  # stepping again from 0 is harmless: state holds
    mo.step(121000)
    assert mo.pre == frames.TRIG_NO_MOTION and wrist.played[0][1] == motion.PRE_ALARM
    for t in range(121000, 151000, 500):
        mo.step(t)
    assert raised == [] and len(wrist.played) == 3  # again every 10 s in the 30 s window
    mo.step(151000)
    assert raised == [(151000, frames.TRIG_NO_MOTION)] and mo.pre == 0
    for t in range(151000, 600000, 1000):  # the same stillness does not raise again
        mo.step(t)
    assert len(raised) == 1


def test_no_motion_cancelled_in_the_pre_alarm_then_counted_again_from_the_cancel():
    mo, wrist, raised = machine(no_motion=True)
    mo.edge(0, STILL)
    mo.step(120000)
    assert mo.pre == frames.TRIG_NO_MOTION
    assert mo.cancel(130000) and wrist.confirms == 1 and mo.pre == 0
    for t in range(130000, 249000, 1000):
        mo.step(t)
    assert raised == [] and mo.pre == 0
    mo.step(250000)
    assert mo.pre == frames.TRIG_NO_MOTION and mo.cancelled == 1
    assert not machine()[0].cancel(0)  # nothing to cancel: the pattern goes to the session


def test_moving_before_t_resets_the_stillness():
    mo, _, raised = machine(no_motion=True)
    drive(mo, [(0, STILL), (100000, ACTIVE), (110000, STILL)], 220000)
    assert mo.pre == 0 and raised == []
    mo.step(230000)
    assert mo.pre == frames.TRIG_NO_MOTION


def test_man_down_fall_impact_stillness_then_trig_5():
    mo, wrist, raised = machine(man_down=True)
    drive(mo, [(1000, FALL), (1300, IMPACT), (1800, STILL)], 11700)
    assert mo.pre == 0
    mo.step(11800)
    assert mo.pre == frames.TRIG_MAN_DOWN
    mo.step(41800)
    assert raised == [(41800, frames.TRIG_MAN_DOWN)]


def test_false_alarms_stay_quiet():
    cases = {
        # sitting down: a jolt, no free-fall, then fidgeting now and then
        "sit": [(1000, IMPACT), (3000, STILL), (40000, ACTIVE), (41000, STILL), (80000, ACTIVE)],
        # put on a table: a knock, then still for good (no free-fall: not man-down)
        "table": [(1000, IMPACT), (1500, STILL)],
        # dropped: free-fall and impact, picked up three seconds later
        "drop": [(1000, FALL), (1250, IMPACT), (1600, STILL), (4600, ACTIVE)],
        # walking and driving: moving all along; a pothole is a shock with no free-fall
        "walk": [(500, ACTIVE)],
        "drive": [(500, ACTIVE), (20000, IMPACT), (50000, IMPACT)],
    }
    for name, edges in cases.items():
        mo, _, raised = machine(man_down=True)
        drive(mo, edges, 100000)
        assert mo.pre_alarms == 0 and raised == [], name
    # a free-fall long before an impact is no fall onto the floor
    mo, _, raised = machine(man_down=True)
    drive(mo, [(1000, FALL), (5000, IMPACT), (5500, STILL)], 60000)
    assert mo.pre_alarms == 0


def test_stillness_must_begin_soon_after_the_impact():
    mo, _, _ = machine(man_down=True)
    drive(mo, [(1000, FALL), (1300, IMPACT), (1500, ACTIVE), (20000, STILL)], 60000)
    assert mo.pre_alarms == 0


def test_ticks_wrap_does_not_confuse_the_timers():
    mo, _, raised = machine(no_motion=True)
    t0 = ticks_add(0, -30000)
    mo.edge(t0, STILL)
    mo.step(ticks_add(t0, 119000))
    assert mo.pre == 0
    mo.step(ticks_add(t0, 120000))
    assert mo.pre == frames.TRIG_NO_MOTION


# -- on the whole Device: the edges from the HAL, the cancel pattern, the alert -----------
class Rig(DeviceRig):
    def __init__(self, **over):
        DeviceRig.__init__(self, "mo", **over)

    def starts(self):
        return self.of(frames.ALERT_START)


def test_device_man_down_raises_the_usual_alert_session():
    r = Rig(motion=ON)
    r.hal.accel += [(2000, FALL), (2300, IMPACT), (2600, STILL)]
    r.run(12000)
    assert r.dev.motion.pre == frames.TRIG_MAN_DOWN and r.starts() == []
    r.run(31000)
    s = r.starts()
    assert len(s) == 1 and s[0][frames.K_TRIG] == frames.TRIG_MAN_DOWN and r.dev.session.live


def test_device_the_normal_cancel_pattern_cancels_the_pre_alarm():
    r = Rig(motion=ON)
    r.hal.accel += [(2000, STILL)]
    r.run(125000)
    assert r.dev.motion.pre == frames.TRIG_NO_MOTION
    for i in range(3):  # the cancel pattern: three presses
        r.hal.press(ticks_add(r.t, 100 + i * 300), 120)
    r.run(10000)
    assert r.dev.motion.pre == 0 and r.dev.motion.cancelled == 1
    r.run(30000)
    assert r.starts() == [] and not r.dev.session.live


def test_device_an_alert_pattern_during_a_pre_alarm_raises_the_officers_alert():
    r = Rig(motion=ON)
    r.hal.accel += [(2000, STILL)]
    r.run(125000)
    r.hal.press(ticks_add(r.t, 100), 3500)
    r.run(40000)
    s = r.starts()
    assert len(s) == 1 and s[0][frames.K_TRIG] == frames.TRIG_HOLD and r.dev.motion.pre == 0
