# The delivery task's policy (sotto.modem.delivery) with a modem double:
# ordering, acknowledgement, rejects, backoff, the recovery ladder and the SMS
# fallback. Runs under CPython and in the MicroPython VM.
import hashlib

from deliveryfake import (
    ALERT_START,
    AUDIO,
    HEARTBEAT,
    LOCATION,
    FakeModem,
    FakeQueue,
    FakeServer,
    Runner,
    frame,
    opener,
    reject_log,
    seeded_random,
    sign_answer,
)
from sotto.modem import at as _at
from sotto.modem.at import ModemError
from sotto.modem.delivery import Delivery
from sotto.modem.fallback import frame_info
from sotto.sched import Scheduler
from sotto.ticks import TICKS_PERIOD, ticks_diff


class Rig:
    def __init__(self, live=False, sms_number="+447700900999", frames=(), start_ms=0):
        self.clock = Scheduler()
        self.clock.now_ms = start_ms
        self.queue = FakeQueue(frames)
        self.server = FakeServer(self.queue)
        self.modem = FakeModem(self.clock, self.server)
        self.live = [live]
        self.times = []
        self.closed = []
        self.rejected = []
        self.received = []  # sids of alert-starts the centre stored
        self.commands = []
        self.rejects = reject_log()
        self.d = Delivery(self.modem, self.queue, self.clock, "receiver.example", 443,
                          sms_number=sms_number, random_bytes=seeded_random(),
                          alert_live=lambda: self.live[0], rejects=self.rejects,
                          on_time=self.times.append, on_closed=self.closed.append,
                          on_rejected=lambda seq, reason: self.rejected.append((seq, reason)),
                          opener=opener(), on_start_acked=self.received.append,
                          on_commands=self.commands.append)
        self.run = Runner(self.clock, self.d, self.modem)

    def push(self, ftype, seq, **kw):
        self.queue.add(ftype, seq, **kw)

    def delivered(self):
        return lambda: not len(self.queue)


def test_frame_info():
    assert frame_info(frame(ALERT_START, 9)) == (ALERT_START, 9, True)
    assert frame_info(frame(HEARTBEAT, 3)) == (HEARTBEAT, 3, False)
    assert frame_info(frame(AUDIO, 4))[0] == AUDIO
    assert frame_info(b"\xd2\x84\xff") == (0, None, False)  # unreadable: never a crash


def test_a_corrupt_frame_is_sent_rejected_and_logged_not_a_crash_loop():
    rig = Rig()
    rig.queue.push(b"\xd2\x84\x41", LOCATION, 2)  # damaged: delivery cannot even read its type
    requests = []

    def receiver(request):
        requests.append(request)
        req = hashlib.sha256(request[request.find(b"\r\n\r\n") + 4:]).digest()
        body = sign_answer({"req": req, "results": [{"status": "rejected", "device": None, "seq": None,
                                                     "reason": "malformed-cbor"}], "time": 1790000000})
        return rig.server._http(200, body)

    rig.modem.server = receiver
    rig.run.until(rig.delivered(), 60000)
    assert requests[0].endswith(b"\r\n\r\n\xd2\x84\x41")
    assert rig.rejected == [(2, "malformed-cbor")] and rig.queue.acked == [2]


def test_alert_start_goes_alone_and_first_then_batches():
    rig = Rig(frames=[(HEARTBEAT, 1), (ALERT_START, 2), (LOCATION, 3), (AUDIO, 4), (LOCATION, 5)])
    rig.run.until(rig.delivered())
    assert rig.server.requests == [[2], [1, 3, 4, 5]]
    assert sorted(rig.queue.acked) == [1, 2, 3, 4, 5]
    assert rig.d.posts == 2 and rig.d.acked == 5
    assert rig.times == [1790000000, 1790000000]  # the receiver's clock, to the device


def test_warm_modem_on_idle():
    rig = Rig()
    rig.run.for_ms(5000)
    assert rig.modem.names()[:5] == ["start", "check_sim", "signal", "registration", "start_data"]
    assert not rig.modem.connected  # no connection without frames
    rig.push(ALERT_START, 1)
    t0 = rig.clock.now_ms
    rig.run.until(rig.delivered())
    assert rig.clock.now_ms - t0 < 1000  # open + post + answer from a warm modem


def test_duplicates_are_acknowledged_once_and_rejects_are_logged():
    rig = Rig(frames=[(LOCATION, 7), (LOCATION, 8), (LOCATION, 9)])
    rig.server.stored.add(8)  # the receiver has it already (an earlier answer was lost)
    rig.server.bad[9] = "bad-signature"
    rig.run.until(rig.delivered())
    assert sorted(rig.queue.acked) == [7, 8, 9]  # each once (FakeQueue checks)
    assert rig.d.acked == 2 and rig.d.duplicates == 1 and rig.d.rejected == 1
    assert rig.rejected == [(9, "bad-signature")]
    entries = rig.rejects.entries()
    assert [(s, r) for s, r, _w in entries] == [(9, "bad-signature")]
    assert entries[0][2] == frame(LOCATION, 9)  # the frame itself is kept for the log
    assert len(rig.server.requests) == 1  # the rejected frame is not retried


