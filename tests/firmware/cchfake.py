# A module whose data path behaves as the A76XX AT Command Manual V1.09 says
# (chapter 19, "AT Commands for SSL"), for tests of the driver and the delivery
# task together, in both interpreters:
# - AT+CCHSET is refused while the SSL service runs (19.2.5: "must be called
#   before AT+CCHSTART"); AT+CCHSTART answers ERROR when it already runs, and
#   "ERROR" then "+CCHSTART: <err>" when the network fails (19.2.7);
# - received data is cached; +CCHEVENT announces only *new* data (19.4);
#   AT+CCHRECV gives at most <max_recv_len> (<= 2048) in blocks of 1024 and
#   refuses an empty cache with "+CCHRECV: 0,<err>" and ERROR (19.2.15);
#   AT+CCHRECV? tells what is cached;
# - a server close (+CCH_PEER_CLOSED) keeps the session and its cache until
#   AT+CCHCLOSE (19.2.15 NOTE), and AT+CCHOPEN on a held session fails;
# - "+CCH: CCH STOP" drops the service and its sessions (19.4).
# The "network" is server(request) -> response bytes (deliveryfake.FakeServer).
from atfake import ScriptedModem

EMPTY_ERR = 11  # the manual does not say which <err> an empty cache gives; any


class CchModule(ScriptedModem):
    def __init__(self, clock, server, rtt_ms=100, **kw):
        answers = {"AT+CPIN?": ["+CPIN: READY", "OK"], "AT+CSQ": ["+CSQ: 20,99", "OK"],
                   "AT+CEREG?": ["+CEREG: 1,1", "OK"], "AT+CREG?": ["+CREG: 1,1", "OK"],
                   "AT+CGDCONT?": ['+CGDCONT: 1,"IP","internet"', "OK"]}
        super().__init__(clock, answers, **kw)
        self.server = server
        self.rtt_ms = rtt_ms
        self.running = False  # the SSL service (AT+CCHSTART)
        self.held = False  # session 0 exists in the module
        self.open = False  # ... and its connection is up
        self.cache = bytearray()
        self.request = bytearray()
        self.start_error = 0  # > 0: AT+CCHSTART fails with "ERROR", "+CCHSTART: <err>"
        self.stale_event = False  # one more +CCHEVENT after a read that emptied the cache
        self.opens = 0
        self.reads = 0
        self.empty_reads = 0
        self.later = []  # [(due_ms, fn)]: state changes at their time
        self._data_left = 0

    # -- time ----------------------------------------------------------------------
    def _tick(self):
        super()._tick()
        now = self.clock.now_ms
        due = [e for e in self.later if e[0] <= now]
        self.later = [e for e in self.later if e[0] > now]
        for _t, fn in due:
            fn()

    def at(self, delay_ms, fn):
        self.later.append((self.clock.now_ms + delay_ms, fn))

    def urc(self, line, delay_ms=0):
        self.uart.feed(b"\r\n" + line.encode() + b"\r\n", delay_ms)

    # -- the network side ----------------------------------------------------------
    def peer_close(self, delay_ms=0):
        """The server closes the connection."""
        def closed():
            if self.open:
                self.open = False
                self.urc("+CCH_PEER_CLOSED: 0")
        self.at(delay_ms, closed)

    def network_stop(self, delay_ms=0):
        """The network stops the SSL service."""
        def stopped():
            self.running = self.held = self.open = False
            self.cache = bytearray()
            self.urc("+CCH: CCH STOP")
        self.at(delay_ms, stopped)

    def _arrive(self, data, close):
        def arrived():
            if not self.open:
                return
            self.cache += data
            self.urc("+CCHEVENT: 0,RECV EVENT")
            if close:
                self.open = False
                self.urc("+CCH_PEER_CLOSED: 0")
        self.at(self.rtt_ms, arrived)

    def _request_done(self):
        head_end = self.request.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = bytes(self.request[:head_end]).lower()
        length = 0
        i = head.find(b"content-length:")
        if i >= 0:
            length = int(head[i + 15:].split(b"\r\n")[0])
        if len(self.request) < head_end + 4 + length:
            return
        request = bytes(self.request[:head_end + 4 + length])
        self.request = self.request[head_end + 4 + length:]
        response = self.server(request)
        if response is not None:
            self._arrive(response, b"connection: close" in response.lower())

    # -- the AT side ---------------------------------------------------------------
    def _written(self, uart, data):
        self._tick()
        if self._data_left:
            take = data[:self._data_left]
            self._data_left -= len(take)
            self.request += take
            if not self._data_left:
                self.urc("OK", self.reply_ms)
                self._request_done()
            data = data[len(take):]
            if not data:
                return
        super()._written(uart, data)

    def _reply(self, line):
        for prefix, handler in (("AT+CCHSET=", self._cchset), ("AT+CCHSTART", self._cchstart),
                                ("AT+CCHSTOP", self._cchstop), ("AT+CCHSSLCFG=", self._sslcfg),
                                ("AT+CCHOPEN=", self._cchopen), ("AT+CCHSEND=", self._cchsend),
                                ("AT+CCHRECV?", self._recv_len), ("AT+CCHRECV=", self._cchrecv),
                                ("AT+CCHCLOSE=", self._cchclose)):
            if line.startswith(prefix):
                return handler(line)
        return super()._reply(line)

    def _cchset(self, line):
        return ["ERROR"] if self.running else ["OK"]

    def _cchstart(self, line):
        if self.running:
            return ["ERROR"]
        if self.start_error:
            return ["ERROR", "+CCHSTART: %d" % self.start_error]
        self.running = True
        return ["OK", "+CCHSTART: 0"]

    def _cchstop(self, line):
        if not self.running:
            return ["ERROR"]
        self.running = self.held = self.open = False
        self.cache = bytearray()
        return ["OK", "+CCHSTOP: 0"]

    def _sslcfg(self, line):
        return ["OK"] if self.running else ["ERROR"]

    def _cchopen(self, line):
        if not self.running or self.held:
            return ["ERROR"]
        self.held = self.open = True
        self.cache = bytearray()
        self.request = bytearray()
        self.opens += 1
        return ["OK", "+CCHOPEN: 0,0"]

    def _cchsend(self, line):
        n = int(line.split(",")[1])
        if not self.open or not 1 <= n <= 2048:
            return ["ERROR"]
        self._data_left = n
        self.uart.feed(b"\r\n>", self.reply_ms)
        return None

    def _recv_len(self, line):
        return ["+CCHRECV: LEN,%d,0" % len(self.cache), "OK"]

    def _cchrecv(self, line):
        args = line[len("AT+CCHRECV="):].split(",")
        limit = int(args[1]) if len(args) > 1 else 0
        if not self.held or not 0 <= limit <= 2048:
            return ["ERROR"]
        self.reads += 1
        if not self.cache:
            self.empty_reads += 1
            return ["+CCHRECV: 0,%d" % EMPTY_ERR, "ERROR"]
        take = len(self.cache) if limit == 0 else min(limit, len(self.cache))
        out = bytearray(b"\r\nOK\r\n")
        i = 0
        while i < take:
            k = min(1024, take - i)
            out += b"\r\n+CCHRECV: DATA,0,%d\r\n" % k + self.cache[i:i + k]
            i += k
        out += b"\r\n+CCHRECV: 0,0\r\n"
        self.cache = self.cache[take:]
        if self.stale_event and not self.cache:
            self.stale_event = False
            out += b"\r\n+CCHEVENT: 0,RECV EVENT\r\n"
        self.uart.feed(bytes(out), self.reply_ms)
        return None

    def _cchclose(self, line):
        if not self.held:
            return ["ERROR"]
        self.held = self.open = False
        self.cache = bytearray()
        return ["OK", "+CCHCLOSE: 0,0"]
