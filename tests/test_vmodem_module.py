"""The virtual modem behaves like the A7670 in each respect of issue 19, and the
firmware's driver copes with each: received data and its events, the session
after a server close, the network stopping the SSL service, the failure URCs,
the AT+CCHSTART failure form, PWRKEY timing and a module only a power removal
revives, the boot order, parameter checks, CEREG against CREG, the worst-case
latencies. TLS in both of the modem's modes is in test_vmodem_tls.py."""

from __future__ import annotations

import pytest
from framefactory import DeviceSim
from modem_support import RECEIVER_NAME, ReceiverDouble, make_pki
from sotto.modem import at
from sotto.modem.at import ModemError
from vmodem_support import DriverRig as Rig
from vmodem_support import ScriptedServer, post, press, run_for, say

from simulator.vmodem import CCH_RECV_EMPTY, Faults, VirtualModem


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(str(tmp_path_factory.mktemp("pki")))


# -- receiving (items 1 and 4) --------------------------------------------------------------
def test_a_large_answer_is_announced_once_and_read_2048_bytes_at_a_time():
    body = bytes(range(256)) * 20  # 5 120 bytes
    server = ScriptedServer(answer=lambda req: body)
    try:
        # raw TCP: the answer is taken as it comes, so give a loaded host 10 s to start it
        vm = VirtualModem(powered=True, hosts={"h": f"127.0.0.1:{server.port}"}, raw_wait_s=10.0)
        for cmd in ("AT+CCHSET=0,1", "AT+CCHSTART", 'AT+CCHOPEN=0,"h",80,1'):
            say(vm, cmd, 1000)
        say(vm, "AT+CCHSEND=0,4", 50)
        vm.stream.write(b"\r\n\r\n")
        out = run_for(vm, 2000)
        assert out.count(b"+CCHEVENT: 0,RECV EVENT") == 1
        assert say(vm, "AT+CCHRECV?") == b"\r\n+CCHRECV: LEN,5120,0\r\n\r\nOK\r\n"
        got = say(vm, "AT+CCHRECV=0,0", 1000)  # 0: as much as one read gives, 2 048
        assert got.startswith(b"\r\nOK\r\n\r\n+CCHRECV: DATA,0,1024\r\n" + body[:1024])
        assert b"\r\n+CCHRECV: DATA,0,1024\r\n" + body[1024:2048] + b"\r\n+CCHRECV: 0,0\r\n" in got
        assert say(vm, "AT+CCHRECV=0,3000") == b"\r\nERROR\r\n"  # over 2 048: refused
        assert say(vm, "AT+CCHRECV?") == b"\r\n+CCHRECV: LEN,3072,0\r\n\r\nOK\r\n"
        assert run_for(vm, 5000) == b""  # no event for what is still cached
        rest = say(vm, "AT+CCHRECV=0,2048", 1000) + say(vm, "AT+CCHRECV=0,2048", 1000)
        assert rest.count(b"+CCHRECV: DATA,0,") == 3 and body[-100:] in rest
        assert say(vm, "AT+CCHRECV=0,10") == b"\r\n+CCHRECV: 0,%d\r\n\r\nERROR\r\n" % CCH_RECV_EMPTY
    finally:
        server.stop()


def test_the_driver_reads_an_answer_larger_than_one_read(pki):
    device = DeviceSim()
    receiver = ReceiverDouble({device.kid: device.public_key}, tls=pki, pad_bytes=3000)
    try:
        rig = Rig(pki, hosts={RECEIVER_NAME: "127.0.0.1"})
        rig.modem.rx = bytearray(4096)  # room for the whole answer
        rig.up()
        rig.run(rig.modem.open(RECEIVER_NAME, receiver.port))
        answer = post(rig, [device.alert_start()], receiver.port)
        assert len(answer) > 3000 and answer.startswith(b"HTTP/1.1 200")
        # events came for arrivals (head and body may arrive apart), not for what a full
        # read left behind: the driver found that by asking
        reads = rig.sent(b"AT+CCHRECV=")
        assert rig.said(b"+CCHEVENT") < reads and rig.sent(b"AT+CCHRECV?") >= 1
    finally:
        receiver.stop()


