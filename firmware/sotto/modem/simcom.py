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


_IDENT_KEEP = (b"Model:", b"Revision:")  # what the log keeps of the identification (never the IMEI)
_IDENT_DROP = (b"Manufacturer:", b"IMEI", b"MEID", b"QCN", b"+GCAP", b"DeviceInfo", b"ESN")
CA_PACKET_MAX = 3072  # AT+CCERTDOWN: "every packet data should be no larger than 3072 bytes" (19.2.2)


def _starts(line, prefixes):
    for p in prefixes:
        if line.startswith(p):
            return True
    return False


def _apn_of_cid1(lines):
    """The APN of context 1 in AT+CGDCONT? lines (+CGDCONT: 1,"IP","apn",...), None if undefined."""
    for line in lines:
        f = fields(line, b"+CGDCONT:")
        if len(f) >= 3 and f[0] == b"1":
            return f[2].strip(b'"').decode()
    return None


class Simcom(Cch):
    # PWRKEY (A7670 hardware design manual V1.06, 3.2.1-3.2.2, Tables 11-12): low
    # >= 50 ms powers the module on (SIM7600: >= 100 ms), low >= 2.5 s powers it off.
    # 500 ms powers on either and never powers off.
    pwrkey_on_ms = 500
    pwrkey_off_ms = 3000
    cpof_ms = 9000  # AT+CPOF "Max Response Time 9000ms" (AT manual V1.09 3.2.5)
    shutdown_ms = 3000  # power-down takes about 2 s (Table 12, Toff(uart) typ. 2 s) + margin
    off_wait_ms = 2000  # then off at least 2 s before the next press (Table 12, Toff-on >= 2 s)
    boot_ms = 30000  # boot budget (Table 11: Ton(uart) typ. 11.1 s)
    sms_done_ms = 20000  # after the boot URC: how long to wait for "SMS DONE"
    ca_gap_ms = 300  # between AT+CCERTDOWN packets (3 KB at 115 200 baud take 270 ms)
    cfun_ms = 10000
    sms_ms = 60000  # AT+CMGS
    sms_validity_min = 60  # an alert SMS older than that is of no use
    # 3GPP PSM (AT+CPSMS, TS 27.007 7.38; timers coded as TS 24.008 GPRS Timer 3 / 2):
    # periodic TAU 1 h ("001" hours x 1), active time 10 s ("000" 2 s x 5). The device
    # never needs to be reached by the network (the centre answers its posts), so PSM
    # costs only the module's wake-up before an alert's first bytes (docs/modem.md).
    # None: do not ask. A module or network that refuses it works as before.
    psm = 'AT+CPSMS=1,,,"00100001","00000101"'
    ident = ""  # the module's identification as logged at start
    ca_pem = None  # the CA certificate's bytes (from /data): downloaded once per boot
    insecure_tls = False  # config insecure_tls: TLS without server authentication (bench work)
    ca_installed = False
    # SSL context 1: the secondary receiver's (sotto.paths); ctx1 False: not used
    ctx1 = False
    ca_cert1 = None
    ca_pem1 = None
    ca_installed1 = False

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
            self.sms_done = False
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
                yield from self._wait_sms_done()
                return
            waited += self.probe_ms
        raise ModemError(0, _at.NO_POWER, "boot")

    def _wait_sms_done(self):
        # The module answers AT before its SIM and SMS service are up; until "SMS DONE"
        # SMS commands answer +CMS ERROR: 500 and SIM ones +CME ERROR: 14 (SIM busy).
        # Wait for it after a boot we saw, unless the SIM is reported missing.
        waited = 0
        while self.booted and not self.sms_done and waited < self.sms_done_ms:
            if self.sim_missing:
                return
            yield from self.at.wait(200)
            waited += 200

    def _init(self):
        self.ready = False
        self._data_gone()
        yield from self.cmd("ATE0")
        yield from self.cmd("AT+CMEE=1")  # numeric +CME ERROR codes
        yield from self.identify()
        yield from self.cmd("AT+CMGF=0")  # SMS in PDU mode
        yield from self.cmd("AT+CREG=1")  # registration changes as URCs
        yield from self.cmd("AT+CEREG=1")
        if self.psm:
            try:
                yield from self.cmd(self.psm, retries=0)
            except ModemError as e:
                _log.w("PSM refused: %s", e)
        if self.apn:
            yield from self.configure_apn()
        yield from self.configure_tls()
        self.ready = True

    def configure_tls(self):
        """The SSL context 0 (AT manual V1.09 19.2.1, AT+CSSLCFG), and context 1
        for the secondary receiver when there is one (sotto.paths)."""
        yield from self._configure_ctx(0)
        if self.ctx1:
            yield from self._configure_ctx(1)

    def _configure_ctx(self, ctx):
        ca_cert = self.ca_cert if ctx == 0 else self.ca_cert1
        if self.insecure_tls and not ca_cert:
            _log.w("insecure_tls: TLS without server authentication (bench work only)")
            yield from self.cmd('AT+CSSLCFG="authmode",%d,0' % ctx)
        else:
            # without a CA the handshake fails: closed, never unauthenticated
            # (and delivery refuses before it tries: sotto.config.network_refusal)
            if ctx == 0 and self.ca_cert and self.ca_pem and not self.ca_installed:
                yield from self.install_ca(self.ca_cert, self.ca_pem)
                self.ca_installed = True
            if ctx == 1 and ca_cert and self.ca_pem1 and not self.ca_installed1:
                yield from self.install_ca(ca_cert, self.ca_pem1)
                self.ca_installed1 = True
            yield from self.cmd('AT+CSSLCFG="sslversion",%d,3' % ctx)  # TLS 1.2 only, no downgrade
            yield from self.cmd('AT+CSSLCFG="authmode",%d,1' % ctx)  # verify the server's chain
            if ca_cert:
                yield from self.cmd('AT+CSSLCFG="cacert",%d,"%s"' % (ctx, ca_cert))
        # Certificate dates: the module checks them only with ignorelocaltime 0 and a right
        # AT+CCLK (19.2.1); its clock is not trusted at boot, and an expired certificate must
        # not stop an alert, so dates stay unchecked - set here, not inherited from whatever
        # was stored before. The module checks no host name either: the CA must be private
        # to the centre (docs/modem.md, "Certificate profile").
        yield from self.cmd('AT+CSSLCFG="ignorelocaltime",%d,1' % ctx)
        try:
            yield from self.cmd('AT+CSSLCFG="enableSNI",%d,1' % ctx, retries=0)
        except ModemError as e:
            # older firmware does not know the parameter: connect without SNI (the
            # receiver must not need it)
            if e.kind not in (_at.ERROR, _at.CME):
                raise
            _log.w("module without SNI support (%s): TLS without server name", e)

    def identify(self):
        """Log the module's identification (model, firmware revision and build): AT+SIMCOMATI
        where the firmware has it, else ATI (AT manual V1.09 2.2.7). Never the IMEI."""
        self.ident = ""
        for cmd in ("AT+SIMCOMATI", "ATI"):
            try:
                lines = yield from self.cmd(cmd, retries=0)
            except ModemError as e:
                _log.d("%s: %s", cmd, e)
                continue
            keep = []
            for line in lines:
                # a line without a key is SIMCOMATI's build (A7670M7_B12V02_220613)
                if _starts(line, _IDENT_KEEP) or (b":" not in line and not _starts(line, _IDENT_DROP)):
                    keep.append(line.decode())
            if keep:
                self.ident = " ".join(keep)
                _log.i("module %s", self.ident)
                return
        _log.w("module did not identify itself")

    def configure_apn(self):
        # AT+CGDCONT is stored in the module (AUTO_SAVE, 5.2.5) and used at attach:
        # write it only when it differs, and then attach again so that it takes effect.
        lines = yield from self.cmd("AT+CGDCONT?", expect=b"+CGDCONT:")
        current = _apn_of_cid1(lines)
        if current == self.apn:
            return
        _log.i("APN %r -> %r: attaching again", current, self.apn)
        yield from self.cmd('AT+CGDCONT=1,"IP","%s"' % self.apn)
        yield from self._radio_cycle()

    def _radio_cycle(self):
        """AT+CFUN=0 then AT+CFUN=1 (detach, attach again), then wait for the SIM."""
        self.reg_eps = self.reg_cs = -1
        yield from self.cmd("AT+CFUN=0", self.cfun_ms, retries=0)
        self.sim_ready = self.sms_done = False
        yield from self.cmd("AT+CFUN=1", self.cfun_ms, retries=0)
        yield from self._await_sim()

    def _await_sim(self):
        # AT+CFUN=1 starts the SIM again: the module says +CPIN: READY, SMS DONE, PB DONE
        # once more (AT manual, "AT Commands for Status Control", AT+CFUN; see
        # tests/data/at/manual_cfun.at), and until SMS DONE AT+CPIN? answers +CME ERROR: 14,
        # SIM busy (28.3), for longer than a command's two retries last. Wait for SMS DONE
        # once the module has said +CPIN: READY; without that, ask until the SIM is ready
        # (a module whose SIM stayed up answers READY at once). Any other answer (no SIM)
        # is left to check_sim().
        waited = 0
        while waited < self.sms_done_ms:
            yield from self.at.wait(200)
            waited += 200
            if self.sms_done or self.sim_missing:
                return
            if self.sim_ready:
                continue  # +CPIN: READY came: SMS DONE follows
            try:
                lines = yield from self.cmd("AT+CPIN?", expect=b"+CPIN:", retries=0)
            except ModemError as e:
                if e.kind != _at.CME or e.code != 14:
                    return
                lines = ()
            if lines and lines[-1].endswith(b"READY"):
                self.sim_ready = True
                return
            yield from self.at.wait(300)
            waited += 300

    def install_ca(self, name, pem):
        """Provisioning: store a CA certificate in the module (AT+CCERTDOWN), in
        packets of at most CA_PACKET_MAX bytes (19.2.2)."""
        mv = memoryview(pem)
        packets = [mv[i:i + CA_PACKET_MAX] for i in range(0, len(pem), CA_PACKET_MAX)]
        yield from self.cmd('AT+CCERTDOWN="%s",%d' % (name, len(pem)), 120000, data=packets,
                            gap_ms=self.ca_gap_ms, retries=0)

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
        yield from self._radio_cycle()

    def power_cycle(self, answering=True):
        """Rung 3: power off (AT+CPOF, or PWRKEY held when the module is hung), then on,
        with the hardware design manual's timing: a press during the power-down or
        less than 2 s after it is ignored, and a long press on a module that has
        just gone off switches it back on."""
        self.power_cycles += 1
        _log.w("recovery: power cycle (%d)", self.power_cycles)
        self.ready = False
        self._data_gone()
        self.reg_eps = self.reg_cs = -1
        off = False
        if answering:
            try:
                yield from self.cmd("AT+CPOF", self.cpof_ms, retries=0)
                off = True
            except ModemError as e:
                _log.w("AT+CPOF: %s", e)
                # no OK within the documented maximum: a late power-down may still be
                # under way, and a long press now could switch it back on. Let it finish
                # and see whether the module still answers.
                yield from self.at.wait(self.shutdown_ms)
                off = not (yield from self.probe(retries=0))
        if not off:
            yield from self._press(self.pwrkey_off_ms)
        yield from self.at.wait(self.shutdown_ms)
        if not off and (yield from self.probe(retries=0)):
            # still answering: the press came while it could not take it; once more
            yield from self._press(self.pwrkey_off_ms)
            yield from self.at.wait(self.shutdown_ms)
        yield from self.at.wait(self.off_wait_ms)
        self.booted = False
        self.sms_done = False
        yield from self._press(self.pwrkey_on_ms)
        self.power_ons += 1
        yield from self._wait_boot()
        yield from self._init()
