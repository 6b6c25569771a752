# Test doubles for the modem stack, in both interpreters (CPython and the VM):
# a UART whose bytes arrive on a test clock, a transcript player that answers
# the host exactly as a recorded AT dialogue says, and a driver for generators.
from fwtest import data_path
from sotto.sched import Scheduler


class Clock(Scheduler):
    """A scheduler whose now_ms the test moves."""


class FakeUart:
    """read/write/any like the HAL's modem UART; bytes from the 'modem' become
    readable at their due time on `clock.now_ms`."""

    def __init__(self, clock, responder=None):
        self.clock = clock
        self.pending = []  # [(due_ms, bytes)]
        self.written = bytearray()
        self.writes = []  # (ms, nbytes) of each write, to see how data was packeted
        self.responder = responder

    def feed(self, data, delay_ms=0):
        # in order of arrival time, as a wire would deliver them
        due = self.clock.now_ms + delay_ms
        i = len(self.pending)
        while i > 0 and self.pending[i - 1][0] > due:
            i -= 1
        self.pending.insert(i, (due, bytes(data)))

    def _due(self):
        out = 0
        for due, data in self.pending:
            if due <= self.clock.now_ms:
                out += len(data)
            else:
                break
        return out

    def any(self):
        return self._due()

    def read(self, n):
        out = bytearray()
        while self.pending and len(out) < n and self.pending[0][0] <= self.clock.now_ms:
            due, data = self.pending[0]
            k = n - len(out)
            out += data[:k]
            if k < len(data):
                self.pending[0] = (due, data[k:])
            else:
                self.pending.pop(0)
        return bytes(out) if out else None

    def write(self, data):
        data = bytes(data)
        self.written += data
        self.writes.append((self.clock.now_ms, len(data)))
        if self.responder is not None:
            self.responder(self, data)
        return len(data)


def drive(clock, gen, limit_ms=600000):
    """Run a generator task to its end as the scheduler would, jumping the
    clock by what it yields; returns its value (exceptions propagate)."""
    start = clock.now_ms
    while True:
        try:
            wait = next(gen)
        except StopIteration as e:
            return e.value
        clock.now_ms += wait if wait else 1
        if clock.now_ms - start > limit_ms:
            raise AssertionError("task still running after %d ms" % limit_ms)


def unescape(text):
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            n = text[i + 1]
            if n == "r":
                out.append(13)
            elif n == "n":
                out.append(10)
            elif n == "x":
                out.append(int(text[i + 2:i + 4], 16))
                i += 2
            else:
                out.append(ord(n))
            i += 2
            continue
        out += c.encode()
        i += 1
    return bytes(out)


def parse_transcript(text):
    """Steps [(who, bytes)]: who '>' is the host, '<' the modem. Lines:
    '> CMD' host writes CMD\\r;  '>> RAW' host writes RAW (escapes \\r \\n \\xNN);
    '< LINE' modem sends \\r\\nLINE\\r\\n;  '<< RAW' modem sends RAW;  '#' comments."""
    steps = []
    for line in text.split("\n"):
        line = line.rstrip("\r")
        if not line or line.startswith("#"):
            continue
        if line.startswith(">> "):
            steps.append((">", unescape(line[3:])))
        elif line.startswith("> "):
            steps.append((">", line[2:].encode() + b"\r"))
        elif line.startswith("<< "):
            steps.append(("<", unescape(line[3:])))
        elif line.startswith("<"):
            steps.append(("<", b"\r\n" + line[2:].encode() + b"\r\n"))
        else:
            raise ValueError("bad transcript line: %r" % line)
    return steps


def load_transcript(name):
    with open(data_path("at/" + name)) as f:
        return parse_transcript(f.read())


class Transcript:
    """Answers the host as the transcript says; records any divergence."""

    def __init__(self, steps, delay_ms=5):
        self.steps = list(steps)
        self.delay_ms = delay_ms
        self.got = bytearray()
        self.errors = []

    def start(self, uart):
        """Send what the modem says before the host's first command (boot URCs)."""
        reply = bytearray()
        while self.steps and self.steps[0][0] == "<":
            reply += self.steps.pop(0)[1]
        if reply:
            uart.feed(reply)

    def __call__(self, uart, data):
        self.got += data
        while self.steps and self.steps[0][0] == ">":
            want = self.steps[0][1]
            if len(self.got) < len(want):
                if not want.startswith(bytes(self.got)):
                    self.errors.append("host sent %r, transcript says %r" % (bytes(self.got), want))
                    self.got = bytearray()
                return
            if bytes(self.got[:len(want)]) != want:
                self.errors.append("host sent %r, transcript says %r" % (bytes(self.got), want))
                self.got = bytearray()
                return
            self.got = self.got[len(want):]
            self.steps.pop(0)
            reply = bytearray()
            while self.steps and self.steps[0][0] == "<":
                reply += self.steps.pop(0)[1]
            if reply:
                uart.feed(reply, self.delay_ms)

    def done(self):
        return not self.steps and not self.errors and not self.got


