# The hidden button: debounce, hold and press patterns, cancel and duress,
# presses during an alert, tick wrap-around. Driven by edges and time only.
from sotto import trigger
from sotto.haptic import Haptic
from sotto.ticks import TICKS_PERIOD, ticks_add

CFG = {"alert": {"hold_ms": 3000}, "cancel": {"presses": 3, "window_ms": 2000},
       "duress": {"presses": 5, "window_ms": 2500}, "debounce_ms": 20}


def run(edges, until_ms, cfg=CFG, start=0, step_ms=5):
    """Feed edges (relative times) and poll every step_ms; [(time, event)]."""
    t = trigger.Trigger(cfg)
    events = []
    pending = sorted(edges)
    now = 0
    while now <= until_ms:
        while pending and pending[0][0] <= now:
            at, level = pending.pop(0)
            t.edge(ticks_add(start, at), level)
        while True:
            ev = t.poll(ticks_add(start, now))
            if ev == trigger.NONE:
                break
            events.append((now, ev))
        now += step_ms
    return events


def press(at, length, bounce=0):
    """A press at `at` of `length` ms; bounce > 0 adds contact chatter."""
    out = [(at, True), (at + length, False)]
    if bounce:
        out += [(at + 2, False), (at + 4, True), (at + length + 3, True), (at + length + 6, False)]
    return out


def presses(n, start, gap=300, length=120, bounce=0):
    out = []
    for i in range(n):
        out += press(start + i * gap, length, bounce)
    return out


def test_hold_fires_when_the_hold_time_is_reached_not_at_release():
    ev = run(press(100, 5000), 6000)
    assert ev == [(3100, trigger.ALERT)]


def test_short_hold_does_nothing():
    assert run(press(100, 2500), 6000) == []


def test_bouncy_contacts_are_one_press():
    ev = run(presses(3, 100, bounce=1), 5000)
    assert [e for _, e in ev] == [trigger.CANCEL]


def test_bouncy_hold_still_fires():
    edges = press(100, 4000, bounce=1)
    ev = run(edges, 5000, step_ms=1)
    assert [e for _, e in ev] == [trigger.ALERT]


def test_bounce_shorter_than_debounce_is_not_a_press():
    # 10 ms blips (shorter than debounce_ms) three times: nothing
    edges = [(100, True), (110, False), (400, True), (410, False), (700, True), (710, False)]
    assert run(edges, 4000, step_ms=1) == []


def test_press_counts_select_cancel_or_duress():
    assert [e for _, e in run(presses(3, 0), 5000)] == [trigger.CANCEL]
    assert [e for _, e in run(presses(5, 0), 6000)] == [trigger.DURESS]
    assert run(presses(4, 0), 6000) == []  # no pattern has four presses


def test_burst_is_decided_only_after_the_widest_window():
    ev = run(presses(3, 0), 5000)
    # three presses could still become five until the 2.5 s window closes
    assert ev[0][0] > 2500


def test_pattern_split_across_windows_is_not_recognised():
    # two presses, a pause longer than every window, then three: only the three count
    edges = presses(2, 0) + presses(3, 4000)
    assert [e for _, e in run(edges, 9000)] == [trigger.CANCEL]
    # five presses spread over 4 s are not a duress (window 2.5 s)
    assert trigger.DURESS not in [e for _, e in run(presses(5, 0, gap=1000), 8000)]


def test_hold_during_a_burst_ends_the_burst():
    edges = presses(2, 0) + press(700, 3500)
    assert [e for _, e in run(edges, 8000)] == [trigger.ALERT]


def test_patterns_repeat():
    edges = press(0, 3200) + presses(3, 5000) + press(10000, 3100)
    assert [e for _, e in run(edges, 15000)] == [trigger.ALERT, trigger.CANCEL, trigger.ALERT]


def test_across_tick_wrap_around():
    start = TICKS_PERIOD - 1500  # the hold crosses the wrap
    ev = run(press(100, 4000), 6000, start=start)
    assert ev == [(3100, trigger.ALERT)]
    ev = run(presses(3, 0), 6000, start=TICKS_PERIOD - 400)
    assert [e for _, e in ev] == [trigger.CANCEL]


def test_hold_seen_only_at_release_still_counts():
    t = trigger.Trigger(CFG)
    t.edge(1000, True)
    t.edge(4500, False)  # the loop was busy: both edges arrive together
    assert t.poll(4600) == trigger.ALERT
    assert t.poll(4600) == trigger.NONE


def test_presses_pattern_can_be_the_alert():
    cfg = {"alert": {"presses": 4, "window_ms": 2000}, "cancel": {"presses": 2, "window_ms": 1000},
           "duress": {"hold_ms": 2000}, "debounce_ms": 20}
    assert [e for _, e in run(presses(4, 0), 5000, cfg)] == [trigger.ALERT]
    assert [e for _, e in run(press(0, 2100), 5000, cfg)] == [trigger.DURESS]


def test_next_ms_wakes_in_time_for_the_hold():
    t = trigger.Trigger(CFG)
    assert t.next_ms(0) >= 1000  # idle: nothing to time
    t.edge(0, True)
    assert t.next_ms(0) == 20  # debounce settles
    t.poll(20)
    assert t.next_ms(20) == 2980


def test_haptic_answer_is_the_same_and_silent_after():
    motor = []
    h = Haptic(lambda on: motor.append(on))
    now = 1000
    h.confirm(now)
    while h.busy:
        now += h.step(now)
    first = list(motor)
    assert first == [True, False, True, False]
    h.confirm(now)
    while h.busy:
        now += h.step(now)
    assert motor[len(first):] == first


def test_haptic_disabled_never_moves():
    motor = []
    h = Haptic(lambda on: motor.append(on), enabled=False)
    h.confirm(0)
    h.step(50)
    assert motor == []
