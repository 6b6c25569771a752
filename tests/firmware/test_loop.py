# The loop closed, on the whole device: the officer's wrist feels "received"
# once the centre has the alert-start, then "listening" when an operator has
# it; "not through" once when it could not be delivered in time; the centre's
# commands run once each and are confirmed by reply frames; a question is
# answered by presses (or times out). Runs under CPython and in the
# MicroPython VM.
from looprig import LoopRig
from sotto import cbor, frames
from sotto.commands import STATE


def motor_pulses(hal, since=0):
    """Lengths of the on-pulses the motor made since `since` ms."""
    out = []
    on_at = None
    for t, on in hal.motor:
        if t < since:
            continue
        if on:
            on_at = t
        elif on_at is not None:
            out.append(t - on_at)
            on_at = None
    return out


def test_the_wrist_feels_received_then_listening():
    r = LoopRig()
    t_trigger = r.t + 10 + 3000  # the hold is recognised after 3 s
    sid = r.sos()
    r.run_until(lambda: r.dev.feedback.got_through)
    assert r.received(frames.ALERT_START)[0][frames.K_SID] == sid
    r.server.cmds = [{"id": 1, "op": "listening", "sid": sid}]  # an operator acknowledged
    r.run_until(lambda: r.replies())
    r.run(3000)
    assert r.replies() == [(1, frames.RES_DONE, sid)]
    assert r.dev.haptic.history == ["confirm", "received", "listening"]
    # the defaults: the alert's two short pulses, received one long, listening three short
    assert motor_pulses(r.hal, t_trigger) == [70, 70, 400, 120, 120, 120]
    assert r.dev.feedback.not_through == 0 and not r.queued(frames.STATUS)


def test_not_through_once_then_received_when_it_gets_through():
    r = LoopRig()
    r.server.status = 503  # the centre cannot take it (unsigned: nothing to act on)
    r.sos()
    r.run(19000)
    assert "not-through" not in r.dev.haptic.history
    r.run(2000)  # 20 s after the alert-start
    assert r.dev.haptic.history.count("not-through") == 1
    r.run(60000)
    assert r.dev.haptic.history.count("not-through") == 1  # once
    assert [f[frames.K_ST] for f in r.queued(frames.STATUS)] == [frames.ST_STARTED, frames.ST_NOT_THROUGH]
    r.server.status = 200
    r.run_until(lambda: r.dev.feedback.got_through, 120000)
    r.run_until(lambda: not len(r.dev.queue), 120000)
    assert r.dev.haptic.history == ["confirm", "not-through", "received"]
    assert [f[frames.K_ST] for f in r.received(frames.STATUS)] == [frames.ST_STARTED, frames.ST_NOT_THROUGH]


def test_a_command_runs_once_even_when_the_centre_sends_it_again():
    r = LoopRig()
    sid = r.sos()
    r.server.cmds = [{"id": 7, "op": "listening"}]  # in every answer, as until its reply arrives
    r.run_until(lambda: len(r.server.answers) >= 6)
    r.run(2000)
    assert r.dev.haptic.history.count("listening") == 1
    assert r.replies() == [(7, frames.RES_DONE, None)]
    assert r.dev.commands.highest == 7
    # after a restart (same flash) it is still not run again; a newer one is
    r.boot()
    r.server.cmds = [{"id": 7, "op": "listening"}, {"id": 8, "op": "listening", "sid": sid}]
    r.run_until(lambda: len(r.replies()) >= 2)
    r.run(2000)
    assert r.replies() == [(7, frames.RES_DONE, None), (8, frames.RES_DONE, sid)]
    assert r.dev.haptic.history.count("listening") == 1  # this boot: command 8 only


