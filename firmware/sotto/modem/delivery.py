# Delivery: frames leave the queue only when the receiver acknowledged them.
#
# One generator task (Delivery.task) owns the modem: keeps it up, registered
# and its PDP context active while idle; posts the queue's frames (alert-start
# alone and first, then batches) as HTTP/1.1 POST /v1/frames and applies the
# answer: accepted / duplicate -> queue.ack; rejected -> the reject log, then
# off the queue. Failures go to the ladder (sotto.modem.ladder: backoff and
# recovery), a live alert with data down to the SMS fallback
# (sotto.modem.fallback). docs/modem.md describes the policy.
#
# Frames go from flash to the modem in pieces (FrameQueue.check/pieces through
# the buffer `rd`, then the modem's `tx`): a batch is read twice, once to check
# every record's CRC and hash the body, once to send it, and no frame is ever
# held whole in RAM (only an alert-start's, to name its alert, and a frame the
# centre rejected, for the reject log).
#
# The answer is the centre's signature over its reply and the SHA-256 of the
# request body (sotto.answer). Nothing in it is acted on before it opens:
# an answer that does not is "not delivered" (backoff, SMS fallback) and
# counted in `unauth`. Without the centre's key, or with a configuration that
# would talk to an unauthenticated server (`refusal`), nothing is posted at
# all: the modem is kept up for the SMS fallback only.
#
# Where frames go is sotto.paths' choice (one receiver, or a primary and a
# secondary): each POST goes to its current receiver, opened with that
# centre's key, and the outcome is told back to it; the receiver not in use
# is probed with an empty POST (its signed refusal is the answer) every
# delivery.probe_s.
#
# Light sleep (sotto.app.Device.rest): `quiet` is True while the task only
# waits with nothing in flight (idle, or a backoff before the next try), and
# `quiet_until` is then its own next timer (the backoff's end, the next probe
# of the other receiver; None: none). The modem wakes the CPU with its RI line
# for anything it has to say. wake_modem() (the officer's first press) sends a
# bare AT so that a module in 3GPP PSM wakes up while the pattern is still
# being pressed: nothing goes on the air.
import hashlib

import sotto.cbor as cbor
import sotto.modem.ladder as ld
from sotto.answer import AnswerError
from sotto.log import Logger
from sotto.modem import at as _at
from sotto.modem import http
from sotto.modem.at import ModemError
from sotto.modem.cch import SEND_MAX
from sotto.modem.fallback import T_ALERT_START, T_LOCATION, SmsFallback
from sotto.paths import Paths, Receiver
from sotto.ticks import ticks_add, ticks_diff

_log = Logger("delivery")
READ_PIECE = 512  # bytes of a frame read from flash at a time
_EMPTY_REQ = hashlib.sha256(b"").digest()  # what the answer to a probe (no body) must name


