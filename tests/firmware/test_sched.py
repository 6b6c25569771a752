from sotto import log
from sotto.sched import Scheduler, sleep_until
from sotto.ticks import TICKS_PERIOD, ticks_add


def test_tasks_wake_when_due_and_report_next_wait():
    s = Scheduler()
    seen = []

    def ticker():
        while True:
            seen.append(s.now_ms)
            yield 100

    s.spawn("ticker", ticker)
    assert s.step(0) == 100
    assert s.step(50) == 50
    s.step(100)
    s.step(150)
    s.step(200)
    assert seen == [0, 100, 200]


def test_finished_task_is_removed():
    s = Scheduler()

    def once():
        yield 0

    s.spawn("once", once)
    s.step(0)
    assert s.running("once")
    s.step(1)
    assert not s.running("once")


def test_raising_task_is_logged_and_restarted():
    s = Scheduler()
    lines = []
    log.set_sink(lines.append)
    starts = []

    def flaky():
        starts.append(s.now_ms)
        yield 10
        raise ValueError("boom")

    try:
        s.spawn("flaky", flaky, restart_ms=500)
        s.step(0)
        s.step(10)  # raises -> restart in 500 ms
        assert s.restarts("flaky") == 1
        s.step(400)
        assert starts == [0]
        s.step(510)
        assert starts == [0, 510]
    finally:
        log.set_sink(None)
    assert any("flaky" in line and "boom" in line for line in lines)


def test_sleep_until_across_tick_wrap():
    s = Scheduler()
    start = TICKS_PERIOD - 30
    done = []

    def waiter():
        yield from sleep_until(s, ticks_add(start, 100))
        done.append(s.now_ms)

    s.now_ms = start
    s.spawn("w", waiter)
    s.step(start)
    s.step(ticks_add(start, 99))
    assert not done
    s.step(ticks_add(start, 100))
    assert done == [70]


# A device boots with its tick counter anywhere on the circle (an ESP32's
# ticks_ms() survives a soft reset and crosses 2**29 after 6.2 days, where
# "after 0" becomes "before 0"): tasks spawned before the first step run at it.
BOOT_TICKS = (0, (1 << 29) - 30000, (1 << 29) + 30000, TICKS_PERIOD - 30000, TICKS_PERIOD - 1)


def test_tasks_spawned_before_the_first_step_run_at_it_whatever_the_ticks():
    for boot in BOOT_TICKS:
        s = Scheduler()
        seen = []

        def ticker():
            while True:
                seen.append(s.now_ms)
                yield 100

        s.spawn("ticker", ticker)
        assert s.next_due_ms(boot) == 0
        assert s.step(boot) == 100
        assert seen == [boot], (boot, seen)
        s.step(ticks_add(boot, 100))
        s.step(ticks_add(boot, 200))
        assert seen == [boot, ticks_add(boot, 100), ticks_add(boot, 200)], boot


def test_a_task_spawned_between_steps_runs_at_the_next_step():
    boot = (1 << 29) + 30000
    s = Scheduler()
    s.step(boot)
    seen = []

    def once():
        seen.append(s.now_ms)
        yield 0

    s.spawn("once", once)
    s.step(ticks_add(boot, 5))
    assert seen == [ticks_add(boot, 5)]
