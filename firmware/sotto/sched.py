# Cooperative tasks without sleeping: each task is a generator that yields the
# number of milliseconds it wants to wait (0 or None: "run me again next step").
#
# Scheduler.step(now_ms) runs every task that is due, once, and returns how long
# the caller may wait before the next step. On the device a thin asyncio loop
# calls step() with time.ticks_ms(); the simulator calls it with its virtual
# clock, so the same firmware code runs both ways and deterministically.
# A task that raises is logged and restarted after `restart_ms`.
#
# The scheduler has no clock of its own before the first step(): a task spawned
# then is due at the first step, whatever the tick counter reads (a device may
# boot at any tick value: an ESP32's ticks_ms() is not reset by a soft reset
# and crosses 2**29, where "after 0" turns into "before 0", after 6.2 days).
from micropython import const

from sotto.log import Logger
from sotto.ticks import ticks_add, ticks_diff

_IDLE_MS = const(1000)
_log = Logger("sched")


class _Task:
    def __init__(self, name, factory, restart_ms):
        self.name = name
        self.factory = factory
        self.restart_ms = restart_ms
        self.gen = None
        self.wake = None  # ticks when due; None: at the next step
        self.restarts = 0


class Scheduler:
    def __init__(self):
        self.now_ms = 0
        self._tasks = []

    def spawn(self, name, factory, restart_ms=1000):
        """Start factory() as a task, due at the next step(); if it raises,
        restart it later."""
        task = _Task(name, factory, restart_ms)
        task.gen = factory()
        self._tasks.append(task)
        return task

    def cancel(self, name):
        self._tasks = [t for t in self._tasks if t.name != name]

    def running(self, name):
        for t in self._tasks:
            if t.name == name:
                return True
        return False

    def restarts(self, name):
        for t in self._tasks:
            if t.name == name:
                return t.restarts
        return 0

    def step(self, now_ms):
        """Run due tasks once; return ms until the next one is due."""
        self.now_ms = now_ms
        for task in list(self._tasks):
            if task.wake is not None and ticks_diff(now_ms, task.wake) < 0:
                continue
            if task.gen is None:
                task.gen = task.factory()
            try:
                delay = next(task.gen)
            except StopIteration:
                self._tasks.remove(task)
                continue
            except Exception as e:  # a broken task must not stop the others
                task.restarts += 1
                task.gen = None
                _log.e("task %s failed (%s: %s); restart %d in %d ms",
                       task.name, type(e).__name__, e, task.restarts, task.restart_ms)
                delay = task.restart_ms
            task.wake = ticks_add(now_ms, delay or 0)
        return self.next_due_ms(now_ms)

    def next_due_ms(self, now_ms):
        wait = _IDLE_MS
        for task in self._tasks:
            if task.wake is None:
                return 0
            d = ticks_diff(task.wake, now_ms)
            if d < wait:
                wait = d
        return wait if wait > 0 else 0


def sleep_until(sched, deadline):
    """Sub-generator: `yield from sleep_until(s, t)` waits until ticks t."""
    while True:
        d = ticks_diff(deadline, sched.now_ms)
        if d <= 0:
            return
        yield d
