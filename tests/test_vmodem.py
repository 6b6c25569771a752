"""The firmware's SIMCom driver against the virtual modem (CPython): the same AT
dialogue over the virtual UART, real TLS to a loopback server, SMS through the
virtual SMS centre, and the modem's faults one by one."""

from __future__ import annotations

import hashlib

import pytest
from framefactory import DeviceSim, pack_location
from modem_support import RECEIVER_NAME, TEST_CENTRE, ReceiverDouble, make_pki, run_task, run_until
from sotto.answer import Opener
from sotto.modem import at
from sotto.modem.at import AtEngine, ModemError
from sotto.modem.simcom import Simcom
from sotto.sched import Scheduler

from simulator.smsc import VirtualSmsc
from simulator.vmodem import Faults, Timing, VirtualModem


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(str(tmp_path_factory.mktemp("pki")))


@pytest.fixture
def device():
    return DeviceSim()


@pytest.fixture
def receiver(pki, device):
    r = ReceiverDouble({device.kid: device.public_key}, tls=pki)
    yield r
    r.stop()


class Rig:
    """A scheduler, a virtual modem and the driver over it."""

    def __init__(self, pki, receiver=None, faults=None, timing=None, powered=False, ca=True):
        self.sched = Scheduler()
        self.smsc = VirtualSmsc(receiver.sms_url if receiver else None, delay_ms=2000, ca_pem=pki.ca_pem)
        self.vm = VirtualModem(faults=faults or Faults(), timing=timing or Timing(), seed=7,
                               hosts={RECEIVER_NAME: "127.0.0.1"}, smsc=self.smsc, powered=powered,
                               certs={"sotto_ca.pem": pki.ca_pem} if ca else None)
        self.modem = Simcom(AtEngine(self.vm.stream, self.sched), pwrkey=self.vm.pwrkey,
                            apn="internet", ca_cert="sotto_ca.pem")

    def run(self, gen, limit_ms=120000):
        return run_task(self.sched, self.vm, gen, limit_ms)

    def up(self):
        m = self.modem
        self.run(m.start())
        self.run(m.check_sim())
        t0 = self.sched.now_ms
        while not self.run(m.registration()):
            self.run(m.at.wait(1000))
            assert self.sched.now_ms - t0 < 60000, "never registered"
        self.run(m.start_data())

    def post(self, frames, port):
        m = self.modem
        body = b"".join(frames)
        head = (f"POST /v1/frames HTTP/1.1\r\nHost: {RECEIVER_NAME}:{port}\r\n"
                f"Content-Type: application/cbor-seq\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        self.run(m.send([head, body], bytearray(1024)))
        got = bytearray()
        t0 = self.sched.now_ms
        while b"\r\n\r\n" not in got or len(got) < got.index(b"\r\n\r\n") + 4 + _length(got):
            if m.rx_event:
                self.run(m.recv())
            got += m.consume()
            self.run(m.at.wait(20))
            assert self.sched.now_ms - t0 < 30000, f"no full answer: {bytes(got)!r}"
        head_end = got.index(b"\r\n\r\n") + 4
        # the centre's signed answer, opened as the firmware does (key, kid, req)
        return bytes(got[:head_end]), Opener(TEST_CENTRE.public_key).open(bytes(got[head_end:]),
                                                                          hashlib.sha256(body).digest())


def _length(data: bytes) -> int:
    for line in bytes(data).split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def test_power_on_boot_and_tls_post(pki, receiver, device):
    rig = Rig(pki, receiver)
    rig.up()
    assert rig.vm.power_ons == 1 and rig.sched.now_ms >= rig.vm.timing.boot_ms
    rig.run(rig.modem.open(RECEIVER_NAME, receiver.port, tls=True))
    frame = device.alert_start(loc=pack_location(515000000, -1000000, 8, 2, 1))
    head, answer = rig.post([frame], receiver.port)
    assert head.startswith(b"HTTP/1.1 200")
    assert answer["results"] == [{"status": "accepted", "device": device.kid, "seq": 1}]
    assert (device.kid, 1) in receiver.stored
    # the air log has the TLS handshake and the request, encrypted but readable in payload
    kinds = {r.kind for r in rig.vm.air}
    assert {"tls", "data"} <= kinds
    up = b"".join(r.payload for r in rig.vm.air if r.direction == "up")
    assert frame in up
    assert rig.vm.air_bytes("up", ("data",)) > len(frame)  # TLS records cost bytes


def test_the_server_certificate_is_verified(pki, device, tmp_path):
    other = make_pki(str(tmp_path))  # a server whose certificate our CA did not sign
    rogue = ReceiverDouble({device.kid: device.public_key}, tls=other)
    try:
        rig = Rig(pki)
        rig.up()
        with pytest.raises(ModemError) as e:
            rig.run(rig.modem.open(RECEIVER_NAME, rogue.port, tls=True))
        assert e.value.kind == at.RESULT and e.value.code == 15  # handshake error
        assert not rig.modem.connected and rogue.requests == []
    finally:
        rogue.stop()


def test_ca_certificate_downloaded_to_the_module(pki, receiver):
    rig = Rig(pki, receiver, ca=False)
    rig.up()
    with pytest.raises(ModemError) as e:  # no certificate of that name yet
        rig.run(rig.modem.open(RECEIVER_NAME, receiver.port, tls=True))
    assert e.value.code == 19
    rig.run(rig.modem.install_ca("sotto_ca.pem", pki.ca_pem.encode()))
    rig.run(rig.modem.open(RECEIVER_NAME, receiver.port, tls=True))
    assert rig.modem.connected


def test_sms_reaches_the_receiver_webhook(pki, receiver, device):
    rig = Rig(pki, receiver, powered=True)
    rig.up()
    frame = device.location(pack_location(515000000, -1000000, 8, 2, 1))
    assert len(frame) <= 140
    mr = rig.run(rig.modem.send_sms("+447700900999", frame))
    assert mr == 1
    run_until(rig.sched, rig.vm, lambda: bool(receiver.sms), 10000)
    msg = receiver.sms[0]
    assert bytes.fromhex(msg["payload"]) == frame and msg["sender"] == rig.vm.msisdn
    assert rig.smsc.records[0].number == "+447700900999"
    assert [r.kind for r in rig.vm.air if r.kind == "sms"] == ["sms"]


def test_no_coverage(pki, receiver, device):
    rig = Rig(pki, receiver, powered=True, faults=Faults(no_coverage=True))
    rig.run(rig.modem.start())
    assert rig.run(rig.modem.registration()) is False
    assert rig.modem.reg_eps == 2 and not rig.modem.is_denied()
    assert rig.run(rig.modem.signal()) == 99
    with pytest.raises(ModemError) as e:
        rig.run(rig.modem.send_sms("+447700900999", b"\x01"))
    assert (e.value.kind, e.value.code) == (at.CMS, 331)
    rig.vm.set_fault("no_coverage", False)
    rig.run(rig.modem.at.wait(5000))
    assert rig.modem.is_registered()  # the +CEREG URC told us


def test_registration_denied_and_sim_missing(pki):
    rig = Rig(pki, powered=True, faults=Faults(denied=True))
    rig.run(rig.modem.start())
    rig.run(rig.modem.at.wait(5000))
    assert rig.run(rig.modem.registration()) is False and rig.modem.is_denied()
    rig = Rig(pki, powered=True, faults=Faults(sim_missing=True))
    rig.run(rig.modem.start())
    with pytest.raises(ModemError) as e:
        rig.run(rig.modem.check_sim())
    assert (e.value.kind, e.value.code) == (at.NO_SIM, 10)


def test_hung_modem_needs_a_power_cycle(pki, receiver):
    rig = Rig(pki, receiver, powered=True)
    rig.up()
    rig.vm.set_fault("hang", True)
    assert rig.run(rig.modem.probe()) is False
    rig.run(rig.modem.power_cycle(answering=False))
    assert rig.vm.power_offs == 1 and rig.vm.power_ons == 2
    assert rig.modem.ready and rig.run(rig.modem.probe()) is True


def test_garbage_and_urc_bursts_do_not_break_the_dialogue(pki, receiver, device):
    faults = Faults(garbage_every_ms=37, urc_burst=5)
    rig = Rig(pki, receiver, faults=faults)
    rig.up()
    rig.run(rig.modem.open(RECEIVER_NAME, receiver.port, tls=True))
    head, answer = rig.post([device.alert_start()], receiver.port)
    assert answer["results"][0]["status"] == "accepted"
    assert rig.modem.at.garbage > 10 and rig.modem.at.urcs > 20


def test_random_errors_are_retried(pki, receiver):
    rig = Rig(pki, receiver, powered=True, faults=Faults(error_rate=0.08, cme_rate=0.04))
    for _ in range(20):
        assert rig.run(rig.modem.signal()) == 22
    assert rig.modem.retries > 0


def test_connection_dropped_mid_send(pki, receiver, device):
    rig = Rig(pki, receiver, powered=True)
    rig.up()
    rig.run(rig.modem.open(RECEIVER_NAME, receiver.port, tls=True))
    rig.vm.set_fault("drop_after_bytes", 100)
    frame = device.alert_start()
    rig.run(rig.modem.send([b"POST /v1/frames HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(frame), frame],
                           bytearray(1024)))
    rig.run(rig.modem.at.wait(500))
    assert not rig.modem.connected and rig.modem.peer_closed == 1
    assert receiver.stored == {}  # half a request stores nothing


def test_slow_link_costs_simulated_time(pki, receiver, device):
    def round_trip(timing):
        rig = Rig(pki, receiver, powered=True, timing=timing)
        rig.up()
        t0 = rig.sched.now_ms
        rig.run(rig.modem.open(RECEIVER_NAME, receiver.port, tls=True))
        rig.post([device.audio(bytes(4000), 0, 8000)], receiver.port)
        return rig.sched.now_ms - t0

    fast = round_trip(Timing())
    slow = round_trip(Timing(rtt_ms=600, uplink_bps=20000))
    # 4 KB at 20 kbit/s is 1.6 s on its own, plus four slower round trips
    assert slow - fast > 1600 + 3 * 500


def _say(vm: VirtualModem, text: bytes, until_ms: int) -> bytes:
    """Write a command line, advance the modem's clock, return what it said."""
    vm.stream.write(text + b"\r")
    out = bytearray()
    t = vm.now
    while t < until_ms:
        t += 5
        vm.advance(t)
        got = vm.stream.read(4096)
        if got:
            out += got
    return bytes(out)


def test_pwrkey_thresholds_and_boot_urcs():
    vm = VirtualModem(model="SIM7600")
    vm.pwrkey(1)
    vm.advance(30)
    vm.pwrkey(0)  # 30 ms: too short to switch on
    vm.advance(20000)
    assert vm.power == "off" and vm.stream.any() == 0
    vm.pwrkey(1)
    vm.advance(20100)
    vm.pwrkey(0)
    vm.advance(20100 + vm.timing.boot_ms - 1)
    assert vm.stream.read(100) is None  # still booting: nothing yet
    t = vm.timing
    vm.advance(20100 + t.boot_ms + t.sim_ms + 10)
    assert vm.stream.read(4096) == b"\r\nRDY\r\n\r\n+CPIN: READY\r\n"
    vm.advance(20100 + t.boot_ms + t.sim_ms + t.sms_ready_ms + t.pb_ms + 10)
    assert vm.stream.read(4096) == b"\r\nSMS DONE\r\n\r\nPB DONE\r\n"
    vm.pwrkey(1)
    vm.advance(vm.now + 1000)
    vm.pwrkey(0)  # 1 s: not a power-off
    assert vm.power == "on"
    vm.pwrkey(1)
    vm.advance(vm.now + 2600)
    vm.pwrkey(0)
    assert vm.power == "stopping"  # the power-down began when the 2.5 s were up, and takes ~2 s
    vm.advance(vm.now - 100 + t.power_off_ms + 10)
    assert vm.power == "off" and vm.power_offs == 1
    with pytest.raises(ValueError):
        vm.advance(vm.now - 1)


def test_uart_speed_is_modelled():
    vm = VirtualModem(powered=True)
    vm.advance(0)
    vm.stream.write(b"ATI\r")
    vm.advance(15)  # 4 bytes in, 15 ms to answer, then the answer's own bytes on the wire
    assert vm.stream.any() == 0
    vm.advance(40)
    answer = vm.stream.read(4096)
    assert answer is not None and b"SIMCOM" in answer and answer.endswith(b"OK\r\n")
    # at 115200 baud (10 bits a byte) the answer needs len * 0.087 ms after the 15 ms
    on_wire_ms = len(answer) * 10 * 1000 / 115200
    vm2 = VirtualModem(powered=True)
    vm2.advance(0)
    vm2.stream.write(b"ATI\r")
    vm2.advance(int(15 + on_wire_ms) - 2)
    assert vm2.stream.any() < len(answer)
    vm2.advance(int(15 + on_wire_ms) + 2)
    assert vm2.stream.read(4096) == answer


def test_pushed_receive_mode_and_echo(pki, receiver, device):
    vm = VirtualModem(powered=True, hosts={RECEIVER_NAME: "127.0.0.1"}, certs={"ca": pki.ca_pem})
    vm.advance(0)
    vm.echo = True
    out = _say(vm, b"AT+CCHSET=1,0", 100)
    assert out.startswith(b"AT+CCHSET=1,0\r") and out.endswith(b"OK\r\n")  # echo, then the answer
    vm.echo = False
    _say(vm, b'AT+CSSLCFG="authmode",0,1', 200)
    _say(vm, b'AT+CSSLCFG="cacert",0,"ca"', 300)
    assert b"+CCHSTART: 0" in _say(vm, b"AT+CCHSTART", 1000)
    out = _say(vm, f'AT+CCHOPEN=0,"{RECEIVER_NAME}",{receiver.port},2'.encode(), 3000)
    assert b"+CCHOPEN: 0,0" in out
    frame = device.heartbeat()
    head = f"POST /v1/frames HTTP/1.1\r\nHost: x\r\nContent-Length: {len(frame)}\r\n\r\n"
    request = head.encode() + frame
    vm.stream.write(b"AT+CCHSEND=0,%d\r" % len(request))
    vm.advance(3100)
    assert vm.stream.read(100) == b"\r\n>"
    vm.stream.write(request)
    out = bytearray()
    for t in range(3100, 6000, 10):
        vm.advance(t)
        out += vm.stream.read(8192) or b""
    assert b"+CCHSEND: 0,0" in out  # AT+CCHSET=1: the send is reported
    assert b"+CCHRECV: DATA,0," in out and b"HTTP/1.1 200" in out  # pushed, not announced
    assert b"+CCHEVENT" not in out


def test_only_loopback_is_reachable():
    vm = VirtualModem(powered=True, hosts={"evil.example": "93.184.216.34"})
    vm.advance(0)
    _say(vm, b"AT+CCHSTART", 1000)
    out = _say(vm, b'AT+CCHOPEN=0,"evil.example",443,1', 10000)
    assert b"+CCHOPEN: 0,13" in out and vm.connections == 0
    out = _say(vm, b'AT+CCHOPEN=0,"8.8.8.8",53,1', 20000)
    assert b"+CCHOPEN: 0,13" in out and vm.connections == 0
