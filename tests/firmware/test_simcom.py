# The SIMCom driver (sotto.modem.simcom): its dialogues replayed from transcripts
# (tests/data/at), power handling and the recovery rungs against a scripted module.
# Runs under CPython and in the MicroPython VM.
from atfake import Clock, ScriptedModem, drive, driver_for
from fwtest import raises
from sotto.modem import at, pdu
from sotto.modem.at import AtEngine, ModemError
from sotto.modem.simcom import Simcom


def test_bring_up_dialogue():
    clock, t, m = driver_for("sotto_init.at", apn="internet", ca_cert="sotto_ca.pem")
    drive(clock, m.start())
    assert m.ready and m.power_ons == 0  # it answered: no PWRKEY pulse
    assert t.done(), t.errors


def test_bring_up_downloads_the_ca_once_and_authenticates_the_server():
    clock, t, m = driver_for("sotto_init_ca.at", "sotto_init.at", apn="internet", ca_cert="ca.pem")
    m.ca_pem = b"-----TEST CA-----\r\n"
    drive(clock, m.start())
    assert m.ready and m.ca_installed
    m.ready = False
    m.ca_cert = "sotto_ca.pem"  # the second bring-up (sotto_init.at's name): no download again
    drive(clock, m.start())
    assert t.done(), t.errors


def test_authmode_follows_the_configuration():
    # insecure_tls (and no CA): no server authentication (the frames say so, flag bit 3)
    clock, t, m = driver_for("sotto_init_insecure.at", apn="internet")
    m.insecure_tls = True
    drive(clock, m.start())
    assert m.ready and t.done(), t.errors

    def ssl_commands(insecure=False, **kw):
        clock = Clock()
        mod = ScriptedModem(clock)
        m = Simcom(AtEngine(mod.uart, clock), apn="internet", **kw)
        m.insecure_tls = insecure
        drive(clock, m.start())
        return [c for c in mod.commands if c.startswith("AT+CSSLCFG") or c.startswith("AT+CCERT")]

    # neither a CA nor insecure_tls: authentication stays on, so a TLS handshake can only
    # fail (delivery refuses before it tries: config.network_refusal)
    assert 'AT+CSSLCFG="authmode",0,1' in ssl_commands()
    assert 'AT+CSSLCFG="authmode",0,0' not in ssl_commands()
    # a CA wins over insecure_tls (the configuration refuses both at once anyway)
    both = ssl_commands(insecure=True, ca_cert="ca.pem")
    assert 'AT+CSSLCFG="authmode",0,1' in both and 'AT+CSSLCFG="cacert",0,"ca.pem"' in both


def test_connect_dialogue():
    clock, t, m = driver_for("sotto_connect.at")
    m.ready = True
    drive(clock, m.check_sim())
    assert drive(clock, m.registration()) is True
    assert (m.reg_eps, m.reg_cs) == (1, 5)
    drive(clock, m.start_data())
    drive(clock, m.open("receiver.example", 443, tls=True))
    assert m.connected and m.started
    assert t.done(), t.errors


