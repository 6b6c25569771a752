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