def test_an_answer_for_other_frames_acknowledges_nothing():
    rig = Rig(frames=[(LOCATION, 1), (LOCATION, 2)])

    def swap(answer):
        answer["results"][0]["seq"] = 2
        answer["results"][1]["seq"] = 1
        return answer

    rig.server.answer_override = swap
    rig.run.until(lambda: rig.d.failed >= 1, 30000)
    assert rig.queue.acked == [] and rig.d.bad_answers == 1
    rig.server.answer_override = None
    rig.run.until(rig.delivered())
    assert sorted(rig.queue.acked) == [1, 2] and rig.d.duplicates == 2


def test_wrong_number_of_results_acknowledges_nothing():
    rig = Rig(frames=[(LOCATION, 1), (LOCATION, 2)])

    def short(answer):
        answer["results"] = answer["results"][:1]
        return answer

    rig.server.answer_override = short
    rig.run.until(lambda: rig.d.failed >= 1, 30000)
    assert rig.queue.acked == []


def test_server_errors_back_off_exponentially_with_jitter():
    rig = Rig(frames=[(HEARTBEAT, 1)])
    rig.server.status = 503
    rig.run.until(lambda: len(rig.server.requests) >= 6, 600000)
    times = [t for t, n in rig.modem.calls if n == "send"]
    gaps = [times[i + 1] - times[i] for i in range(len(times) - 1)]
    # base 1 s doubling, each wait drawn from [d/2, d] (plus the request's own time)
    for i, gap in enumerate(gaps):
        d = 1000 << i
        assert d // 2 <= gap <= d + 1000, (i, gaps)
    assert gaps[-1] > 4 * gaps[0]
    assert rig.modem.cfun_resets == 0 and rig.modem.power_cycles == 0  # not the modem's fault
    rig.server.status = 200
    rig.run.until(rig.delivered())
    assert rig.queue.acked == [1]


def test_backoff_is_capped_shorter_during_an_alert():
    rig = Rig(live=True, sms_number=None, frames=[(ALERT_START, 1)])
    rig.server.status = 503
    rig.run.until(lambda: len(rig.server.requests) >= 12, 900000)
    times = [t for t, n in rig.modem.calls if n == "send"]
    assert max(times[i + 1] - times[i] for i in range(len(times) - 1)) <= 31000


def test_http_400_isolates_the_refused_frame():
    rig = Rig(frames=[(LOCATION, 1), (LOCATION, 2), (LOCATION, 3)])
    rig.server.status = 400
    rig.server.bad[2] = "malformed-cbor"
    served = []

    def by_frame(request):
        r = FakeServer.__call__(rig.server, request)
        served.append(rig.server.requests[-1])
        if len(rig.server.requests[-1]) == 1 and rig.server.requests[-1][0] != 2:
            rig.server.status = 200
            r = FakeServer.__call__(rig.server, request)
            rig.server.requests.pop()
            rig.server.status = 400
        return r

    rig.modem.server = by_frame
    rig.run.until(rig.delivered(), 120000)
    assert served[0] == [1, 2, 3]
    assert sorted(rig.queue.acked) == [1, 2, 3]
    assert rig.rejected == [(2, "malformed-cbor")]


def test_http_400_without_a_reason_keeps_the_frame():
    rig = Rig(frames=[(LOCATION, 1)])
    rig.server.status = 400  # e.g. a proxy's error page: not our receiver's verdict
    rig.run.until(lambda: len(rig.server.requests) >= 3, 120000)
    assert rig.queue.acked == [] and len(rig.queue) == 1 and rig.rejected == []


def test_lost_answer_is_retried_and_acknowledged_once():
    rig = Rig(frames=[(ALERT_START, 1)])
    rig.modem.drop_response = True  # the receiver stored it, the answer never came
    rig.run.until(rig.delivered(), 120000)
    assert rig.server.requests == [[1], [1]]
    assert rig.queue.acked == [1] and rig.d.duplicates == 1


def test_ladder_cfun_then_power_cycle_for_modem_errors():
    rig = Rig(frames=[(HEARTBEAT, 1)])
    err = ModemError(100, _at.CME, "AT+CCHSTART")
    rig.modem.fail["start_data"] = [err, err, err]
    rig.run.until(rig.delivered(), 600000)
    ladder = [n for n in rig.modem.names() if n in ("reset_function", "power_cycle")]
    # CFUN, then a power cycle, then the ladder starts again from the bottom
    assert ladder == ["reset_function", "power_cycle", "reset_function"]
    assert rig.queue.acked == [1]


def test_silent_modem_is_power_cycled_after_a_probe():
    rig = Rig(frames=[(HEARTBEAT, 1)])
    rig.modem.alive = False
    rig.run.until(rig.delivered(), 600000)
    names = rig.modem.names()
    assert "probe" in names and "power_cycle_hung" in names
    assert names.index("probe") < names.index("power_cycle_hung")
    assert "reset_function" not in names  # AT+CFUN cannot reach a silent module


