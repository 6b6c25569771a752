# The SIMCom driver where the real A7670 differs from a naive reading (issue 19):
# receive blocks and events, the session after a server close, CCH STOP and the
# failure codes, the CCHSTART failure forms, power timing, boot order, the SSL
# context, the PDP context and the certificate download. Each dialogue follows
# the A76XX AT Command Manual V1.09 (tests/data/at/manual_*.at name the section)
# or the A7670 hardware design manual V1.06. Runs under CPython and in the VM.
from atfake import Clock, ScriptedModem, drive, driver_for
from fwtest import raises
from sotto import log
from sotto.modem import at, ladder
from sotto.modem.at import AtEngine, ModemError
from sotto.modem.simcom import Simcom

CA_PACKET_MAX = 3072  # AT+CCERTDOWN, AT manual V1.09 19.2.2


def scripted(answers=None, apn="", **kw):
    clock = Clock()
    mod = ScriptedModem(clock, answers, **kw)
    return clock, mod, Simcom(AtEngine(mod.uart, clock), pwrkey=mod.pwrkey, apn=apn)


class Lines:
    """Collects the log lines."""

    def __init__(self):
        self.lines = []
        log.set_sink(self.lines.append)

    def close(self):
        log.set_sink(None)
        return "\n".join(self.lines)


# -- item 1: data a full read leaves in the module ------------------------------

def test_partial_receive_fetches_what_the_module_still_holds():
    clock, t, m = driver_for("manual_cchrecv_partial.at", rx_max=32)
    m.connected = m.session = True
    drive(clock, m.at.wait(20))
    assert m.rx_event
    drive(clock, m.recv())
    assert m.rx_more  # no event will come for the 6 bytes left: the driver knows it asked
    got = bytes(m.consume())
    drive(clock, m.recv())
    got += bytes(m.consume())
    assert got == b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    assert not m.rx_more
    assert t.done(), t.errors


def test_receive_asks_for_at_most_2048_bytes():
    clock = Clock()
    mod = ScriptedModem(clock, {"AT+CCHRECV=": ["OK", "+CCHRECV: 0,0"]})
    m = Simcom(AtEngine(mod.uart, clock), rx_max=4096)
    drive(clock, m.recv())
    assert mod.commands == ["AT+CCHRECV=0,2048"]  # 19.2.15: 0..2048, and 0 would mean "all"


# -- item 2: the session after the server closed it ------------------------------

def test_reopen_after_peer_close_closes_the_session_first():
    clock, t, m = driver_for("manual_peer_closed_reopen.at")
    m.started = m.session = m.connected = True
    drive(clock, m.at.wait(20))
    assert not m.connected and m.session and m.peer_closed == 1
    drive(clock, m.open("receiver.example", 443))
    assert m.connected
    assert t.done(), t.errors


def test_closing_after_a_peer_close_still_sends_cchclose():
    clock = Clock()
    mod = ScriptedModem(clock, {"AT+CCHCLOSE": ["OK", "+CCHCLOSE: 0,0"]})
    m = Simcom(AtEngine(mod.uart, clock))
    m.started = m.session = m.connected = True
    mod.uart.feed(b"\r\n+CCH_PEER_CLOSED: 0\r\n", 5)
    drive(clock, m.at.wait(20))
    drive(clock, m.close())
    assert mod.commands == ["AT+CCHCLOSE=0"] and not m.session


# -- item 3: power timing --------------------------------------------------------

def test_power_cycle_follows_the_hardware_timing():
    # AT+CPOF answers within its documented 9 s (here after 6 s), the power-down
    # takes 2 s; a press during it or within 2 s after it is ignored
    clock, mod, m = scripted(shutdown_ms=2000, off_on_ms=2000)

    def cpof(line):
        mod.uart.feed(b"\r\nOK\r\n", 6000)
        mod.shut_down(6000)
        return None

    mod.answers["AT+CPOF"] = cpof
    t0 = clock.now_ms
    drive(clock, m.power_cycle(answering=True))
    assert mod.ignored == 0  # no press wasted on a module that could not take it
    assert [held >= 2500 for _t, held in mod.presses] == [False]  # one on-pulse, no off-hold
    assert mod.power_ons == 1 and m.ready
    assert clock.now_ms - t0 < 40000  # one boot, not a boot budget lost on an ignored press


