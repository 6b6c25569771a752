"""The device's own costs inside the MicroPython VM (issue 3); the audio
encoder's speed is in bench/bench_audio_vm.py.

- CPU time from the trigger event to the alert-start frame signed and queued
  on flash (location, counters, haptic, GNSS power, state file, queue), next
  to signing the same frame alone, measured in the same run;
- the heap the alert path allocates: bytes allocated from the trigger event to
  the alert-start queued, next to the signing alone, and over a whole 70 s
  alert session (alert-start, 30 s of audio, locations).

Why allocation and not the live peak: in this VM `gc.collect()` called from
Python frees nothing (its heap grows in split blocks instead, up to 128 MB,
whatever `--heap` says), so `gc.mem_alloc()` after a collection only counts
what was ever allocated. The allocation over the session is still an upper
bound for how much the live heap can grow during it.
"""

from __future__ import annotations

from pathlib import Path

from bench.common import Row, lower_is_better, vm_result

BENCH_DIR = Path(__file__).resolve().parent
TESTS_FW = BENCH_DIR.parent / "tests" / "firmware"

PRELUDE = r"""
import sys, time, json, gc
sys.path.insert(0, '/tf')
from fakehal import FakeHal, config, nmea
from sotto import frames, identity, trigger
from sotto.app import Device
from sotto.storage import Storage

FIX = (nmea("GNRMC,143000.00,A,5127.2700,N,00235.2740,W,0.8,45.0,221126,,,A")
       + nmea("GNGGA,143000.00,5127.2700,N,00235.2740,W,1,07,0.8,12.3,M,49.6,M,,"))
_n = [0]

def device():
    _n[0] += 1
    root = '/tmp/dev%d' % _n[0]
    hal = FakeHal(root)
    st = Storage(root)
    st.fsync = False
    identity.create(st, hal.random_bytes)
    d = Device(hal, config())
    d.boot(0)
    hal.gnss_uart.rx += FIX
    hal.set_time(10)
    d.step(10)
    return hal, d

def session(hal, d, until_ms):
    t = 20
    while t < until_ms:
        if t % 1000 < 20:
            hal.gnss_uart.rx += FIX
        hal.set_time(t)
        w = d.step(t)
        t += max(1, min(w, 1000))
"""

MAIN = PRELUDE + r"""
f = {frames.K_T: frames.ALERT_START, frames.K_SID: 1, frames.K_SEQ: 99, frames.K_TIME: 1790000000,
     frames.K_UP: 1000, frames.K_BATT: 80, frames.K_TRIG: 1,
     frames.K_LOC: frames.pack_location(514545000, -25879000, 4, 1, 1)}
res = {}
best = sign = None
for _ in range(5):
    hal, d = device()
    t = time.ticks_ms()
    for _ in range(10):
        d.session.live = False
        d.session.event(trigger.ALERT, 1000, d.counters.next_sid)
    dt = time.ticks_diff(time.ticks_ms(), t) / 10
    best = dt if best is None else min(best, dt)
    t = time.ticks_ms()
    for _ in range(10):
        d.signer.sign(f)
    s = time.ticks_diff(time.ticks_ms(), t) / 10
    sign = s if sign is None else min(sign, s)
res["alert_ms"] = best
res["sign_ms"] = sign

# allocation: the VM's collector does not free, so mem_alloc differences are bytes allocated
hal, d = device()
a = gc.mem_alloc()
d.session.event(trigger.ALERT, 1000, d.counters.next_sid)
res["alert_alloc"] = gc.mem_alloc() - a
a = gc.mem_alloc()
d.signer.sign(f)
res["sign_alloc"] = gc.mem_alloc() - a

hal, d = device()
a = gc.mem_alloc()
hal.press(1000, 3200)
session(hal, d, 70000)
res["session_alloc"] = gc.mem_alloc() - a
res["frames"] = len(d.queue)
res["audio_frames"] = d.queue.count(frames.AUDIO)
print("RESULT " + json.dumps(res))
"""


def _run(source: str) -> dict[str, float]:
    return vm_result(source, {"/tf": [TESTS_FW / "fakehal.py", TESTS_FW / "fwtest.py"]})


def run() -> list[Row]:
    m = _run(MAIN)
    return [
        lower_is_better("trigger event -> alert-start queued (VM)", m["alert_ms"], "ms", m["sign_ms"],
                        note="baseline: signing the frame alone; the rest is location, counters, flash"),
        lower_is_better("heap allocated, trigger event -> alert-start queued (VM)", m["alert_alloc"] / 1024,
                        "KB", m["sign_alloc"] / 1024,
                        note="baseline: signing the frame alone (the VM's gc.collect frees nothing)"),
        lower_is_better("heap allocated over a whole alert session (VM)", m["session_alloc"] / 1024, "KB",
                        64.0, target="live peak <= 64 KB (not measurable in this VM)",
                        note=f"70 s, {m['frames']:.0f} frames, {m['audio_frames']:.0f} audio; "
                        "an upper bound for the live heap's growth, not the live peak"),
    ]
