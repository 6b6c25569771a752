# The covert haptic answer (the session plays it for cancel and duress alike):
# two short pulses, nothing when disabled, wrap-safe timing; patterns queue, none is cut off.
from sotto.haptic import CONFIRM_MS, PAUSE_MS, QUEUE_MAX, Haptic
from sotto.ticks import TICKS_PERIOD, ticks_add


def run_answer(start):
    motor = []
    now = [start]
    h = Haptic(lambda on: motor.append((now[0], on)))
    h.confirm(start)
    while h.busy:
        now[0] = ticks_add(now[0], h.step(now[0]))
    h.step(now[0])
    return [(((t - start) % TICKS_PERIOD), on) for t, on in motor]


def test_two_short_pulses_then_still():
    got = run_answer(1000)
    on1, off1, on2 = CONFIRM_MS
    assert got == [(0, True), (on1, False), (on1 + off1, True), (on1 + off1 + on2, False)]
    assert on1 <= 150 and on2 <= 150  # short: felt, not heard


def test_same_answer_every_time_and_across_tick_wrap():
    first = run_answer(1000)
    assert run_answer(123456) == first
    assert run_answer(TICKS_PERIOD - 100) == first  # the pattern crosses the wrap


def run_all(h, now):
    while h.busy:
        now = ticks_add(now, h.step(now))
    return now


def pulses(motor):
    """[(start, length)] of each on-pulse in a [(t, on)] record."""
    out = []
    for i in range(0, len(motor) - 1, 2):
        assert motor[i][1] is True and motor[i + 1][1] is False
        out.append((motor[i][0], motor[i + 1][0] - motor[i][0]))
    return out


def test_a_pattern_asked_for_while_another_plays_waits_for_it_whole():
    motor = []
    now = [0]
    h = Haptic(lambda on: motor.append((now[0], on)))
    h.play("received", (400,), 0)
    now[0] = 100
    h.step(100)
    h.play("listening", (120, 150, 120), 100)  # while "received" plays: queued, not cut
    assert h.playing == "received"
    t = 100
    while h.busy:
        t = ticks_add(t, h.step(t))
        now[0] = t
    got = pulses(motor)
    assert got[0] == (0, 400)  # whole
    assert got[1][0] >= 400 + PAUSE_MS and [d for _s, d in got[1:]] == [120, 120]
    assert h.history == ["received", "listening"]


def test_confirm_goes_before_waiting_patterns_but_cuts_none():
    motor = []
    now = [0]
    h = Haptic(lambda on: motor.append((now[0], on)))
    h.play("question", (500, 150, 100), 0)
    h.play("listening", (120, 150, 120), 0)
    h.confirm(10)  # the officer's cancel: answered next
    t = 0
    while h.busy:
        t = ticks_add(t, h.step(t))
        now[0] = t
    assert h.history == ["question", "confirm", "listening"]
    lengths = [d for _s, d in pulses(motor)]
    assert lengths == [500, 100, CONFIRM_MS[0], CONFIRM_MS[2], 120, 120]


def test_a_full_queue_drops_the_newest_request_and_counts_it():
    h = Haptic(lambda on: None)
    h.play("a", (100,), 0)
    for i in range(QUEUE_MAX):
        assert h.play("w%d" % i, (100,), 0)
    assert h.play("late", (100,), 0) is False and h.dropped == 1
    run_all(h, 0)
    assert "late" not in h.history and len(h.history) == 1 + QUEUE_MAX


def test_disabled_never_moves_the_motor():
    motor = []
    h = Haptic(lambda on: motor.append(on), enabled=False)
    h.confirm(0)
    for t in range(0, 1000, 10):
        h.step(t)
    assert motor == [] and not h.busy
