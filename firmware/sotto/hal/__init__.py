# The hardware interface. Code outside sotto/hal/ never imports machine or
# esp32: it is handed an object with these members (sotto/hal/esp32.py on the
# device, simulator/hal.py on the desktop, tests/firmware/fakehal.py in tests).
#
#   board                     dict: the board definition (hardware/boards/<name>.json)
#   storage_root              directory on flash for config, key, queue, state ("/data")
#   button_edges() -> list    [(ticks_ms, pressed), ...] since the last call, ISR-recorded
#   gnss_uart, modem_uart     streams: read(n) -> bytes | None, write(b) -> int, any() -> int
#   modem_pwrkey(level)       1: key pressed (PWRKEY pulled low), 0: released
#   gnss_power(on)
#   mic_start(rate_hz), mic_readinto(buf) -> nbytes, mic_stop()
#                             32-bit little-endian I2S words, non-blocking (0: nothing yet)
#   battery_mv() -> int
#   haptic(on)
#   random_bytes(n) -> bytes  hardware RNG
#   wdt_feed(), reset()
#   ticks_ms() -> int         only main.py reads it; the core is given now_ms
#
# Nothing touches hardware at import; constructing the ESP32 HAL claims the pins.
import json

BOARDS_DIR = "/boards"


def load_board(name, directory=BOARDS_DIR):
    """The board definition as a dict; OSError/ValueError if absent or bad."""
    with open("%s/%s.json" % (directory, name)) as f:
        board = json.load(f)
    for part in ("button", "gnss", "modem", "mic", "battery", "haptic"):
        if part not in board:
            raise ValueError("board %s lacks %r" % (name, part))
    return board
