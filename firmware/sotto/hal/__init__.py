# The hardware interface. Code outside sotto/hal/ never imports machine or
# esp32: it is handed an object with these members (sotto/hal/esp32.py on the
# device, simulator/hal.py on the desktop, tests/firmware/fakehal.py in tests).
#
#   board                     dict: the board definition (hardware/boards/<name>.json)
#   storage_root              directory on flash for config, key, queue, state ("/data")
#   button_edges() -> list    [(ticks_ms, pressed), ...] in order, since the last call,
#                             recorded by the pin interrupt (times in ticks_ms units)
#   gnss_uart, modem_uart     streams: read(n) -> bytes | None, write(b) -> int, any() -> int
#   modem_pwrkey(level)       1: key pressed (PWRKEY pulled low), 0: released
#   gnss_power(on)
#   mic_start(rate_hz), mic_readinto(buf) -> nbytes, mic_stop()
#                             32-bit little-endian I2S words, non-blocking: returns what
#                             the microphone has produced so far (0: nothing yet)
#   battery_mv() -> int       cell voltage, mV
#   haptic(on)                the vibration motor
#   random_bytes(n) -> bytes  hardware RNG
#   wdt_feed(), reset()
#   ticks_ms() -> int         only main.py reads it; the core is given now_ms
#   accel_events() -> list    only on a board with an accelerometer ("accel"): [(ticks_ms, kind)]
#                             edges of its interrupts, in order (kinds: sotto.motion FALL,
#                             IMPACT, ACTIVE, STILL; sotto/hal/lis2dh12.py)
#   sleep_until(ms) -> bool   optional: light-sleep up to ms, woken early by the button,
#                             the accelerometer's interrupts or the modem's RI (board
#                             modem.ri_pin); edges that woke it are recorded with the wake
#                             time. False: it did not sleep (an edge was waiting). A HAL
#                             without it: the loop never light-sleeps (sotto.app Device.rest)
#
# Nothing touches hardware at import; constructing the ESP32 HAL claims the pins.
import json

BOARDS_DIR = "/boards"

# What every HAL has (tests check the fakes and the simulator against it).
MEMBERS = ("board", "storage_root", "button_edges", "gnss_uart", "modem_uart", "modem_pwrkey",
           "gnss_power", "mic_start", "mic_readinto", "mic_stop", "battery_mv", "haptic",
           "random_bytes", "wdt_feed", "reset", "ticks_ms")

# Pin fields each part must name, then optional ones (the board JSON may carry
# more: part names, notes). A tuple, so that errors come in the same order everywhere.
PINS = (
    ("button", ("pin",), ()),
    ("gnss", ("tx", "rx", "power_pin"), ()),
    ("modem", ("tx", "rx", "pwrkey_pin"), ("status_pin", "ri_pin")),
    ("mic", ("sck", "ws", "sd"), ()),
    ("battery", ("adc_pin",), ()),
    ("haptic", ("pin",), ()),
)
# parts a board may have; checked as PINS when present
OPTIONAL_PINS = (
    ("accel", ("sda", "scl", "int1", "int2"), ()),
)

# GPIOs a board must not use, per chip: boot strapping pins, the SPI flash and
# PSRAM, the USB and UART0 console pins that flashing and the REPL go through.
RESERVED = {
    "esp32s3": (0, 3, 19, 20, 26, 27, 28, 29, 30, 31, 32, 43, 44, 45, 46),
    "esp32": (0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 15),
}


class BoardError(ValueError):
    """A board definition that cannot be wired as written; .field names the key."""

    def __init__(self, field, reason):
        super().__init__("board: %s: %s" % (field, reason))
        self.field = field
        self.reason = reason


def check_board(board):
    """Raise BoardError unless every part is there with integer pins, no GPIO
    is used twice and none is reserved on the board's chip. Returns board."""
    if not isinstance(board, dict):
        raise BoardError("board", "not a JSON object")
    chip = board.get("mcu", {}).get("chip", "esp32s3")
    reserved = RESERVED.get(chip)
    if reserved is None:
        raise BoardError("mcu.chip", "unknown chip %r" % chip)
    used = {}  # type: dict
    for part, fields, optional in PINS + tuple(p for p in OPTIONAL_PINS if p[0] in board):
        spec = board.get(part)
        if not isinstance(spec, dict):
            raise BoardError(part, "missing")
        for f in fields + optional:
            name = part + "." + f
            if f not in spec:
                if f in fields:
                    raise BoardError(name, "missing")
                continue
            pin = spec[f]
            if not isinstance(pin, int) or isinstance(pin, bool) or not 0 <= pin <= 48:
                raise BoardError(name, "not a GPIO number: %r" % (pin,))
            if pin in reserved:
                raise BoardError(name, "GPIO%d is reserved on %s" % (pin, chip))
            if pin in used:
                raise BoardError(name, "GPIO%d already used by %s" % (pin, used[pin]))
            used[pin] = name
    for part, key in (("gnss", "uart"), ("modem", "uart"), ("gnss", "baud"), ("modem", "baud"),
                      ("mic", "i2s")):
        if not isinstance(board[part].get(key), int):
            raise BoardError(part + "." + key, "missing")
    if board["gnss"]["uart"] == board["modem"]["uart"] or 0 in (board["gnss"]["uart"],
                                                                 board["modem"]["uart"]):
        raise BoardError("modem.uart", "GNSS and modem need two UARTs other than UART0 (the console)")
    return board


def load_board(name, directory=BOARDS_DIR):
    """The board definition as a dict, checked; OSError if absent, ValueError
    (BoardError) if it is not valid JSON or cannot be wired as written."""
    with open("%s/%s.json" % (directory, name)) as f:
        board = json.load(f)
    return check_board(board)


def lock_repl(root="/data"):
    """Production units (config `repl_lock: true`): Ctrl-C no longer interrupts
    the firmware, so `mpremote` cannot stop main.py and reach the REPL over USB.
    Called first thing in boot.py; True when it locked. A missing or unreadable
    config leaves the REPL as it is (an unprovisioned unit must stay reachable,
    and boot must not fail here). This does not protect the key against someone
    who reads the flash chip or uses the ROM's download mode: that needs flash
    encryption and secure boot (docs/technician-guide.md)."""
    try:
        with open(root + "/config.json") as f:
            locked = json.load(f).get("repl_lock") is True
    except (OSError, ValueError, AttributeError):
        return False
    if locked:
        import micropython

        micropython.kbd_intr(-1)
    return locked