# -- the session after a server close (item 2) -----------------------------------------
def test_server_closing_idle_connections_and_the_driver_reopening(pki):
    device = DeviceSim()
    receiver = ReceiverDouble({device.kid: device.public_key}, tls=pki)
    try:
        rig = Rig(pki, hosts={RECEIVER_NAME: "127.0.0.1"}, faults=Faults(idle_close_ms=5000))
        rig.up()
        rig.run(rig.modem.open(RECEIVER_NAME, receiver.port))
        post(rig, [device.alert_start()], receiver.port)
        rig.run(rig.modem.at.wait(6000))
        assert rig.said(b"+CCH_PEER_CLOSED: 0") == 1
        assert not rig.modem.connected and rig.modem.session  # held by the module
        rig.run(rig.modem.open(RECEIVER_NAME, receiver.port))  # closes it first (19.2.13)
        post(rig, [device.heartbeat()], receiver.port)
        assert len(receiver.stored) == 2
        assert rig.sent(b"AT+CCHCLOSE=0") == 1 and rig.said(b"\r\nERROR\r\n") == 0
    finally:
        receiver.stop()


# -- the SSL service and the failure URCs (items 5 and 6) ------------------------------
def test_cchstart_failure_is_the_network_and_no_cchstop_follows():
    rig = Rig(faults=Faults(data_down=True))
    rig.run(rig.modem.start())
    with pytest.raises(ModemError) as e:
        rig.run(rig.modem.start_data())
    assert (e.value.kind, e.value.code) == (at.RESULT, 9)
    assert rig.sent(b"AT+CCHSTOP") == 0 and rig.sent(b"AT+CCHSTART") == 1


def test_cchstart_without_registration_says_no_net():
    vm = VirtualModem(powered=True, faults=Faults(no_coverage=True))
    vm.advance(0)
    out = say(vm, "AT+CCHSTART", vm.timing.fail_connect_ms + 100)
    assert out == b"\r\nERROR\r\n\r\n+CCHSTART: 17\r\n"


def test_failure_urcs_each_keep_the_session_until_cchclose():
    server = ScriptedServer(answer=lambda req: b"x", complete=lambda d: len(d) > 0)
    try:
        vm = VirtualModem(powered=True, hosts={"h": f"127.0.0.1:{server.port}"})
        vm.advance(0)
        say(vm, "AT+CCHSET=0,1")
        say(vm, "AT+CCHSTART", 500)
        for fault, urc in (("recv_closed", b"+CCH_RECV_CLOSED: 0,9"), ("send_fail", b"+CCHSEND: 0,18"),
                           ("cch_stop", b"+CCH: CCH STOP")):
            if not vm.cch_started:
                say(vm, "AT+CCHSTART", 500)
            assert b"+CCHOPEN: 0,0" in say(vm, 'AT+CCHOPEN=0,"h",80,1', 1000)
            if fault == "send_fail":
                vm.set_fault(fault, True)
                say(vm, "AT+CCHSEND=0,1", 50)
                vm.stream.write(b"z")
                out = run_for(vm, vm.timing.fail_connect_ms + 100)
                assert out.startswith(b"\r\nOK\r\n")  # taken, then reported as failed (19.4)
            else:
                vm.set_fault(fault, True)
                out = run_for(vm, 100)
            assert urc in out, (fault, out)
            if fault != "cch_stop":
                assert say(vm, "AT+CCHSEND=0,1") == b"\r\nERROR\r\n"  # no more sending
                assert say(vm, 'AT+CCHOPEN=0,"h",80,1') == b"\r\nERROR\r\n"  # still held
                assert b"+CCHCLOSE: 0,0" in say(vm, "AT+CCHCLOSE=0")
            else:
                assert not vm.cch_started and vm._conns == {}  # the service and its sessions are gone
    finally:
        server.stop()


# -- power (item 3) ---------------------------------------------------------------------
def test_pwrkey_is_ignored_while_powering_down_and_too_soon_after():
    vm = VirtualModem(powered=True)
    vm.advance(0)
    press(vm, 3000)  # off: the power-down began at 2.5 s held
    assert vm.power == "stopping"
    press(vm, 500)  # during the power-down: lost
    assert vm.presses_ignored == 1
    run_for(vm, 1500)  # off since 4.5 s (2.5 s + the 2 s power-down)
    assert vm.power == "off" and vm.power_offs == 1
    press(vm, 500)  # 0.5 s after: too soon (Toff-on >= 2 s), lost
    assert vm.power == "off" and vm.presses_ignored == 2
    run_for(vm, 2000)
    press(vm, 100)
    assert vm.power == "booting" and vm.power_ons == 2


def test_cpof_answers_within_its_9_s_and_the_driver_does_not_waste_a_press():
    for cpof_ms in (9000, 12000):  # the documented maximum; and later than that
        rig = Rig(faults=Faults(cpof_ms=cpof_ms))
        rig.run(rig.modem.start())
        rig.run(rig.modem.power_cycle(answering=True))
        assert rig.modem.ready and rig.vm.power == "on", cpof_ms
        assert rig.vm.presses_ignored == 0 and rig.vm.power_ons == 2 and rig.vm.power_offs == 1, cpof_ms


