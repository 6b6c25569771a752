# Doubles for the delivery tests, in both interpreters: a queue with the
# documented FrameQueue API (docs/architecture.md) that fails the test on a
# double acknowledgement, a modem double with the Simcom driver's interface
# whose "network" is a function, and a receiver double that answers like
# docs/frames.md, signing its answers with a test centre key bound to each
# request body (sotto.answer). Frames are CBOR-shaped like real ones (tag 18,
# payload map) but not signed: delivery never looks at their signatures.
import hashlib

from fwtest import tmpdir
from sotto import cbor, cose, ed25519
from sotto.answer import Opener, centre_kid
from sotto.modem import at as _at
from sotto.modem.at import ModemError
from sotto.modem.rejects import RejectLog
from sotto.ticks import ticks_add, ticks_diff

ALERT_START, LOCATION, AUDIO, CANCEL, DURESS, END, HEARTBEAT = 1, 2, 3, 4, 5, 6, 7


def frame(ftype, seq, sid=1, loc=True, pad=0):
    payload = {0: 1, 1: ftype, 3: seq, 4: 1790000000 + seq, 5: seq * 1000}
    if ftype <= END:
        payload[2] = sid
    if loc and ftype in (ALERT_START, LOCATION, DURESS):
        payload[6] = bytes(13)
    if ftype == AUDIO:
        cose = cbor.encode(cbor.Tag(18, [cbor.encode({1: -8, 4: b"TEST-001"}), {}, cbor.encode(payload),
                                         bytes(64)]))
        return cbor.encode([cbor.Tag(18, cbor.decode(cose).value), bytes(pad or 400)])
    return cbor.encode(cbor.Tag(18, [cbor.encode({1: -8, 4: b"TEST-001"}), {}, cbor.encode(payload),
                                     bytes(64 + pad)]))


class FakeQueue:
    def __init__(self, frames=()):
        self.items = []  # [(seq, ftype, wire)]
        self.acked = []
        for ftype, seq in frames:
            self.add(ftype, seq)

    def push(self, wire, ftype, seq):
        self.items.append((seq, ftype, wire))

    def add(self, ftype, seq, **kw):
        """Queue a test frame(ftype, seq, **kw)."""
        self.push(frame(ftype, seq, **kw), ftype, seq)

    def __len__(self):
        return len(self.items)

    def batch(self, max_frames, max_bytes):
        order = [i for i in self.items if i[1] == ALERT_START] + \
                sorted([i for i in self.items if i[1] != ALERT_START])
        out = []
        size = 0
        for seq, _t, wire in order:
            if len(out) >= max_frames or (out and size + len(wire) > max_bytes):
                break
            out.append((seq, wire))
            size += len(wire)
        return out

    # the streamed reading delivery uses (FrameQueue.entries / check / pieces / read)
    def entries(self, max_frames, max_bytes):
        sizes = {seq: (t, len(w)) for seq, t, w in self.items}
        return [[seq, sizes[seq][0], sizes[seq][1]] for seq, _w in self.batch(max_frames, max_bytes)]

    def read(self, seq, ftype):
        for s, t, wire in self.items:
            if s == seq and t == ftype:
                return wire
        return None

    def check(self, seq, ftype, buf, h=None):
        wire = self.read(seq, ftype)
        if wire is None:
            return False
        for piece in self.pieces(seq, ftype, buf):
            if h is not None:
                h.update(piece)
        return True

    def pieces(self, seq, ftype, buf):
        wire = self.read(seq, ftype)
        if wire is None:
            raise OSError(5, "gone")
        mv = memoryview(buf)
        for at in range(0, len(wire), len(buf)):
            k = min(len(buf), len(wire) - at)
            mv[:k] = wire[at:at + k]
            yield mv[:k]

    def ack(self, seqs):
        for s in seqs:
            assert s not in self.acked, "seq %d acknowledged twice" % s
            assert any(i[0] == s for i in self.items), "seq %d is not queued" % s
            self.acked.append(s)
        self.items = [i for i in self.items if i[0] not in seqs]

    def newest(self, ftype):
        best = None
        for seq, t, wire in self.items:
            if t == ftype and (best is None or seq > best[0]):
                best = (seq, wire)
        return best[1] if best else None


class FakeAt:
    def __init__(self, clock):
        self.clock = clock

    def wait(self, ms):
        yield ms

    def stats(self):
        return {}


# a test key, never a real centre's (tests/vectors/answers/centre-key.json has the same seed)
CENTRE_SEED = bytes(range(0xC0, 0xE0))
_centre = []


def centre_key():
    """(signing key, public key) of the test centre; made once per process."""
    if not _centre:
        k = ed25519.SigningKey(CENTRE_SEED)
        _centre.append((k, k.public_key))
    return _centre[0]


