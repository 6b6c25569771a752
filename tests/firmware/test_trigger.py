# The hidden button: debounce, hold and press patterns, cancel and duress,
# presses during an alert, tick wrap-around. Driven by edges and time only.
from sotto import trigger
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
    # five presses spread over 4 s are no pattern at all (duress needs 2.5 s), and
    # not a cancel either: the first three are not cut out of a run that goes on
    assert run(presses(5, 0, gap=1000), 8000) == []
    assert run(presses(8, 0, gap=700), 10000) == []


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


def test_presses_during_an_alert_hold():
    # the alert hold fires while the button is still down; its release is not a
    # press, so three presses soon after are a cancel, not four presses
    edges = press(0, 3400) + presses(3, 3700)
    ev = run(edges, 9000)
    assert [e for _, e in ev] == [trigger.ALERT, trigger.CANCEL]
    assert ev[0][0] == 3000
    # five presses after the alert: duress, with bouncy contacts too
    ev = run(press(0, 3100, bounce=1) + presses(5, 3300, bounce=1), 9000, step_ms=1)
    assert [e for _, e in ev] == [trigger.ALERT, trigger.DURESS]


def test_random_chatter_shorter_than_debounce_changes_nothing():
    # every press and release gets up to three blips of 1..8 ms (debounce 20 ms):
    # the patterns come out exactly as from clean contacts
    x = 7
    for gap in (250, 350, 450):
        clean = presses(3, 100, gap=gap) + presses(5, 5000, gap=gap) + press(10000, 3300)
        noisy = []
        for at, level in clean:
            noisy.append((at, level))
            t = at
            for _ in range(x % 4):
                x = (x * 1103515245 + 12345) & 0x7FFFFFFF
                t += 1 + (x >> 16) % 4
                noisy.append((t, not level))
                t += 1 + (x >> 20) % 4
                noisy.append((t, level))
        want = [e for _, e in run(clean, 15000, step_ms=2)]
        assert want == [trigger.CANCEL, trigger.DURESS, trigger.ALERT]
        assert [e for _, e in run(noisy, 15000, step_ms=2)] == want


def test_a_press_still_settling_holds_the_decision():
    t = trigger.Trigger(CFG)
    for at in (0, 300, 600):
        t.edge(at, True)
        t.edge(at + 100, False)
    t.edge(2495, True)  # a fourth press begins just inside the window
    assert t.poll(2505) == trigger.NONE  # not yet stable: no decision on three presses
    t.edge(2600, False)
    for now in range(2600, 6000, 50):
        assert t.poll(now) == trigger.NONE  # four presses: no pattern


def test_next_ms_does_not_spin_while_a_burst_press_is_held():
    t = trigger.Trigger(CFG)
    t.edge(0, True)
    t.edge(100, False)
    t.poll(200)
    t.edge(2400, True)
    t.poll(2450)
    assert t.next_ms(2900) == 3000 - 500  # only the hold timer runs while pressed
