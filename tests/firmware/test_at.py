# The AT engine (sotto.modem.at) against recorded dialogues and hostile byte
# streams. Runs under CPython and in the MicroPython VM.
from atfake import Clock, FakeUart, Transcript, drive, load_transcript
from fwtest import raises
from sotto.modem import at
from sotto.modem.at import AtEngine, ModemError


def engine_for(transcript_name=None, steps=None):
    clock = Clock()
    t = Transcript(steps if steps is not None else load_transcript(transcript_name))
    uart = FakeUart(clock, t)
    t.start(uart)
    return clock, uart, t, AtEngine(uart, clock)


def bare_engine():
    """A clock, a silent UART the test feeds, and an AT engine over them."""
    clock = Clock()
    uart = FakeUart(clock)
    return clock, uart, AtEngine(uart, clock)


def test_info_line_collected_for_its_command():
    # manual_csq.at: AT+CSQ -> +CSQ: 22,0 / OK
    clock, uart, t, eng = engine_for("manual_csq.at")
    lines = drive(clock, eng.cmd("AT+CSQ", expect=b"+CSQ:"))
    assert lines == [b"+CSQ: 22,0"]
    assert at.int_field(lines[0], b"+CSQ:", 0) == 22
    assert at.int_field(lines[0], b"+CSQ:", 1) == 0
    assert t.done(), t.errors


def test_cme_error_becomes_modem_error_with_code():
    clock, uart, t, eng = engine_for("manual_cpin_nosim.at")
    e = raises(ModemError, drive, clock, eng.cmd("AT+CPIN?", expect=b"+CPIN:"))
    assert e.kind == at.CME and e.code == 10
    assert e.command == b"AT+CPIN?"
    assert str(e) == "CME 10 (AT+CPIN?)"
    assert t.done()


def test_cms_and_plain_error():
    clock, uart, eng = bare_engine()
    uart.feed(b"\r\n+CMS ERROR: 331\r\n", 20)
    e = raises(ModemError, drive, clock, eng.cmd("AT+CMGS=17"))
    assert (e.kind, e.code) == (at.CMS, 331)
    uart.feed(b"\r\nERROR\r\n", 20)
    e = raises(ModemError, drive, clock, eng.cmd("AT+CCHSTART"))
    assert (e.kind, e.code) == (at.ERROR, 0)
    uart.feed(b"\r\n+CME ERROR: SIM not inserted\r\n", 20)  # verbose mode (AT+CMEE=2)
    e = raises(ModemError, drive, clock, eng.cmd("AT+CPIN?"))
    assert e.kind == at.CME and e.code == -1
    assert eng.errors == 3


def test_urc_in_the_middle_of_a_response_is_dispatched_not_collected():
    clock, uart, eng = bare_engine()
    seen = []
    eng.on(b"+CMTI:", seen.append)
    eng.on(b"+CEREG:", seen.append)
    uart.feed(b'\r\n+CSQ: 17,99\r\n\r\n+CMTI: "SM",3\r\n\r\n+CEREG: 2\r\n\r\nOK\r\n', 10)
    lines = drive(clock, eng.cmd("AT+CSQ", expect=b"+CSQ:"))
    assert lines == [b"+CSQ: 17,99"]
    assert seen == [b'+CMTI: "SM",3', b"+CEREG: 2"]
    assert eng.urcs == 2


def test_bytes_arriving_one_at_a_time():
    clock, uart, eng = bare_engine()
    seen = []
    eng.on(b"+CGEV:", seen.append)
    answer = b"\r\n+CGEV: ME PDN ACT 1\r\n\r\n+CREG: 1,5\r\n\r\nOK\r\n"
    for i in range(len(answer)):
        uart.feed(answer[i:i + 1], 5 + i)
    lines = drive(clock, eng.cmd("AT+CREG?", expect=b"+CREG:"))
    assert lines == [b"+CREG: 1,5"]
    assert seen == [b"+CGEV: ME PDN ACT 1"]


def test_echo_is_tolerated():
    clock, uart, eng = bare_engine()
    uart.feed(b"AT+CSQ\r\r\n+CSQ: 9,99\r\n\r\nOK\r\n", 5)  # ATE1: the command comes back first
    assert drive(clock, eng.cmd("AT+CSQ", expect=b"+CSQ:")) == [b"+CSQ: 9,99"]
    assert eng.unknown == 0


def test_garbage_and_partial_lines_are_dropped_and_counted():
    clock, uart, eng = bare_engine()
    seen = []
    eng.on(b"+CEREG:", seen.append)
    uart.feed(b"\x00\xff\xfe\x80junk\x01\r\n", 5)  # noise with a control byte inside
    uart.feed(b"\xff\xff+CEREG: 1\r\n", 6)  # noise glued in front of a real URC
    uart.feed(b"\r\n+CSQ: 5,\x9999\r\n", 7)  # a corrupted answer line: never trusted
    uart.feed(b"\r\nOK\r\n", 8)
    lines = drive(clock, eng.cmd("AT+CSQ", expect=b"+CSQ:"))
    assert lines == []
    assert seen == [b"+CEREG: 1"]
    assert eng.garbage == 3