def opener():
    """A device-side Opener for the test centre (its table is built once)."""
    if len(_centre) < 2:
        _centre.append(Opener(centre_key()[1]))
    return _centre[1]


def sign_answer(payload, key=None, kid=None):
    """A COSE_Sign1 answer over payload (a map, with its req), as the centre makes it."""
    k = key or centre_key()[0]
    return cose.Signer(kid or centre_kid(k.public_key), k).sign(cbor.encode(payload))


class FakeServer:
    """Answers a POST like the receiver: stores seqs, duplicates, rejects `bad`;
    signs every 200/400/413 answer and binds it to the request body."""

    def __init__(self, queue):
        self.queue = queue
        self.stored = set()
        self.bad = {}  # seq -> reason
        self.requests = []
        self.status = 200
        self.time_s = 1790000000
        self.closed = []
        self.close_after = False
        self.answer_override = None
        self.cmds = []  # commands put into every 200 answer
        self.answers = []  # the signed answer bodies, in order
        self.frames = []
        self.seen = []  # (seq, payload) of every frame received
        self.key = None  # the centre's signing key (None: the test centre's)

    def __call__(self, request):
        head_end = request.find(b"\r\n\r\n") + 4
        head, body = request[:head_end], request[head_end:]
        assert head.startswith(b"POST /v1/frames HTTP/1.1\r\n")
        assert b"Content-Type: application/cbor-seq\r\n" in head
        assert (b"Content-Length: %d\r\n" % len(body)) in head
        seqs = []
        self.frames = []  # (seq, payload map) of this request
        i = 0
        while i < len(body):
            item, i = cbor.decode_item(body, i)  # a body that is not a CBOR sequence fails the test
            cose = item[0] if isinstance(item, list) else item
            payload = cbor.decode(cose.value[2])
            seqs.append(payload[3])
            self.frames.append((payload[3], payload))
        self.seen += self.frames
        self.requests.append(seqs)
        req = hashlib.sha256(body).digest()
        if self.status != 200:
            # 400/413 from the centre: signed, with a reason (for a batch, the first
            # bad frame's); a single frame without one gets a proxy's page (unsigned)
            reasons = [self.bad[x] for x in seqs if x in self.bad]
            if self.status not in (400, 413) or not reasons:
                return self._http(self.status, b"<html>no</html>")
            body = sign_answer({"req": req, "reason": reasons[0]}, self.key)
            self.answers.append(body)
            return self._http(self.status, body)
        results = []
        for s in seqs:
            if s in self.bad:
                results.append({"status": "rejected", "device": b"TEST-001", "seq": s, "reason": self.bad[s]})
            elif s in self.stored:
                results.append({"status": "duplicate", "device": b"TEST-001", "seq": s})
            else:
                self.stored.add(s)
                results.append({"status": "accepted", "device": b"TEST-001", "seq": s})
        answer = {"req": req, "results": results, "time": self.time_s}
        if self.closed:
            answer["closed"] = list(self.closed)
        if self.cmds:
            answer["cmds"] = list(self.cmds)
        if self.answer_override is not None:
            answer = self.answer_override(answer)
        body = sign_answer(answer, self.key)
        self.answers.append(body)
        return self._http(200, body)

    def _http(self, status, body):
        head = (b"HTTP/1.1 %d X\r\nContent-Type: application/cbor\r\nContent-Length: %d\r\n"
                % (status, len(body)))
        if self.close_after:
            head += b"Connection: close\r\n"
        return head + b"\r\n" + body


