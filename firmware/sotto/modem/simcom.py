# SIMCom A7670 / SIM7600-class driver (A76XX Series AT Command Manual).
#
# Power (PWRKEY pulse, boot wait), initialisation, SIM, signal, registration
# (CREG/CEREG), the PDP context, SMS in PDU mode and rungs 2 and 3 of the
# recovery ladder; the data connection is sotto.modem.cch, command execution
# and URCs sotto.modem.base. docs/modem.md lists the dialogue, timeouts and the
# manual sections it follows. Every method is a generator for sotto.sched;
# errors are at.ModemError.
import binascii

from sotto.log import Logger
from sotto.modem import at as _at
from sotto.modem import pdu
from sotto.modem.at import ModemError, fields, int_field
from sotto.modem.cch import Cch

_log = Logger("modem")


class Simcom(Cch):
    # PWRKEY: A7670 powers on after >= 50 ms low, SIM7600 after >= 100 ms; both
    # power off after >= 2.5 s. 500 ms powers on either and never powers off.
    pwrkey_on_ms = 500
    pwrkey_off_ms = 3000
    off_wait_ms = 2000  # after power-off, before power-on
    boot_ms = 30000  # boot budget (the manual's *ATREADY comes after ~10-20 s)
    cfun_ms = 10000
    sms_ms = 60000  # AT+CMGS
    sms_validity_min = 60  # an alert SMS older than that is of no use
    ca_pem = None  # the CA certificate's bytes (from /data): downloaded once per boot
    insecure_tls = False  # config insecure_tls: TLS without server authentication (bench work)
    ca_installed = False

    def _press(self, hold_ms):
        if self.pwrkey is None:
            raise ModemError(0, _at.NO_POWER, "PWRKEY")
        self.pwrkey(1)
        try:
            yield from self.at.wait(hold_ms)
        finally:
            self.pwrkey(0)

    def start(self):
        """Make the module answer (power it on if it does not) and initialise it."""
        if not (yield from self.probe()):
            _log.i("no answer: PWRKEY on")
            self.booted = False
            yield from self._press(self.pwrkey_on_ms)
            self.power_ons += 1
            yield from self._wait_boot()
        yield from self._init()

    def _wait_boot(self):
        waited = 0
        while waited < self.boot_ms:
            yield from self.at.wait(1000)
            waited += 1000
            if (self.booted or waited >= 4000) and (yield from self.probe(retries=0)):
                return
            waited += self.probe_ms
        raise ModemError(0, _at.NO_POWER, "boot")

    def _init(self):
        self.ready = False
        self.started = False
        self.connected = False
        yield from self.cmd("ATE0")
        yield from self.cmd("AT+CMEE=1")  # numeric +CME ERROR codes
        yield from self.cmd("AT+CMGF=0")  # SMS in PDU mode
        yield from self.cmd("AT+CREG=1")  # registration changes as URCs
        yield from self.cmd("AT+CEREG=1")
        if self.apn:
            yield from self.cmd('AT+CGDCONT=1,"IP","%s"' % self.apn)
        yield from self.cmd("AT+CCHSET=0,1")  # no send report; receive on demand (+CCHEVENT)
        if self.insecure_tls and not self.ca_cert:
            _log.w("insecure_tls: TLS without server authentication (bench work only)")
            yield from self.cmd('AT+CSSLCFG="authmode",0,0')
        else:
            # without a CA the handshake fails: closed, never unauthenticated
            # (and delivery refuses before it tries: sotto.config.network_refusal)
            if self.ca_cert and self.ca_pem and not self.ca_installed:
                yield from self.install_ca(self.ca_cert, self.ca_pem)
                self.ca_installed = True
            yield from self.cmd('AT+CSSLCFG="sslversion",0,3')  # TLS 1.2 only, no downgrade
            yield from self.cmd('AT+CSSLCFG="authmode",0,1')  # verify the server
            if self.ca_cert:
                yield from self.cmd('AT+CSSLCFG="cacert",0,"%s"' % self.ca_cert)
            yield from self.cmd('AT+CSSLCFG="enableSNI",0,1')
        self.ready = True

    def install_ca(self, name, pem):
        """Provisioning: store a CA certificate in the module (AT+CCERTDOWN)."""
        yield from self.cmd('AT+CCERTDOWN="%s",%d' % (name, len(pem)), data=pem, retries=0)

    def check_sim(self):
        try:
            lines = yield from self.cmd("AT+CPIN?", expect=b"+CPIN:")
        except ModemError as e:
            if e.kind == _at.CME and e.code in (10, 13):  # SIM not inserted / SIM failure
                self.sim_ready = False
                raise ModemError(e.code, _at.NO_SIM, "AT+CPIN?") from None
            raise
        self.sim_ready = bool(lines) and lines[-1].endswith(b"READY")
        if not self.sim_ready:
            raise ModemError(0, _at.NO_SIM, lines[-1] if lines else "AT+CPIN?")

    def signal(self):
        """rssi 0..31 (99: unknown), from AT+CSQ."""
        lines = yield from self.cmd("AT+CSQ", expect=b"+CSQ:")
        self.rssi = int_field(lines[-1], b"+CSQ:", 0, 99) if lines else 99
        return self.rssi

    def registration(self):
        """Query CEREG and CREG; returns True when registered (home or roaming)."""
        for cmd, prefix in (("AT+CEREG?", b"+CEREG:"), ("AT+CREG?", b"+CREG:")):
            lines = yield from self.cmd(cmd, expect=prefix)
            for line in lines:
                if len(fields(line, prefix)) == 1:
                    self._urc_reg(line)  # a URC ("+CEREG: <stat>") that came meanwhile
                    continue
                stat = int_field(line, prefix, 1)  # the answer: "+CEREG: <n>,<stat>[,...]"
                if prefix == b"+CEREG:":
                    self.reg_eps = stat
                else:
                    self.reg_cs = stat
        return self.is_registered()

    # -- SMS ----------------------------------------------------------------------

    def send_sms(self, number, data):
        """One binary SMS (8-bit PDU); returns the message reference."""
        body, tpdu_len = pdu.encode_submit(number, data, validity_min=self.sms_validity_min)
        hex_pdu = binascii.hexlify(body).upper()
        try:
            lines = yield from self.cmd("AT+CMGS=%d" % tpdu_len, self.sms_ms, expect=b"+CMGS:",
                                        data=(hex_pdu, b"\x1a"), retries=0)
        except ModemError as e:
            if e.kind == _at.NO_PROMPT:
                self.at.write_raw(b"\x1b")  # ESC: leave the prompt, send nothing
            raise
        if not lines:
            raise ModemError(0, _at.BAD_REPLY, "AT+CMGS")
        return int_field(lines[-1], b"+CMGS:", 0)

    def housekeeping(self):
        """Delete received SMS (+CMTI) so the SIM store never fills."""
        while self.sms_to_delete:
            idx = self.sms_to_delete.pop()
            try:
                yield from self.cmd("AT+CMGD=%d" % idx, retries=0)
            except ModemError as e:
                _log.d("CMGD: %s", e)

    # -- recovery ladder, rungs 2 and 3 ---------------------------------------

    def reset_function(self):
        """Rung 2: radio off and on (AT+CFUN=0, AT+CFUN=1): re-registers, new PDP."""
        self.cfun_resets += 1
        _log.w("recovery: AT+CFUN=0/1 (%d)", self.cfun_resets)
        self.started = False
        self.connected = False
        self.reg_eps = self.reg_cs = -1
        yield from self.cmd("AT+CFUN=0", self.cfun_ms, retries=0)
        yield from self.cmd("AT+CFUN=1", self.cfun_ms, retries=0)

    def power_cycle(self, answering=True):
        """Rung 3: power off (AT+CPOF, or PWRKEY held when the module is hung), then on."""
        self.power_cycles += 1
        _log.w("recovery: power cycle (%d)", self.power_cycles)
        self.ready = False
        self.started = False
        self.connected = False
        self.reg_eps = self.reg_cs = -1
        off = False
        if answering:
            try:
                yield from self.cmd("AT+CPOF", self.cmd_ms, retries=0)
                off = True
            except ModemError:
                pass
        if not off:
            yield from self._press(self.pwrkey_off_ms)
        yield from self.at.wait(self.off_wait_ms)
        self.booted = False
        yield from self._press(self.pwrkey_on_ms)
        self.power_ons += 1
        yield from self._wait_boot()
        yield from self._init()