def test_power_cycle_when_cpof_gets_no_answer_does_not_switch_it_back_on():
    # no OK at all, but the module powers down late (10 s): a long press now would
    # land on a module that has just gone off and switch it on again
    clock, mod, m = scripted(shutdown_ms=2000, off_on_ms=2000)

    def cpof(line):
        mod.shut_down(8000)
        return None

    mod.answers["AT+CPOF"] = cpof
    drive(clock, m.power_cycle(answering=True))
    assert mod.ignored == 0 and [held >= 2500 for _t, held in mod.presses] == [False]
    assert mod.power_ons == 1 and m.ready


def test_power_cycle_of_a_hung_module_waits_for_the_power_down():
    clock, mod, m = scripted(shutdown_ms=2000, off_on_ms=2000)
    mod.hung = True
    drive(clock, m.power_cycle(answering=False))
    assert [held >= 2500 for _t, held in mod.presses] == [True, False]
    assert mod.ignored == 0 and m.ready
    off_end = mod.presses[0][0] + mod.presses[0][1]
    assert mod.presses[1][0] - off_end >= 2000 + 2000  # power-down, then Toff-on


# -- item 4: an empty cache ------------------------------------------------------

def test_receive_on_an_empty_cache_is_no_data():
    clock, t, m = driver_for("manual_cchrecv_empty.at", rx_max=64)
    m.connected = m.session = True
    m.rx_event = True
    drive(clock, m.recv())
    assert m.rx_n == 0 and not m.rx_more and not m.rx_event
    assert t.done(), t.errors


def test_receive_error_without_the_result_line_is_still_an_error():
    clock = Clock()
    mod = ScriptedModem(clock, {"AT+CCHRECV=": ["ERROR"]})
    m = Simcom(AtEngine(mod.uart, clock))
    e = raises(ModemError, drive, clock, m.recv())
    assert e.kind == at.ERROR


# -- item 5: CCH STOP and the failure codes --------------------------------------

def test_cch_stop_restarts_the_service_before_the_next_open():
    clock, t, m = driver_for("manual_cch_stop.at")
    m.ready = m.started = m.session = m.connected = True
    drive(clock, m.at.wait(20))
    assert not m.started and not m.session and not m.connected and m.cch_stops == 1
    drive(clock, m.start_data())
    drive(clock, m.open("receiver.example", 443))
    assert m.started and m.connected
    assert t.done(), t.errors


def test_send_failure_and_receive_failure_urcs_end_the_connection():
    for urc in (b"+CCHSEND: 0,18", b"+CCH_RECV_CLOSED: 0,6"):
        clock = Clock()
        mod = ScriptedModem(clock)
        m = Simcom(AtEngine(mod.uart, clock))
        m.started = m.session = m.connected = True
        mod.uart.feed(b"\r\n" + urc + b"\r\n", 5)
        drive(clock, m.at.wait(20))
        assert not m.connected, urc
        assert m.session  # still held by the module: AT+CCHCLOSE comes before the next open
    assert m.send_failures == 0
    clock = Clock()
    mod = ScriptedModem(clock)
    m = Simcom(AtEngine(mod.uart, clock))
    m.connected = True
    mod.uart.feed(b"\r\n+CCHSEND: 0,0\r\n", 5)  # a success report (AT+CCHSET=1): harmless
    drive(clock, m.at.wait(20))
    assert m.connected and m.send_failures == 0


# -- item 6: the two CCHSTART failures -------------------------------------------

def test_cchstart_network_failure_is_a_network_failure():
    clock, t, m = driver_for("manual_cchstart_network_error.at")
    e = raises(ModemError, drive, clock, m.start_data())
    assert (e.kind, e.code) == (at.RESULT, 9)
    assert not m.started
    assert ladder.Ladder().classify(e, 0) == ladder.NETWORK  # backoff, not CFUN / power cycles
    drive(clock, m.at.wait(1000))
    assert t.done(), t.errors  # and no AT+CCHSTOP


def test_cchstart_network_failure_with_a_scripted_module():
    clock, mod, m = scripted({"AT+CCHSTART": ["ERROR", "+CCHSTART: 17"]})
    e = raises(ModemError, drive, clock, m.start_data())
    assert (e.kind, e.code) == (at.RESULT, 17)
    assert "AT+CCHSTOP" not in mod.commands and mod.commands.count("AT+CCHSTART") == 1


