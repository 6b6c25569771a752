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
    return e.kind == _at.CME and e.code not in (3, 4, 10, 11, 12, 13, 16)  # not: forbidden/SIM/PIN


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
        self.started = False  # AT+CCHSTART done (PDP active)
        self.connected = False
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
        for prefix, handler in (
            (b"*ATREADY", self._urc_boot), (b"RDY", self._urc_boot),
            (b"+CPIN:", self._urc_cpin), (b"SMS DONE", self._urc_note), (b"PB DONE", self._urc_note),
            (b"+CEREG:", self._urc_reg), (b"+CREG:", self._urc_reg), (b"+CGREG:", self._urc_note),
            (b"+CGEV:", self._urc_cgev), (b"+CMTI:", self._urc_cmti),
            (b"+CCHEVENT:", self._urc_event), (b"+CCH_PEER_CLOSED:", self._urc_closed),
            (b"+CCHCLOSE:", self._urc_closed), (b"+CCH_RECV_CLOSED:", self._urc_closed),
            (b"NORMAL POWER DOWN", self._urc_down), (b"POWERED DOWN", self._urc_down),
        ):
            at.on(prefix, handler)

    # -- URCs -------------------------------------------------------------------

    def _urc_boot(self, line):
        self.booted = True
        self.ready = False
        self.started = False
        self.connected = False

    def _urc_note(self, line):
        _log.d("%s", line)

    def _urc_cpin(self, line):
        self.sim_ready = line.endswith(b"READY")

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
            self.started = False
            self.connected = False

    def _urc_cmti(self, line):
        idx = int_field(line, b"+CMTI:", 1)
        if idx >= 0 and len(self.sms_to_delete) < 8:
            self.sms_to_delete.append(idx)

    def _urc_event(self, line):
        if b"RECV EVENT" in line:
            self.rx_event = True

    def _urc_closed(self, line):
        if self.connected:
            self.peer_closed += 1
            _log.i("connection closed: %s", line)
        self.connected = False

    def _urc_down(self, line):
        self.ready = False
        self.started = False
        self.connected = False

    # -- commands ---------------------------------------------------------------

    def cmd(self, text, timeout_ms=0, expect=None, until=None, data=None, retries=-1):
        """One command with rung 1 of the ladder: a timeout, ERROR or transient
        +CME ERROR is retried `retries` times (default cmd_retries)."""
        tries = self.cmd_retries if retries < 0 else retries
        while True:
            try:
                lines = yield from self.at.cmd(text, timeout_ms or self.cmd_ms, expect, until, data)
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
                "peer_closed": self.peer_closed, "rx_dropped": self.rx_dropped}