def test_a_question_answered_yes_no_and_not_at_all():
    r = LoopRig()
    sid = r.sos()
    for cid, presses, want in ((1, 2, frames.RES_YES), (2, 4, frames.RES_NO), (3, 0, frames.RES_NO_ANSWER)):
        r.server.cmds = [{"id": cid, "op": "ask", "q": 1, "sid": sid}]
        r.run_until(lambda: r.dev.commands.ask_id == cid)
        r.server.cmds = []
        r.run(1500)  # the question plays
        assert r.dev.haptic.history[-1] == "q1"
        r.presses(presses)
        r.run_until(lambda: len(r.replies()) >= cid, 120000)
        assert r.replies()[-1] == (cid, want, sid)
    assert r.dev.session.live  # neither answer was taken for a cancel
    assert r.dev.haptic.history.count("confirm") == 3  # the alert, then each answer taken


def test_cancel_during_a_question_still_cancels_and_the_question_times_out():
    r = LoopRig(feedback={"ask_timeout_s": 30})
    sid = r.sos()
    r.server.cmds = [{"id": 1, "op": "ask", "q": 2}]
    r.run_until(lambda: r.dev.commands.ask_id == 1)
    r.server.cmds = []
    r.presses(3)  # the cancel pattern: never read as an answer
    r.run(5000)
    assert not r.dev.session.live and (r.received(frames.CANCEL) or r.queued(frames.CANCEL))
    r.run_until(lambda: r.replies(), 120000)
    assert r.replies() == [(1, frames.RES_NO_ANSWER, None)]
    assert sid


def test_more_audio_locate_and_refusals():
    r = LoopRig(audio={"clip_s": 3, "max_clip_s": 6})
    sid = r.sos()
    r.run(6000)  # the 3 s clip is over
    r.server.cmds = [{"id": 1, "op": "more-audio", "s": 10, "sid": sid}, {"id": 2, "op": "locate"},
                     {"id": 3, "op": "more-audio", "s": 5}, {"id": 4, "op": "dance"},
                     {"id": 5, "op": "ask", "q": 9}, {"id": 6, "op": "more-audio"},
                     {"id": 7, "op": "listening", "sid": 70000}]
    r.run_until(lambda: len(r.replies()) >= 7)
    r.server.cmds = []
    assert r.replies() == [(1, frames.RES_DONE, sid), (2, frames.RES_DONE, sid),
                           (3, frames.RES_REFUSED, sid),  # the clip is at its maximum already
                           (4, frames.RES_UNKNOWN, None), (5, frames.RES_INVALID, None),
                           (6, frames.RES_INVALID, None), (7, frames.RES_INVALID, None)]
    loc = r.received(frames.LOCATION)
    assert loc and loc[0][frames.K_SID] == sid  # locate: a location frame at once
    r.run(8000)
    audio = r.received(frames.AUDIO)
    offs = [(a[frames.K_OFF], a[frames.K_NS]) for a in audio]
    assert offs[0][0] == 0 and all(offs[i + 1][0] == offs[i][0] + offs[i][1] for i in range(len(offs) - 1))
    assert sum(n for _o, n in offs) == 6 * 8000  # extended to the configured maximum, not 13 s
    r.presses(3)  # cancel: no live alert any more
    r.run(10000)
    assert not r.dev.session.live
    r.server.cmds = [{"id": 8, "op": "locate"}, {"id": 9, "op": "listening", "sid": sid},
                     {"id": 10, "op": "more-audio", "s": 5}]
    r.boot()  # its status frame carries the next request
    r.run_until(lambda: len(r.replies()) >= 10, 120000)
    assert r.replies()[7:] == [(8, frames.RES_REFUSED, None), (9, frames.RES_REFUSED, sid),
                               (10, frames.RES_REFUSED, None)]


def test_no_question_while_another_waits_or_the_wrist_is_off():
    r = LoopRig()
    r.sos()
    r.server.cmds = [{"id": 1, "op": "ask", "q": 1}, {"id": 2, "op": "ask", "q": 2}]
    r.run_until(lambda: r.replies())
    assert r.replies() == [(2, frames.RES_REFUSED, None)] and r.dev.commands.ask_id == 1
    off = LoopRig(feedback={"enabled": False})
    off.sos()
    off.server.cmds = [{"id": 1, "op": "ask", "q": 1}, {"id": 2, "op": "listening"}]
    off.run_until(lambda: len(off.replies()) >= 2)
    assert off.replies() == [(1, frames.RES_REFUSED, None), (2, frames.RES_REFUSED, None)]
    assert off.dev.haptic.history == ["confirm"]  # feedback off: nothing but the accepted pulse


