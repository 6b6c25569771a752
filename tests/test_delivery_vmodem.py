"""The firmware's delivery task and SIMCom driver against the virtual modem,
through every modem and network fault: the alert still arrives (by data once it
returns, or by SMS meanwhile), nothing acknowledged is lost, nothing is
acknowledged twice. Frames are signed host-side (tests/framefactory.py) and
verified on arrival by a receiver that shares no code with the firmware."""

from __future__ import annotations

import json
from typing import Any

import pytest
from deliveryfake import FakeQueue, seeded_random
from framefactory import ALERT_START, AUDIO, LOCATION, DeviceSim, pack_location
from modem_support import RECEIVER_NAME, SMS_SECRET, RealReceiver, ReceiverDouble, make_pki, run_until
from sotto import modem as modem_pkg
from sotto.answer import Opener
from sotto.sched import Scheduler

from simulator.smsc import VirtualSmsc
from simulator.vmodem import Faults, Timing, VirtualModem

MONITORING = "+447700900999"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(str(tmp_path_factory.mktemp("pki")))


class Hal:
    """The part of the HAL the modem stack uses."""

    def __init__(self, vm: VirtualModem, root: str) -> None:
        self.modem_uart = vm.stream
        self.modem_pwrkey = vm.pwrkey
        self.storage_root = root
        self.random_bytes = seeded_random(4242)


class Alert:
    """A device raising an alert: frames pushed to the queue on the sim clock."""

    def __init__(self, queue: FakeQueue, device: DeviceSim, t0: int, audio_s: int = 5, locations: int = 4,
                 every_ms: int = 15000) -> None:
        self.queue = queue
        self.device = device
        self.plan: list[tuple[int, str]] = [(t0, "start")]
        self.plan += [(t0 + 1000 * (i + 1), "audio") for i in range(audio_s)]
        self.plan += [(t0 + every_ms * (i + 1), "loc") for i in range(locations)]
        self.plan.sort()
        self.pushed: dict[int, bytes] = {}
        self.offset = 0
        self.live = False

    def loc(self, i: int) -> bytes:
        return pack_location(515000000 + 100 * i, -1000000, 8, 1, 1)

    def __call__(self, t: int) -> None:
        while self.plan and self.plan[0][0] <= t:
            _, what = self.plan.pop(0)
            d = self.device
            if what == "start":
                wire, ftype = d.alert_start(loc=self.loc(0)), ALERT_START
                self.live = True
            elif what == "audio":
                wire, ftype = d.audio(bytes(range(256)) * 16, self.offset, 8000), AUDIO
                self.offset += 8000
            else:
                wire, ftype = d.location(self.loc(len(self.pushed))), LOCATION
            self.queue.push(wire, ftype, d.seq)
            self.pushed[d.seq] = wire

    @property
    def done(self) -> bool:
        return not self.plan


class Rig:
    def __init__(self, pki, tmp_path, faults: Faults | None = None, timing: Timing | None = None,
                 powered: bool = False, keep_alive: bool = True, real: bool = False) -> None:
        self.device = DeviceSim()
        keys = {self.device.kid: self.device.public_key}
        self.receiver: Any = (RealReceiver(str(tmp_path), keys, tls=pki) if real
                              else ReceiverDouble(keys, tls=pki, keep_alive=keep_alive))
        self.smsc = VirtualSmsc(self.receiver.sms_url, delay_ms=3000, ca_pem=pki.ca_pem, secret=SMS_SECRET)
        self.vm = VirtualModem(faults=faults or Faults(), timing=timing or Timing(), seed=3,
                               hosts={RECEIVER_NAME: "127.0.0.1"}, smsc=self.smsc, powered=powered,
                               certs={"sotto_ca.pem": pki.ca_pem})
        self.sched = Scheduler()
        self.queue = FakeQueue()
        self.alert = Alert(self.queue, self.device, t0=20000)
        settings = {"host": RECEIVER_NAME, "port": self.receiver.port, "apn": "internet",
                    "ca_cert": "sotto_ca.pem", "sms_number": MONITORING}
        self.delivery = modem_pkg.build(Hal(self.vm, str(tmp_path)), self.sched, self.queue, settings,
                                        alert_live=lambda: self.alert.live,
                                        opener=Opener(self.receiver.centre_public_key))
        self.sched.spawn("delivery", self.delivery.task)
        self.hooks: list = []

    def tick(self, t: int) -> None:
        self.alert(t)
        for when, fn in list(self.hooks):
            if t >= when:
                self.hooks.remove((when, fn))
                fn()

    def at(self, t: int, fn) -> None:
        self.hooks.append((t, fn))

    def run(self, limit_ms: int = 600000) -> int:
        def done() -> bool:
            return self.alert.done and not len(self.queue) and not self.hooks

        return run_until(self.sched, self.vm, done, limit_ms, tick=self.tick)

    def check(self) -> None:
        """Every frame arrived, verified, once; the queue acknowledged each once."""
        stored = {seq for (_kid, seq) in self.receiver.stored}
        assert stored == set(self.alert.pushed), "frames missing at the receiver"
        for (_kid, seq), wire in self.receiver.stored.items():
            assert wire == self.alert.pushed[seq]
        assert sorted(self.queue.acked) == sorted(self.alert.pushed)  # FakeQueue refuses a second ack
        assert len(self.queue) == 0

    def close(self) -> None:
        self.vm.close()
        self.receiver.stop()


