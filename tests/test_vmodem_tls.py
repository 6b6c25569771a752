"""TLS in the virtual modem, both ways, and the firmware's driver against both.

Like the module (the default, A76XX AT Command Manual V1.09 19.2.1): the chain
must end at the installed CA; dates only with `ignorelocaltime` 0; no host-name
check; SNI only with `enableSNI` 1. OpenSSL-strict (Faults.tls_strict): host
name and dates always, SNI always. The differences are exactly what
docs/modem.md's certificate profile is about: under the module's rules any
certificate from the device's CA opens a connection to any host."""

from __future__ import annotations

import pytest
from framefactory import DeviceSim
from modem_support import RECEIVER_NAME, ReceiverDouble, make_pki
from sotto.modem import at
from sotto.modem.at import ModemError
from vmodem_support import DriverRig as Rig
from vmodem_support import ScriptedServer, make_ca, post, say

from simulator.vmodem import CCH_HANDSHAKE_ERROR, Faults, VirtualModem

HOST = "receiver.example"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


@pytest.fixture(scope="module")
def cas(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("tls"))
    return make_ca(d, "Centre CA"), make_ca(d, "Someone else's CA")


def handshake(ca_pem: str, cert, strict: bool, *, sni: int | None = None, ignorelocaltime: int | None = None,
              authmode: int = 1) -> tuple[int, list[str | None]]:
    """One AT+CCHOPEN to HOST served with `cert`: (the +CCHOPEN <err>, the SNI the server saw)."""
    server = ScriptedServer(answer=lambda req: OK, cert=cert)
    try:
        vm = VirtualModem(powered=True, hosts={HOST: f"127.0.0.1:{server.port}"}, certs={"ca.pem": ca_pem},
                          faults=Faults(tls_strict=strict))
        vm.advance(0)
        cmds = [f'AT+CSSLCFG="authmode",0,{authmode}', 'AT+CSSLCFG="cacert",0,"ca.pem"']
        if sni is not None:
            cmds.append(f'AT+CSSLCFG="enableSNI",0,{sni}')
        if ignorelocaltime is not None:
            cmds.append(f'AT+CSSLCFG="ignorelocaltime",0,{ignorelocaltime}')
        for cmd in cmds + ["AT+CCHSET=0,1", "AT+CCHSTART"]:
            assert b"OK" in say(vm, cmd, 500), cmd
        out = say(vm, f'AT+CCHOPEN=0,"{HOST}",443,2', 2000)
        err = int(out.split(b"+CCHOPEN: 0,")[1].split(b"\r\n")[0])
        assert [t.ok for t in vm.tls_log] == [err == 0]
        return err, server.sni
    finally:
        server.stop()


def test_the_right_certificate_passes_both_ways(cas):
    ca, _ = cas
    cert = ca.issue(HOST)
    assert handshake(ca.pem, cert, strict=False) == (0, [None])  # the module's default: no SNI
    assert handshake(ca.pem, cert, strict=True) == (0, [HOST])


def test_a_certificate_for_another_host_passes_the_module_only(cas):
    ca, _ = cas
    cert = ca.issue("anything-else.example")
    assert handshake(ca.pem, cert, strict=False)[0] == 0  # no host-name check in V1.09
    assert handshake(ca.pem, cert, strict=True)[0] == CCH_HANDSHAKE_ERROR


def test_certificate_dates_only_with_ignorelocaltime_0(cas):
    ca, _ = cas
    expired = ca.issue(HOST, days_from=-60, days_to=-1)
    not_yet = ca.issue(HOST, days_from=2, days_to=60)
    for cert in (expired, not_yet):
        assert handshake(ca.pem, cert, strict=False)[0] == 0  # ignorelocaltime defaults to 1
        assert handshake(ca.pem, cert, strict=False, ignorelocaltime=1)[0] == 0
        assert handshake(ca.pem, cert, strict=False, ignorelocaltime=0)[0] == CCH_HANDSHAKE_ERROR
        assert handshake(ca.pem, cert, strict=True, ignorelocaltime=1)[0] == CCH_HANDSHAKE_ERROR


