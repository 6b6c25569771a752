# The hardware interface: board definitions as data (checked before any pin is
# claimed), the ESP32 HAL driven against a recording stand-in for MicroPython's
# `machine` module (button interrupt ring, I2S block ring, ADC, power lines,
# watchdog), and the fakes that stand in for it elsewhere.
import json
import sys

from fakehal import FakeHal
from fwtest import raises, tmpdir
from sotto import hal as hal_mod
from sotto.hal import BoardError, check_board
from sotto.modem.cch import SEND_MAX

BOARD = {
    "name": "t", "mcu": {"chip": "esp32s3"},
    "button": {"pin": 4, "active_low": True, "pull": "up"},
    "gnss": {"uart": 1, "tx": 17, "rx": 18, "baud": 9600, "power_pin": 8, "power_active_high": True},
    "modem": {"uart": 2, "tx": 11, "rx": 12, "baud": 115200, "pwrkey_pin": 9, "status_pin": 10},
    "mic": {"i2s": 0, "sck": 5, "ws": 6, "sd": 7, "ibuf_bytes": 8192},
    "battery": {"adc_pin": 1, "divider": 2.0},
    "haptic": {"pin": 21, "active_high": True},
    "watchdog_ms": 8000,
}


def board(**changes):
    b = json.loads(json.dumps(BOARD))
    for path, value in changes.items():
        part, key = path.split("__")
        if value is None:
            del b[part][key]
        else:
            b[part][key] = value
    return b


def _repo_board():
    try:
        here = __file__.rsplit("/", 1)[0]
        with open(here + "/../../hardware/boards/sotto-ref-s3.json") as f:
            return json.load(f)
    except OSError:
        return None


def test_reference_board_wires_up():
    real = _repo_board()
    if real is None:  # the VM sees only tests/ and firmware/; CPython checks the file
        assert sys.implementation.name == "micropython"
        real = BOARD
    assert check_board(real) is real
    d = tmpdir("boards")
    with open(d + "/ref.json", "w") as f:
        json.dump(real, f)
    assert hal_mod.load_board("ref", d)["button"]["pin"] == real["button"]["pin"]


def test_board_mistakes_are_named():
    cases = [
        (board(haptic__pin=4), "haptic.pin", "already used by button.pin"),
        (board(modem__tx=43), "modem.tx", "reserved"),  # UART0: the console
        (board(gnss__power_pin=0), "gnss.power_pin", "reserved"),  # a strapping pin
        (board(mic__sd=None), "mic.sd", "missing"),
        (board(button__pin=True), "button.pin", "not a GPIO"),
        (board(battery__adc_pin="1"), "battery.adc_pin", "not a GPIO"),
        (board(modem__uart=1), "modem.uart", "two UARTs"),
        (board(modem__status_pin=17), "modem.status_pin", "already used"),
    ]
    for b, field, words in cases:
        e = raises(BoardError, check_board, b)
        assert e.field == field, (field, e.field)
        assert words in str(e), str(e)
        assert isinstance(e, ValueError)
    b = board()
    del b["haptic"]
    assert raises(BoardError, check_board, b).field == "haptic"
    b = board()
    b["mcu"]["chip"] = "esp8266"
    assert raises(BoardError, check_board, b).field == "mcu.chip"
    d = tmpdir("boards")
    with open(d + "/bad.json", "w") as f:
        f.write("{not json")
    raises(ValueError, hal_mod.load_board, "bad", d)
    raises(OSError, hal_mod.load_board, "absent", d)


def test_fakes_offer_the_whole_interface():
    h = FakeHal(tmpdir("h"))
    missing = [m for m in hal_mod.MEMBERS if not hasattr(h, m)]
    assert missing == []
    try:
        from simulator.hal import SimHal  # CPython: the simulator's HAL too
    except ImportError:
        assert sys.implementation.name == "micropython"
        return
    missing = [m for m in hal_mod.MEMBERS if m not in ("board", "storage_root", "gnss_uart", "modem_uart")
               and not hasattr(SimHal, m)]
    assert missing == []


# -- the ESP32 HAL over a recording `machine` --------------------------------------------


class _Pin:
    IN = 1
    OUT = 3
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_RISING = 1
    IRQ_FALLING = 2
    WAKE_LOW = 4
    WAKE_HIGH = 5
    claimed = {}

    def __init__(self, pin_id, mode=None, pull=None, value=None):
        self.id = pin_id
        self.mode = mode
        self.pull = pull
        self.level = value
        self.handler = None
        if mode is not None:
            _Pin.claimed[pin_id] = self

    def value(self, v=None):
        if v is None:
            return self.level
        self.level = v

    def irq(self, handler, trigger, wake=None):
        self.handler = handler
        self.trigger = trigger
        self.wake = wake


