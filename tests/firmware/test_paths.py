# The second path (sotto.paths, EN 50136 dual path): a primary and a
# secondary receiver, each with its own centre key; the switch after
# delivery.secondary_after_s without an authenticated answer, the probes
# (delivery.probe_s) and the way back; supervision (on_down once per outage);
# frames carry rx (key 34) and st 9 receiver-down; the configuration rules.
# Runs under CPython and in the MicroPython VM.
from deliveryfake import (
    ALERT_START,
    AUDIO,
    LOCATION,
    FakeModem,
    FakeQueue,
    FakeServer,
    Runner,
    opener,
    reject_log,
    seeded_random,
)
from fwtest import raises
from sotto import config, ed25519, frames
from sotto.answer import Opener
from sotto.modem.delivery import Delivery
from sotto.paths import PRIMARY, SECONDARY, Paths, Receiver
from sotto.sched import Scheduler

SECOND_SEED = bytes(range(0x40, 0x60))  # the second centre's test key (not the first's)
_second = []


def second_centre():
    if not _second:
        k = ed25519.SigningKey(SECOND_SEED)
        _second.append((k, Opener(k.public_key)))
    return _second[0]


def second_server(queue):
    srv = FakeServer(queue)
    srv.key = second_centre()[0]  # the second centre signs with its own key
    return srv


def _paths(after_s=60, probe_s=300):
    a = Receiver("a.example", 443, True, 0, None)
    b = Receiver("b.example", 443, True, 1, None)
    return Paths(a, b, after_s, probe_s)


# -- the policy alone ---------------------------------------------------------------
def test_switches_only_after_secondary_after_s_without_an_answer():
    p = _paths(after_s=60)
    downs = []
    p.on_down = downs.append
    p.failed(PRIMARY, 1000)
    p.failed(PRIMARY, 30000)
    p.failed(PRIMARY, 60999)
    assert p.active == PRIMARY and downs == []
    p.failed(PRIMARY, 61000)
    assert p.active == SECONDARY and downs == [PRIMARY] and p.switches == 1
    p.failed(PRIMARY, 400000)  # a failed probe: reported once per outage, stays on the secondary
    assert p.active == SECONDARY and downs == [PRIMARY]


def test_an_answer_in_between_restarts_the_count():
    p = _paths(after_s=60)
    p.failed(PRIMARY, 0)
    p.answered(PRIMARY, 50000)
    p.failed(PRIMARY, 70000)
    p.failed(PRIMARY, 120000)
    assert p.active == PRIMARY
    p.failed(PRIMARY, 130000)
    assert p.active == SECONDARY


def test_probe_schedule_and_the_way_back():
    p = _paths(after_s=10, probe_s=300)
    assert p.probe_due(5000) == -1  # the first look sets the period
    assert p.probe_due(304999) == -1
    assert p.probe_due(305000) == SECONDARY  # on the primary: the secondary is supervised
    p.probed(305000)
    assert p.probe_due(305001) == -1
    p.failed(PRIMARY, 400000)
    p.failed(PRIMARY, 410000)
    assert p.active == SECONDARY
    assert p.probe_due(709999) == -1 and p.probe_due(710000) == PRIMARY
    p.answered(SECONDARY, 500000)
    assert p.active == SECONDARY
    p.answered(PRIMARY, 710000)  # the primary answered a probe: home
    assert p.active == PRIMARY and p.switches == 2 and not p.down[PRIMARY]


def test_both_down_alternate_and_each_is_reported_once():
    p = _paths(after_s=10)
    downs = []
    p.on_down = downs.append
    t = 0
    seen = []
    while t < 100000:
        p.failed(p.active, t)
        seen.append(p.active)
        t += 1000
    assert downs == [PRIMARY, SECONDARY]
    assert p.switches >= 8  # about every 11 s, so neither is given up for good
    assert PRIMARY in seen[-15:] and SECONDARY in seen[-15:]


def test_secondary_down_is_reported_while_frames_go_to_the_primary():
    p = _paths(after_s=10)
    downs = []
    p.on_down = downs.append
    p.failed(SECONDARY, 0)
    p.failed(SECONDARY, 10000)
    assert downs == [SECONDARY] and p.active == PRIMARY


def test_one_receiver_only_never_probes():
    p = Paths(Receiver("a.example", 443, True, 0, None))
    assert not p.dual and p.probe_due(10 ** 6) == -1
    for t in range(0, 200000, 10000):
        p.failed(PRIMARY, t)
    assert p.active == PRIMARY