def test_hung_module_power_cycled_by_pwrkey():
    rig = Rig()
    rig.run(rig.modem.start())
    rig.vm.set_fault("hang", True)
    assert rig.run(rig.modem.probe()) is False
    rig.run(rig.modem.power_cycle(answering=False))
    assert rig.modem.ready and rig.vm.presses_ignored == 0 and rig.vm.power_ons == 2


def test_module_hung_past_pwrkey_needs_the_power_removed():
    rig = Rig()
    rig.run(rig.modem.start())
    rig.vm.set_fault("hang_needs_reset", True)
    with pytest.raises(ModemError) as e:
        rig.run(rig.modem.power_cycle(answering=False))
    assert e.value.kind == at.NO_POWER  # PWRKEY does nothing: the RESET line would, the HAL has none
    assert rig.vm.power == "on" and rig.vm.presses_ignored >= 2
    rig.vm.cut_power()  # the board's supply, or the battery, goes
    rig.run(rig.modem.at.wait(3000))
    rig.run(rig.modem.start())
    assert rig.modem.ready and rig.vm.power_ons == 2


# -- boot order, PDP context, certificates (item 8) -------------------------------------
def test_the_driver_sends_nothing_the_module_is_not_ready_for():
    rig = Rig(powered=False)
    rig.up()
    assert rig.modem.started and rig.vm.sms_ready
    assert rig.said(b"+CME ERROR: 14") == 0 and rig.said(b"+CMS ERROR: 500") == 0


def test_an_apn_takes_effect_at_the_next_attach():
    vm = VirtualModem(powered=True, faults=Faults(apns=("internet",)))
    vm.advance(0)
    say(vm, 'AT+CGDCONT=1,"IP","wrong.apn"')
    assert b"+CCHSTART: 0" in say(vm, "AT+CCHSTART", 500)  # attached with the old one
    say(vm, "AT+CCHSTOP")
    say(vm, "AT+CFUN=0", 1000)
    say(vm, "AT+CFUN=1", 1000)
    run_for(vm, vm.timing.sim_ms + vm.timing.sms_ready_ms + vm.timing.register_ms)
    assert vm.registered and vm.attached_apn == "wrong.apn"
    assert say(vm, "AT+CCHSTART", 6000) == b"\r\nERROR\r\n\r\n+CCHSTART: 9\r\n"


def test_driver_with_a_wrong_apn_registers_but_gets_no_data_and_sms_still_works():
    rig = Rig(apn="wrong.apn")
    rig.up_error = None
    rig.run(rig.modem.start())
    assert rig.sent(b'AT+CGDCONT=1,"IP","wrong.apn"') == 1 and rig.sent(b"AT+CFUN=1") == 1
    while not rig.run(rig.modem.registration()):
        rig.run(rig.modem.at.wait(500))
    with pytest.raises(ModemError) as e:
        rig.run(rig.modem.start_data())
    assert (e.value.kind, e.value.code) == (at.RESULT, 9)
    assert rig.run(rig.modem.send_sms("+447700900999", b"\x01\x02")) >= 1


def test_certificate_packets_over_3072_bytes_are_refused():
    pem = b"-----BEGIN CERTIFICATE-----\n" + b"A" * 4000 + b"\n-----END CERTIFICATE-----\n"
    vm = VirtualModem(powered=True)
    vm.advance(0)
    assert say(vm, f'AT+CCERTDOWN="big.pem",{len(pem)}', 50) == b"\r\n>"
    vm.stream.write(pem)  # one packet
    assert run_for(vm, 1000) == b"\r\nERROR\r\n" and "big.pem" not in vm.certs
    rig = Rig()
    rig.run(rig.modem.install_ca("big.pem", pem))  # the driver's packets of <= 3 072 bytes
    assert rig.vm.certs["big.pem"] == pem.decode()


# -- registration on LTE Cat-1 ------------------------------------------------------------
@pytest.mark.parametrize(("faults", "cereg", "creg"), [
    (Faults(), 1, 1), (Faults(sms_only=True), 1, 6), (Faults(roaming=True), 5, 5),
    (Faults(roaming=True, sms_only=True), 5, 7)])
def test_cereg_and_creg_are_separate_domains(faults, cereg, creg):
    rig = Rig(faults=faults)
    rig.run(rig.modem.start())
    assert rig.run(rig.modem.registration()) is True
    assert (rig.modem.reg_eps, rig.modem.reg_cs) == (cereg, creg)
    assert rig.run(rig.modem.send_sms("+447700900999", b"\x01")) >= 1  # SMS works in "SMS only"