class _UART:
    def __init__(self, uart_id, baudrate, tx, rx, rxbuf, timeout, txbuf=256):  # 256: MicroPython's default
        self.args = (uart_id, baudrate, tx, rx, timeout)
        self.txbuf = txbuf


class _ADC:
    ATTN_11DB = 3
    uv = 1900000

    def __init__(self, pin):
        self.pin = pin
        self.reads = 0

    def atten(self, a):
        self.att = a

    def read_uv(self):
        self.reads += 1
        return _ADC.uv + (1000 if self.reads % 2 else -1000)  # noise that averages out


class _I2S:
    RX = 0
    MONO = 0
    last = None

    def __init__(self, i2s_id, sck, ws, sd, mode, bits, format, rate, ibuf):
        self.args = (i2s_id, sck.id, ws.id, sd.id, bits, rate, ibuf)
        self.armed = None
        self.cb = None
        self.closed = False
        _I2S.last = self

    def irq(self, cb):
        self.cb = cb

    def readinto(self, buf):
        self.armed = buf  # non-blocking: the driver fills it later
        return len(buf)

    def deinit(self):
        self.closed = True

    def deliver(self, first_byte):
        """The DMA filled the armed block: call the callback as the driver does."""
        buf = self.armed
        for i in range(len(buf)):
            buf[i] = (first_byte + i) & 0xFF
        self.cb(self)


class _WDT:
    made = []

    def __init__(self, timeout):
        self.timeout = timeout
        self.feeds = 0
        _WDT.made.append(self)

    def feed(self):
        self.feeds += 1


class _Machine:
    Pin = _Pin
    UART = _UART
    ADC = _ADC
    I2S = _I2S
    WDT = _WDT
    SLEEP = 2
    resets = 0
    slept = []  # ms of each lightsleep
    in_sleep = None  # called during a lightsleep: what happens to the pins meanwhile
    armed = {}  # pin id -> the trigger it had during the last lightsleep

    @staticmethod
    def lightsleep(ms):
        # the pins are armed to wake, their edge handlers are not (they do not run in light sleep)
        assert all(p.wake == _Machine.SLEEP and p.trigger in (4, 5) for p in _Pin.claimed.values()
                   if p.mode == _Pin.IN)
        _Machine.slept.append(ms)
        _Machine.armed = {p.id: p.trigger for p in _Pin.claimed.values() if p.mode == _Pin.IN}
        if _Machine.in_sleep is not None:
            _Machine.in_sleep()

    @staticmethod
    def reset():
        _Machine.resets += 1


class _Os:
    asked = []

    @staticmethod
    def urandom(n):
        _Os.asked.append(n)
        return bytes(range(n))


class _Time:
    now = 0

    @staticmethod
    def ticks_ms():
        return _Time.now


def _esp32_hal():
    assert "machine" not in sys.modules  # nothing imported the real one at import time
    sys.modules["machine"] = _Machine
    try:
        sys.modules.pop("sotto.hal.esp32", None)
        from sotto.hal import esp32

        esp32.time = _Time
        esp32.os = _Os
        _Pin.claimed = {}
        _WDT.made = []
        return esp32.Esp32Hal(check_board(board()), "/flash"), esp32
    finally:
        del sys.modules["machine"]


def test_esp32_hal_claims_the_board_pins_in_a_safe_state():
    h, _ = _esp32_hal()
    pins = _Pin.claimed
    assert sorted(pins) == [4, 8, 9, 21]
    assert pins[4].mode == _Pin.IN and pins[4].pull == _Pin.PULL_UP and pins[4].handler is not None
    assert pins[8].level == 0 and pins[21].level == 0 and pins[9].level == 0  # GNSS off, motor off, key up
    assert h.gnss_uart.args == (1, 9600, 17, 18, 0) and h.modem_uart.args == (2, 115200, 11, 12, 0)
    # a whole AT+CCHSEND chunk fits the TX buffer: writing it never blocks the main loop
    assert h.modem_uart.txbuf >= SEND_MAX + len("AT+CCHSEND=0,1024\r")
    h.gnss_power(True)
    h.haptic(True)
    h.modem_pwrkey(1)
    assert (pins[8].level, pins[21].level, pins[9].level) == (1, 1, 1)
    h.haptic(False)
    assert pins[21].level == 0
    assert h.storage_root == "/flash"