# -- delivery with two receivers -------------------------------------------------------
class Rig:
    def __init__(self, after_s=30, probe_s=120, frames_=()):
        self.clock = Scheduler()
        self.queue = FakeQueue(frames_)
        self.a = FakeServer(self.queue)
        self.b = second_server(self.queue)
        self.modem = FakeModem(self.clock, self.a)
        self.modem.servers = {"a.example": self.a, "b.example": self.b}
        self.paths = Paths(Receiver("a.example", 443, True, 0, opener()),
                           Receiver("b.example", 443, True, 1, second_centre()[1]), after_s, probe_s)
        self.downs = []
        self.paths.on_down = self.downs.append
        self.d = Delivery(self.modem, self.queue, self.clock, "a.example", 443, sms_number=None,
                          random_bytes=seeded_random(), alert_live=lambda: True,
                          rejects=reject_log(), opener=opener(),
                          paths=self.paths)
        self.run = Runner(self.clock, self.d, self.modem)

    def push(self, ftype, seq):
        self.queue.add(ftype, seq)


def test_primary_killed_mid_alert_the_rest_goes_to_the_secondary_nothing_lost():
    rig = Rig(after_s=30, frames_=[(ALERT_START, 1), (LOCATION, 2)])
    rig.run.until(lambda: not len(rig.queue))
    assert sorted(rig.a.stored) == [1, 2] and not rig.b.stored
    rig.modem.servers["a.example"] = None  # the primary is gone
    rig.modem.connected = False
    for seq in range(3, 9):
        rig.push(AUDIO if seq % 2 else LOCATION, seq)
    rig.run.until(lambda: not len(rig.queue), 300000)
    assert sorted(rig.a.stored) == [1, 2]
    assert sorted(rig.b.stored) == [3, 4, 5, 6, 7, 8]  # every frame once, at one centre or the other
    assert sorted(rig.queue.acked) == list(range(1, 9))
    assert rig.paths.active == SECONDARY and rig.downs == [PRIMARY]
    assert ("b.example", 1) in rig.modem.opened  # the secondary's SSL context


def test_the_switch_waits_secondary_after_s():
    rig = Rig(after_s=60, frames_=[(ALERT_START, 1)])
    rig.modem.servers["a.example"] = None
    t0 = rig.clock.now_ms
    rig.run.until(lambda: not len(rig.queue), 300000)
    first_b = [i for i, (h, _c) in enumerate(rig.modem.opened) if h == "b.example"][0]
    assert rig.modem.opened[:first_b] and all(h == "a.example" for h, _c in rig.modem.opened[:first_b])
    assert rig.clock.now_ms - t0 >= 60000


def test_the_primary_is_probed_and_delivery_goes_back():
    rig = Rig(after_s=10, probe_s=60, frames_=[(ALERT_START, 1)])
    rig.modem.servers["a.example"] = None
    rig.run.until(lambda: not len(rig.queue), 120000)
    assert rig.b.stored == {1} and rig.paths.active == SECONDARY
    rig.modem.servers["a.example"] = rig.a  # the primary is back
    rig.run.until(lambda: rig.paths.active == PRIMARY, 200000)
    assert [] in rig.a.requests  # an empty POST: the probe
    rig.push(LOCATION, 2)
    rig.run.until(lambda: not len(rig.queue), 60000)
    assert rig.a.stored == {2} and rig.b.stored == {1}


def test_an_answer_signed_by_the_wrong_centre_is_no_answer():
    # the secondary's address answering with the primary's key (or a forger's):
    # not authenticated, so frames stay queued and it does not count as up
    rig = Rig(after_s=10, frames_=[(ALERT_START, 1)])
    rig.modem.servers["a.example"] = None
    rig.modem.servers["b.example"] = FakeServer(rig.queue)  # signs with the first centre's key
    rig.run.for_ms(90000)
    assert len(rig.queue) == 1 and rig.queue.acked == []
    assert rig.d.unauth > 0


def test_stats_name_the_path():
    rig = Rig(frames_=[(ALERT_START, 1)])
    rig.run.until(lambda: not len(rig.queue))
    s = rig.d.stats()
    assert s["rx"] == PRIMARY and s["answers_primary"] == 1 and s["switches"] == 0


