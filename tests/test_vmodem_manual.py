"""The virtual modem against the A76XX manuals' own exchanges: each transcript of
tests/data/at/ (the same files the firmware's driver tests replay) is played
against a VirtualModem, and the modem must say exactly what the transcript says.
Where a transcript starts from a state (a session open, data cached, the
network gone), the test brings the modem there first, through the same AT
commands, checked the same way."""

from __future__ import annotations

import pytest
from vmodem_support import ScriptedServer, make_ca, play, press, run_for, say, steps, transcript

from simulator.vmodem import Faults, VirtualModem

HTTP_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"  # what manual_cchrecv_partial.at reads


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return make_ca(str(tmp_path_factory.mktemp("ca")))


@pytest.fixture
def servers():
    made: list[ScriptedServer] = []

    def make(**kw) -> ScriptedServer:
        s = ScriptedServer(**kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


def modem(**kw) -> VirtualModem:
    vm = VirtualModem(powered=True, **kw)
    vm.advance(0)
    return vm


# -- status, network, SMS ----------------------------------------------------------------
def test_boot_urcs_then_the_first_command():
    vm = VirtualModem()
    vm.advance(0)
    press(vm, 100)
    play(vm, transcript("manual_boot_urcs.at"))
    assert vm.power == "on" and vm.sms_ready


def test_before_sms_done_sim_and_sms_commands_are_refused():
    vm = VirtualModem()
    vm.advance(0)
    press(vm, 100)
    play(vm, transcript("manual_boot_early_errors.at"))


@pytest.mark.parametrize(("name", "faults"), [
    ("manual_cpin.at", Faults()),
    ("manual_cpin_nosim.at", Faults(sim_missing=True)),
    ("manual_registration_denied.at", Faults(denied=True)),
    ("manual_registration_sms_only.at", Faults(sms_only=True)),
    ("manual_registration.at", Faults()),
])
def test_status_and_registration(name, faults):
    vm = modem(faults=faults)
    play(vm, steps("> AT+CEREG=1\n< OK\n> AT+CREG=1\n< OK"))
    play(vm, transcript(name))


def test_cfun_off_and_on_reports_the_sim_again():
    vm = modem()
    play(vm, transcript("manual_cfun.at"))
    assert vm.radio and vm.sms_ready


def test_apn_is_stored_and_used_at_the_next_attach():
    vm = modem(apn="")
    assert vm.attached_apn == ""
    play(vm, transcript("manual_cgdcont_apn.at"))
    assert vm.contexts[1] == ("IP", "internet")
    run_for(vm, vm.timing.register_ms + 100)
    assert vm.registered and vm.attached_apn == "internet"


def test_sms_in_pdu_mode():
    vm = modem()
    vm._mr = 45  # the manual's example answers +CMGS: 46
    play(vm, transcript("manual_cmgs_pdu.at"))
    assert vm.sms_sent == 1


def test_our_sms():
    vm = modem()
    vm._mr = 11
    play(vm, transcript("sotto_sms.at"))


# -- the SSL client -----------------------------------------------------------------------
def test_ssl_client_example_with_pushed_data(ca, servers):
    answer = b"HTTP/1.1 200 OK\r\n\r\nOK\r\n+CCH_PEER_CLOSED: 0\r\nxyz"
    server = servers(answer=lambda req: answer, cert=ca.issue("www.baidu.com"))
    vm = modem(hosts={"www.baidu.com": f"127.0.0.1:{server.port}"})
    play(vm, transcript("manual_ssl_client.at"))
    assert server.requests == [b"GET / HTTP/1.1\r\nHost: www.baidu.com\r\n\r\n"]
    assert server.sni == [None]  # enableSNI is 0 unless set


def open_session(vm: VirtualModem, host: str, client_type: int = 2) -> None:
    play(vm, steps(f"""
> AT+CCHSET=0,1
< OK
> AT+CCHSTART
< OK
< +CCHSTART: 0
> AT+CCHSSLCFG=0,0
< OK
> AT+CCHOPEN=0,"{host}",443,{client_type}
< OK
< +CCHOPEN: 0,0
"""))


def test_partial_read_leaves_data_that_no_event_announces(servers):
    server = servers(answer=lambda req: HTTP_OK)
    vm = modem(hosts={"receiver.example": f"127.0.0.1:{server.port}"})
    open_session(vm, "receiver.example", client_type=1)
    play(vm, steps("> AT+CCHSEND=0,18\n<< \\r\\n>\n>> GET / HTTP/1.1\\r\\n\\r\\n\n< OK"))
    rest = play(vm, transcript("manual_cchrecv_partial.at"))
    assert rest == b""
    assert run_for(vm, 5000) == b""  # and no event later for what was left: it was read
    play(vm, transcript("manual_cchrecv_empty.at"))  # nothing left: refused, as 19.2.15 says


def test_our_send_and_receive(servers):
    server = servers(answer=lambda req: b"\x00\xff\r\nOK", complete=lambda d: len(d) >= 50)
    vm = modem(hosts={"receiver.example": f"127.0.0.1:{server.port}"})
    open_session(vm, "receiver.example", client_type=1)
    play(vm, transcript("sotto_send_recv.at"))
    assert server.requests == [b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN"]


def test_session_held_after_the_server_closed_it(ca, servers):
    server = servers(answer=lambda req: None, cert=ca.issue("receiver.example"))
    vm = modem(hosts={"receiver.example": f"127.0.0.1:{server.port}"})
    open_session(vm, "receiver.example")
    play(vm, steps("> AT+CCHSEND=0,4\n<< \\r\\n>\n>> \\r\\n\\r\\n\n< OK"))  # the server hangs up
    play(vm, steps("< +CCH_PEER_CLOSED: 0"))
    # held: no sending, no reopening until AT+CCHCLOSE (19.2.13)
    play(vm, steps('> AT+CCHSEND=0,4\n< ERROR\n> AT+CCHOPEN=0,"receiver.example",443,2\n< ERROR'))
    play(vm, steps("> AT+CCHSSLCFG=0,0\n< ERROR"))
    play(vm, transcript("manual_peer_closed_reopen.at")[1:])  # its first line came above
    assert vm.connections == 2


def test_network_stops_the_ssl_service(ca, servers):
    server = servers(answer=lambda req: HTTP_OK, cert=ca.issue("receiver.example"))
    vm = modem(hosts={"receiver.example": f"127.0.0.1:{server.port}"})
    open_session(vm, "receiver.example")
    vm.set_fault("cch_stop", True)
    play(vm, transcript("manual_cch_stop.at"))
    assert vm.faults.cch_stop is False  # one-shot


def test_cchstart_network_failure_form():
    vm = modem(faults=Faults(data_down=True))
    play(vm, transcript("manual_cchstart_network_error.at"))
    assert not vm.cch_started


def test_cchset_refused_while_the_service_runs():
    vm = modem()
    play(vm, steps("> AT+CCHSTART\n< OK\n< +CCHSTART: 0"))
    play(vm, transcript("sotto_cch_running.at"))


def test_close_and_stop(ca, servers):
    server = servers(answer=lambda req: HTTP_OK, cert=ca.issue("receiver.example"))
    vm = modem(hosts={"receiver.example": f"127.0.0.1:{server.port}"})
    open_session(vm, "receiver.example")
    play(vm, transcript("sotto_close.at"))
    assert vm._conns == {} and not vm.cch_started


def test_older_firmware_refuses_sni_and_simcomati():
    vm = modem(faults=Faults(old_firmware=True))
    play(vm, transcript("manual_sni_unsupported.at"))
    assert say(vm, "AT+SIMCOMATI", 100) == b"\r\nERROR\r\n"  # manual_ati.at's first exchange
    ati = say(vm, "ATI", 100)
    assert b"Model: " in ati and b"Revision: " in ati and ati.endswith(b"\r\nOK\r\n")