def test_only_the_installed_ca_is_trusted(cas):
    ca, other = cas
    cert = other.issue(HOST)
    assert handshake(ca.pem, cert, strict=False)[0] == CCH_HANDSHAKE_ERROR
    assert handshake(ca.pem, cert, strict=True)[0] == CCH_HANDSHAKE_ERROR
    assert handshake(ca.pem, cert, strict=False, authmode=0)[0] == 0  # authmode 0 checks nothing


def test_sni_only_when_enabled_unless_strict(cas):
    ca, _ = cas
    cert = ca.issue(HOST)
    assert handshake(ca.pem, cert, strict=False, sni=0)[1] == [None]
    assert handshake(ca.pem, cert, strict=False, sni=1)[1] == [HOST]
    assert handshake(ca.pem, cert, strict=True, sni=0)[1] == [HOST]


# -- the firmware's driver against both ---------------------------------------------------------
@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(str(tmp_path_factory.mktemp("pki")))


@pytest.mark.parametrize("strict", [False, True], ids=["module", "strict"])
def test_the_driver_posts_over_tls_either_way(pki, strict):
    device = DeviceSim()
    receiver = ReceiverDouble({device.kid: device.public_key}, tls=pki)
    try:
        rig = Rig(pki, hosts={RECEIVER_NAME: "127.0.0.1"}, faults=Faults(tls_strict=strict))
        rig.up()
        rig.run(rig.modem.open(RECEIVER_NAME, receiver.port))
        answer = post(rig, [device.alert_start()], receiver.port)
        assert answer.startswith(b"HTTP/1.1 200") and len(receiver.stored) == 1
        [tls] = rig.vm.tls_log
        # the driver sets enableSNI 1, and the server was checked against the CA
        assert (tls.host, tls.sni, tls.authenticated, tls.ok) == (RECEIVER_NAME, RECEIVER_NAME, True, True)
    finally:
        receiver.stop()


@pytest.mark.parametrize("strict", [False, True], ids=["module", "strict"])
def test_a_server_with_a_certificate_from_the_same_ca_for_another_name(cas, strict):
    # what the module's missing host-name check means for the device: whoever holds any
    # certificate from the device's CA is the centre (docs/modem.md, certificate profile)
    ca, _ = cas
    server = ScriptedServer(answer=lambda req: OK, cert=ca.issue("not-the-centre.example"))
    try:
        rig = Rig(hosts={RECEIVER_NAME: f"127.0.0.1:{server.port}"}, faults=Faults(tls_strict=strict))
        rig.vm.certs["sotto_ca.pem"] = ca.pem
        rig.modem.ca_cert = "sotto_ca.pem"
        rig.up()
        if strict:
            with pytest.raises(ModemError) as e:
                rig.run(rig.modem.open(RECEIVER_NAME, 443))
            assert (e.value.kind, e.value.code) == (at.RESULT, CCH_HANDSHAKE_ERROR)
        else:
            rig.run(rig.modem.open(RECEIVER_NAME, 443))
            assert rig.modem.connected
    finally:
        server.stop()


def test_older_firmware_connects_without_sni(cas):
    ca, _ = cas
    server = ScriptedServer(answer=lambda req: OK, cert=ca.issue(RECEIVER_NAME))
    try:
        rig = Rig(hosts={RECEIVER_NAME: f"127.0.0.1:{server.port}"}, faults=Faults(old_firmware=True))
        rig.vm.certs["sotto_ca.pem"] = ca.pem
        rig.modem.ca_cert = "sotto_ca.pem"
        rig.up()
        rig.run(rig.modem.open(RECEIVER_NAME, 443))
        assert rig.modem.connected and server.sni == [None]
    finally:
        server.stop()