def test_cchstart_error_alone_means_already_started():
    clock, mod, m = scripted({"AT+CCHSTART": [["ERROR"], ["OK", "+CCHSTART: 0"]],
                              "AT+CCHSTOP": ["OK", "+CCHSTOP: 0"]})
    drive(clock, m.start_data())
    assert m.started
    assert mod.commands == ["AT+CCHSET=0,1", "AT+CCHSTART", "AT+CCHSTOP", "AT+CCHSET=0,1", "AT+CCHSTART"]


# -- item 7: the SSL context -----------------------------------------------------

def test_tls_context_sets_certificate_dates_explicitly():
    clock, mod, m = scripted()
    m.ca_cert = "sotto_ca.pem"
    drive(clock, m.start())
    ssl = [c for c in mod.commands if c.startswith("AT+CSSLCFG")]
    assert ssl == ['AT+CSSLCFG="sslversion",0,3', 'AT+CSSLCFG="authmode",0,1',
                   'AT+CSSLCFG="cacert",0,"sotto_ca.pem"', 'AT+CSSLCFG="ignorelocaltime",0,1',
                   'AT+CSSLCFG="enableSNI",0,1']


# -- item 8: old firmware, MCU resets, certificates, the APN, boot order ----------

def test_module_without_sni_support_still_comes_up():
    clock, mod, m = scripted({'AT+CSSLCFG="enableSNI"': ["ERROR"]})
    m.ca_cert = "sotto_ca.pem"
    drive(clock, m.start())
    assert m.ready and mod.commands.count('AT+CSSLCFG="enableSNI",0,1') == 1


def test_sni_refusal_dialogue():
    clock, t, m = driver_for("manual_sni_unsupported.at", ca_cert="sotto_ca.pem")
    drive(clock, m.configure_tls())
    assert t.done(), t.errors


def test_mcu_reset_while_cch_runs():
    clock, t, m = driver_for("sotto_cch_running.at")
    drive(clock, m.start_data())
    assert m.started
    assert t.done(), t.errors


def test_mcu_reset_while_cch_runs_with_a_scripted_module():
    state = {"running": True}

    def cchset(line):
        return ["ERROR"] if state["running"] else ["OK"]

    def cchstop(line):
        state["running"] = False
        return ["OK", "+CCHSTOP: 0"]

    def cchstart(line):
        if state["running"]:
            return ["ERROR"]
        state["running"] = True
        return ["OK", "+CCHSTART: 0"]

    clock, mod, m = scripted({"AT+CCHSET": cchset, "AT+CCHSTOP": cchstop, "AT+CCHSTART": cchstart})
    drive(clock, m.start())  # the module answered: no boot, the MCU alone restarted
    drive(clock, m.start_data())
    assert m.ready and m.started and m.power_ons == 0


def test_certificate_goes_down_in_packets_of_at_most_3072_bytes():
    clock = Clock()
    got = bytearray()

    def certdown(line):
        mod.uart.feed(b"\r\n>", 10)
        return None

    mod = ScriptedModem(clock, {"AT+CCERTDOWN": certdown})
    m = Simcom(AtEngine(mod.uart, clock))
    pem = b"-----BEGIN CERTIFICATE-----\n" + b"A" * 4000 + b"\n-----END CERTIFICATE-----\n"
    mod.uart.feed(b"\r\nOK\r\n", 5000)  # after the whole file
    drive(clock, m.install_ca("sotto_ca.pem", pem))
    writes = [w for w in mod.uart.writes if w[1] > 64]  # the data, not the command
    assert [n for _t, n in writes] == [CA_PACKET_MAX, len(pem) - CA_PACKET_MAX]
    assert writes[1][0] - writes[0][0] >= 270  # 3 KB take 270 ms on the wire at 115 200 baud
    got += mod.uart.written
    assert got.endswith(pem)


def test_apn_change_attaches_again():
    clock, t, m = driver_for("manual_cgdcont_apn.at", apn="internet")
    drive(clock, m.configure_apn())
    assert t.done(), t.errors