def test_a_question_cut_by_a_restart_is_answered_no_answer():
    r = LoopRig()
    r.sos()
    r.server.cmds = [{"id": 4, "op": "ask", "q": 1}]
    r.run_until(lambda: r.dev.commands.ask_id == 4)
    r.server.cmds = []
    assert r.dev.storage.read(STATE) is not None
    r.boot()  # the power went
    r.run_until(lambda: r.replies(), 120000)
    assert r.replies() == [(4, frames.RES_NO_ANSWER, None)]
    assert r.dev.commands.ask_id == 0 and r.dev.commands.highest == 4


def test_an_unauthenticated_answer_changes_nothing_on_the_device():
    r = LoopRig()
    real = r.server

    def forger(request):
        body = request[request.find(b"\r\n\r\n") + 4:]
        seqs = []
        i = 0
        while i < len(body):
            item, i = cbor.decode_item(body, i)
            cose = item[0] if isinstance(item, list) else item
            seqs.append(cbor.decode(cose.value[2])[3])
        answer = {"results": [{"status": "accepted", "device": None, "seq": s} for s in seqs],
                  "time": 2000000000, "closed": [1, 2, 3], "cmds": [{"id": 1, "op": "ask", "q": 1}]}
        return real._http(200, cbor.encode(answer))

    r.modem.server = forger
    sid = r.sos()
    r.run(25000)
    d = r.dev
    assert d.session.live and d.commands.highest == 0 and d.clock.utc_s(r.t) != 2000000000
    assert len(d.queue) > 10 and d.delivery.unauth >= 3 and not d.feedback.got_through
    assert d.haptic.history == ["confirm", "not-through"]
    status = r.queued(frames.STATUS)[-1]  # the not-through status reports the count
    assert status[frames.K_ST] == frames.ST_NOT_THROUGH and status[frames.K_UNAUTH] >= 1
    r.modem.server = real
    r.run_until(lambda: not len(d.queue), 120000)
    assert d.session.live and d.session.sid == sid and d.feedback.got_through


def test_without_trust_anchors_nothing_goes_over_the_network_but_alerts_still_go_by_sms():
    for over, ca, want in ((dict(centre_key=None), True, ("centre_key", "missing")),
                           ({}, False, ("ca_cert", "missing")),  # the file is not on the device
                           (dict(ca_cert=None), True, ("ca_cert", "missing")),
                           (dict(ca_cert=None, receiver="http://alerts.example.org:80"), True,
                            ("receiver", "insecure"))):
        r = LoopRig(ca=ca, **over)
        d = r.dev
        assert (d.network_error.field, d.network_error.reason) == want, over
        assert d.faults["network"] == 1  # counted and logged, not silent
        assert d.delivery.stats()["refused"] == 1
        r.sos()
        r.run(60000)
        names = r.modem.names()
        assert "open" not in names and "send" not in names and r.server.requests == []
        assert r.queued(frames.ALERT_START)  # kept
        assert len(r.modem.sms) >= 1  # the alert went by SMS all the same
        assert r.dev.haptic.history == ["confirm", "not-through"]


def test_insecure_tls_is_flagged_on_every_frame():
    r = LoopRig(ca=False, ca_cert=None, insecure_tls=True)
    assert r.dev.network_error is None
    r.sos()
    r.run_until(lambda: len(r.received(frames.AUDIO)) >= 2)
    got = [p for _s, p in r.server.seen]
    assert len(got) >= 4 and all(p[frames.K_FLAGS] & frames.FLAG_INSECURE_TLS for p in got)
    assert r.dev.feedback.got_through
