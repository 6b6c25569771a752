"""POST /v1/release-chunk (docs/ota.md): a device asks for a piece of the release
it is assigned. The request body is a COSE_Sign1 by the device's own key (kid =
its id) over {"op": "get", "v", "p", "o", "n"}; the answer is the centre's signed
answer bound to that body (req), with the piece or a reason."""

from __future__ import annotations

import os
from contextlib import closing
from typing import Any

import cbor2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from host_tools.receiver import releases
from host_tools.registry import Registry, connect

MAX_BODY = 1024
ALG_EDDSA = -8


def answer(db_path: str | os.PathLike[str], body: bytes) -> tuple[int, dict[str, Any], bytes | None]:
    """(HTTP status, answer payload without req, device id or None)."""
    try:
        item = cbor2.loads(body)
        protected, _unprotected, payload, signature = item.value
        header = cbor2.loads(protected)
        kid = header[4]
    except Exception:  # noqa: BLE001 - whatever it is, it is not a signed request
        return 400, {"reason": "malformed-cbor", "detail": "not a COSE_Sign1"}, None
    if getattr(item, "tag", None) != 18 or header.get(1) != ALG_EDDSA or not isinstance(kid, bytes) \
            or len(kid) != 8:
        return 400, {"reason": "not-cose-sign1", "detail": "EdDSA COSE_Sign1, the device id as kid"}, None
    with closing(connect(db_path, create=False)) as conn:
        record = Registry(conn).find(kid)
        key = record.active_key if record is not None else None
        if key is None:
            return 400, {"reason": "unknown-device" if record is None else "revoked-device"}, None
        tbs = cbor2.dumps(["Signature1", protected, b"", payload], canonical=True)
        try:
            Ed25519PublicKey.from_public_bytes(key.public_key).verify(signature, tbs)
            request = cbor2.loads(payload)
        except Exception:  # noqa: BLE001 - InvalidSignature, or a payload that is not CBOR
            return 400, {"reason": "bad-signature"}, kid
        status, out = releases.chunk_answer(conn, kid, request)
        return status, out, kid
