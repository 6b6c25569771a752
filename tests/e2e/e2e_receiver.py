# The monitoring centre's receiver as the device sees it, inside the VM (which
# has no sockets): POST /v1/frames with an RFC 8742 CBOR sequence of frames,
# each verified against the device's registered key, stored, and answered
# as docs/frames.md "The signed answer" says: a COSE_Sign1 by the centre's
# answer key (a test key: CENTRE_SEED) over the map, bound to the request by
# req (SHA-256 of the body), encoded deterministically as the firmware's
# strict decoder requires:
#   {"req", "results": [{"status", "device", "seq", ? "reason"}], "time"}  (no
#   "closed": no operator closes an alert in these runs)
# accepted / duplicate (the same bytes of a (device, seq) already stored) /
# rejected with a reason code. Verification uses the firmware's own
# sotto.frames.verify (the only Ed25519 the VM has); tools/vm/e2e_verify.py
# checks every stored frame again on the host with cbor2 and cryptography.
import hashlib

from sotto import cbor, cose, ed25519, frames
from sotto.answer import centre_kid

MAX_FUTURE_S = 300
CA = "ca.pem"  # the CA certificate the centre's TLS certificate chains to
CA_PEM = b"-----BEGIN CERTIFICATE-----\ne2e test CA\n-----END CERTIFICATE-----\n"  # what provisioning writes
CENTRE_SEED = bytes(range(0xC0, 0xE0))  # a test key, never a real centre's
_centre = []


def centre_signer():
    """The centre's answer signer (made once: the key's setup costs a comb table)."""
    if not _centre:
        key = ed25519.SigningKey(CENTRE_SEED)
        _centre.append(cose.Signer(centre_kid(key.public_key), key))
        _centre.append(key.public_key)
    return _centre[0]


def centre_key_hex():
    """The centre's public key as the device configuration's centre_key."""
    centre_signer()
    return _centre[1].hex()


class Receiver:
    ca = CA

    def __init__(self, world, keys, epoch_s):
        self.world = world
        self.keys = dict(keys)  # kid (8 bytes) -> Ed25519 public key (32 bytes)
        self.epoch_s = epoch_s  # the world's start, UTC seconds
        self.stored = {}  # (kid, seq) -> wire
        self.arrivals = []  # (t_ms, kid, seq, wire) in the order frames were stored
        self.rejected = []  # (t_ms, reason, seq)
        self.duplicates = 0
        self.requests = 0
        self.bad_requests = 0
        self.answers = []  # (t_ms, [seq, ...] acknowledged)
        self.acked_at = {}  # seq -> world ms when its acknowledgement reached the device

    def now_s(self):
        return self.epoch_s + self.world.now_us // 1000000

    def request(self, head, body):
        """One HTTP request (head bytes, body bytes) -> (the response bytes, the
        seqs it acknowledges: the tag the modem hands back to delivered())."""
        self.requests += 1
        line = head.split(b"\r\n", 1)[0]
        if not line.startswith(b"POST /v1/frames "):
            return self._http(404, {"reason": "not-found", "detail": "POST /v1/frames only"}), []
        req = hashlib.sha256(body).digest()
        try:
            items = cbor.split_sequence(body)
        except cbor.CBORError as e:
            self.bad_requests += 1
            return self._http(400, {"req": req, "reason": "malformed-cbor", "detail": str(e)}), []
        results = []
        acked = []
        for _, start, end in items:
            r = self._one(body[start:end])
            if r["status"] != "rejected":
                acked.append(r["seq"])
            results.append(r)
        answer = {"req": req, "results": results, "time": self.now_s()}  # no alert closed here
        self.answers.append((self.world.ms(), acked))
        return self._http(200, answer), acked

    def delivered(self, seqs):
        """The answer acknowledging seqs reached the device's UART."""
        for s in seqs:
            if s not in self.acked_at:
                self.acked_at[s] = self.world.ms()

    def _one(self, wire):
        kid = seq = None
        try:
            item, _, _ = frames.split(wire)
            kid = cose.parse(item)[0]
            key = self.keys.get(kid)
            if key is None:
                raise frames.FrameError("unknown-device", "kid %s is not registered" % kid.hex())
            _, fields, _ = frames.verify(wire, key)
            seq = fields[frames.K_SEQ]
            if fields[frames.K_TIME] > self.now_s() + MAX_FUTURE_S:
                raise frames.FrameError("time-in-future", "time %d" % fields[frames.K_TIME])
        except (frames.FrameError, cose.COSEError) as e:
            self.rejected.append((self.world.ms(), e.code, seq))
            return {"status": "rejected", "device": kid, "seq": seq, "reason": e.code}
        old = self.stored.get((kid, seq))
        if old is not None and old == wire:
            self.duplicates += 1
            return {"status": "duplicate", "device": kid, "seq": seq}
        # a different frame reusing a seq is stored too (the real receiver flags it)
        self.stored[(kid, seq)] = wire
        self.arrivals.append((self.world.ms(), kid, seq, wire))
        return {"status": "accepted", "device": kid, "seq": seq}

    def _http(self, status, obj):
        # 200 and 400 are signed and bound to the request (they carry req); 404 is not
        signed = "req" in obj
        body = centre_signer().sign(cbor.encode(obj)) if signed else cbor.encode(obj)
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}[status]
        head = ("HTTP/1.1 %d %s\r\nContent-Type: application/%s\r\nContent-Length: %d\r\n\r\n"
                % (status, reason, "cose" if signed else "cbor", len(body))).encode()
        return head + body