# -- the frames ------------------------------------------------------------------------
def test_rx_and_receiver_down_in_the_frame_schema():
    base = {frames.K_V: 1, frames.K_SEQ: 5, frames.K_TIME: 0, frames.K_UP: 0, frames.K_BATT: 50}
    st = dict(base)
    st.update({frames.K_T: frames.STATUS, frames.K_ST: frames.ST_RECEIVER_DOWN, frames.K_RX: 0})
    frames.check_fields(st)
    hb = dict(base)
    hb.update({frames.K_T: frames.HEARTBEAT, frames.K_HB: 1, frames.K_RX: 1})
    frames.check_fields(hb)
    hb[frames.K_RX] = 2
    assert raises(frames.FrameError, frames.check_fields, hb).code == "bad-field"
    hb[frames.K_RX] = -1
    assert raises(frames.FrameError, frames.check_fields, hb).code == "bad-field"
    loc = dict(base)
    del loc[frames.K_BATT]
    loc.update({frames.K_T: frames.LOCATION, frames.K_SID: 1, frames.K_LOC: bytes(13),
                frames.K_PREV: bytes(8), frames.K_RX: 0})
    assert raises(frames.FrameError, frames.check_fields, loc).code == "bad-field"  # not in location
    st[35] = 1  # a key of the high range nobody assigned here
    assert raises(frames.FrameError, frames.check_fields, st).code == "bad-field"


def test_a_signed_frame_with_rx_verifies():
    key = ed25519.SigningKey(bytes(range(32)))
    s = frames.FrameSigner(b"\x00" * 7 + b"\xa7", key)
    wire = s.sign({frames.K_T: frames.STATUS, frames.K_SEQ: 9, frames.K_TIME: 1, frames.K_UP: 2,
                   frames.K_BATT: 80, frames.K_ST: frames.ST_RECEIVER_DOWN, frames.K_RX: 0})
    _kid, fields, _ = frames.verify(wire, key.public_key)
    assert fields[frames.K_RX] == 0 and fields[frames.K_ST] == 9


# -- the configuration -----------------------------------------------------------------
KEY_HEX = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"  # RFC 8032 test 1


def _cfg(**extra):
    c = {"device_id": "00000000000000a7", "receiver": "https://a.example", "apn": "internet",
         "ca_cert": "ca.pem", "centre_key": KEY_HEX}
    c.update(extra)
    return c


def test_config_secondary_defaults_and_settings():
    cfg = config.validate(_cfg())
    assert cfg["secondary"] is None and "secondary" not in config.modem_settings(cfg)
    assert cfg["delivery"]["secondary_after_s"] == 60 and cfg["delivery"]["probe_s"] == 300
    cfg = config.validate(_cfg(secondary_receiver="https://b.example:8443", secondary_ca_cert="ca2.pem",
                               secondary_centre_key=KEY_HEX,
                               delivery={"secondary_after_s": 20, "probe_s": 60}))
    s = config.modem_settings(cfg)
    assert s["secondary"] == {"host": "b.example", "port": 8443, "tls": True, "ca_cert": "ca2.pem"}
    assert s["secondary_after_s"] == 20 and s["probe_s"] == 60
    assert config.secondary_refusal(cfg) is None


def test_config_secondary_rules():
    b = "https://b.example"
    cases = [
        (_cfg(secondary_ca_cert="ca2.pem"), "secondary_ca_cert", "range"),  # without a receiver
        (_cfg(secondary_centre_key=KEY_HEX), "secondary_centre_key", "range"),
        (_cfg(secondary_receiver="ftp://b"), "secondary_receiver", "type"),
        (_cfg(secondary_receiver="https://b.example/x"), "secondary_receiver", "range"),
        (_cfg(secondary_receiver=b, secondary_centre_key="zz"), "secondary_centre_key", "type"),
        (_cfg(secondary_receiver=b, secondary_ca_cert="../ca"), "secondary_ca_cert", "range"),
        (_cfg(delivery={"secondary_after_s": 5}), "delivery.secondary_after_s", "range"),
        (_cfg(delivery={"probe_s": 10}), "delivery.probe_s", "range"),
        (_cfg(delivery={"probe_s": "60"}), "delivery.probe_s", "type"),
    ]
    for obj, field, reason in cases:
        e = raises(config.ConfigError, config.validate, obj)
        assert (e.field, e.reason) == (field, reason), (field, e.field, e.reason)


def test_config_secondary_refusals():
    cfg = config.validate(_cfg(secondary_receiver="https://b.example", secondary_ca_cert="ca2.pem"))
    assert config.secondary_refusal(cfg).field == "secondary_centre_key"
    e = raises(config.ConfigError, config.validate,
               _cfg(secondary_receiver="https://b.example", secondary_ca_cert="ca2.pem"), None, True)
    assert e.field == "secondary_centre_key"
    cfg = config.validate(_cfg(secondary_receiver="http://b.example:80", secondary_centre_key=KEY_HEX))
    assert config.secondary_refusal(cfg).reason == "insecure"
    cfg = config.validate(_cfg(secondary_receiver="https://b.example", secondary_centre_key=KEY_HEX))
    assert config.secondary_refusal(cfg).field == "secondary_ca_cert"