def test_network_failures_escalate_slowly():
    rig = Rig(frames=[(HEARTBEAT, 1)])
    err = ModemError(9, _at.RESULT, "+CCHOPEN:")
    rig.modem.fail["open"] = [err] * 7
    rig.run.until(rig.delivered(), 3600000)
    names = rig.modem.names()
    assert rig.modem.cfun_resets == 1 and rig.modem.power_cycles == 1
    assert names.count("open") == 8
    assert names.index("reset_function") > [i for i, n in enumerate(names) if n == "open"][2]


def test_searching_network_is_polled_without_escalating():
    rig = Rig(frames=[(HEARTBEAT, 1)])
    rig.modem.registered = False
    rig.run.for_ms(50000)
    assert rig.modem.names().count("registration") >= 15
    assert rig.modem.cfun_resets == 0 and rig.modem.power_cycles == 0
    rig.modem.registered = True
    rig.run.until(rig.delivered(), 60000)


def test_sms_fallback_while_data_is_down_during_an_alert():
    rig = Rig(live=True, frames=[(ALERT_START, 1)])
    err = ModemError(9, _at.RESULT, "+CCHOPEN:")
    rig.modem.fail["open"] = [err] * 1000
    t0 = rig.clock.now_ms
    rig.run.until(lambda: len(rig.modem.sms) >= 1, 120000)
    t_first, number, data = rig.modem.sms[0]
    assert number == "+447700900999"
    assert data == frame(ALERT_START, 1)  # no location frame yet: the alert-start (it has one)
    assert 30000 <= t_first - t0 <= 60000
    rig.push(LOCATION, 2)
    rig.push(LOCATION, 3)
    rig.push(AUDIO, 4)
    rig.run.until(lambda: len(rig.modem.sms) >= 3, 300000)
    assert rig.modem.sms[1][2] == frame(LOCATION, 3)  # the newest location
    assert 55000 <= rig.modem.sms[2][0] - rig.modem.sms[1][0] <= 95000  # every minute or so
    assert len(rig.modem.sms[1][2]) <= 140
    assert rig.queue.acked == []  # an SMS is not an acknowledgement
    rig.modem.fail["open"] = []
    rig.run.until(rig.delivered(), 120000)
    sent = len(rig.modem.sms)
    rig.push(LOCATION, 5)
    rig.run.for_ms(200000)
    assert len(rig.modem.sms) == sent  # data is back: no more SMS


def test_no_sms_without_a_live_alert():
    rig = Rig(live=False, frames=[(HEARTBEAT, 1)])
    rig.modem.fail["open"] = [ModemError(9, _at.RESULT, "+CCHOPEN:")] * 1000
    rig.run.for_ms(300000)
    assert rig.modem.sms == []


def test_failed_sms_is_retried_sooner():
    rig = Rig(live=True, frames=[(ALERT_START, 1)])
    rig.modem.fail["open"] = [ModemError(9, _at.RESULT, "+CCHOPEN:")] * 1000
    rig.modem.fail["send_sms"] = [ModemError(331, _at.CMS, "AT+CMGS")] * 2
    rig.run.until(lambda: len(rig.modem.sms) >= 1, 200000)
    attempts = [t for t, n in rig.modem.calls if n == "send_sms"]
    assert len(attempts) == 3 and attempts[2] - attempts[0] < 60000
    assert rig.d.sms.failed == 2 and rig.d.sms.sent == 1


def test_closed_alerts_reach_the_device():
    rig = Rig(frames=[(LOCATION, 1)])
    rig.server.closed = [1]
    rig.run.until(rig.delivered())
    assert rig.closed == [[1]]


def test_idle_connection_is_closed_after_linger():
    rig = Rig(frames=[(HEARTBEAT, 1)])
    rig.run.until(rig.delivered())
    assert rig.modem.connected
    rig.run.for_ms(rig.d.linger_ms + 1000)
    assert not rig.modem.connected


def test_server_closing_the_connection_is_reopened():
    rig = Rig(frames=[(HEARTBEAT, 1)])
    rig.server.close_after = True
    rig.run.until(rig.delivered())
    rig.push(HEARTBEAT, 2)
    rig.run.until(rig.delivered())
    assert rig.modem.opens == 2 and rig.queue.acked == [1, 2]


def test_everything_holds_across_the_tick_wrap():
    # ticks wrap at 2**30 (about 12.4 days of uptime): start 40 s before it
    rig = Rig(live=True, frames=[(ALERT_START, 1)], start_ms=TICKS_PERIOD - 40000)
    rig.modem.fail["open"] = [ModemError(9, _at.RESULT, "+CCHOPEN:")] * 1000
    rig.run.until(lambda: len(rig.modem.sms) >= 2, 300000)
    assert rig.clock.now_ms < 200000  # we are past the wrap
    gap = ticks_diff(rig.modem.sms[1][0], rig.modem.sms[0][0])
    assert 55000 <= gap <= 95000
    rig.modem.fail["open"] = []
    rig.run.until(rig.delivered(), 120000)
    assert rig.queue.acked == [1]
