"""Timing inside the MicroPython VM, shared by the VM benchmark scripts.

bench.common.vm_result copies this file into the VM's /bench directory and puts
that directory on sys.path, so a script says `from vm_timing import per_call_ms`.
"""
import time


def per_call_ms(fn, min_ms=80):
    """ms per call of fn: calls per round double until one round takes min_ms
    (the VM's clock ticks in whole milliseconds)."""
    n = 1
    while True:
        t = time.ticks_ms()
        for _ in range(n):
            fn()
        dt = time.ticks_diff(time.ticks_ms(), t)
        if dt >= min_ms:
            return dt / n
        n *= 2


def best_of(cases, min_ms=80, rounds=3):
    """{name: best ms per call} of cases ({name: fn}) over `rounds` interleaved
    rounds: a busy machine slows every case alike."""
    items = list(cases.items())
    best = {}
    for _ in range(rounds):
        for name, fn in items:
            v = per_call_ms(fn, min_ms)
            best[name] = min(best.get(name, v), v)
    return best


def report(result):
    """Print the one `RESULT {json}` line that bench.common.vm_result reads."""
    import json

    print("RESULT " + json.dumps(result))
