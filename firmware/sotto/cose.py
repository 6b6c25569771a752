# COSE_Sign1 (RFC 9052 §4.2, CBOR tag 18) with EdDSA / Ed25519, the envelope of
# every Sotto frame (docs/frames.md):
#
#   18([ bstr .cbor {1: -8, 4: kid}, {}, bstr payload, bstr signature ])
#
# signed over the Sig_structure ["Signature1", protected, h'', payload]
# (external AAD empty). Signer assembles both byte strings directly from
# precomputed prefixes, which is exactly what cbor.encode() would produce.
# verify() is strict and fails closed: anything but exactly this shape is a
# COSEError whose `code` is a reason code of docs/frames.md.
from sotto import cbor, ed25519

ALG_EDDSA = -8
ALG_ED25519 = -19  # RFC 9864, fully specified; accepted, never emitted
TAG_SIGN1 = 18
_HDR_ALG = 1
_HDR_KID = 4
KID_BYTES = 8


class COSEError(ValueError):
    """A COSE_Sign1 that does not verify: `code` is the reason code."""

    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code


def protected_header(kid):
    """The protected header bytes {1: -8, 4: kid}."""
    return cbor.encode({_HDR_ALG: ALG_EDDSA, _HDR_KID: bytes(kid)})


def _bstr(b):
    return cbor.head(2, len(b)) + b


class Signer:
    """Signs payloads as tagged COSE_Sign1 with one device key and kid."""

    def __init__(self, kid, signing_key):
        if len(kid) != KID_BYTES:
            raise ValueError("kid must be %d bytes, got %d" % (KID_BYTES, len(kid)))
        self.kid = bytes(kid)
        self._key = signing_key
        prot = _bstr(protected_header(self.kid))
        # ["Signature1", protected, h'', ...] and 18([protected, {}, ...])
        self._tbs_prefix = b"\x84\x6aSignature1" + prot + b"\x40"
        self._wire_prefix = b"\xd2\x84" + prot + b"\xa0"

    def sign(self, payload):
        """Tagged COSE_Sign1 bytes carrying `payload` (bytes)."""
        body = _bstr(payload)
        sig = self._key.sign(self._tbs_prefix + body)
        return self._wire_prefix + body + b"\x58\x40" + sig


def sig_structure(protected, payload):
    """The bytes Ed25519 signs: ["Signature1", protected, h'', payload]."""
    return cbor.encode(["Signature1", protected, b"", payload])


def sig_structure_parts(protected, payload):
    """sig_structure() as (prefix, payload): what is signed, without a copy
    of the payload (ed25519.VerifyKey.verify hashes the parts as one)."""
    return (b"\x84\x6aSignature1" + _bstr(protected) + b"\x40" + cbor.head(2, len(payload)), payload)


def parse(item):
    """Check a decoded tag-18 item; return (kid, alg, protected, payload,
    signature). Raises COSEError."""
    if not isinstance(item, cbor.Tag) or item.tag != TAG_SIGN1:
        raise COSEError("not-cose-sign1", "not a tag-18 COSE_Sign1")
    v = item.value
    if not isinstance(v, list) or len(v) != 4:
        raise COSEError("not-cose-sign1", "COSE_Sign1 is not a 4-element array")
    protected, unprotected, payload, signature = v
    if not isinstance(protected, bytes) or not isinstance(payload, bytes) \
            or not isinstance(signature, bytes) or not isinstance(unprotected, dict):
        raise COSEError("not-cose-sign1", "COSE_Sign1 element of the wrong type")
    if unprotected:
        raise COSEError("bad-protected-header", "unprotected header is not empty")
    try:
        hdr = cbor.decode(protected)
    except cbor.CBORError as e:
        raise COSEError("bad-protected-header", "protected header: %s" % e) from None
    if not isinstance(hdr, dict):
        raise COSEError("bad-protected-header", "protected header is not a map")
    alg = hdr.get(_HDR_ALG)
    if alg is None:
        raise COSEError("bad-protected-header", "no alg in the protected header")
    if alg != ALG_EDDSA and alg != ALG_ED25519:
        raise COSEError("unsupported-alg", "alg %r is not EdDSA (-8) or Ed25519 (-19)" % (alg,))
    kid = hdr.get(_HDR_KID)
    if not isinstance(kid, bytes) or len(kid) != KID_BYTES:
        raise COSEError("missing-kid", "no %d-byte kid in the protected header" % KID_BYTES)
    for k in hdr:
        if k != _HDR_ALG and k != _HDR_KID:
            raise COSEError("bad-protected-header", "unexpected header parameter %r" % (k,))
    if len(signature) != 64:
        raise COSEError("bad-signature", "signature is %d bytes, not 64" % len(signature))
    return kid, alg, protected, payload, signature


def verify(item, public_key):
    """(kid, payload) of a decoded COSE_Sign1 whose Ed25519 signature by
    public_key (32 bytes) is valid; COSEError otherwise."""
    kid, _, protected, payload, signature = parse(item)
    if not ed25519.verify(public_key, sig_structure(protected, payload), signature):
        raise COSEError("bad-signature", "the signature does not verify")
    return kid, payload
