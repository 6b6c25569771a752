"""The simulated timeline depends on the scenario only, never on how fast this
machine is: a host that is slow to give the virtual modem its answers (a loaded
machine, a receiver stalled on its disk) changes nothing the device sees, or
when; one that never answers stops the run with HostStall, loudly.

The slow host is made by count, not by sleeping: the modem's socket polls find
nothing yet three times in four, as polls on a loaded machine do (before the fix
a poll that found nothing made the modem give up waiting, and the answer reached
the device at whichever later pass the host happened to deliver it: seen as a
frame made 5 ms later in one `make simvm` run under load)."""

from __future__ import annotations

import contextlib
import itertools
import socket
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from vmodem_support import ScriptedServer, run_for, say

from simulator.clock import VirtualClock
from simulator.pki import make_pki
from simulator.report import timeline_lines
from simulator.run import run_scenario
from simulator.scenario import load
from simulator.smsc import SmsRecord, VirtualSmsc
from simulator.vmodem import HostStall, VirtualModem
from simulator.vmodem import reading as vread
from simulator.vmodem.connections import Connections

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def _view(result):
    port = str(result.receiver.port)
    return ([line.replace(port, "PORT") for line in timeline_lines(result, verbose=True)],
            [(t, s, ty) for t, s, ty, _ in result.device.made], result.device.acked,
            [(r.t_ms, r.direction, r.kind) for r in result.device.modem.air])  # sizes: ECDSA's vary by a byte


def test_a_slow_host_does_not_move_the_simulated_timeline(tmp_path, monkeypatch):
    sc = load(SCENARIOS / "false_alarm_cancelled.toml")
    steady = run_scenario(sc, tmp_path / "steady")
    real = vread._readable
    polls = itertools.count(1)
    stalled = 0

    def slow(sock, timeout_s):  # three polls in four: nothing in yet
        nonlocal stalled
        if next(polls) % 4:
            stalled += 1
            return False
        return real(sock, timeout_s)

    monkeypatch.setattr(vread, "_readable", slow)
    slowed = run_scenario(sc, tmp_path / "slow")
    assert stalled > 100  # the host really was slow, many times
    assert not slowed.failures
    a, b = _view(steady), _view(slowed)
    assert a[0] == b[0]  # the timeline
    assert a[1] == b[1]  # every frame made at the same simulated time
    assert a[2] == b[2]  # and acknowledged at the same time
    assert a[3] == b[3]  # the air log, record by record


def test_a_host_that_never_answers_stops_the_run_loudly():
    server = ScriptedServer(answer=lambda req: None, complete=lambda data: False)  # reads, never answers
    try:
        vm = VirtualModem(powered=True, hosts={"h": f"127.0.0.1:{server.port}"}, io_wait_s=0.3)
        for cmd in ("AT+CCHSET=0,1", "AT+CCHSTART", 'AT+CCHOPEN=0,"h",80,1'):
            say(vm, cmd, 1000)
        request = b"POST /v1/frames HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"
        say(vm, f"AT+CCHSEND=0,{len(request)}", 50)
        vm.stream.write(request)
        t0 = vm.now
        with pytest.raises(HostStall) as e:
            run_for(vm, 2000)
        assert "waited 0.3 s of wall time for the answer from 127.0.0.1:" in str(e.value)
        assert "stops rather than let the wall clock change the simulated timeline" in str(e.value)
        assert vm.now - t0 < 1000  # it stopped at the send, not later on the simulated clock
    finally:
        server.stop()


class _GatedProxy:
    """Between the modem and the receiver: the device's application data reaches the
    receiver only once the simulation has moved on from the moment it was sent, or
    the modem is waiting for the answer (whichever comes first; 10 s of wall time at
    most, a safety net). A receiver that handles requests late, decided by events."""

    def __init__(self, target: tuple[str, int], state: dict[str, int]) -> None:
        self.target, self.state = target, state
        self.held = 0
        self.lst = socket.create_server(("127.0.0.1", 0))
        self.port = self.lst.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                c, _ = self.lst.accept()
            except OSError:
                return
            s = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(c, s, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(s, c, False), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket, gate: bool) -> None:
        try:
            while data := a.recv(65536):
                if gate and data[0] == 0x17:  # a TLS application-data record: the request
                    now, polls = self.state["now"], self.state["polls"]
                    for _ in range(1000):  # 10 s at most
                        if self.state["now"] > now or self.state["polls"] > polls:
                            break
                        time.sleep(0.01)
                    self.held += 1
                b.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (a, b):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.lst.close()


def _receipts(result) -> list[tuple[int, float]]:
    db = sqlite3.connect(result.receiver.db)
    try:
        return sorted(db.execute("SELECT seq, received_at FROM frames").fetchall())
    finally:
        db.close()


