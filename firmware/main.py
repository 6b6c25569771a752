# Entry point on the device: build the ESP32 HAL and the Device, then run it.
# The loop is thin on purpose: all behaviour lives in sotto.app.Device.step().
import asyncio
import json
import time

from sotto import log
from sotto.app import Device
from sotto.hal import load_board
from sotto.hal.esp32 import Esp32Hal

_log = log.Logger("main")


def _board_name():
    try:
        with open("/data/config.json") as f:
            return json.load(f).get("board", "sotto-ref-s3")
    except (OSError, ValueError):
        return "sotto-ref-s3"


async def run():
    hal = Esp32Hal(load_board(_board_name()))
    device = Device(hal)
    device.boot(time.ticks_ms())
    while True:
        wait = device.step(time.ticks_ms())
        hal.wdt_feed()
        await asyncio.sleep_ms(min(wait, 20))


def main():
    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        _log.i("stopped from the REPL")


main()