def test_overlong_line_is_dropped_without_losing_the_next():
    clock = Clock()
    uart = FakeUart(clock)
    eng = AtEngine(uart, clock, line_max=64)
    uart.feed(b"\r\n" + b"A" * 500 + b"\r\n\r\nOK\r\n", 5)
    assert drive(clock, eng.cmd("AT")) == []
    assert eng.overflows == 1


def test_timeout_raises_and_a_late_answer_is_not_given_to_the_next_command():
    clock, uart, eng = bare_engine()
    e = raises(ModemError, drive, clock, eng.cmd("AT+CFUN=0", timeout_ms=1000))
    assert e.kind == at.TIMEOUT and eng.timeouts == 1
    uart.feed(b"\r\nOK\r\n", 50)  # the late OK of AT+CFUN=0 ...

    def respond(u, data):
        if data == b"\r":
            u.feed(b"\r\nERROR\r\n", 20)  # ... must not answer the next command

    uart.responder = respond
    e = raises(ModemError, drive, clock, eng.cmd("AT+CCHSTART"))
    assert e.kind == at.ERROR


def test_outcome_line_after_ok_completes_the_command():
    clock, uart, eng = bare_engine()
    uart.feed(b"\r\nOK\r\n", 10)
    uart.feed(b"\r\n+CCHOPEN: 0,0\r\n", 700)  # the TLS handshake takes a while
    start = clock.now_ms
    lines = drive(clock, eng.cmd('AT+CCHOPEN=0,"r.example",443,2', 30000, until=b"+CCHOPEN:"))
    assert lines == [b"+CCHOPEN: 0,0"]
    assert clock.now_ms - start >= 700
    # ... and before OK (the manual allows both orders for AT+CCHSTART)
    uart.feed(b"\r\n+CCHSTART: 0\r\n\r\nOK\r\n", 10)
    assert drive(clock, eng.cmd("AT+CCHSTART", until=b"+CCHSTART:")) == [b"+CCHSTART: 0"]


def test_ok_without_its_outcome_line_times_out():
    clock, uart, eng = bare_engine()
    uart.feed(b"\r\nOK\r\n", 10)
    e = raises(ModemError, drive, clock, eng.cmd("AT+CCHOPEN=0", 2000, until=b"+CCHOPEN:"))
    assert e.kind == at.TIMEOUT


def test_prompt_then_pdu_and_ctrl_z():
    clock, uart, t, eng = engine_for("manual_cmgs_pdu.at")
    drive(clock, eng.cmd("AT+CMGF=0"))
    pdu_hex = b"079194710167000011000781214365F700F6AA0568656C6C6F"
    lines = drive(clock, eng.cmd("AT+CMGS=17", 60000, expect=b"+CMGS:", data=(pdu_hex, b"\x1a")))
    assert lines == [b"+CMGS: 46"]
    assert t.done(), t.errors


def test_prompt_followed_by_noise_is_still_a_prompt():
    clock, uart, eng = bare_engine()

    def respond(u, data):
        if data == b"\r":
            u.feed(b"\r\n>\xf3\x85\x00", 5)  # line noise right behind the prompt
        elif data == b"hello":
            u.feed(b"\r\nOK\r\n", 5)

    uart.responder = respond
    drive(clock, eng.cmd("AT+CCHSEND=0,5", 1000, data=b"hello"))
    assert uart.written.endswith(b"\rhello")
    # but a '>' inside a text line is no prompt
    uart.responder = None
    uart.feed(b"\r\n>abc", 5)
    e = raises(ModemError, drive, clock, eng.cmd("AT+CCHSEND=0,5", 1000, data=b"world"))
    assert e.kind == at.NO_PROMPT and b"world" not in uart.written


def test_no_prompt_is_an_error():
    clock, uart, eng = bare_engine()
    e = raises(ModemError, drive, clock, eng.cmd("AT+CCHSEND=0,5", 1000, data=b"hello"))
    assert e.kind == at.NO_PROMPT
    assert b"hello" not in uart.written  # nothing is sent without the prompt

    def refuse(u, data):
        if data == b"\r":
            u.feed(b"\r\n+CME ERROR: 4\r\n", 5)  # the module refuses instead of prompting

    uart.responder = refuse
    e = raises(ModemError, drive, clock, eng.cmd("AT+CCHSEND=0,5", 1000, data=b"hello"))
    assert (e.kind, e.code) == (at.CME, 4)