class FakeModem:
    """The Simcom interface; `server(request) -> response bytes` is the network.
    fail[name] is a list of ModemErrors the next calls of that method raise."""

    def __init__(self, clock, server, rtt_ms=100):
        self.clock = clock
        self.at = FakeAt(clock)
        self.server = server
        self.rtt_ms = rtt_ms
        self.ready = False
        self.sim_ready = False
        self.started = False
        self.session = False
        self.connected = False
        self.reg_eps = self.reg_cs = -1
        self.registered = True
        self.denied = False
        self.alive = True
        self.rx = bytearray(4096)
        self.rx_n = 0
        self.rx_event = False
        self.rx_more = False
        self.sms_to_delete = []
        self.fail = {}
        self.calls = []
        self.sms = []  # (t, number, data)
        self.pending = None  # (due, bytes)
        self.drop_response = False
        self.retries = self.cfun_resets = self.power_cycles = 0
        self.opens = 0
        self.opened = []  # (host, SSL context) of every open
        self.servers = None

    def _call(self, name):
        self.calls.append((self.clock.now_ms, name))
        if not self.alive and name not in ("power_cycle",):
            raise ModemError(0, _at.TIMEOUT, name)
        errs = self.fail.get(name)
        if errs:
            raise errs.pop(0)

    def cmd(self, text, timeout_ms=0, expect=None, until=None, data=None, retries=-1, gap_ms=0):
        self._call("cmd " + text)  # a bare command, answered by the module (nothing on the air)
        yield 20
        return []

    def probe(self):
        self.calls.append((self.clock.now_ms, "probe"))
        yield 10
        return self.alive

    def start(self):
        self._call("start")
        yield 50
        self.ready = self.sim_ready = True

    def check_sim(self):
        self._call("check_sim")
        yield 10

    def signal(self):
        self._call("signal")
        yield 10
        return 20

    def registration(self):
        self._call("registration")
        yield 20
        self.reg_eps = 1 if self.registered else (3 if self.denied else 2)
        return self.registered

    def is_registered(self):
        return self.reg_eps in (1, 5)

    def is_denied(self):
        return self.reg_eps == 3

    def start_data(self):
        self._call("start_data")
        yield 50
        self.started = True

    def open(self, host, port, tls=True, ctx=0):
        self._call("open")
        yield 300
        self.opened.append((host, ctx))
        if self.servers is not None:  # several receivers: host -> server (None: nobody listens)
            self.server = self.servers.get(host)
            if self.server is None:
                raise ModemError(0, _at.CLOSED, "open %s: connection refused" % host)
        self.connected = self.session = True
        self.opens += 1
        self.rx_n = 0

    def send(self, parts, tx):
        self._call("send")
        if not self.connected:
            raise ModemError(0, _at.CLOSED, "send")
        request = b"".join(bytes(p) for p in parts)
        yield 20 + len(request) // 12
        response = self.server(request)
        if response is not None:
            self.pending = (ticks_add(self.clock.now_ms, self.rtt_ms), response)

    def _deliver(self):
        if self.pending and ticks_diff(self.clock.now_ms, self.pending[0]) >= 0:
            data = self.pending[1]
            self.pending = None
            if self.drop_response:
                self.drop_response = False
                self.connected = False
                return
            self.rx[self.rx_n:self.rx_n + len(data)] = data
            self.rx_n += len(data)
            if b"Connection: close" in data:
                self.connected = False

    def recv(self):
        self._call("recv")
        yield 10
        self.rx_event = False

    def consume(self):
        mv = bytes(self.rx[:self.rx_n])
        self.rx_n = 0
        return mv

    def close(self, force=False):
        self.calls.append((self.clock.now_ms, "close"))
        self.connected = self.session = False
        self.pending = None
        yield 20

    def send_sms(self, number, data):
        self._call("send_sms")
        yield 2500
        self.sms.append((self.clock.now_ms, number, bytes(data)))
        return len(self.sms)

    def housekeeping(self):
        yield 1

    def reset_function(self):
        self._call("reset_function")
        self.cfun_resets += 1
        self.started = self.connected = False
        self.reg_eps = -1
        yield 1000

    def power_cycle(self, answering=True):
        self.calls.append((self.clock.now_ms, "power_cycle" if answering else "power_cycle_hung"))
        self.power_cycles += 1
        self.alive = True
        self.started = self.connected = False
        self.reg_eps = -1
        yield 15000
        self.ready = self.sim_ready = True

    def stats(self):
        return {"retries": self.retries, "cfun_resets": self.cfun_resets, "power_cycles": self.power_cycles}

    def names(self):
        return [n for _t, n in self.calls]


class Runner:
    """Steps the delivery task on the test clock with the modem double."""

    def __init__(self, clock, delivery, modem):
        self.clock = clock
        self.modem = modem
        self.task = delivery.task()

    def until(self, cond, limit_ms=600000):
        spent = 0
        while not cond():
            self.modem._deliver()
            wait = next(self.task) or 1
            self.clock.now_ms = ticks_add(self.clock.now_ms, wait)  # wraps like time.ticks_ms()
            spent += wait
            if spent > limit_ms:
                raise AssertionError("not done after %d ms" % limit_ms)

    def for_ms(self, ms):
        end = ticks_add(self.clock.now_ms, ms)
        self.until(lambda: ticks_diff(self.clock.now_ms, end) >= 0, ms + 60000)


def reject_log():
    """A RejectLog in a fresh, empty directory."""
    return RejectLog(tmpdir("rej") + "/rejected.log")


def seeded_random(seed=12345):
    """random_bytes(n) of a small LCG: the HAL RNG, repeatable in tests."""
    state = [seed]

    def random_bytes(n):
        out = bytearray(n)
        for i in range(n):
            state[0] = (state[0] * 1103515245 + 12345) & 0x7FFFFFFF
            out[i] = (state[0] >> 16) & 0xFF
        return bytes(out)

    return random_bytes
