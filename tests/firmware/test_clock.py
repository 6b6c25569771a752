# Frame time: GNSS time first, then the monitoring centre's, else 0; both
# carried forward by ticks, across the tick wrap; uptime that keeps counting.
from sotto.build import BUILD_UTC_S
from sotto.clock import GNSS_NET_BOUND_S, MIN_EPOCH_S, NET_STEP_MAX_S, Clock
from sotto.ticks import TICKS_PERIOD, ticks_add

T2026 = 1795000000


class Gnss:
    def __init__(self):
        self.t = None

    def utc_s(self, now_ms):
        return self.t


def test_no_source_is_zero_and_network_time_runs_on():
    c = Clock(None, 0)
    assert c.utc_s(5000) == 0
    c.set_network(T2026, 5000)
    assert c.utc_s(5000) == T2026
    assert c.utc_s(5999) == T2026 and c.utc_s(6000) == T2026 + 1
    assert c.utc_s(5000 + 3600 * 1000 + 500) == T2026 + 3600


def test_gnss_time_wins_over_a_network_time_that_agrees():
    g = Gnss()
    c = Clock(g, 0)
    c.set_network(T2026, 0)
    assert c.utc_s(1000) == T2026 + 1
    g.t = T2026 + 30  # the receiver's second is the better one, within the bound
    assert c.utc_s(1000) == T2026 + 30
    g.t = None  # GNSS lost: back to the centre's time
    assert c.utc_s(2000) == T2026 + 2


def test_network_time_wins_when_gnss_disagrees_by_more_than_the_bound():
    # e.g. a receiver after a week roll-over it does not know, beyond the build
    # date's reach, or a cold start reporting a stale date
    g = Gnss()
    c = Clock(g, 0)
    c.set_network(T2026, 0)
    g.t = T2026 + GNSS_NET_BOUND_S + 1
    assert c.utc_s(0) == T2026 and c.gnss_rejected == 1
    g.t = T2026 - 3600  # an hour back: a stale date
    assert c.utc_s(0) == T2026 and c.gnss_rejected == 2
    g.t = T2026 + GNSS_NET_BOUND_S
    assert c.utc_s(0) == T2026 + GNSS_NET_BOUND_S  # at the bound: still the receiver's


def test_gnss_time_before_the_build_date_is_not_a_time():
    g = Gnss()
    c = Clock(g, 0)
    g.t = BUILD_UTC_S - 1
    assert c.utc_s(0) == 0 and c.gnss_too_early == 1  # no source: unknown, not 2024
    c.set_network(T2026, 0)
    assert c.utc_s(0) == T2026
    assert MIN_EPOCH_S == BUILD_UTC_S  # the same floor for the centre's time


def test_implausible_network_time_is_ignored():
    c = Clock(None, 0)
    c.set_network(0, 100)
    c.set_network(MIN_EPOCH_S - 1, 100)
    assert c.utc_s(200) == 0 and c.rejected == 2
    c.set_network(T2026, 100)
    c.set_network(12345, 200)
    assert c.utc_s(1100) == T2026 + 1


def test_network_time_survives_weeks_of_tick_wraps():
    # the tick wraps every 2^30 ms (12.4 days); read the clock every 10 minutes for 30 days
    c = Clock(None, 0)
    start = TICKS_PERIOD - 3000  # just before a wrap
    c.set_network(T2026, start)
    now = start
    step_ms = 600 * 1000
    for i in range(1, 30 * 144 + 1):
        now = ticks_add(now, step_ms)
        assert c.utc_s(now) == T2026 + i * 600
    assert c.uptime_ms(now) >= 0


def test_uptime_counts_past_the_wrap():
    start = TICKS_PERIOD - 1000
    c = Clock(None, start)
    assert c.uptime_ms(start) == 0
    now = start
    for _ in range(60 * 24):  # 60 days, read every hour (the tick wraps almost five times)
        now = ticks_add(now, 3600 * 1000 + 7)
        c.tick(now)
    expected = 60 * 24 * (3600 * 1000 + 7)
    assert c.uptime_ms(now) == expected
    assert c.uptime_ms(ticks_add(now, 1)) == expected + 1
    assert c.uptime_ms(now) == expected + 1  # a late reading of an older tick never runs it back


def test_an_answer_moves_a_known_network_time_by_one_bounded_step():
    c = Clock(None, 0)
    c.set_network(T2026, 0)  # unset: the first answer's time is taken whole
    assert c.utc_s(0) == T2026 and c.net_clamped == 0
    c.set_network(T2026 + NET_STEP_MAX_S, 0)  # at the bound: taken
    assert c.utc_s(0) == T2026 + NET_STEP_MAX_S and c.net_clamped == 0
    c.set_network(T2026 - 90 * 86400, 1000)  # three months back (a bad answer): one step only
    assert c.utc_s(1000) == T2026 + 1 and c.net_clamped == 1 and c.rejected == 0
    c.set_network(T2026 + 30 * 86400, 1000)  # a month ahead: one step at a time
    assert c.utc_s(1000) == T2026 + 1 + NET_STEP_MAX_S and c.net_clamped == 2
    for i in range(3):
        c.set_network(T2026 + 1 + 4 * NET_STEP_MAX_S, 1000)  # repeated answers converge step by step
    assert c.utc_s(1000) == T2026 + 1 + 4 * NET_STEP_MAX_S and c.net_clamped == 4
    c.set_network(T2026 + 1 + 4 * NET_STEP_MAX_S + 5, 1000)  # small corrections pass unclamped
    assert c.utc_s(1000) == T2026 + 6 + 4 * NET_STEP_MAX_S and c.net_clamped == 4


def test_the_step_bound_is_a_tunable_and_reanchor_is_unbounded():
    c = Clock(None, 0)
    c.net_step_max_s = 10
    c.set_network(T2026, 0)
    c.set_network(T2026 + 3600, 0)
    assert c.utc_s(0) == T2026 + 10 and c.net_clamped == 1
    c.reanchor(T2026 + 3600, 0)  # the simulator's virtual world time
    assert c.utc_s(0) == T2026 + 3600
    assert NET_STEP_MAX_S == 300 and Clock.net_step_max_s == NET_STEP_MAX_S