# -- worst-case latencies ------------------------------------------------------------------
def test_slow_sms_within_the_drivers_wait():
    rig = Rig(faults=Faults(cmgs_ms=40000))
    rig.run(rig.modem.start())
    t0 = rig.sched.now_ms
    assert rig.run(rig.modem.send_sms("+447700900999", b"\x01")) >= 1
    assert rig.sched.now_ms - t0 >= 40000


def test_a_120_s_connect_outlasts_the_driver_which_gives_the_session_up(pki):
    device = DeviceSim()
    receiver = ReceiverDouble({device.kid: device.public_key}, tls=pki)
    try:
        rig = Rig(pki, hosts={RECEIVER_NAME: "127.0.0.1"}, faults=Faults(cchopen_ms=120000))
        rig.up()
        with pytest.raises(ModemError) as e:
            rig.run(rig.modem.open(RECEIVER_NAME, receiver.port))
        assert e.value.kind == at.TIMEOUT and rig.modem.session  # it may still be connecting
        rig.vm.set_fault("cchopen_ms", 0)
        rig.run(rig.modem.open(RECEIVER_NAME, receiver.port))  # closes the pending one first
        assert rig.modem.connected and rig.sent(b"AT+CCHCLOSE=0") == 1
        rig.run(rig.modem.at.wait(120000))
        assert rig.said(b"+CCHOPEN: 0,") == 1  # the given-up connect never reports
    finally:
        receiver.stop()


# -- parameter validation --------------------------------------------------------------------
@pytest.mark.parametrize(("command", "answer"), [
    ("AT+CCHSET=2,1", b"ERROR"), ("AT+CCHSET=0,1,1", b"ERROR"), ("AT+CCHSTART=1", b"ERROR"),
    ('AT+CCHOPEN=2,"h",80,1', b"ERROR"), ('AT+CCHOPEN=0,"h",0,1', b"ERROR"),
    ('AT+CCHOPEN=0,"h",70000,1', b"ERROR"), ('AT+CCHOPEN=0,"h",80,3', b"ERROR"),
    ("AT+CCHOPEN=0,h,80,1", b"ERROR"), ("AT+CCHSEND=0,0", b"ERROR"), ("AT+CCHSEND=0,2049", b"ERROR"),
    ("AT+CCHRECV=0,2049", b"ERROR"), ("AT+CCHRECV=2,10", b"ERROR"), ("AT+CCHCLOSE=5", b"ERROR"),
    ('AT+CSSLCFG="authmode",0,4', b"ERROR"), ('AT+CSSLCFG="sslversion",10,3', b"ERROR"),
    ('AT+CSSLCFG="ignorelocaltime",0,2', b"ERROR"), ('AT+CSSLCFG="nosuchthing",0,1', b"ERROR"),
    ('AT+CSSLCFG="cacert",0,ca.pem', b"ERROR"), ("AT+CCHSSLCFG=0,10", b"ERROR"),
    ('AT+CCERTDOWN="ca.pem",0', b"ERROR"), ('AT+CCERTDOWN="ca.pem",10241', b"ERROR"),
    ("AT+CMEE=3", b"+CME ERROR: 50"), ("AT+CREG=3", b"+CME ERROR: 50"), ("AT+CFUN=2", b"+CME ERROR: 50"),
    ('AT+CGDCONT=0,"IP","internet"', b"+CME ERROR: 50"), ('AT+CGDCONT=1,"X25","internet"', b"+CME ERROR: 50"),
    ("AT+CMGF=2", b"+CMS ERROR: 304"), ("AT+CMGS=200", b"+CMS ERROR: 304"),
    ("AT+CMGD=1,5", b"+CMS ERROR: 304"),
    ("AT+NOSUCH", b"ERROR"),
])
def test_parameters_out_of_range_are_refused(command, answer):
    vm = VirtualModem(powered=True)
    vm.advance(0)
    say(vm, "AT+CCHSTART", 500)
    assert say(vm, command) == b"\r\n" + answer + b"\r\n", command
    assert say(vm, "AT") == b"\r\nOK\r\n"  # and nothing else changed


def test_cme_errors_follow_cmee():
    vm = VirtualModem(powered=True, faults=Faults(sim_missing=True))
    vm.advance(0)
    answers = []
    for n in (0, 1, 2):
        say(vm, f"AT+CMEE={n}")
        answers.append(say(vm, "AT+CPIN?"))
    assert answers == [b"\r\nERROR\r\n", b"\r\n+CME ERROR: 10\r\n", b"\r\n+CME ERROR: SIM not inserted\r\n"]
