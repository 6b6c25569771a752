# Battery and heartbeats: the charge curve, status frames at low / critical /
# reserve (once each, re-armed after a charge), a transmit sag that is not an
# empty battery, heartbeats with no location, reserve mode, the tick wrap.
from sotto import frames
from sotto.power import CURVE, SAMPLE_MS, Power, percent
from sotto.ticks import TICKS_PERIOD, ticks_add

CFG = {"battery": {"low_pct": 20, "critical_pct": 10, "reserve_pct": 5}, "heartbeat_every_s": 60}


class Rig:
    def __init__(self, mv=4000, start=0, cfg=CFG):
        self.mv = mv
        self.sent = []  # (now_ms, ftype, fields)
        self.t = start
        self.p = Power(cfg, lambda: self.mv, self.emit, start)

    def emit(self, now_ms, ftype, fields):
        self.sent.append((now_ms, ftype, fields))

    def run(self, ms):
        end = ticks_add(self.t, ms)
        while True:
            wait = self.p.step(self.t)
            assert 0 < wait <= 60 * 1000
            nxt = ticks_add(self.t, wait)
            if ((end - nxt) & (TICKS_PERIOD - 1)) >= TICKS_PERIOD // 2 or nxt == end:
                self.t = end
                self.p.step(self.t)
                return
            self.t = nxt

    def status(self):
        return [f[frames.K_ST] for _, t, f in self.sent if t == frames.STATUS]

    def heartbeats(self):
        return [(n, f) for n, t, f in self.sent if t == frames.HEARTBEAT]


def test_charge_curve():
    assert percent(3000) == 0 and percent(CURVE[0][0]) == 0
    assert percent(4200) == 100 and percent(CURVE[-1][0]) == 100
    assert percent(3700) == 20 and percent(3600) == 10 and percent(3650) == 15
    last = -1
    for mv in range(3200, 4300, 5):
        p = percent(mv)
        assert 0 <= p <= 100 and p >= last  # never goes down as the voltage rises
        last = p


def test_thresholds_send_one_status_each():
    r = Rig(4000)
    r.run(30000)
    assert r.status() == []
    r.mv = 3690  # 19 %
    r.run(30000)
    r.mv = 3680
    r.run(30000)
    assert r.status() == [frames.ST_BATT_LOW]
    r.mv = 3580  # 9 %
    r.run(30000)
    assert r.status() == [frames.ST_BATT_LOW, frames.ST_BATT_CRITICAL]
    st = [f for _, t, f in r.sent if t == frames.STATUS]
    assert st[-1][frames.K_BATT] == 9 and frames.K_LOC not in st[-1]
    r.mv = 3480  # 4 %: reserve
    r.run(30000)
    assert r.status()[-1] == frames.ST_BATT_RESERVE and r.p.reserve
    # charged: the thresholds re-arm only once clearly above them
    r.mv = 3900
    r.run(30000)
    assert not r.p.reserve
    r.mv = 3690
    r.run(30000)
    assert r.status()[-1] == frames.ST_BATT_LOW and len(r.status()) == 4


def test_a_transmit_sag_is_not_an_empty_battery():
    r = Rig(3900)
    r.run(SAMPLE_MS * 3)
    seen = []
    orig = r.p._battery_mv

    def sagging():
        # every other sample falls inside a 2 A burst: 300 mV down
        seen.append(1)
        return orig() - (300 if len(seen) % 2 else 0)

    r.p._battery_mv = sagging
    r.run(SAMPLE_MS * 20)
    assert r.status() == [] and r.p.pct >= 60
    r.p._battery_mv = orig
    r.mv = 3450  # a real drop stays: reported within two samples
    r.run(SAMPLE_MS * 2 + 1)
    assert r.status() == [frames.ST_BATT_RESERVE]


def test_heartbeats_carry_battery_and_interval_but_no_location():
    r = Rig(4000)
    r.run(60 * 1000 * 5 + 10)
    hb = r.heartbeats()
    assert [n for n, _ in hb] == [60000 * i for i in range(1, 6)]
    for _, f in hb:
        assert sorted(f) == sorted([frames.K_BATT, frames.K_HB])  # no location, ever
        assert f[frames.K_HB] == 60 and f[frames.K_BATT] == percent(4000)


def test_reserve_and_minimal_mode_suspend_heartbeats():
    r = Rig(3450)
    r.run(60 * 1000 * 3 + 10)
    assert r.heartbeats() == [] and r.status() == [frames.ST_BATT_RESERVE]
    r = Rig(4000)
    r.p.enabled = False
    r.run(60 * 1000 * 3 + 10)
    assert r.heartbeats() == []


def test_heartbeats_keep_their_interval_across_the_tick_wrap():
    r = Rig(4000, start=TICKS_PERIOD - 90 * 1000)
    r.run(60 * 1000 * 4 + 10)
    hb = r.heartbeats()
    assert len(hb) == 4
    gaps = [((b - a) & (TICKS_PERIOD - 1)) for (a, _), (b, _) in zip(hb, hb[1:])]
    assert gaps == [60000, 60000, 60000]
