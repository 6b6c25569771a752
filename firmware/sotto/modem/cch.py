# The data connection of the SIMCom driver: one TLS or TCP connection through
# the module's own SSL client, the CCH command family of the A76XX AT Command
# Manual V1.09, chapter 19 "AT Commands for SSL" (AT+CCHSET / CCHSTART /
# CCHOPEN / CCHSEND / CCHRECV / CCHCLOSE / CCHSTOP; client type 2 = TLS, 1 =
# plain TCP). Received data stays in the module until AT+CCHRECV fetches it
# into a pre-allocated buffer. docs/modem.md lists the module facts relied on.
from micropython import const

from sotto.log import Logger
from sotto.modem import at as _at
from sotto.modem.at import ModemError, int_field
from sotto.modem.base import ModemBase

SESSION = const(0)  # CCH session id
SEND_MAX = const(1024)  # bytes per AT+CCHSEND (the module takes up to 2048, 19.2.14)
RECV_MAX = const(2048)  # <max_recv_len> of AT+CCHRECV is 0..2048, 0 meaning "all" (19.2.15)

_log = Logger("modem")


def _line_with(lines, prefix):
    for line in lines:
        if line.startswith(prefix):
            return line
    return None


class Cch(ModemBase):
    start_ms = 30000  # AT+CCHSTART (PDP activation); the manual allows up to 120 s
    start_err_ms = 1000  # after a plain ERROR: how long a "+CCHSTART: <err>" may take to follow
    open_ms = 30000  # AT+CCHOPEN: TCP connect and TLS handshake
    send_ms = 10000

    def __init__(self, at, pwrkey=None, apn="", ca_cert=None, rx_max=2048):
        super().__init__(at, pwrkey, apn, ca_cert, rx_max)
        self.rx_more = False  # the module may still hold data that no +CCHEVENT will announce
        at.on_data(b"+CCHRECV: DATA,", self._data_header)

    def _data_header(self, line):
        n = int_field(line, b"+CCHRECV: DATA,", 1, 0)
        return n, self._sink

    def _sink(self, mv):
        k = len(mv)
        room = len(self.rx) - self.rx_n
        if k > room:
            self.rx_dropped += k - room
            k = room
        self.rx[self.rx_n:self.rx_n + k] = mv[:k]
        self.rx_n += k

    # -- the SSL service ---------------------------------------------------------

    def start_data(self):
        """AT+CCHSET, then AT+CCHSTART: the SSL service, which activates the PDP context."""
        if self.started:
            return
        yield from self._receive_mode()
        try:
            lines = yield from self._start()
        except ModemError as e:
            if e.kind != _at.ERROR:
                raise
            # 19.2.7 answers a failure either as "ERROR" alone or as "ERROR" followed by
            # "+CCHSTART: <err>": the second is the network (no PDP: 19.3.1 code 9, 17, ...),
            # which a restart of the service does not mend.
            err = yield from self._late_code(e.lines, b"+CCHSTART:")
            if err > 0:
                raise ModemError(err, _at.RESULT, "+CCHSTART") from None
            # "ERROR" alone: the service is already running (an MCU reset left it on)
            yield from self.stop_data()
            yield from self._receive_mode()
            lines = yield from self._start()
        self._result(lines, b"+CCHSTART:", 0)
        self.started = True

    def _start(self):
        self.start_err = -1
        return (yield from self.cmd("AT+CCHSTART", self.start_ms, until=b"+CCHSTART:", retries=0))

    def _late_code(self, lines, prefix):
        line = _line_with(lines, prefix)
        if line is not None:
            return int_field(line, prefix, 0, -1)
        waited = 0
        while self.start_err < 0 and waited < self.start_err_ms:
            yield from self.at.wait(100)
            waited += 100
        return self.start_err

    def _receive_mode(self):
        # No send report; data kept in the module until AT+CCHRECV (+CCHEVENT tells).
        # 19.2.5: it must come before AT+CCHSTART. After an MCU-only reset the service
        # may still run and refuse it: stop the service, then set the mode again.
        try:
            yield from self.cmd("AT+CCHSET=0,1", retries=0)
        except ModemError as e:
            if e.kind != _at.ERROR:
                raise
            _log.w("CCHSET refused: the SSL service is still running; stopping it")
            yield from self.stop_data()
            yield from self.cmd("AT+CCHSET=0,1")

    def stop_data(self):
        self._data_gone()
        self.rx_more = False
        try:
            yield from self.cmd("AT+CCHSTOP", self.cmd_ms, until=b"+CCHSTOP:", retries=0)
        except ModemError as e:
            _log.d("CCHSTOP: %s", e)

    # -- the connection ----------------------------------------------------------

    def open(self, host, port, tls=True, ctx=0):
        """Connect session 0 to host:port over TLS (client type 2, SSL context
        ctx: 0 the primary receiver's, 1 the secondary's) or TCP (1)."""
        if self.session:
            # after +CCH_PEER_CLOSED the module keeps the session until AT+CCHCLOSE,
            # and AT+CCHOPEN on it fails: close it first
            yield from self.close(force=True)
        self.rx_n = 0
        self.rx_event = False
        self.rx_more = False
        self.tls = tls
        if tls:
            # 19.2.10: after AT+CCHSTART and before AT+CCHOPEN; cleared by a failed open or a close
            yield from self.cmd("AT+CCHSSLCFG=%d,%d" % (SESSION, ctx))
        try:
            lines = yield from self.cmd('AT+CCHOPEN=%d,"%s",%d,%d' % (SESSION, host, port, 2 if tls else 1),
                                        self.open_ms, until=b"+CCHOPEN:", retries=0)
        except ModemError as e:
            if e.kind == _at.TIMEOUT:
                self.session = True  # the module may still be connecting (it allows 120 s)
            raise
        self._result(lines, b"+CCHOPEN:")
        self.session = True
        self.connected = True

    def send(self, parts, tx):
        """Send byte strings `parts` in AT+CCHSEND chunks copied through `tx` (a
        pre-allocated bytearray). Never retried: the bytes may have left."""
        cap = len(tx)
        n = 0
        for part in parts:
            mv = memoryview(part)
            i = 0
            while i < len(mv):
                k = min(cap - n, len(mv) - i)
                tx[n:n + k] = mv[i:i + k]
                n += k
                i += k
                if n == cap:
                    yield from self._send_chunk(tx, n)
                    n = 0
        if n:
            yield from self._send_chunk(tx, n)

    def _send_chunk(self, tx, n):
        if not self.connected:
            raise ModemError(0, _at.CLOSED, "CCHSEND")
        yield from self.cmd("AT+CCHSEND=%d,%d" % (SESSION, n), self.send_ms,
                            data=memoryview(tx)[:n], retries=0)

    def recv(self):
        """Fetch what the module holds for us into self.rx (AT+CCHRECV). Afterwards
        rx_more tells whether the module may still hold more."""
        room = len(self.rx) - self.rx_n
        if room > RECV_MAX:
            room = RECV_MAX
        if room <= 0:
            self.rx_more = True  # consume() first
            return
        self.rx_event = False
        before = self.rx_n
        try:
            lines = yield from self.cmd("AT+CCHRECV=%d,%d" % (SESSION, room), self.send_ms,
                                        until=b"+CCHRECV: %d," % SESSION, retries=0)
        except ModemError as e:
            # 19.2.15: reading is "not allowed when there is no data in the cache": the
            # answer is "+CCHRECV: <session>,<err>" and ERROR. Nothing to read is no failure
            # (an event can announce data an earlier read already took).
            if e.kind == _at.ERROR and _line_with(e.lines, b"+CCHRECV: %d," % SESSION) is not None:
                self.rx_more = False
                return
            raise
        self._result(lines, b"+CCHRECV:")
        if self.rx_n - before < room:
            self.rx_more = False  # the module gave less than asked: its cache is empty
            return
        # A full read may have left data behind, and +CCHEVENT announces only *new*
        # data (19.4): ask how much is still cached.
        self.rx_more = (yield from self.cached()) > 0

    def cached(self):
        """Bytes the module holds for session 0 (AT+CCHRECV? -> +CCHRECV: LEN,<l0>,<l1>)."""
        lines = yield from self.cmd("AT+CCHRECV?", self.cmd_ms, expect=b"+CCHRECV: LEN,")
        return int_field(lines[-1], b"+CCHRECV: LEN,", SESSION, 0) if lines else 0

    def consume(self):
        """The received bytes so far, then forget them."""
        mv = memoryview(self.rx)[:self.rx_n]
        self.rx_n = 0
        return mv

    def close(self, force=False):
        """AT+CCHCLOSE when the module holds the session (also after the peer closed it)."""
        held = self.connected or self.session
        self.connected = False
        self.session = False
        self.rx_event = False
        self.rx_more = False
        if not (held or force):
            return
        try:
            yield from self.cmd("AT+CCHCLOSE=%d" % SESSION, self.cmd_ms, until=b"+CCHCLOSE:", retries=0)
        except ModemError as e:
            _log.d("CCHCLOSE: %s", e)  # ERROR: no such session (any more)