@pytest.fixture
def rig_factory(pki, tmp_path):
    made: list[Rig] = []

    def make(**kw) -> Rig:
        r = Rig(pki, tmp_path, **kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def first_post_of(rig: Rig, seq: int) -> int:
    """Index of the first request to the receiver that carried frame `seq`."""
    wire = rig.alert.pushed[seq]
    return next(i for i, body in enumerate(rig.receiver.requests) if wire in body)


def test_nominal_alert_from_a_switched_off_modem(rig_factory):
    rig = rig_factory()
    rig.run()
    rig.check()
    d = rig.delivery
    assert rig.vm.power_ons == 1 and d.modem.power_cycles == 0
    assert rig.receiver.requests[0] == rig.alert.pushed[1]  # the alert-start alone, first
    assert d.sms.sent == 0 and rig.smsc.records == []


def test_no_coverage_then_back(rig_factory):
    rig = rig_factory(powered=True, faults=Faults(no_coverage=True))
    rig.at(150000, lambda: rig.vm.set_fault("no_coverage", False))
    t = rig.run()
    rig.check()
    assert t > 150000  # nothing could go before the coverage came back
    assert rig.delivery.sms.sent == 0 and rig.delivery.sms.failed > 0  # SMS needs coverage too


def test_data_down_sms_fallback_then_data(rig_factory):
    rig = rig_factory(powered=True, faults=Faults(data_down=True))
    rig.at(130000, lambda: rig.vm.set_fault("data_down", False))
    rig.run()
    rig.check()
    sms = rig.receiver.sms
    assert len(sms) >= 2  # at ~30 s after the trigger, then every minute
    first = rig.smsc.records[0]
    assert 20000 + 30000 <= first.submitted_ms <= 20000 + 60000
    assert {r.number for r in rig.smsc.records} == {MONITORING}
    carried = [bytes.fromhex(m["payload"]) for m in sms]
    assert all(len(p) <= 140 for p in carried)
    assert carried[0] in rig.alert.pushed.values()
    # later SMS carry the newest location of their moment
    loc_wires = {w for s, w in rig.alert.pushed.items() if s > 1}
    assert any(p in loc_wires for p in carried[1:])
    # the frames that went by SMS were sent again by data and acknowledged once
    assert rig.delivery.duplicates >= 1


def test_error_and_cme_answers(rig_factory):
    rig = rig_factory(faults=Faults(error_rate=0.1, cme_rate=0.05))
    rig.run()
    rig.check()
    assert rig.delivery.modem.retries > 0


def test_scripted_failures_climb_the_ladder(rig_factory):
    faults = Faults(fail_next=[("AT+CCHSTART", "+CME ERROR: 100")] * 3 + [("AT+CCHSTART", "ERROR")] * 2)
    rig = rig_factory(powered=True, faults=faults)
    rig.run()
    rig.check()
    m = rig.delivery.modem
    assert m.cfun_resets >= 1 and m.power_cycles >= 1


def test_hung_modem_mid_alert(rig_factory):
    rig = rig_factory(powered=True)
    rig.at(26000, lambda: rig.vm.set_fault("hang", True))
    rig.run()
    rig.check()
    assert rig.delivery.modem.power_cycles >= 1 and rig.vm.power_offs >= 1


def test_garbage_and_urc_bursts(rig_factory):
    rig = rig_factory(faults=Faults(garbage_every_ms=53, urc_burst=3))
    rig.run()
    rig.check()
    assert rig.delivery.modem.at.garbage > 0 and rig.delivery.modem.at.urcs > 50


def test_connection_dropped_mid_send(rig_factory):
    rig = rig_factory(powered=True)
    rig.at(23000, lambda: rig.vm.set_fault("drop_after_bytes", 3000))
    rig.run()
    rig.check()
    assert rig.delivery.modem.peer_closed >= 1


def test_answer_lost_after_the_receiver_stored(rig_factory):
    rig = rig_factory(powered=True)
    rig.at(19000, lambda: rig.vm.set_fault("drop_before_response", True))
    rig.run()
    rig.check()
    assert rig.delivery.duplicates >= 1  # stored once, resent, acknowledged once


@pytest.mark.parametrize(("trouble", "cured"), [
    ({"faults": Faults(denied=True)}, (90000, "denied")),
    ({"faults": Faults(sim_missing=True)}, (60000, "sim_missing")),
    ({"timing": Timing(rtt_ms=700, uplink_bps=32000, downlink_bps=64000)}, None),
], ids=["registration-denied-for-a-while", "sim-missing-then-inserted", "slow-link"])
def test_the_alert_gets_through(rig_factory, trouble, cured):
    rig = rig_factory(powered=True, **trouble)
    if cured is not None:
        at_ms, fault = cured
        rig.at(at_ms, lambda: rig.vm.set_fault(fault, False))
    rig.run()
    rig.check()


def test_receiver_closing_every_connection(rig_factory):
    rig = rig_factory(powered=True, keep_alive=False)
    rig.run()
    rig.check()
    assert rig.vm.connections >= 2


def test_rejected_frame_is_logged_and_not_retried(rig_factory):
    rig = rig_factory(powered=True)
    stranger = DeviceSim(kid=b"STRANGER", seed=bytes(range(1, 33)))  # not in the registry
    wire = stranger.location(pack_location(1, 2, 3, 4, 1))
    rig.queue.push(wire, LOCATION, stranger.seq)
    run_until(rig.sched, rig.vm, lambda: not len(rig.queue), 120000)
    assert rig.delivery.rejected == 1 and rig.queue.acked == [stranger.seq]
    assert rig.delivery.rejects.entries() == [(stranger.seq, "unknown-device", wire)]
    assert sum(1 for body in rig.receiver.requests if wire in body) == 1  # never retried


def test_frames_signed_by_the_firmware_arrive_verified(rig_factory):
    from sotto import ed25519, frames

    rig = rig_factory(powered=True)
    seed = bytes(range(32))  # DeviceSim's key: the receiver double knows its public key
    signer = frames.FrameSigner(rig.device.kid, ed25519.SigningKey(seed))
    loc = frames.pack_location(515000000, -1000000, 8, 1, frames.SRC_GNSS)
    start = signer.sign({frames.K_T: frames.ALERT_START, frames.K_SID: 7, frames.K_SEQ: 500,
                         frames.K_TIME: 1790000000, frames.K_UP: 1000, frames.K_LOC: loc,
                         frames.K_BATT: 90, frames.K_TRIG: 1})
    audio = bytes(range(256)) * 16
    link = frames.chain_link(start)
    chunk = signer.sign({frames.K_T: frames.AUDIO, frames.K_SID: 7, frames.K_SEQ: 501,
                         frames.K_TIME: 1790000001, frames.K_UP: 2000, frames.K_PREV: link,
                         frames.K_CODEC: 1, frames.K_RATE: 8000, frames.K_OFF: 0, frames.K_AST: [0, 0],
                         frames.K_NS: 8000}, audio=audio)
    rig.queue.push(chunk, AUDIO, 501)
    rig.queue.push(start, ALERT_START, 500)
    run_until(rig.sched, rig.vm, lambda: not len(rig.queue), 60000)
    assert rig.receiver.stored == {(rig.device.kid, 500): start, (rig.device.kid, 501): chunk}
    assert rig.receiver.requests[0] == start  # alone and first, though queued second
    assert rig.delivery.rejected == 0


def test_alert_through_the_real_receiver(rig_factory):
    """End to end: `sotto receive` (a subprocess, TLS, its own database and
    registry) behind the virtual modem; data first, then SMS while data is down."""
    rig = rig_factory(real=True, faults=Faults(data_down=True), powered=True)
    rig.at(130000, lambda: rig.vm.set_fault("data_down", False))
    rig.run()
    d = rig.delivery
    assert sorted(rig.queue.acked) == sorted(rig.alert.pushed) and len(rig.queue) == 0
    assert d.rejected == 0 and d.bad_answers == 0
    # the SMS went through the centre's webhook and was stored there first ...
    assert rig.smsc.records and all(r.http_status == 200 for r in rig.smsc.records)
    verdicts = [json.loads(r.answer)["status"] for r in rig.smsc.records]
    assert verdicts[0] == "accepted"
    # ... so the same frame, sent by data later, was a duplicate, acknowledged once
    assert d.duplicates >= 1
    assert d.acked == len(rig.alert.pushed)
    # what the operator sees: one alert, every frame, the audio, an unbroken chain
    listing = json.loads(rig.receiver.cli("alerts", "list", "--json", "--db", rig.receiver.db))
    [alert] = listing["alerts"]
    assert alert["device"] == "TEST-001" and alert["frames"] == len(rig.alert.pushed)
    assert alert["audio_seconds"] == 5.0 and alert["chain"]["problems"] == []
