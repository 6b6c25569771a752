# The covert haptic answer (the session plays it for cancel and duress alike):
# two short pulses, nothing when disabled, wrap-safe timing, a restart plays the whole answer again.
from sotto.haptic import CONFIRM_MS, Haptic
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


def test_confirm_during_an_answer_restarts_it_and_ends_still():
    motor = []
    h = Haptic(lambda on: motor.append(on))
    h.confirm(0)
    h.step(30)
    h.confirm(40)  # restarted while the motor runs: no extra edge now
    now = 40
    while h.busy:
        now += h.step(now)
    assert motor[0] is True and motor[-1] is False
    assert motor.count(True) == 2  # the restarted answer's two pulses, merged with the first
    assert h.step(now + 5000) > 1000  # idle: nothing to do


def test_disabled_never_moves_the_motor():
    motor = []
    h = Haptic(lambda on: motor.append(on), enabled=False)
    h.confirm(0)
    for t in range(0, 1000, 10):
        h.step(t)
    assert motor == [] and not h.busy
