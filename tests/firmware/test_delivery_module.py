# Delivery through the real SIMCom driver against a module whose data path
# behaves as the A76XX AT Command Manual V1.09 describes (cchfake.CchModule):
# answers over 2 KB, servers that close connections, stale events, the network
# stopping the SSL service, failure URCs, CCHSTART's network failure (issue 19).
# Runs under CPython and in the MicroPython VM.
from cchfake import CchModule
from deliveryfake import HEARTBEAT, LOCATION, FakeQueue, FakeServer, frame, opener, seeded_random
from sotto.modem.at import AtEngine
from sotto.modem.delivery import Delivery
from sotto.modem.simcom import Simcom
from sotto.sched import Scheduler
from sotto.ticks import ticks_add, ticks_diff


class Rig:
    def __init__(self, frames=((LOCATION, 1), (LOCATION, 2))):
        self.clock = Scheduler()
        self.queue = FakeQueue()
        self.server = FakeServer(self.queue)
        self.module = CchModule(self.clock, self.server)
        self.modem = Simcom(AtEngine(self.module.uart, self.clock), pwrkey=self.module.pwrkey,
                            apn="internet")
        self.d = Delivery(self.modem, self.queue, self.clock, "receiver.example", 443,
                          sms_number=None, random_bytes=seeded_random(), alert_live=lambda: True,
                          opener=opener())
        self.task = self.d.task()
        for ftype, seq in frames:
            self.push(ftype, seq)

    def push(self, ftype, seq):
        self.queue.push(frame(ftype, seq), ftype, seq)

    def until(self, cond, limit_ms=120000):
        start = self.clock.now_ms
        while not cond():
            self.module._tick()
            wait = next(self.task) or 1
            self.clock.now_ms = ticks_add(self.clock.now_ms, wait)
            if ticks_diff(self.clock.now_ms, start) > limit_ms:
                raise AssertionError("not done after %d ms" % limit_ms)
        return ticks_diff(self.clock.now_ms, start)

    def delivered(self):
        return lambda: not len(self.queue)

    def run_ms(self, ms):
        end = ticks_add(self.clock.now_ms, ms)
        self.until(lambda: ticks_diff(self.clock.now_ms, end) >= 0, ms + 1000)


def padded(size):
    def override(answer):
        answer["pad"] = "x" * size  # the answer's map may carry more than the results
        return answer
    return override


def test_answer_over_2kb_is_read_whole():
    rig = Rig()
    rig.server.answer_override = padded(3000)
    rig.until(rig.delivered())
    assert rig.queue.acked == [1, 2]
    assert len(rig.server.requests) == 1 and rig.d.failed == 0  # not re-posted after a stall
    assert rig.module.reads >= 2


def test_server_closing_after_each_answer_costs_no_attempt():
    rig = Rig()
    rig.server.close_after = True  # "Connection: close", then +CCH_PEER_CLOSED
    rig.until(rig.delivered())
    rig.push(LOCATION, 3)
    rig.until(rig.delivered())
    assert rig.queue.acked == [1, 2, 3]
    assert rig.d.failed == 0 and rig.module.opens == 2


def test_server_closing_an_idle_connection_costs_no_attempt():
    rig = Rig()
    rig.until(rig.delivered())
    rig.module.peer_close(3000)  # the server's idle timeout, shorter than our linger
    rig.run_ms(5000)
    rig.push(HEARTBEAT, 3)
    rig.until(rig.delivered())
    assert rig.queue.acked == [1, 2, 3] and rig.d.failed == 0 and rig.module.opens == 2


def test_an_event_for_data_already_read_does_not_abort_the_next_post():
    rig = Rig()
    rig.module.stale_event = True
    rig.until(rig.delivered())
    rig.push(LOCATION, 3)
    rig.until(rig.delivered())
    assert rig.queue.acked == [1, 2, 3] and rig.d.failed == 0
    assert rig.module.empty_reads == 1 and len(rig.server.requests) == 2


def test_network_stopping_the_ssl_service_costs_no_attempt():
    rig = Rig()
    rig.until(rig.delivered())
    rig.module.network_stop(2000)
    rig.run_ms(4000)
    rig.push(LOCATION, 3)
    rig.until(rig.delivered())
    assert rig.queue.acked == [1, 2, 3] and rig.d.failed == 0
    assert rig.module.commands.count("AT+CCHSTART") == 2 and rig.modem.cch_stops == 1


def test_send_failure_urc_ends_the_wait_at_once():
    rig = Rig()
    real = rig.module.server

    def lost(request):
        rig.module.urc("+CCHSEND: 0,18", 500)  # 19.3.1: 18 "Send data timeout"
        rig.module.server = real
        return None

    rig.module.server = lost
    took = rig.until(lambda: rig.d.failed == 1, 30000)
    assert took < 5000  # not the 20 s answer timeout
    rig.until(rig.delivered())
    assert rig.queue.acked == [1, 2]


def test_cchstart_network_failure_backs_off_without_power_cycles():
    rig = Rig()
    rig.module.start_error = 9
    rig.until(lambda: rig.d.failed >= 2, 60000)
    rig.module.start_error = 0
    rig.until(rig.delivered())
    assert rig.modem.power_cycles == 0 and rig.modem.cfun_resets == 0
    assert "AT+CCHSTOP" not in rig.module.commands