def test_send_in_chunks_and_receive_binary():
    clock, t, m = driver_for("sotto_send_recv.at", rx_max=64)
    m.connected = True
    tx = bytearray(32)
    drive(clock, m.send([b"0123456789", b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN"], tx))
    drive(clock, m.at.wait(50))
    assert m.rx_event
    drive(clock, m.recv())
    assert bytes(m.consume()) == b"\x00\xff\r\nOK"
    assert m.rx_n == 0 and not m.rx_event
    assert t.done(), t.errors


def test_sms_dialogue():
    clock, t, m = driver_for("sotto_sms.at")
    frame = bytes.fromhex("d2840143a10127")
    assert drive(clock, m.send_sms("+447700900123", frame)) == 12
    assert t.done(), t.errors  # byte for byte the PDU of the transcript
    d = pdu.decode_submit(bytes.fromhex("0011000C9144770009103200040B07D2840143A10127"))
    assert d["ud"] == frame and d["number"] == "+447700900123" and d["dcs"] == 4


def test_close_dialogue():
    clock, t, m = driver_for("sotto_close.at")
    m.connected = m.started = True
    drive(clock, m.close())
    drive(clock, m.stop_data())
    assert not m.connected and not m.started
    assert t.done(), t.errors


def test_manual_examples_through_the_driver():
    clock, t, m = driver_for("manual_cpin.at", "manual_csq.at", "manual_registration.at")
    drive(clock, m.check_sim())
    assert m.sim_ready
    assert drive(clock, m.signal()) == 22
    assert drive(clock, m.registration()) is True
    assert t.done(), t.errors


def test_no_sim():
    clock, t, m = driver_for("manual_cpin_nosim.at")
    e = raises(ModemError, drive, clock, m.check_sim())
    assert e.kind == at.NO_SIM and e.code == 10
    assert not m.sim_ready
    assert m.retries == 0  # a missing SIM is not retried as a glitch


def test_registration_denied():
    clock, t, m = driver_for("manual_registration_denied.at")
    assert drive(clock, m.registration()) is False
    assert m.is_denied()


def test_cfun_reset_dialogue():
    clock, t, m = driver_for("manual_cfun.at")
    m.ready = m.started = m.connected = True
    drive(clock, m.reset_function())
    drive(clock, m.at.wait(50))
    assert m.cfun_resets == 1 and not m.started and not m.connected
    assert m.sim_ready  # +CPIN: READY came as a URC after AT+CFUN=1
    assert t.done(), t.errors


def test_registration_answer_among_urcs_of_the_same_name():
    clock = Clock()
    mod = ScriptedModem(clock, {"AT+CEREG?": ["+CEREG: 2", "+CEREG: 1,5", "+CEREG: 2", "OK"],
                                "AT+CREG?": ["+CREG: 1,0", "OK"]})
    m = Simcom(AtEngine(mod.uart, clock))
    assert drive(clock, m.registration()) is False  # the URC after the answer is the news
    assert m.reg_eps == 2
    mod.answers["AT+CEREG?"] = ["+CEREG: 2", "+CEREG: 1,5", "OK"]
    assert drive(clock, m.registration()) is True and m.reg_eps == 5


def test_registration_urcs_update_state():
    clock, t, m = driver_for("manual_boot_urcs.at")
    m.at.uart.feed(b"\r\n+CEREG: 2\r\n", 5)
    drive(clock, m.at.wait(20))
    assert m.reg_eps == 2 and not m.is_registered() and m.booted
    m.at.uart.feed(b"\r\n+CEREG: 5\r\n\r\n+CGEV: NW PDN DEACT 1\r\n", 5)
    m.started = m.connected = True
    drive(clock, m.at.wait(20))
    assert m.is_registered() and not m.started and not m.connected


def test_peer_closed_then_send_fails_without_writing():
    clock = Clock()
    mod = ScriptedModem(clock)
    m = Simcom(AtEngine(mod.uart, clock))
    m.connected = True
    mod.uart.feed(b"\r\n+CCH_PEER_CLOSED: 0\r\n", 5)
    drive(clock, m.at.wait(20))
    assert not m.connected and m.peer_closed == 1
    e = raises(ModemError, drive, clock, m.send([b"x"], bytearray(8)))
    assert e.kind == at.CLOSED
    assert mod.commands == []


def test_open_failure_result_code():
    clock = Clock()
    mod = ScriptedModem(clock, {"AT+CCHOPEN": ["OK", "+CCHOPEN: 0,15"]})  # handshake failed
    m = Simcom(AtEngine(mod.uart, clock))
    e = raises(ModemError, drive, clock, m.open("r.example", 443))
    assert (e.kind, e.code) == (at.RESULT, 15)
    assert not m.connected


def test_power_on_when_the_module_is_off():
    clock = Clock()
    mod = ScriptedModem(clock, on=False, boot_ms=15000)
    m = Simcom(AtEngine(mod.uart, clock), pwrkey=mod.pwrkey, apn="internet")
    t0 = clock.now_ms
    drive(clock, m.start())
    assert m.ready and m.power_ons == 1
    assert len(mod.presses) == 1 and 50 <= mod.presses[0][1] < 2500  # an on-pulse, never an off-hold
    assert clock.now_ms - t0 >= 15000  # it waited for the boot
    assert mod.commands[0] == "AT" and "ATE0" in mod.commands


def test_a_module_that_never_boots_is_reported():
    clock = Clock()
    mod = ScriptedModem(clock, on=False, boot_ms=10 ** 9)
    m = Simcom(AtEngine(mod.uart, clock), pwrkey=mod.pwrkey)
    e = raises(ModemError, drive, clock, m.start())
    assert e.kind == at.NO_POWER
    assert 30000 <= clock.now_ms <= 40000  # the boot budget, and not forever


def test_power_cycle_of_a_hung_module():
    clock = Clock()
    mod = ScriptedModem(clock, boot_ms=12000)
    mod.hung = True
    m = Simcom(AtEngine(mod.uart, clock), pwrkey=mod.pwrkey)
    assert drive(clock, m.probe()) is False
    drive(clock, m.power_cycle(answering=False))
    assert [held >= 2500 for _t, held in mod.presses] == [True, False]  # off-hold, then on-pulse
    assert m.ready and m.power_cycles == 1 and not mod.hung


def test_power_cycle_of_an_answering_module_uses_cpof():
    clock = Clock()
    mod = ScriptedModem(clock, boot_ms=12000)

    def cpof(line):
        mod.on = False  # powers down after OK
        return ["OK"]

    mod.answers["AT+CPOF"] = cpof
    m = Simcom(AtEngine(mod.uart, clock), pwrkey=mod.pwrkey)
    drive(clock, m.power_cycle(answering=True))
    assert "AT+CPOF" in mod.commands
    assert [held >= 2500 for _t, held in mod.presses] == [False]  # only the on-pulse
    assert m.ready


def test_rung_one_retries_a_failed_command():
    clock = Clock()
    mod = ScriptedModem(clock, {"AT+CSQ": [["ERROR"], ["+CME ERROR: 100"], ["+CSQ: 18,99", "OK"]]})
    m = Simcom(AtEngine(mod.uart, clock))
    assert drive(clock, m.signal()) == 18
    assert m.retries == 2
    mod.answers["AT+CSQ"] = ["ERROR"]
    e = raises(ModemError, drive, clock, m.signal())
    assert e.kind == at.ERROR and m.retries == 4  # two more, then it gives up


def test_data_beyond_the_receive_buffer_is_dropped_and_counted():
    clock = Clock()
    mod = ScriptedModem(clock)
    m = Simcom(AtEngine(mod.uart, clock), rx_max=4)
    mod.uart.feed(b"\r\n+CCHRECV: DATA,0,6\r\nabcdef\r\n\r\n+CSQ: 1,1\r\n", 5)
    drive(clock, m.at.wait(20))
    assert bytes(m.consume()) == b"abcd" and m.rx_dropped == 2
    assert m.at.unknown == 1  # the line after the data was read as a line again


def test_sms_without_prompt_sends_escape():
    clock = Clock()
    mod = ScriptedModem(clock, {"AT+CMGS": None})
    m = Simcom(AtEngine(mod.uart, clock))
    mod.answers["AT+CMGS"] = lambda line: None  # no prompt at all
    e = raises(ModemError, drive, clock, m.send_sms("+447700900123", b"\x01"))
    assert e.kind == at.NO_PROMPT
    assert mod.uart.written.endswith(b"\x1b")


def _init_with_psm_answer(answer, psm='AT+CPSMS=1,,,"00100001","00000101"'):
    """The bring-up dialogue with the module's answer to AT+CPSMS replaced (None: not asked)."""
    from atfake import FakeUart, Transcript, load_transcript

    steps = load_transcript("sotto_init.at")
    for i in range(len(steps)):
        if steps[i][0] == ">" and steps[i][1].startswith(b"AT+CPSMS"):
            if answer is None:
                del steps[i:i + 2]
            else:
                steps[i + 1] = ("<", answer)
            break
    clock = Clock()
    t = Transcript(steps)
    uart = FakeUart(clock, t)
    t.start(uart)
    m = Simcom(AtEngine(uart, clock), apn="internet", ca_cert="sotto_ca.pem")
    m.psm = psm
    return clock, t, m


def test_bring_up_asks_for_psm_and_survives_a_refusal():
    # 3GPP PSM (TS 27.007 7.38): asked once per bring-up; a module or network that
    # answers ERROR is logged and the bring-up goes on (the device works as before)
    for answer in (b"\r\nOK\r\n", b"\r\nERROR\r\n", b"\r\n+CME ERROR: 4\r\n"):
        clock, t, m = _init_with_psm_answer(answer)
        drive(clock, m.start())
        assert m.ready, answer
        assert t.done(), (answer, t.errors)
    clock, t, m = _init_with_psm_answer(None, psm=None)  # psm None: not asked at all
    drive(clock, m.start())
    assert m.ready and t.done(), t.errors
