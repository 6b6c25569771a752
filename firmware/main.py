# Entry point on the device: build the ESP32 HAL and the Device, then run it.
# The loop is thin on purpose: all behaviour lives in sotto.app.Device.step().
#
# The watchdog (which cannot be stopped once started) is armed after the
# board's watchdog_arm_ms of running: a technician who connects with
# `sotto flash` / `sotto provision` right after a reset gets a REPL that the
# watchdog will not reset under them. The device works normally meanwhile.
# Once armed, only the loop feeds it: a hang anywhere resets the device, and
# the boot counter in Device.boot() notices if that keeps happening.
#
# Between passes the CPU light-sleeps when the Device says nothing is pending
# (Device.rest -> hal.sleep_until: the button, the accelerometer and the
# modem's RI wake it); otherwise it waits clocked (asyncio.sleep_ms). A light
# sleep is capped below the watchdog's timeout, which keeps counting.
import asyncio
import json
import sys
import time

from sotto import app, log
from sotto.app import Device
from sotto.hal import load_board
from sotto.hal.esp32 import Esp32Hal

_log = log.Logger("main")
MAX_SLEEP_MS = 20  # awake: the button and the microphone want a pass this often


def _board_name():
    try:
        with open("/data/config.json") as f:
            return json.load(f).get("board", "sotto-ref-s3")
    except (OSError, ValueError):
        return "sotto-ref-s3"


async def run(hal):
    device = Device(hal)
    t0 = time.ticks_ms()
    device.boot(t0)
    app.forget_boot_modules()  # the configuration's checks and the key's loader: boot only
    arm_ms = hal.board.get("watchdog_arm_ms", 20000)
    armed = False
    nap_max = hal.board.get("watchdog_ms", 8000) // 2  # a light sleep never starves the watchdog
    while True:
        now = time.ticks_ms()
        wait = device.step(now)
        if not armed and time.ticks_diff(now, t0) >= arm_ms:
            hal.arm_watchdog()
            armed = True
        hal.wdt_feed()
        if device.rest(now, nap_max):
            hal.wdt_feed()  # woken (by a timer or a pin): a fresh watchdog period for the pass
            await asyncio.sleep_ms(0)  # still a cooperative loop
        else:
            await asyncio.sleep_ms(min(wait, MAX_SLEEP_MS))


def main():
    hal = None
    try:
        hal = Esp32Hal(load_board(_board_name()))
        asyncio.run(run(hal))
    except KeyboardInterrupt:
        # a technician at the REPL; if the watchdog is armed it resets the device in
        # a few seconds, which puts it back in service if nobody meant to stop it
        _log.i("stopped from the REPL")
    except Exception as e:  # noqa: BLE001 - anything else: log it and start again
        sys.print_exception(e)
        _log.e("fatal: %r; resetting", e)
        time.sleep_ms(2000)  # a window to interrupt a crash loop from the REPL
        if hal is not None:
            hal.reset()
        else:
            import machine

            machine.reset()


main()