def test_apn_written_only_when_it_differs_and_then_takes_effect():
    clock, mod, m = scripted({"AT+CGDCONT?": ['+CGDCONT: 1,"IP","old.apn","0.0.0.0",0,0', "OK"]},
                             apn="internet")
    drive(clock, m.start())
    i = mod.commands.index('AT+CGDCONT=1,"IP","internet"')
    assert mod.commands[i + 1:i + 3] == ["AT+CFUN=0", "AT+CFUN=1"]  # a new attach uses it
    clock, mod, m = scripted({"AT+CGDCONT?": ['+CGDCONT: 1,"IP","internet","0.0.0.0",0,0', "OK"]},
                             apn="internet")
    drive(clock, m.start())
    assert not [c for c in mod.commands if c.startswith("AT+CGDCONT=") or c.startswith("AT+CFUN")]


def test_after_cfun_the_sim_is_awaited():
    # AT+CFUN=1 starts the SIM again: AT+CPIN? answers +CME ERROR: 14 (SIM busy) until
    # it is up, here 3 s, longer than a command's two retries. Neither an APN change nor
    # rung 2 may take that for a failure (found by the virtual modem, issue 19).
    for step in ("apn", "rung2"):
        clock = Clock()
        state = {"up_at": 0}

        def cfun(line):
            if line == "AT+CFUN=1":
                state["up_at"] = clock.now_ms + 3000
            return ["OK"]

        def cpin(line):
            return ["+CME ERROR: 14"] if clock.now_ms < state["up_at"] else ["+CPIN: READY", "OK"]

        mod = ScriptedModem(clock, {"AT+CFUN": cfun, "AT+CPIN?": cpin,
                                    "AT+CGDCONT?": ['+CGDCONT: 1,"IP","old.apn"', "OK"]})
        m = Simcom(AtEngine(mod.uart, clock), apn="internet")
        drive(clock, m.configure_apn() if step == "apn" else m.reset_function())
        drive(clock, m.check_sim())
        assert m.sim_ready and clock.now_ms >= state["up_at"], step
        assert mod.commands.count("AT+CFUN=1") == 1, step


def test_after_cfun_a_sim_ready_urc_is_enough():
    clock, t, m = driver_for("manual_cfun.at")
    drive(clock, m.reset_function())
    assert m.sim_ready and t.done(), t.errors  # no AT+CPIN? needed: the module said so


def test_commands_wait_for_sms_done_after_a_boot():
    # *ATREADY at 12 s, SMS DONE at 18 s; before that the module answers SMS
    # commands with +CMS ERROR: 500 and SIM ones with +CME ERROR: 14 (SIM busy)
    boot = 12000
    sms_done = boot + 6000
    clock = Clock()
    refused = []

    def early(err):
        def answer(line):
            pressed, held = mod.presses[-1]
            if clock.now_ms < pressed + held + sms_done:  # before "SMS DONE"
                refused.append(line)
                return [err]
            return ["OK"]
        return answer

    mod = ScriptedModem(clock, {"AT+CMGF": early("+CMS ERROR: 500"), "AT+CPIN?": early("+CME ERROR: 14")},
                        on=False, boot_ms=boot,
                        boot_urcs=[(boot, "*ATREADY: 1"), (boot + 2000, "+CPIN: READY"),
                                   (sms_done, "SMS DONE"), (sms_done + 500, "PB DONE")])
    m = Simcom(AtEngine(mod.uart, clock), pwrkey=mod.pwrkey)
    drive(clock, m.start())
    assert m.ready and m.power_ons == 1
    assert refused == []  # nothing was sent before the module was ready for it


def test_sim_busy_is_retried():
    clock, mod, m = scripted({"AT+CPIN?": [["+CME ERROR: 14"], ["+CPIN: READY", "OK"]]})
    drive(clock, m.check_sim())
    assert m.sim_ready and m.retries == 1


# -- the module's identification, logged at start ---------------------------------

def test_identification_is_logged_without_the_imei():
    logged = Lines()
    try:
        clock, t, m = driver_for("sotto_init.at", apn="internet", ca_cert="sotto_ca.pem")
        drive(clock, m.start())
    finally:
        text = logged.close()
    assert t.done(), t.errors
    assert m.ident == "Model: A7670E-LASE Revision: A124B01A7670M7 A7670M7_B01V01_240722"
    assert "A7670M7_B01V01_240722" in text and "IMEI" not in text and "000000000000000" not in text


def test_identification_falls_back_to_ati():
    clock, t, m = driver_for("manual_ati.at")
    drive(clock, m.identify())
    assert m.ident == "Model: A7600C Revision: A7600C_V1.0"
    assert t.done(), t.errors