class Delivery:
    batch_frames = 16
    batch_bytes = 8192
    response_ms = 20000  # from the last byte sent to the whole answer
    linger_ms = 20000  # keep an idle connection this long, then close it
    poll_ms = 20
    idle_poll_ms = 50
    refused_poll_ms = 10000  # with network delivery refused: how often the modem is checked for SMS
    wake_ms = 5000  # wake_modem's AT: a module leaving PSM answers within seconds

    def __init__(self, modem, queue, sched, host, port=443, tls=True, sms_number=None,
                 random_bytes=None, alert_live=None, rejects=None,
                 on_time=None, on_closed=None, on_rejected=None, opener=None, refusal=None,
                 on_start_acked=None, on_commands=None, paths=None):
        self.modem = modem
        self.queue = queue
        self.sched = sched
        self.host = host
        self.port = port
        self.tls = tls
        self.random_bytes = random_bytes
        self.alert_live = alert_live
        self.rejects = rejects
        self.on_time = on_time
        self.on_closed = on_closed
        self.on_rejected = on_rejected
        self.opener = opener  # sotto.answer.Opener: the centre's key
        self.refusal = refusal if refusal is not None or opener is not None else \
            ValueError("no centre key: answers cannot be authenticated")
        self.on_start_acked = on_start_acked  # (sid): an alert-start the centre stored
        self.on_commands = on_commands  # ([command map, ...]) from an authenticated answer
        # where frames go: the one receiver above, or sotto.paths' primary and secondary
        self.paths = paths if paths is not None else Paths(Receiver(host, port, tls, 0, opener))
        self.conn_rx = 0  # the receiver the open connection goes to
        self.post_rx = -1  # the receiver of the attempt under way (-1: none yet)
        self.tx = bytearray(SEND_MAX)
        self.rd = bytearray(READ_PIECE)  # frames come off flash through here
        self.resp = http.Response(1024, 4096)
        self.ladder = ld.Ladder(random_bytes)
        self.sms = SmsFallback(modem, queue, sms_number)
        self.down_since = None  # ticks since when frames wait without a successful post
        self.next_try = None  # no attempt before these ticks (backoff)
        self.solo = 0  # send this many batches one frame at a time (isolating a refused frame)
        self.last_post = 0
        self.sim_checked = False
        self.must_close = False
        # counters
        self.posts = 0
        self.acked = 0
        self.duplicates = 0
        self.rejected = 0
        self.bad_answers = 0
        self.unauth = 0  # answers not authenticated (status frames carry it, key 23)
        self.attempts = 0
        self.failed = 0
        self.bytes_sent = 0
        self.delivered_ms = None  # ticks of the last successful post
        self.answers = 0  # answers authenticated since boot (a release's health check counts on them)
        # sotto.otafetch.Fetcher, or None: release chunks are fetched only while no
        # frame waits (docs/ota.md)
        self.ota = None
        self.ota_posts = 0
        self.ota_failed = 0
        self.ota_next = None  # ticks: no chunk before (its own backoff: never the frames')
        self.quiet = False  # only waiting, nothing in flight (see the header)
        self.quiet_until = None  # ticks of the task's own next timer while quiet; None: none
        self._wake = False  # wake_modem() asked for an AT
        self.wakes = 0  # ATs sent to wake the module early

    def wake_modem(self):
        """An alert may follow (the officer pressed): wake the module now if it may
        be in PSM (a bare AT, answered locally: nothing goes on the air)."""
        self._wake = True

    # -- the task -------------------------------------------------------------
    def task(self):
        while True:
            self.quiet = False
            now = self.sched.now_ms
            if self.paths.dual and self.refusal is None and self.paths.probe_due(now) >= 0:
                m = self.modem
                if m.ready and m.started and m.is_registered():
                    yield from self._probe(self.paths.probe_due(now))
                else:
                    self.paths.probed(now)  # no network: nothing a probe could learn
            if not len(self.queue):
                self.down_since = None
                yield from self._idle()
                continue
            self._wake = False  # frames to send: the module is woken by them
            if self.down_since is None:
                self.down_since = now
            if self.sms.due(now, self.down_since, self._alert()):
                yield from self.sms.send(now)
            if self.next_try is not None and ticks_diff(self.next_try, self.sched.now_ms) > 0:
                if not self._alert():  # a live alert keeps the CPU up anyway (SMS fallback timers)
                    self.quiet, self.quiet_until = True, self.next_try
                yield from self.modem.at.wait(min(ticks_diff(self.next_try, self.sched.now_ms), 1000))
                continue
            yield from self._attempt(True)

    def _idle(self):
        m = self.modem
        if self.next_try is not None and ticks_diff(self.next_try, self.sched.now_ms) > 0:
            self.quiet, self.quiet_until = True, self.next_try  # a backoff: its end is a timer
            yield from m.at.wait(self.idle_poll_ms)
            return
        if not (m.ready and m.sim_ready and m.started and m.is_registered()):
            yield from self._attempt(False)  # keep the modem warm: up, registered, PDP active
            yield from m.at.wait(self.idle_poll_ms)
            return
        if self.ota is not None and self.refusal is None and self.ota.wants_network() and \
                (self.ota_next is None or ticks_diff(self.sched.now_ms, self.ota_next) >= 0):
            yield from self._attempt_fetch()
            return
        if m.connected and ticks_diff(self.sched.now_ms, self.last_post) >= self.linger_ms:
            yield from m.close()
        elif m.session and not m.connected:
            yield from m.close()  # the server closed it: the module holds it until AT+CCHCLOSE
        if m.sms_to_delete:
            yield from m.housekeeping()
        if self._wake:
            self._wake = False
            if getattr(m, "psm", None):
                self.wakes += 1
                try:
                    yield from m.cmd("AT", self.wake_ms, retries=0)
                except ModemError as e:
                    _log.w("wake: %s", e)
        if not (m.connected or m.session or m.sms_to_delete or self._wake) and \
                (self.ota is None or not self.ota.wants_network()):
            self.quiet = True
            self.quiet_until = self.paths.next_probe if self.paths.dual else None
        yield from m.at.wait(self.idle_poll_ms)

    def _attempt(self, post):
        self.attempts += 1
        self.post_rx = -1
        phase = 0
        try:
            yield from self._prepare()
            phase = 1
            if post and self.refusal is not None:
                # the modem is up for the SMS fallback; data stays refused
                self.ladder.succeeded()
                self.next_try = ticks_add(self.sched.now_ms, self.refused_poll_ms)
                return
            if post and len(self.queue):
                yield from self._post()
        except ModemError as e:
            self._failed(e, phase)
            return
        except http.HttpError as e:
            self._failed(e, 2)
            return
        self._succeeded(post)

    def _attempt_fetch(self):
        # one chunk of a release: only from _idle (no frame waits). A failure has
        # a backoff of its own (2 s doubling to 64 s) and leaves the frames' ladder
        # alone, so it never delays a frame; the connection is closed before the
        # next use (its state is unknown).
        try:
            yield from self._fetch()
        except (ModemError, http.HttpError) as e:
            self.ota_failed += 1
            self.must_close = True
            delay = 2000 << (self.ota_failed if self.ota_failed < 5 else 5)
            self.ota_next = ticks_add(self.sched.now_ms, delay)
            _log.w("release chunk failed (%s); next in %d ms", e, delay)
            return
        self.ota_failed = 0
        self.ota_next = None

    def _fetch(self):
        m = self.modem
        fetcher = self.ota
        if fetcher is None:
            return
        if self.must_close:
            self.must_close = False
            yield from m.close(force=True)
        yield 0  # the request's signature in a pass of its own
        body = fetcher.request()
        req = hashlib.sha256(body).digest()
        # releases come from the primary receiver's centre, the one that assigns them
        r = self.paths.rx[0]
        if m.connected and self.conn_rx != 0:
            yield from m.close()  # a connection to the secondary receiver
        if not m.connected:
            self.conn_rx = 0
            yield from m.open(r.host, r.port, r.tls, r.ctx)
        head = http.request_head(r.host, r.port, len(body), r.tls, path=http.OTA_PATH)
        self.resp.reset()
        m.rx_n = 0
        yield from m.send((head, body), self.tx)
        self.bytes_sent += len(head) + len(body)
        self.ota_posts += 1
        self.last_post = self.sched.now_ms
        # an alert raised meanwhile does not wait for this answer: the request is
        # abandoned (asked again later, from the same offset)
        yield from self._read_response(self._alert_waiting)
        status = self.resp.status
        if self.resp.close:
            yield from m.close()
        if status not in (200, 400, 404):
            raise http.HttpError(http.BAD_ANSWER, "HTTP %d" % status)
        yield 0
        answer = self._open(req, r.opener)
        fetcher.assign(answer.get("rel"))
        fetcher.took(status, answer)

    # -- preparing the modem --------------------------------------------------
    def _prepare(self):
        m = self.modem
        action = self.ladder.take()
        if action == ld.PROBE and not (yield from m.probe()):
            action = ld.POWER_HUNG
        if action == ld.POWER or action == ld.POWER_HUNG:
            self.sim_checked = False
            self.must_close = False
            yield from m.power_cycle(answering=action == ld.POWER)
        elif action == ld.CFUN and m.ready:
            self.must_close = False
            yield from m.reset_function()
        if self.must_close and m.ready:
            self.must_close = False
            yield from m.close(force=True)  # a connection left in an unknown state
        if not m.ready:
            self.sim_checked = False
            yield from m.start()
        if not self.sim_checked or not m.sim_ready:
            yield from m.check_sim()
            self.sim_checked = True
            rssi = yield from m.signal()  # for the log: coverage problems show here first
            _log.i("SIM ready, signal %d (0..31, 99 unknown)", rssi)
        if not m.is_registered() and not (yield from m.registration()):
            raise ModemError(0, _at.DENIED if m.is_denied() else _at.NOT_REGISTERED, "registration")
        if not m.started:
            yield from m.start_data()

    # -- one POST ---------------------------------------------------------------
    def _post(self):
        m = self.modem
        q = self.queue
        batch, req, body_len = yield from self._batch()
        if not batch:  # the queue counts frames it will not give: do not spin
            _log.e("queue holds %d frames but gives none", len(q))
            yield from m.at.wait(1000)
            return
        self.post_rx = i = self.paths.active
        r = self.paths.rx[i]
        if m.connected and self.conn_rx != i:
            yield from m.close()  # a connection to the other receiver (a probe's)
        if not m.connected:
            self.conn_rx = i
            yield from m.open(r.host, r.port, r.tls, r.ctx)
        head = http.request_head(r.host, r.port, body_len, r.tls)
        self.resp.reset()
        m.rx_n = 0
        body = self._body(head, batch)
        try:
            yield from m.send(body, self.tx)
        finally:
            body.close()  # a send cut short: the frame file it was reading is closed
        self.bytes_sent += len(head) + body_len
        self.posts += 1
        self.last_post = self.sched.now_ms
        yield from self._read_response()
        if self.solo:
            self.solo -= 1
        status = self.resp.status
        if self.resp.close:
            yield from m.close()
        if status not in (200, 400, 413):
            raise http.HttpError(http.BAD_ANSWER, "HTTP %d" % status)
        # opening costs about a frame's signature: in a pass of its own, so a pass
        # that also signs a frame does not keep the watchdog and the loop waiting twice
        yield 0
        answer = self._open(req, r.opener)
        self.paths.answered(i, self.sched.now_ms)  # authenticated: this receiver is there
        if (status == 200) != ("results" in answer):
            raise http.HttpError(http.BAD_ANSWER, "HTTP %d with a signed %s" %
                                 (status, "acknowledgement" if status != 200 else "refusal"))
        if status == 200:
            self._apply(batch, answer)
        else:
            self._refused(batch, status, answer)

    def _batch(self):
        """([[seq, ftype, size], ...], req, body bytes) of the next POST: every
        record read once through rd to check its CRC (a damaged one is dropped
        by the queue, and the batch made again) and to hash the body, one
        record a pass (reading a whole batch at once would keep the device's
        loop, and its microphone, waiting)."""
        q = self.queue
        for _ in range(len(q) + 1):
            batch = q.entries(1 if self.solo else self.batch_frames, self.batch_bytes)
            if not batch:
                batch = q.entries(1, 1 << 20)  # one frame larger than a batch still goes
            if len(batch) > 1 and batch[0][1] == T_ALERT_START:
                batch = batch[:1]  # the alert-start goes alone and first
            batch = [(e[0], e[1], e[2]) for e in batch]  # the index's entries change under acks
            h = hashlib.sha256()  # req: what the centre's answer must name
            whole = True
            for seq, ftype, _size in batch:
                yield 0  # a pass of its own for each record (not after an answer's opening either)
                if not q.check(seq, ftype, self.rd, h):
                    whole = False
                    break
            if whole:
                return batch, h.digest(), sum([e[2] for e in batch])
        return [], b"", 0

    def _body(self, head, batch):
        # the request, piece by piece: the head, then each frame straight from flash
        yield head
        q = self.queue
        for seq, ftype, _size in batch:
            pieces = q.pieces(seq, ftype, self.rd)
            try:
                for piece in pieces:
                    yield piece
            except OSError as e:  # gone from flash since check(): this request is spoilt
                raise ModemError(0, _at.CLOSED, "frame %d off flash: %s" % (seq, e)) from None
            finally:
                pieces.close()

    def _open(self, req, opener):
        try:
            answer = opener.open(self.resp.body, req)
            self.answers += 1
            return answer
        except AnswerError as e:
            self.unauth += 1
            _log.w("answer not authenticated (%s): nothing in it is used", e.code)
            raise http.HttpError(http.UNAUTHENTICATED, e.code) from None

    def _probe(self, i):
        """An empty POST to receiver i: its signed answer (a refusal: no
        frames) shows that it is there and holds its key."""
        p = self.paths
        r = p.rx[i]
        m = self.modem
        p.probed(self.sched.now_ms)
        try:
            if m.connected and self.conn_rx != i:
                yield from m.close()
            if not m.connected:
                self.conn_rx = i
                yield from m.open(r.host, r.port, r.tls, r.ctx)
            self.resp.reset()
            m.rx_n = 0
            yield from m.send((http.request_head(r.host, r.port, 0, r.tls),), self.tx)
            self.last_post = self.sched.now_ms
            yield from self._read_response()
            if self.resp.close:
                yield from m.close()
            yield 0  # opening: a pass of its own, as after a post
            r.opener.open(self.resp.body, _EMPTY_REQ)
        except (ModemError, http.HttpError, AnswerError) as e:
            _log.w("receiver %d did not answer a probe (%s)", i, e)
            self.must_close = True
            self._path_failed(i)
            return
        _log.i("receiver %d answered a probe", i)
        p.answered(i, self.sched.now_ms)
        if p.active != i and m.connected:
            yield from m.close()

    def _path_failed(self, i):
        p = self.paths
        was = p.active
        p.failed(i, self.sched.now_ms)
        if p.active != was:
            # the other receiver: try it now, not after the backoff the failures built up
            _log.w("receiver %d stopped answering: delivering to receiver %d", i, p.active)
            # (and no CFUN or power cycle queued by them: the modem reached the network)
            self.ladder.succeeded()
            self.ladder.pending = ld.NONE
            self.next_try = None
            self.must_close = True

    def _alert_waiting(self):
        return len(self.queue) > 0 and self._alert()

    def _read_response(self, abandon=None):
        m = self.modem
        resp = self.resp
        deadline = ticks_add(self.sched.now_ms, self.response_ms)
        while True:
            if abandon is not None and abandon():
                raise ModemError(0, _at.CLOSED, "response abandoned for an alert")
            if m.rx_n and resp.feed(m.consume()):
                return
            if m.rx_event or m.rx_more:  # announced, or left behind by a full read
                yield from m.recv()
                continue
            if not m.connected:
                try:
                    resp.closed()
                    return
                except http.HttpError:
                    raise ModemError(0, _at.CLOSED, "response") from None
            if ticks_diff(self.sched.now_ms, deadline) >= 0:
                raise ModemError(0, _at.CLOSED, "response timeout")
            yield from m.at.wait(self.poll_ms)

    def _apply(self, batch, answer):
        results, time_s, closed = http.parse_ack(answer, len(batch))
        cmds = http.commands_of(answer)
        for i in range(len(batch)):
            seq = results[i][1]
            if seq is not None and seq != batch[i][0]:
                raise http.HttpError(http.BAD_ANSWER, "answer %d is for seq %d, not %d"
                                     % (i, seq, batch[i][0]))
        acks = []
        for i in range(len(batch)):
            status, _seq, reason = results[i]
            if status == http.REJECTED:
                self._reject(batch[i][0], batch[i][1], reason)
            else:
                if status == http.DUPLICATE:
                    self.duplicates += 1
                acks.append(batch[i][0])
        started = None
        if acks and acks[0] == batch[0][0] and batch[0][1] == T_ALERT_START:
            started = _start_sid(self.queue.read(batch[0][0], T_ALERT_START))  # small: read whole
        if acks:
            self.queue.ack(acks)
            self.acked += len(acks)
        if started and self.on_start_acked:
            self.on_start_acked(started)
        if time_s and self.on_time:
            self.on_time(time_s)
        if closed and self.on_closed:
            self.on_closed(closed)
        if cmds and self.on_commands:
            self.on_commands(cmds)
        if self.ota is not None:
            self.ota.assign(answer.get("rel"))  # the release the centre assigns (docs/ota.md)

    def _reject(self, seq, ftype, reason):
        self.rejected += 1
        _log.e("frame seq %d rejected by the receiver: %s", seq, reason)
        if self.rejects is not None:
            # durable before the queue lets it go (read whole: a rare path)
            self.rejects.add(seq, reason, self.queue.read(seq, ftype) or b"")
        self.queue.ack([seq])
        if self.on_rejected:
            self.on_rejected(seq, reason)

    def _refused(self, batch, status, answer):
        # HTTP 400/413, signed by the centre: the whole request was refused. Find
        # the culprit by sending one frame at a time; a single frame is dropped
        # only when the centre said why (a reason code).
        reason = http.error_reason(answer)
        if len(batch) > 1:
            self.solo = len(batch)
            _log.w("HTTP %d for %d frames: sending them one by one", status, len(batch))
            return
        if reason is None:
            raise http.HttpError(http.BAD_ANSWER, "HTTP %d without a reason" % status)
        self._reject(batch[0][0], batch[0][1], reason)

    # -- outcomes -------------------------------------------------------------
    def _succeeded(self, post):
        self.ladder.succeeded()
        self.next_try = None
        if post:
            self.down_since = None
            self.delivered_ms = self.sched.now_ms

    def _failed(self, e, phase):
        self.failed += 1
        if isinstance(e, http.HttpError) and e.code == http.BAD_ANSWER:
            self.bad_answers += 1
        now = self.sched.now_ms
        cls, delay = self.ladder.failed(e, phase, now, self._alert())
        self.next_try = ticks_add(now, delay)
        if cls == ld.SEARCHING:
            return
        if cls == ld.NETWORK:
            self.modem.reg_eps = self.modem.reg_cs = -1  # ask the network again next time
        if phase > 0 and cls != ld.MODEM:
            self.must_close = True  # the connection's state is unknown: close it first
        _log.w("attempt failed (%s, class %d); ladder %d; next in %d ms", e, cls, self.ladder.pending, delay)
        if phase > 0 and self.post_rx >= 0 and (cls == ld.NETWORK or cls == ld.SERVER):
            self._path_failed(self.post_rx)  # the receiver gave no authenticated answer

    def _alert(self):
        if self.alert_live is not None:
            return bool(self.alert_live())
        # without a session to ask: undelivered alert frames mean an alert
        q = self.queue
        return q.newest(T_ALERT_START) is not None or q.newest(T_LOCATION) is not None

    def stats(self):
        s = {"posts": self.posts, "acked": self.acked, "duplicates": self.duplicates,
             "rejected": self.rejected, "bad_answers": self.bad_answers, "attempts": self.attempts,
             "failed": self.failed, "sms_sent": self.sms.sent, "sms_failed": self.sms.failed,
             "bytes_sent": self.bytes_sent, "unauth": self.unauth,
             "refused": 1 if self.refusal is not None else 0}
        if self.paths.dual:
            s.update(self.paths.stats())
        s.update(self.modem.stats())
        return s


def _start_sid(wire):
    """The sid of an alert-start frame on the wire, else None."""
    if not wire or wire[0] != 0xD2:
        return None
    try:
        payload = cbor.decode(cbor.decode(bytes(wire)).value[2])
        return payload.get(2) if payload.get(1) == T_ALERT_START else None
    except Exception:  # noqa: BLE001 - an unreadable frame is no alert-start
        return None