class ScriptedModem:
    """A minimal module for driver tests: off until PWRKEY (when on=False),
    answers commands by prefix (value: list of lines, or a function of the
    command returning them, None for no answer now; default OK), can hang until
    power-cycled. Power follows the A7670 hardware design manual (3.2, Tables
    11-12): PWRKEY low >= 50 ms powers it on, >= 2.5 s starts a power-down that
    takes shutdown_ms; a press during the power-down, or less than off_on_ms
    after it, is ignored (counted in `ignored`)."""

    def __init__(self, clock, answers=None, on=True, boot_ms=12000, reply_ms=10,
                 shutdown_ms=2000, off_on_ms=2000, boot_urcs=None):
        self.clock = clock
        self.uart = FakeUart(clock, self._written)
        self.answers = dict(answers or {})
        self.on = on
        self.hung = False
        self.boot_ms = boot_ms
        self.reply_ms = reply_ms
        self.shutdown_ms = shutdown_ms
        self.off_on_ms = off_on_ms
        # (ms after the press, line) sent at power-on
        self.boot_urcs = boot_urcs or [(boot_ms, "*ATREADY: 1"), (boot_ms, "+CPIN: READY"),
                                       (boot_ms, "SMS DONE"), (boot_ms, "PB DONE")]
        self.ready_at = 0
        self.stop_at = None  # a power-down under way ends at this time
        self.off_since = -(10 ** 9)
        self.press_at = None
        self.presses = []  # (pressed_at, held_ms)
        self.ignored = 0
        self.power_ons = 0
        self.commands = []
        self._buf = bytearray()

    def _tick(self):
        if self.stop_at is not None and self.clock.now_ms >= self.stop_at:
            self.on = False
            self.hung = False
            self.off_since = self.stop_at
            self.stop_at = None

    def shut_down(self, after_ms):
        """Begin a power-down that completes shutdown_ms after `after_ms` from now."""
        self.stop_at = self.clock.now_ms + after_ms + self.shutdown_ms

    def pwrkey(self, level):
        now = self.clock.now_ms
        self._tick()
        if level:
            self.press_at = now
            return
        held = now - self.press_at
        self.presses.append((self.press_at, held))
        self.press_at = None
        if self.stop_at is not None or (not self.on and now - self.off_since < self.off_on_ms):
            self.ignored += 1
        elif not self.on and held >= 50:
            self.on = True
            self.power_ons += 1
            self.ready_at = now + self.boot_ms
            for delay, line in self.boot_urcs:
                self.uart.feed(b"\r\n" + line.encode() + b"\r\n", delay)
        elif self.on and held >= 2500:
            self.stop_at = now + self.shutdown_ms

    def _written(self, uart, data):
        self._tick()
        if not self.on or self.hung or self.clock.now_ms < self.ready_at or self.stop_at is not None:
            return
        self._buf += data
        while b"\r" in self._buf:
            i = self._buf.index(b"\r")
            line = bytes(self._buf[:i]).decode()
            self._buf = self._buf[i + 1:]
            self.commands.append(line)
            reply = self._reply(line)
            if reply is not None:
                uart.feed(b"".join(b"\r\n" + r.encode() + b"\r\n" for r in reply), self.reply_ms)

    def _reply(self, line):
        best = None
        for prefix in self.answers:
            if line.startswith(prefix) and (best is None or len(prefix) > len(best)):
                best = prefix
        if best is None:
            return ["OK"]
        value = self.answers[best]
        if callable(value):
            return value(line)
        if value and isinstance(value[0], list):  # a list of answers, one per call
            return value.pop(0) if len(value) > 1 else value[0]
        return value


def driver_for(*names, **kw):
    """(clock, transcript, Simcom driver) replaying the named transcripts from tests/data/at."""
    from sotto.modem.at import AtEngine
    from sotto.modem.simcom import Simcom

    clock = Clock()
    steps = []
    for name in names:
        steps += load_transcript(name)
    t = Transcript(steps)
    uart = FakeUart(clock, t)
    t.start(uart)
    return clock, t, Simcom(AtEngine(uart, clock), **kw)
