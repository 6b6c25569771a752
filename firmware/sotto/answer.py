# The centre's answers, authenticated (docs/frames.md "The signed answer").
#
# Every answer to POST /v1/frames with status 200, 400 or 413 is a COSE_Sign1
# signed by the centre's answer-signing key (Ed25519, `centre_key` in the
# device configuration), with kid = the first 8 bytes of SHA-256 of that key,
# and a payload that carries `req`: the SHA-256 of the exact request body it
# answers. The device acts on nothing in an answer that does not pass open():
# not the acknowledgements, not `closed`, not `time`, not a command, not the
# reason of a refusal. Binding to the request body means an answer recorded
# earlier (or for another device) can never match a new request: every body
# differs, if only by its sequence numbers.
#
# open() is strict and fails closed with an AnswerError whose code says why.
# The key's comb table is built once, when the Opener is made (at boot).
import hashlib

from micropython import const

from sotto import cbor, cose, ed25519

REQ_BYTES = const(32)
KID_BYTES = const(8)


class AnswerError(ValueError):
    """An answer the device cannot trust or use: `code` is malformed-cbor,
    not-cose-sign1, bad-protected-header, unsupported-alg, missing-kid,
    wrong-kid, bad-signature, wrong-request or bad-answer."""

    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code


def centre_kid(centre_key):
    """The kid of the centre's answers: SHA-256(public key)[:8]."""
    return hashlib.sha256(bytes(centre_key)).digest()[:KID_BYTES]


def _same(a, b):
    # whole-length comparison (the digest is not secret; no early exit anyway)
    if len(a) != len(b):
        return False
    x = 0
    for i in range(len(a)):
        x |= a[i] ^ b[i]
    return x == 0


class Opener:
    """Opens the answers signed by one centre key (32 bytes)."""

    def __init__(self, centre_key):
        self.key = ed25519.VerifyKey(centre_key)  # ValueError: not a key
        self.kid = centre_kid(centre_key)
        # idle(): called between the steps of open() (the device drains its
        # microphone there: opening takes longer than its I2S ring holds)
        self.idle = None

    def open(self, body, req):
        """The payload map of an answer whose signature, kid and `req` (the
        SHA-256 of the request body it answers) are all good; AnswerError
        otherwise. The map's other fields are checked by their users
        (sotto.modem.http)."""
        try:
            item = cbor.decode(body)  # a view of the response buffer: no copy of the whole
        except cbor.CBORError as e:
            raise AnswerError("malformed-cbor", "answer: %s" % e) from None
        try:
            kid, _alg, protected, payload, signature = cose.parse(item)
        except cose.COSEError as e:
            raise AnswerError(e.code, str(e)) from None
        if not _same(kid, self.kid):
            raise AnswerError("wrong-kid", "answer signed by key %s, not the centre's" % kid.hex())
        idle = self.idle
        if idle is not None:
            idle()
        if not self.key.verify(cose.sig_structure_parts(protected, payload), signature, idle):
            raise AnswerError("bad-signature", "the answer's signature does not verify")
        if idle is not None:
            idle()
        try:
            fields = cbor.decode(payload)
        except cbor.CBORError as e:
            raise AnswerError("malformed-cbor", "answer payload: %s" % e) from None
        if not isinstance(fields, dict):
            raise AnswerError("bad-answer", "answer payload is not a map")
        got = fields.get("req")
        if not isinstance(got, bytes) or len(got) != REQ_BYTES:
            raise AnswerError("bad-answer", "answer without a %d-byte req" % REQ_BYTES)
        if not _same(got, req):
            raise AnswerError("wrong-request", "the answer is for another request")
        return fields