def test_the_receiver_sees_the_send_time_however_late_it_handles_the_request(tmp_path, monkeypatch):
    sc = load(SCENARIOS / "operator_listening.toml")
    steady = run_scenario(sc, tmp_path / "steady")
    state = {"now": 0, "polls": 0}
    real_advance, real_readable, real_resolve = VirtualClock.advance_to, vread._readable, Connections._resolve

    def advance_to(clock, t_ms):
        real_advance(clock, t_ms)
        state["now"] = t_ms

    def readable(sock, timeout_s):  # the modem waiting for an answer, seen in 10 ms slices
        for _ in range(max(1, int(timeout_s * 100))):
            if real_readable(sock, min(timeout_s, 0.01)):
                return True
            if timeout_s:
                state["polls"] += 1
        return False

    proxies: dict[tuple[str, int], _GatedProxy] = {}

    def resolve(modem, host, port):
        where = real_resolve(modem, host, port)
        if where is None:
            return None
        if where not in proxies:
            proxies[where] = _GatedProxy(where, state)
        return "127.0.0.1", proxies[where].port

    monkeypatch.setattr(VirtualClock, "advance_to", advance_to)
    monkeypatch.setattr(vread, "_readable", readable)
    monkeypatch.setattr(Connections, "_resolve", resolve)
    try:
        late = run_scenario(sc, tmp_path / "late")
    finally:
        for p in proxies.values():
            p.close()
    assert sum(p.held for p in proxies.values()) >= 10  # requests really went through the gate
    assert not late.failures
    got, want = _receipts(late), _receipts(steady)
    assert len(want) == len(steady.device.made) > 10
    assert got == want  # each frame stamped with the same simulated time
    assert _view(late)[:3] == _view(steady)[:3]


def test_an_sms_webhook_that_never_answers_stops_the_run_loudly():
    silent = socket.create_server(("127.0.0.1", 0))  # takes the connection (backlog), never answers
    try:
        smsc = VirtualSmsc(f"http://127.0.0.1:{silent.getsockname()[1]}/v1/sms", delay_ms=1000, wait_s=0.3)
        smsc.records.append(SmsRecord(0, "+447700900001", "+447700900999", b"frame", 1000))
        smsc.advance(999)
        with pytest.raises(HostStall) as e:
            smsc.advance(1000)
        assert "the SMS centre waited 0.3 s of wall time for the webhook" in str(e.value)
        assert smsc.records[0].error == ""  # not quietly "unreachable"
    finally:
        silent.close()


def _shortest_pki(monkeypatch) -> None:
    """From now on the throwaway PKI gets the shortest serial numbers, and every
    certificate's first signature is a short one (70 bytes or less in DER, as one
    ECDSA signature in four is): what chance gave one run in 270."""
    from cryptography import x509

    real_sign = x509.CertificateBuilder.sign
    signed: set[int] = set()

    def sign(builder, key, algorithm, *args, **kwargs):
        if id(builder) in signed:
            return real_sign(builder, key, algorithm, *args, **kwargs)
        signed.add(id(builder))
        while True:   # a short one, as chance gives now and then
            cert = real_sign(builder, key, algorithm, *args, **kwargs)
            if len(cert.signature) <= 70:
                return cert

    monkeypatch.setattr(x509, "random_serial_number", lambda: 1 << 64)
    monkeypatch.setattr(x509.CertificateBuilder, "sign", sign)


def test_the_throwaway_pki_has_the_same_length_whatever_chance_gives(tmp_path, monkeypatch):
    for d in ("usual", "short"):
        (tmp_path / d).mkdir()
    usual = make_pki(str(tmp_path / "usual"))
    _shortest_pki(monkeypatch)
    short = make_pki(str(tmp_path / "short"))
    assert len(short.ca_pem) == len(usual.ca_pem)   # what the device sends its modem (AT+CCERTDOWN)
    assert short.ca_pem != usual.ca_pem   # another CA all the same
    assert len(Path(short.cert_file).read_bytes()) == len(Path(usual.cert_file).read_bytes())


def test_the_timeline_does_not_depend_on_the_run_s_throwaway_pki(tmp_path, monkeypatch):
    """The make simvm flake: the CA certificate went 4 bytes shorter in one of two runs,
    its AT+CCERTDOWN took less UART time, and the whole timeline moved by a step of the
    firmware's loop (the network time anchored 30 ms later: a frame at 23 006 ms dated
    second 822 instead of 823)."""
    sc = load(SCENARIOS / "hung_modem_needs_power_removal.toml")
    usual = run_scenario(sc, tmp_path / "usual")
    _shortest_pki(monkeypatch)
    short = run_scenario(sc, tmp_path / "short")
    assert not short.failures and not usual.failures
    assert [m[1:] for m in short.device.made] == [m[1:] for m in usual.device.made]  # the signed bytes
    assert _view(short)[:3] == _view(usual)[:3]   # timeline, when each frame was made and acknowledged
    assert short.receiver.pki.ca_pem != usual.receiver.pki.ca_pem   # two CAs, one length