def test_esp32_button_interrupt_ring():
    h, esp32 = _esp32_hal()
    pin = _Pin.claimed[4]
    assert h.button_edges() == []
    for t, level in ((100, 0), (112, 1), (118, 0), (3200, 1)):  # active low: 0 = pressed
        _Time.now = t
        pin.level = level
        pin.handler(pin)
    assert h.button_edges() == [(100, True), (112, False), (118, True), (3200, False)]
    assert h.button_edges() == []
    # a main loop that stalls: the ring keeps the oldest edges and counts the rest
    for i in range(esp32.EDGES + 10):
        _Time.now = 5000 + i
        pin.level = i % 2
        pin.handler(pin)
    got = h.button_edges()
    assert len(got) == esp32.EDGES - 1 and got[0] == (5000, True)
    assert [t for t, _ in got] == list(range(5000, 5000 + esp32.EDGES - 1))
    assert h.edges_lost == 11
    _Time.now = 9000
    pin.level = 0
    pin.handler(pin)
    assert h.button_edges() == [(9000, True)]  # and carries on afterwards


def test_esp32_light_sleep_wakes_on_button_and_modem_ri_and_records_the_press():
    sys.modules["machine"] = _Machine
    try:
        sys.modules.pop("sotto.hal.esp32", None)
        from sotto.hal import esp32

        esp32.time = _Time
        _Pin.claimed = {}
        h = esp32.Esp32Hal(check_board(board(modem__ri_pin=2)), "/flash")
    finally:
        del sys.modules["machine"]
    button, ri = _Pin.claimed[4], _Pin.claimed[2]
    button.level, ri.level = 1, 1  # released; RI idle (high)
    edge_handler = button.handler

    def press():  # the officer presses during the sleep; the chip wakes 1 ms later
        button.level = 0
        _Time.now = 20001

    _Time.now = 20000
    _Machine.slept, _Machine.in_sleep = [], press
    assert h.sleep_until(3000) is True
    assert _Machine.slept == [3000]
    # armed on the level each pin did not have: a press (low), the RI pulse (low)
    assert (_Machine.armed[4], _Machine.armed[2]) == (_Pin.WAKE_LOW, _Pin.WAKE_LOW)
    # back on its edges after the wake, and the press that woke the chip is recorded at the wake
    assert button.handler == edge_handler and button.trigger == _Pin.IRQ_RISING | _Pin.IRQ_FALLING
    assert h.button_edges() == [(20001, True)] and h.wake_edges == 1

    def ring():  # the modem has something to say: RI low
        ri.level = 0

    _Machine.in_sleep = ring
    assert h.sleep_until(3000) is True
    assert _Machine.armed[4] == _Pin.WAKE_HIGH  # held down: armed for the release
    assert h.wake_edges == 2 and h.button_edges() == []  # RI wakes the loop, it is not a press
    # an edge already waiting: no sleep at all
    _Machine.in_sleep = None
    button.level = 1
    button.handler(button)
    assert h.sleep_until(3000) is False and _Machine.slept == [3000, 3000]
    assert h.button_edges() == [(20001, False)]


def test_esp32_microphone_ring_is_non_blocking_and_in_order():
    h, esp32 = _esp32_hal()
    buf = bytearray(600)
    assert h.mic_readinto(buf) == 0  # not started
    h.mic_start(8000)
    i2s = _I2S.last
    assert i2s.args == (0, 5, 6, 7, 32, 8000, 8192)
    assert h.mic_readinto(buf) == 0  # the first block is still filling
    block = esp32.MIC_BLOCK
    i2s.deliver(0)
    i2s.deliver(block & 0xFF)
    got = bytearray()
    while True:
        n = h.mic_readinto(buf)
        if n == 0:
            break
        got += buf[:n]
    assert len(got) == 2 * block
    assert got == bytes(i & 0xFF for i in range(2 * block))  # both blocks, in order, across reads
    # nobody reads: the ring fills; the newest blocks are lost and counted
    for k in range(esp32.MIC_BLOCKS + 2):
        i2s.deliver(k)
    assert h.mic_overruns == 3
    n = 0
    while h.mic_readinto(buf):
        n += 1
    assert h.mic_overruns == 3
    h.mic_stop()
    assert i2s.closed


def test_esp32_battery_watchdog_rng_reset():
    h, _ = _esp32_hal()
    _ADC.uv = 1900000  # 1.9 V at the divider's middle: 3.8 V cell
    assert h.battery_mv() == 3800
    h.wdt_feed()  # not armed yet: a technician may still be at the REPL
    assert _WDT.made == []
    h.arm_watchdog()
    h.arm_watchdog()
    assert len(_WDT.made) == 1 and _WDT.made[0].timeout == 8000
    h.wdt_feed()
    assert _WDT.made[0].feeds == 1
    assert h.random_bytes(32) == bytes(range(32)) and _Os.asked == [32]  # the hardware RNG
    h.reset()
    assert _Machine.resets == 1
