# AT command engine over a UART-like byte stream (read(n) / write(b) / any()).
#
# One command in flight; its answer lines are matched to it; unsolicited result
# codes (URCs) are dispatched to handlers whenever they arrive, also in the
# middle of a response. "+CME ERROR: n" / "+CMS ERROR: n" become ModemError(n).
# Echo, empty lines, garbage bytes, over-long and partial lines are tolerated:
# dropped and counted, never raised. A data header (e.g. "+CCHRECV: DATA,0,n")
# can switch the reader to n raw bytes handed to a sink.
#
# Commands are generators for sotto.sched: `lines = yield from at.cmd(...)`.
# Time is the scheduler's (sched.now_ms); nothing here sleeps.
from micropython import const

from sotto.log import Logger
from sotto.ticks import ticks_add, ticks_diff

# ModemError kinds
CME = const(1)  # +CME ERROR: <code> (equipment)
CMS = const(2)  # +CMS ERROR: <code> (SMS)
ERROR = const(3)  # plain ERROR (or NO CARRIER)
TIMEOUT = const(4)  # no final result code in time: the modem may be hung
NO_PROMPT = const(5)  # a data command got no '>' prompt
BAD_REPLY = const(6)  # an answer we cannot use (missing line, unparsable)
RESULT = const(7)  # the command's own result code was not 0 (e.g. +CCHOPEN: 0,4)
# conditions the driver reports (sotto.modem.simcom)
NO_POWER = const(8)  # the module never answered after a power-on pulse
NO_SIM = const(9)  # SIM missing or not ready
NOT_REGISTERED = const(10)  # no network (searching, no coverage)
DENIED = const(11)  # registration denied by the network
CLOSED = const(12)  # the connection was closed by the peer or the network

_KIND_NAMES = ("?", "CME", "CMS", "ERROR", "TIMEOUT", "NO_PROMPT", "BAD_REPLY", "RESULT",
               "NO_POWER", "NO_SIM", "NOT_REGISTERED", "DENIED", "CLOSED")

_READ_CHUNK = const(256)
_LINE_MAX = const(256)

_log = Logger("at")


class ModemError(Exception):
    """A modem command failed: `code` (CME/CMS/result number, else 0) and `kind`."""

    def __init__(self, code, kind=CME, command=None):
        super().__init__(code, kind)
        self.code = code
        self.kind = kind
        self.command = command
        self.lines = ()  # the command's info lines that came before the failure

    def __str__(self):
        name = _KIND_NAMES[self.kind] if 0 < self.kind < len(_KIND_NAMES) else "?"
        cmd = self.command
        if isinstance(cmd, (bytes, bytearray)):
            cmd = cmd.decode()
        return "%s %d%s" % (name, self.code, (" (%s)" % cmd) if cmd else "")


def _discard(data):
    pass


def _printable(c):
    return 32 <= c < 127 or c == 9


def fields(line, prefix):
    """The comma-separated fields after `prefix` ("+CSQ: 21,99" -> [b"21", b"99"])."""
    return [f.strip() for f in line[len(prefix):].split(b",")]


def int_field(line, prefix, index, default=-1):
    """One integer field of a response line; `default` when absent or not a number."""
    f = fields(line, prefix)
    if index >= len(f):
        return default
    try:
        return int(f[index])
    except ValueError:
        return default