def test_manual_ssl_example_with_raw_data_is_binary_safe():
    clock, uart, t, eng = engine_for("manual_ssl_client.at")
    received = bytearray()
    closed = []

    def header(line):
        assert line == b"+CCHRECV: DATA,0,47"
        return at.int_field(line, b"+CCHRECV: DATA,", 1), received.extend

    eng.on_data(b"+CCHRECV: DATA,", header)
    eng.on(b"+CCH_PEER_CLOSED:", closed.append)
    drive(clock, eng.cmd('AT+CSSLCFG="sslversion",0,4'))
    drive(clock, eng.cmd('AT+CSSLCFG="authmode",0,0'))
    drive(clock, eng.cmd("AT+CCHSET=1"))
    assert drive(clock, eng.cmd("AT+CCHSTART", until=b"+CCHSTART:")) == [b"+CCHSTART: 0"]
    drive(clock, eng.cmd("AT+CCHSSLCFG=0,0"))
    lines = drive(clock, eng.cmd('AT+CCHOPEN=0,"www.baidu.com",443,2', until=b"+CCHOPEN:"))
    assert lines == [b"+CCHOPEN: 0,0"]
    request = b"GET / HTTP/1.1\r\nHost: www.baidu.com\r\n\r\n"
    drive(clock, eng.cmd("AT+CCHSEND=0,%d" % len(request), data=request, until=b"+CCHSEND:"))
    drive(clock, eng.wait(100))
    assert bytes(received) == b"HTTP/1.1 200 OK\r\n\r\nOK\r\n+CCH_PEER_CLOSED: 0\r\nxyz"
    assert closed == []  # the URC-looking text inside the data was data
    assert drive(clock, eng.cmd("AT+CCHCLOSE=0", until=b"+CCHCLOSE:")) == [b"+CCHCLOSE: 0,0"]
    assert drive(clock, eng.cmd("AT+CCHSTOP", until=b"+CCHSTOP:")) == [b"+CCHSTOP: 0"]
    assert t.done(), t.errors


def test_boot_urcs_go_to_their_handlers():
    clock, uart, t, eng = engine_for("manual_boot_urcs.at")
    seen = []
    for prefix in (b"*ATREADY", b"+CPIN:", b"SMS DONE", b"PB DONE"):
        eng.on(prefix, seen.append)
    drive(clock, eng.wait(10))
    assert seen == [b"*ATREADY: 1", b"+CPIN: READY", b"SMS DONE", b"PB DONE"]
    drive(clock, eng.cmd("AT"))
    assert t.done()


def test_a_burst_of_urcs_during_a_command():
    clock, uart, eng = bare_engine()
    seen = []
    eng.on(b"+CEREG:", seen.append)
    burst = b"".join(b"\r\n+CEREG: %d\r\n" % (i % 6) for i in range(200))
    uart.feed(burst + b"\r\n+CSQ: 31,99\r\n\r\nOK\r\n", 5)
    assert drive(clock, eng.cmd("AT+CSQ", expect=b"+CSQ:")) == [b"+CSQ: 31,99"]
    assert len(seen) == 200


def test_one_command_in_flight():
    from sotto.sched import Scheduler

    sched = Scheduler()
    order = []

    def respond(u, data):
        if data == b"\r":
            order.append(bytes(u.written).split(b"\r")[-2])
            u.feed(b"\r\nOK\r\n", 100)

    uart = FakeUart(sched, respond)
    eng = AtEngine(uart, sched)
    results = []

    def task(cmd):
        def run():
            yield from eng.cmd(cmd)
            results.append((cmd, sched.now_ms))
        return run

    sched.spawn("a", task("AT+A"))
    sched.spawn("b", task("AT+B"))
    t = 0
    while len(results) < 2 and t < 5000:
        t += sched.step(t) or 1
    assert order == [b"AT+A", b"AT+B"]  # B was written only after A's answer
    assert results[0][0] == "AT+A" and results[1][1] >= results[0][1] + 100


def test_a_raising_urc_handler_does_not_break_the_command():
    clock, uart, eng = bare_engine()

    def bad(line):
        raise ValueError("boom")

    eng.on(b"+CMTI:", bad)
    uart.feed(b'\r\n+CMTI: "SM",x\r\n\r\nOK\r\n', 5)
    assert drive(clock, eng.cmd("AT")) == []


def test_field_helpers():
    assert at.fields(b'+CMTI: "SM", 3', b"+CMTI:") == [b'"SM"', b"3"]
    assert at.int_field(b"+CEREG: 1,5", b"+CEREG:", 1) == 5
    assert at.int_field(b"+CEREG: 1", b"+CEREG:", 1) == -1
    assert at.int_field(b"+CSQ: x,1", b"+CSQ:", 0, 99) == 99
