# The data connection of the SIMCom driver: one TLS or TCP connection through
# the module's own SSL client, the CCH command family of the A76XX manual
# ("AT Commands for SSL": AT+CCHSTART / CCHOPEN / CCHSEND / CCHRECV / CCHCLOSE /
# CCHSTOP; client type 2 = TLS, 1 = plain TCP). Received data stays in the
# module until AT+CCHRECV fetches it into a pre-allocated buffer.
from micropython import const

from sotto.log import Logger
from sotto.modem import at as _at
from sotto.modem.at import ModemError, int_field
from sotto.modem.base import ModemBase

SESSION = const(0)  # CCH session id
SEND_MAX = const(1024)  # bytes per AT+CCHSEND (the module takes up to 2048)

_log = Logger("modem")


class Cch(ModemBase):
    start_ms = 30000  # AT+CCHSTART (PDP activation); the manual allows up to 120 s
    open_ms = 30000  # AT+CCHOPEN: TCP connect and TLS handshake
    send_ms = 10000

    def __init__(self, at, pwrkey=None, apn="", ca_cert=None, rx_max=2048):
        super().__init__(at, pwrkey, apn, ca_cert, rx_max)
        at.on_data(b"+CCHRECV: DATA,", self._data_header)

    def _data_header(self, line):
        n = int_field(line, b"+CCHRECV: DATA,", 1, 0)
        self.rx_event = False
        return n, self._sink

    def _sink(self, mv):
        k = len(mv)
        room = len(self.rx) - self.rx_n
        if k > room:
            self.rx_dropped += k - room
            k = room
        self.rx[self.rx_n:self.rx_n + k] = mv[:k]
        self.rx_n += k

    def start_data(self):
        """AT+CCHSTART: the SSL service, which activates the PDP context."""
        if self.started:
            return
        try:
            lines = yield from self.cmd("AT+CCHSTART", self.start_ms, until=b"+CCHSTART:", retries=0)
        except ModemError as e:
            if e.kind != _at.ERROR:
                raise
            # already started (e.g. before our reset): stop and start again
            yield from self.stop_data()
            lines = yield from self.cmd("AT+CCHSTART", self.start_ms, until=b"+CCHSTART:", retries=0)
        self._result(lines, b"+CCHSTART:", 0)
        self.started = True

    def stop_data(self):
        self.connected = False
        self.started = False
        try:
            yield from self.cmd("AT+CCHSTOP", self.cmd_ms, until=b"+CCHSTOP:", retries=0)
        except ModemError as e:
            _log.d("CCHSTOP: %s", e)

    def open(self, host, port, tls=True):
        """Connect session 0 to host:port over TLS (client type 2) or TCP (1)."""
        self.rx_n = 0
        self.rx_event = False
        self.tls = tls
        if tls:
            yield from self.cmd("AT+CCHSSLCFG=%d,0" % SESSION)
        lines = yield from self.cmd('AT+CCHOPEN=%d,"%s",%d,%d' % (SESSION, host, port, 2 if tls else 1),
                                    self.open_ms, until=b"+CCHOPEN:", retries=0)
        self._result(lines, b"+CCHOPEN:")
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
        """Fetch what the module holds for us into self.rx (AT+CCHRECV)."""
        room = len(self.rx) - self.rx_n
        if room <= 0:
            return
        self.rx_event = False
        lines = yield from self.cmd("AT+CCHRECV=%d,%d" % (SESSION, room), self.send_ms,
                                    until=b"+CCHRECV: %d," % SESSION, retries=0)
        self._result(lines, b"+CCHRECV:")

    def consume(self):
        """The received bytes so far, then forget them."""
        mv = memoryview(self.rx)[:self.rx_n]
        self.rx_n = 0
        return mv

    def close(self, force=False):
        was = self.connected
        self.connected = False
        self.rx_event = False
        if not (was or force):
            return
        try:
            yield from self.cmd("AT+CCHCLOSE=%d" % SESSION, self.cmd_ms, until=b"+CCHCLOSE:", retries=0)
        except ModemError as e:
            _log.d("CCHCLOSE: %s", e)