class AtEngine:
    poll_ms = 10  # how often a waiting command looks at the UART
    settle_ms = 300  # after a timeout: quiet time before the next command

    def __init__(self, uart, sched, line_max=_LINE_MAX):
        self.uart = uart
        self.sched = sched
        self._buf = bytearray(line_max)
        self._n = 0
        self._overflow = False
        self._urcs = []
        self._data = []
        self._raw_left = 0
        self._raw_sink = _discard
        # the command in flight
        self._cmd = None
        self._expect = None
        self._until = None
        self._lines = []
        self._ok = False
        self._until_seen = False
        self._err = None
        self._want_prompt = False
        self._prompt = False
        self._busy = False
        self._busy_until = 0
        self._resync = False
        self._last_rx = 0
        # counters (drop and count, never raise)
        self.garbage = 0
        self.overflows = 0
        self.urcs = 0
        self.unknown = 0
        self.timeouts = 0
        self.errors = 0
        self.commands = 0

    # -- handlers -----------------------------------------------------------
    def on(self, prefix, handler):
        """URC lines starting with `prefix` go to handler(line)."""
        self._urcs.append((prefix, handler))

    def on_data(self, prefix, handler):
        """A header line starting with `prefix` is followed by raw bytes:
        handler(line) returns (nbytes, sink); sink(memoryview) gets them, maybe in pieces."""
        self._data.append((prefix, handler))

    # -- reading --------------------------------------------------------------
    def poll(self):
        """Read whatever the UART holds and dispatch it. Never blocks."""
        u = self.uart
        while True:
            n = u.any()
            if not n:
                return
            chunk = u.read(n if n < _READ_CHUNK else _READ_CHUNK)
            if not chunk:
                return
            self._last_rx = self.sched.now_ms
            self._feed(chunk)

    def _feed(self, chunk):
        n = len(chunk)
        mv = memoryview(chunk)
        i = 0
        while i < n:
            if self._raw_left:
                k = n - i
                if k > self._raw_left:
                    k = self._raw_left
                self._raw_left -= k
                self._raw_sink(mv[i:i + k])
                i += k
                continue
            j = chunk.find(b"\n", i)
            end = n if j < 0 else j
            k = end - i
            room = len(self._buf) - self._n
            if k > room:
                k = room
                self._overflow = True
            if k:
                self._buf[self._n:self._n + k] = mv[i:i + k]
                self._n += k
            if j < 0:
                break
            i = j + 1
            self._line_done()
        if self._want_prompt and not self._prompt and self._n:
            self._check_prompt()

    def _check_prompt(self):
        # the prompt is '>' (or '> ') with no line end after it; noise right
        # behind it must not hide it, a '>' inside a text line is no prompt
        b = self._buf
        n = self._n
        s = 0
        while s < n and b[s] in (13, 10):
            s += 1
        if s == n or b[s] != 62:
            return
        for k in range(s + 1, n):
            if b[k] != 32 and _printable(b[k]):
                return
        self._prompt = True
        self._n = 0

    def _line_done(self):
        n = self._n
        self._n = 0
        if self._overflow:
            self._overflow = False
            self.overflows += 1
            return
        b = self._buf
        s = 0
        e = n
        junk = 0
        while s < e and not _printable(b[s]):
            if b[s] != 13:
                junk += 1
            s += 1
        while e > s and not _printable(b[e - 1]):
            if b[e - 1] != 13:
                junk += 1
            e -= 1
        if junk:
            self.garbage += 1
        if s == e:
            return
        for k in range(s, e):
            if not _printable(b[k]):
                self.garbage += 1
                return
        self._dispatch(bytes(memoryview(b)[s:e]))

    def _dispatch(self, line):
        for prefix, handler in self._data:
            if line.startswith(prefix):
                nbytes, sink = handler(line)
                if nbytes > 0:
                    self._raw_left = nbytes
                    self._raw_sink = sink
                return
        if self._cmd is not None:
            if line == b"OK":
                self._ok = True
                return
            if line == b"ERROR" or line == b"NO CARRIER":
                self._fail(0, ERROR)
                return
            if line.startswith(b"+CME ERROR:"):
                self._fail(self._code(line), CME)
                return
            if line.startswith(b"+CMS ERROR:"):
                self._fail(self._code(line), CMS)
                return
            if self._until is not None and line.startswith(self._until):
                self._lines.append(line)
                self._until_seen = True
                return
            if self._expect is not None and line.startswith(self._expect):
                self._lines.append(line)
                return
            if line == self._cmd:
                return  # echo (ATE1 after a reset)
        for prefix, handler in self._urcs:
            if line.startswith(prefix):
                self.urcs += 1
                try:
                    handler(line)
                except Exception as e:  # a bad URC must not break the command in flight
                    _log.w("URC %s: %s", line, e)
                return
        if self._cmd is not None and self._expect is None:
            self._lines.append(line)  # bare answer lines (e.g. AT+CGSN's IMEI)
            return
        self.unknown += 1
        _log.d("unexpected line %s", line)

    def _code(self, line):
        try:
            return int(line[11:])
        except ValueError:
            return -1  # verbose error text (AT+CMEE=2): still an error

    def _fail(self, code, kind):
        if self._err is None:
            self._err = ModemError(code, kind, self._cmd)

    # -- commands -------------------------------------------------------------
    def cmd(self, text, timeout_ms=5000, expect=None, until=None, data=None, gap_ms=0):
        """Send one command and wait for its final result; returns its info lines.

        expect: prefix of the info lines to collect (URCs with other prefixes
                are dispatched meanwhile);
        until:  prefix of a line that must also arrive (before or after OK),
                e.g. b"+CCHOPEN:" for commands that report their outcome later;
        data:   bytes (or a list of them) to write after the '>' prompt;
        gap_ms: pause between the parts of a data list (a module that takes
                its input in packets of limited size).
        Raises ModemError on ERROR / +CME ERROR / +CMS ERROR / timeout; its
        .lines holds the info lines that came before the failure.
        """
        if isinstance(text, str):
            text = text.encode()
        yield from self._acquire(timeout_ms)
        try:
            if self._resync:
                yield from self._settle()
            self._start(text, expect, until, data is not None)
            self.commands += 1
            self.uart.write(text)
            self.uart.write(b"\r")
            deadline = ticks_add(self.sched.now_ms, timeout_ms)
            if data is not None:
                while not self._prompt:
                    self.poll()
                    if self._err is not None:
                        raise self._failed()
                    if self._prompt:
                        break
                    if ticks_diff(self.sched.now_ms, deadline) >= 0:
                        self._timed_out()
                        raise ModemError(0, NO_PROMPT, text)
                    yield self.poll_ms
                if isinstance(data, (list, tuple)):
                    for k in range(len(data)):
                        if k and gap_ms:
                            yield from self._pause(gap_ms)
                        self.uart.write(data[k])
                else:
                    self.uart.write(data)
            while True:
                self.poll()
                if self._err is not None:
                    self.errors += 1
                    raise self._failed()
                if self._ok and (self._until is None or self._until_seen):
                    return self._lines
                left = ticks_diff(deadline, self.sched.now_ms)
                if left <= 0:
                    self._timed_out()
                    raise ModemError(0, TIMEOUT, text)
                yield left if left < self.poll_ms else self.poll_ms
        finally:
            self._cmd = None
            self._want_prompt = False
            self._busy = False

    def _failed(self):
        # the pending error, with the info lines that came before it
        e = self._err or ModemError(0, BAD_REPLY, self._cmd)
        e.lines = self._lines
        return e

    def _pause(self, ms):
        # between data packets: keep reading (an early ERROR ends the command)
        until = ticks_add(self.sched.now_ms, ms)
        while ticks_diff(until, self.sched.now_ms) > 0:
            self.poll()
            if self._err is not None:
                raise self._failed()
            yield self.poll_ms

    def _start(self, text, expect, until, want_prompt):
        self._cmd = text
        self._expect = expect
        self._until = until
        self._lines = []
        self._ok = False
        self._until_seen = False
        self._err = None
        self._want_prompt = want_prompt
        self._prompt = False

    def _timed_out(self):
        self.timeouts += 1
        self._resync = True
        self._raw_left = 0

    def _acquire(self, timeout_ms):
        # One command in flight. A holder that vanished without releasing (its
        # task was dropped) is taken over once its deadline is well past.
        while self._busy and ticks_diff(self.sched.now_ms, self._busy_until) < 0:
            yield self.poll_ms
        self._busy = True
        self._busy_until = ticks_add(self.sched.now_ms, timeout_ms + 1000)

    def _settle(self):
        # After a timeout a late answer may still come: let the line go quiet
        # (dispatching URCs, discarding stray finals) before the next command.
        self._resync = False
        self._cmd = None
        self._last_rx = self.sched.now_ms
        limit = ticks_add(self.sched.now_ms, 10 * self.settle_ms)
        while ticks_diff(self.sched.now_ms, self._last_rx) < self.settle_ms:
            if ticks_diff(self.sched.now_ms, limit) >= 0:
                break  # a babbling modem: go on, the command will sort it out
            self.poll()
            yield self.poll_ms

    def wait(self, ms):
        """Sub-generator: wait `ms`, reading URCs meanwhile (unless a command is in flight)."""
        deadline = ticks_add(self.sched.now_ms, ms)
        while True:
            if not self._busy:
                self.poll()
            left = ticks_diff(deadline, self.sched.now_ms)
            if left <= 0:
                return
            yield left if left < 50 else 50

    def write_raw(self, data):
        """Bytes straight to the UART (e.g. ESC to abort a prompt)."""
        self.uart.write(data)

    def stats(self):
        return {"commands": self.commands, "timeouts": self.timeouts, "errors": self.errors,
                "garbage": self.garbage, "overflows": self.overflows, "urcs": self.urcs,
                "unknown": self.unknown}
