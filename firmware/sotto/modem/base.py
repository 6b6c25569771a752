# The module-independent half of the SIMCom driver: its state, the unsolicited
# result codes that change it, and command execution with rung 1 of the
# recovery ladder (a failed command is sent again). sotto.modem.cch adds the
# data connection, sotto.modem.simcom power, registration and SMS.
from sotto.log import Logger
from sotto.modem import at as _at
from sotto.modem.at import ModemError, fields, int_field

_log = Logger("modem")


def _registered(stat):
    return stat == 1 or stat == 5  # home or roaming


def _retryable(e):
    if e.kind == _at.TIMEOUT or e.kind == _at.ERROR:
        return True
    if e.kind == _at.CMS:
        # SMS service not ready yet: "SIM busy" (314) or the "unknown error" (500) a
        # module answers before its "SMS DONE" (AT manual V1.09 28.4)
        return e.code in (314, 500)
    # not: forbidden / not supported / SIM missing, PIN, PUK, failure / wrong password.
    # 14 "SIM busy" (28.3) is transient: the SIM is still starting.
    return e.kind == _at.CME and e.code not in (3, 4, 10, 11, 12, 13, 16)


class ModemBase:
    probe_ms = 1000
    cmd_ms = 5000
    cmd_retries = 2  # rung 1 of the recovery ladder: the same command again
    retry_pause_ms = 500

    def __init__(self, at, pwrkey=None, apn="", ca_cert=None, rx_max=2048):
        self.at = at
        self.pwrkey = pwrkey
        self.apn = apn
        self.ca_cert = ca_cert  # CA certificate name on the module; None: no server check
        self.rx = bytearray(rx_max)
        self.rx_n = 0
        self.rx_event = False
        self.rx_dropped = 0
        self.ready = False  # answered and initialised since the last power-on
        self.booted = False  # boot URC seen (*ATREADY / RDY)
        self.sim_ready = False
        self.sim_missing = False  # +CPIN: SIM REMOVED / NOT INSERTED seen
        self.started = False  # AT+CCHSTART done (PDP active)
        self.session = False  # the module holds CCH session 0 (open, or closed by the peer)
        self.connected = False  # session 0 is open both ends: we may send
        self.sms_done = False  # "SMS DONE" since the last boot: the SMS service is ready
        self.tls = True
        self.reg_eps = -1  # last CEREG / CREG stat seen (-1 unknown)
        self.reg_cs = -1
        self.rssi = 99
        self.sms_to_delete = []
        # recovery ladder counters
        self.retries = 0
        self.cfun_resets = 0
        self.power_cycles = 0
        self.power_ons = 0
        self.peer_closed = 0
        self.send_failures = 0  # +CCHSEND: <session>,<err != 0>
        self.cch_stops = 0  # +CCH: CCH STOP
        self.start_err = -1  # the last "+CCHSTART: <err>" seen outside a command (-1: none)
        for prefix, handler in (
            (b"*ATREADY", self._urc_boot), (b"RDY", self._urc_boot),
            (b"+CPIN:", self._urc_cpin), (b"SMS DONE", self._urc_sms_done), (b"PB DONE", self._urc_note),
            (b"+CEREG:", self._urc_reg), (b"+CREG:", self._urc_reg), (b"+CGREG:", self._urc_note),
            (b"+CGEV:", self._urc_cgev), (b"+CMTI:", self._urc_cmti),
            # the SSL service's unsolicited codes (AT manual V1.09 19.4)
            (b"+CCHEVENT:", self._urc_event), (b"+CCH_PEER_CLOSED:", self._urc_closed),
            (b"+CCHCLOSE:", self._urc_session_gone), (b"+CCH_RECV_CLOSED:", self._urc_closed),
            (b"+CCHSEND:", self._urc_send), (b"+CCH: CCH STOP", self._urc_cch_stop),
            (b"+CCHSTART:", self._urc_start),
            (b"NORMAL POWER DOWN", self._urc_down), (b"POWERED DOWN", self._urc_down),
        ):
            at.on(prefix, handler)

    # -- URCs -------------------------------------------------------------------

    def _urc_boot(self, line):
        self.booted = True
        self.ready = False
        self.sms_done = False
        self._data_gone()

    def _data_gone(self):
        self.started = False
        self.session = False
        self.connected = False

    def _urc_sms_done(self, line):
        self.sms_done = True

    def _urc_note(self, line):
        _log.d("%s", line)

    def _urc_cpin(self, line):
        self.sim_ready = line.endswith(b"READY")
        self.sim_missing = b"REMOVED" in line or b"NOT INSERTED" in line

    def _urc_reg(self, line):
        f = fields(line, line[:line.find(b":") + 1])
        # URC form "+CEREG: <stat>[,...]"; a read answer has "<n>,<stat>" (ours come as
        # command lines, so here the first field is the stat)
        try:
            stat = int(f[0])
        except ValueError:
            return
        if line.startswith(b"+CEREG"):
            self.reg_eps = stat
        else:
            self.reg_cs = stat

    def _urc_cgev(self, line):
        if b"DETACH" in line or b"DEACT" in line:
            _log.w("%s", line)
            self._data_gone()

    def _urc_cmti(self, line):
        idx = int_field(line, b"+CMTI:", 1)
        if idx >= 0 and len(self.sms_to_delete) < 8:
            self.sms_to_delete.append(idx)

    def _urc_event(self, line):
        if b"RECV EVENT" in line:
            self.rx_event = True

    def _urc_closed(self, line):
        # +CCH_PEER_CLOSED / +CCH_RECV_CLOSED: no more sending, but the module keeps
        # the session (and what it cached, 19.2.15 NOTE) until AT+CCHCLOSE
        if self.connected:
            self.peer_closed += 1
            _log.i("connection closed: %s", line)
        self.connected = False

    def _urc_session_gone(self, line):
        # a +CCHCLOSE result that came after its command gave up waiting
        self.session = False
        self.connected = False

    def _urc_send(self, line):
        # "+CCHSEND: <session>,<err>": reported when sending failed (19.4); with
        # AT+CCHSET=0 a success is not reported, but a 0 would be harmless
        err = int_field(line, b"+CCHSEND:", 1, 0)
        if err:
            self.send_failures += 1
            _log.w("send failed: %s", line)
            self.connected = False

    def _urc_cch_stop(self, line):
        # the network stopped the SSL service (19.4): sessions and PDP are gone
        self.cch_stops += 1
        _log.w("%s", line)
        self._data_gone()

    def _urc_start(self, line):
        # "+CCHSTART: <err>" after its command finished (19.2.7: "ERROR", then the code)
        self.start_err = int_field(line, b"+CCHSTART:", 0, -1)

    def _urc_down(self, line):
        self.ready = False
        self._data_gone()

    # -- commands ---------------------------------------------------------------

    def cmd(self, text, timeout_ms=0, expect=None, until=None, data=None, retries=-1, gap_ms=0):
        """One command with rung 1 of the ladder: a timeout, ERROR or transient
        +CME ERROR is retried `retries` times (default cmd_retries)."""
        tries = self.cmd_retries if retries < 0 else retries
        while True:
            try:
                lines = yield from self.at.cmd(text, timeout_ms or self.cmd_ms, expect, until, data, gap_ms)
                return lines
            except ModemError as e:
                if tries <= 0 or not _retryable(e):
                    raise
                tries -= 1
                self.retries += 1
                _log.w("%s: %s; retrying", text, e)
                yield from self.at.wait(self.retry_pause_ms)

    def probe(self, retries=1):
        """True if the module answers AT."""
        try:
            yield from self.cmd("AT", self.probe_ms, retries=retries)
            return True
        except ModemError:
            return False

    def _result(self, lines, prefix, index=1):
        code = int_field(lines[-1], prefix, index) if lines else -1
        if code != 0:
            raise ModemError(code, _at.RESULT, prefix)

    def is_registered(self):
        return _registered(self.reg_eps) or _registered(self.reg_cs)

    def is_denied(self):
        if self.is_registered():
            return False
        return self.reg_eps == 3 or self.reg_cs == 3

    def stats(self):
        return {"retries": self.retries, "cfun_resets": self.cfun_resets,
                "power_cycles": self.power_cycles, "power_ons": self.power_ons,
                "peer_closed": self.peer_closed, "rx_dropped": self.rx_dropped,
                "send_failures": self.send_failures, "cch_stops": self.cch_stops}
