# A man in the middle cannot make the device drop what it has not delivered:
# answers that are unsigned, signed by another key, replayed from an earlier
# request or refusals nobody signed keep every frame queued (and count in
# `unauth`); nothing in them reaches the device (closed, time, commands); the
# real centre's answer later acknowledges them all, each once. Runs under
# CPython and in the MicroPython VM.
import hashlib

from deliveryfake import ALERT_START, AUDIO, LOCATION, centre_key, centre_kid, sign_answer
from sotto import cbor, ed25519
from test_delivery import Rig

OTHER = ed25519.SigningKey(bytes(range(32)))  # a key that is not the centre's


def _body(request):
    return request[request.find(b"\r\n\r\n") + 4:]


def _accept_all(rig, request, **extra):
    """What a forger would answer: every frame accepted, plus extra fields."""
    body = _body(request)
    seqs = []
    i = 0
    while i < len(body):
        item, i = cbor.decode_item(body, i)
        cose = item[0] if isinstance(item, list) else item
        seqs.append(cbor.decode(cose.value[2])[3])
    answer = {"results": [{"status": "accepted", "device": b"TEST-001", "seq": s} for s in seqs],
              "time": 1900000000, "closed": [1], "cmds": [{"id": 1, "op": "listening"}]}
    answer.update(extra)
    return answer


def _mitm(rig, answer_to_body, status=200):
    posts = []

    def server(request):
        posts.append(request)
        return rig.server._http(status, answer_to_body(request))

    rig.modem.server = server
    return posts


def _then_the_real_centre_gets_them_all(rig, seqs):
    rig.modem.server = rig.server
    rig.run.until(rig.delivered(), 300000)
    assert sorted(rig.queue.acked) == seqs  # each once: FakeQueue fails a double ack
    assert sorted(rig.server.stored) == seqs


def _nothing_reached_the_device(rig):
    assert rig.queue.acked == [] and rig.closed == [] and rig.commands == [] and rig.received == []
    assert rig.times == []


def test_unsigned_accepted_keeps_every_frame():
    rig = Rig(live=True, frames=[(ALERT_START, 1), (LOCATION, 2), (AUDIO, 3)])
    posts = _mitm(rig, lambda req: cbor.encode(_accept_all(rig, req)))
    rig.run.until(lambda: rig.d.unauth >= 4, 120000)
    _nothing_reached_the_device(rig)
    assert len(posts) == 4 and rig.d.acked == 0
    _then_the_real_centre_gets_them_all(rig, [1, 2, 3])
    assert rig.received == [1]  # the alert-start's sid, from the real answer only


def test_answers_signed_by_another_key_keep_every_frame():
    rig = Rig(frames=[(LOCATION, 1), (LOCATION, 2)])
    kid = centre_kid(centre_key()[1])

    def forged(req):
        answer = _accept_all(rig, req, req=hashlib.sha256(_body(req)).digest())
        # alternately under the forger's own kid and under the centre's kid
        return sign_answer(answer, key=OTHER, kid=kid if len(posts) % 2 else None)

    posts = _mitm(rig, forged)
    rig.run.until(lambda: rig.d.unauth >= 4, 120000)
    _nothing_reached_the_device(rig)
    assert len(posts) == 4
    _then_the_real_centre_gets_them_all(rig, [1, 2])


def test_a_replayed_answer_cannot_match_a_new_request():
    rig = Rig(frames=[(LOCATION, 1)])
    rig.server.closed = [1]
    rig.server.cmds = [{"id": 9, "op": "locate"}]
    rig.run.until(rig.delivered())  # the real centre answers the first request
    recorded = rig.server.answers[-1]
    assert rig.queue.acked == [1] and rig.closed == [[1]] and len(rig.commands) == 1
    rig.push(LOCATION, 2)
    posts = _mitm(rig, lambda req: recorded)  # the recorded, genuinely signed answer, replayed
    rig.run.until(lambda: rig.d.unauth >= 3, 120000)
    assert rig.queue.acked == [1] and rig.closed == [[1]] and len(rig.commands) == 1  # nothing new
    assert len(posts) == 3
    _then_the_real_centre_gets_them_all(rig, [1, 2])


def test_a_refusal_nobody_signed_drops_nothing():
    rig = Rig(frames=[(LOCATION, 1), (LOCATION, 2)])
    # a forged 400 "malformed-cbor" for the batch, then for each frame alone
    posts = _mitm(rig, lambda req: cbor.encode({"reason": "malformed-cbor", "detail": "forged"}), status=400)
    rig.run.until(lambda: rig.d.unauth >= 4, 120000)
    assert rig.rejected == [] and rig.rejects.entries() == [] and rig.queue.acked == []
    assert rig.d.solo == 0  # not even the search for a culprit started
    assert len(posts) == 4 and posts[3].endswith(posts[0][posts[0].find(b"\r\n\r\n") + 4:])
    # a signed refusal for another request is refused too
    posts = _mitm(rig, lambda req: sign_answer({"req": hashlib.sha256(b"x").digest(),
                                                "reason": "malformed-cbor"}), status=400)
    rig.run.until(lambda: rig.d.unauth >= 6, 120000)
    assert rig.rejected == [] and len(posts) == 2
    _then_the_real_centre_gets_them_all(rig, [1, 2])


def test_a_signed_acknowledgement_under_a_refusal_status_is_not_used():
    # only the signed content counts, and it must agree with the (unsigned) HTTP status
    rig = Rig(frames=[(LOCATION, 1)])
    real = rig.server
    posts = []

    def flipped(request):
        posts.append(request)
        response = real(request)
        return response.replace(b"HTTP/1.1 200", b"HTTP/1.1 400", 1)

    rig.modem.server = flipped
    rig.run.until(lambda: rig.d.bad_answers >= 2, 120000)
    assert rig.queue.acked == [] and rig.rejected == [] and len(posts) == 2 and rig.d.unauth == 0
    _then_the_real_centre_gets_them_all(rig, [1])


def test_unauthenticated_answers_fall_back_to_sms_during_an_alert():
    rig = Rig(live=True, frames=[(ALERT_START, 1)])
    posts = _mitm(rig, lambda req: cbor.encode(_accept_all(rig, req)))
    rig.run.until(lambda: len(rig.modem.sms) >= 1, 120000)
    assert rig.queue.acked == [] and len(posts) >= 2  # "not delivered": the SMS fallback runs
    _then_the_real_centre_gets_them_all(rig, [1])
