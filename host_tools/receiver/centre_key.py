"""The centre's identity: the Ed25519 key that signs every answer to a device.

    centre = centre_key.load(path)                 # CentreKey; CentreKeyError names what is wrong
    body = centre.sign_answer({"req": ..., "results": [...], "time": ...})   # COSE_Sign1 bytes
    centre.public_key, centre.kid, centre.public_hex, centre.public_pem

Devices hold the public key from provisioning (`centre_key` in their
configuration) and act on nothing in an answer that does not verify against it
(docs/frames.md, "The signed answer"). The private key lives in one file, mode
0600, by default beside the database (`<db>-centre.key`, PKCS#8 PEM); it never
goes into the database, a log line, an error message or command output. The
database records the public key only (centre_settings), so that provisioning
can read it on a machine without the private key, and so that a receiver
started with another key file refuses to run rather than answer every device
with a signature it will not accept.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cbor2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from host_tools.errors import SottoError
from host_tools.keyfile import KeyFileError, create_private_key, read_private_key
from host_tools.registry import write_transaction

KEY_SUFFIX = "-centre.key"
KID_BYTES = 8
ALG_EDDSA = -8          # what the centre signs with
ALG_ED25519 = -19       # RFC 9864; verifiers accept it too (docs/frames.md), as the firmware does
SETTING_PUBLIC_KEY = "centre_public_key"


class CentreKeyError(SottoError, OSError):
    """The centre key is missing, unreadable, exposed or not the one the database records."""


def default_path(db_path: str | os.PathLike[str]) -> Path:
    """`<db>-centre.key`, beside a SQLite database. For a PostgreSQL URL, in the
    default database folder (host_tools.registry.default_db_path), named after the
    server and database: `postgresql-<host>-<port>-<dbname>-centre.key`. Every
    ingest node of one database needs the same key file (`--centre-key`)."""
    from host_tools.storage import is_postgres

    if is_postgres(db_path):
        from urllib.parse import urlsplit

        from host_tools.registry import default_db_path

        u = urlsplit(str(db_path))
        parts = ("postgresql", u.hostname or "local", str(u.port or 5432), u.path.lstrip("/") or "db")
        name = "-".join(re.sub(r"[^A-Za-z0-9_.]", "_", part) for part in parts)
        return default_db_path().parent / (name + KEY_SUFFIX)
    db = Path(db_path)
    return db.with_name(db.name + KEY_SUFFIX)


def kid_of(public_key: bytes) -> bytes:
    """The kid of the centre's answers: the first 8 bytes of SHA-256 of its public key."""
    return hashlib.sha256(public_key).digest()[:KID_BYTES]


def _canonical(obj: Any) -> bytes:
    return cbor2.dumps(obj, canonical=True)


def _bstr_head(n: int) -> bytes:
    """The deterministic CBOR head of a byte string of n bytes (major type 2)."""
    if n < 24:
        return bytes((0x40 + n,))
    if n < 0x100:
        return bytes((0x58, n))
    if n < 0x10000:
        return b"\x59" + n.to_bytes(2, "big")
    if n < 0x100000000:
        return b"\x5a" + n.to_bytes(4, "big")
    return b"\x5b" + n.to_bytes(8, "big")


class CentreKey:
    """The centre's answer-signing key (the private half stays inside)."""

    def __init__(self, private_key: Ed25519PrivateKey, path: Path | None = None) -> None:
        self._private = private_key
        self.path = path
        self.public_key = private_key.public_key().public_bytes(serialization.Encoding.Raw,
                                                                serialization.PublicFormat.Raw)
        self.kid = kid_of(self.public_key)
        self._protected = _canonical({1: ALG_EDDSA, 4: self.kid})
        # the constant parts of every answer, encoded once (sign_answer joins them to the
        # body and signature; byte for byte what cbor2's deterministic encoding gives)
        protected = _bstr_head(len(self._protected)) + self._protected
        self._sig_prefix = b"\x84" + _canonical("Signature1") + protected + b"\x40"
        self._cose_prefix = b"\xd2\x84" + protected + b"\xa0"

    def __repr__(self) -> str:  # never the private key
        return f"CentreKey(public {self.public_hex}, file {self.path})"

    @property
    def public_hex(self) -> str:
        return self.public_key.hex()

    @property
    def public_pem(self) -> str:
        return public_pem(self.public_key)

    def sign_answer(self, payload: Mapping[str, Any]) -> bytes:
        """A COSE_Sign1 (tag 18, EdDSA, kid) over the deterministically encoded
        payload map: the body of an answer (docs/frames.md)."""
        to_sign, signed_part = self.answer_to_sign(payload)
        return self.answer_with(signed_part, self._private.sign(to_sign))

    def answer_to_sign(self, payload: Mapping[str, Any]) -> tuple[bytes, bytes]:
        """(the Sig_structure to sign, the encoded payload bstr) of an answer: sign_answer
        in two halves, so that the signature can be made elsewhere (the receiver's helper
        processes, host_tools.receiver.verifier) and joined with answer_with."""
        body = _canonical(payload if type(payload) is dict else dict(payload))
        signed_part = _bstr_head(len(body)) + body
        return self._sig_prefix + signed_part, signed_part

    def answer_with(self, signed_part: bytes, signature: bytes) -> bytes:
        """The COSE_Sign1 of an answer from answer_to_sign's second half and the signature."""
        if len(signature) != 64:
            raise ValueError("an Ed25519 signature is 64 bytes")
        return self._cose_prefix + signed_part + b"\x58\x40" + signature

    def private_raw(self) -> bytes:
        """The raw 32-byte private key, for the receiver's own helper processes (over a
        pipe to its child; host_tools.receiver.verifier). Never to be logged or shown."""
        return self._private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                           serialization.NoEncryption())

    def sign_detached(self, message: bytes) -> bytes:
        """A raw Ed25519 signature (64 bytes) over `message`. Callers put a
        context prefix first (evidence seals: host_tools.receiver.evidence.seal)
        so that nothing signed here can pass for an answer."""
        if message[:1] == b"\x84":
            raise ValueError("a detached message must not look like a COSE Sig_structure")
        return self._private.sign(message)


def public_pem(public_key: bytes) -> str:
    """A 32-byte Ed25519 public key as a SubjectPublicKeyInfo PEM."""
    key = Ed25519PublicKey.from_public_bytes(public_key)
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def create(path: str | os.PathLike[str]) -> CentreKey:
    """Make a new key and write it to `path` (mode 0600, its folder 0700); never
    over an existing file."""
    path = Path(path)
    try:
        key = create_private_key(path, make_folder=True)
    except FileExistsError:
        raise CentreKeyError(f"{path} already exists: the centre has a key (`sotto centre key` prints "
                             "it); a new one would make every provisioned device refuse the centre's "
                             "answers") from None
    except OSError as e:
        raise CentreKeyError(f"cannot create the centre key file {path}: {e.strerror or e}") from None
    return CentreKey(key, path)


def load(path: str | os.PathLike[str]) -> CentreKey:
    """The key in `path`; CentreKeyError if it is missing, readable by others,
    or not an Ed25519 private key (the message never quotes the file)."""
    path = Path(path)
    try:
        key = read_private_key(path, "the centre key",
                               missing=f"no centre key at {path}; make one with `sotto centre init`")
    except KeyFileError as e:
        raise CentreKeyError(str(e)) from None
    return CentreKey(key, path)


# --------------------------------------------------------------------------
# The public key on record in the database.


def recorded_public_key(conn: sqlite3.Connection) -> bytes | None:
    """The centre public key the database records, or None."""
    row = conn.execute("SELECT value FROM centre_settings WHERE name = ?", (SETTING_PUBLIC_KEY,)).fetchone()
    return bytes.fromhex(row[0]) if row is not None else None


def record_public_key(conn: sqlite3.Connection, public_key: bytes) -> None:
    """Record the centre's public key (refuses to replace another one)."""
    with write_transaction(conn):
        row = conn.execute("SELECT value FROM centre_settings WHERE name = ?",
                           (SETTING_PUBLIC_KEY,)).fetchone()
        if row is not None and row[0] != public_key.hex():
            raise CentreKeyError(_mismatch(bytes.fromhex(row[0]), public_key))
        if row is None:
            conn.execute("INSERT INTO centre_settings(name, value) VALUES (?, ?)",
                         (SETTING_PUBLIC_KEY, public_key.hex()))


def _mismatch(recorded: bytes, got: bytes, path: Path | None = None) -> str:
    where = f" in {path}" if path else ""
    return (f"the database records centre key {recorded.hex()}, but the key{where} is {got.hex()}: "
            "devices provisioned for this database would refuse every answer; give the right "
            "--centre-key file")


def ensure(conn: sqlite3.Connection, path: str | os.PathLike[str]) -> tuple[CentreKey, bool]:
    """The centre key for the database behind `conn`, made at `path` when
    neither the file nor a recorded key exists. (key, created). Refuses to
    make a new key when the database already records one (its file is lost:
    restore it), and a key that is not the recorded one."""
    path = Path(path)
    recorded = recorded_public_key(conn)
    created = False
    if path.exists():
        key = load(path)
    elif recorded is not None:
        raise CentreKeyError(f"the centre key file {path} is missing, and the database records centre key "
                             f"{recorded.hex()}: restore that file (a new key would make every "
                             "provisioned device refuse the centre's answers), or give --centre-key PATH")
    else:
        key = create(path)
        created = True
    if recorded is not None and recorded != key.public_key:
        raise CentreKeyError(_mismatch(recorded, key.public_key, path))
    if recorded is None:
        record_public_key(conn, key.public_key)
    return key, created


def public_key_for(conn: sqlite3.Connection, path: str | os.PathLike[str] | None) -> bytes:
    """The centre's public key: from its key file when there is one (checked
    against the database's record), else the database's record."""
    recorded = recorded_public_key(conn)
    if path is not None and Path(path).exists():
        key = load(path)
        if recorded is not None and recorded != key.public_key:
            raise CentreKeyError(_mismatch(recorded, key.public_key, Path(path)))
        return key.public_key
    if recorded is not None:
        return recorded
    raise CentreKeyError("this database has no centre key yet: run `sotto centre init` (or start "
                         "`sotto receive` once, which makes it)")


# --------------------------------------------------------------------------
# Checking an answer on the host, as the device does (sotto.answer), e.g. when a
# technician delivers a device's queue for it (host_tools.drain).


class AnswerNotTrusted(SottoError, ValueError):
    """An answer that is not the centre's for this request; nothing in it may be used."""


def verify_answer(public_key: bytes, body: bytes, request: bytes) -> dict[str, Any]:
    """The payload map of `body` if it is a COSE_Sign1 by `public_key` (kid and
    signature) whose `req` is the SHA-256 of `request`; AnswerNotTrusted otherwise."""
    try:
        item = cbor2.loads(body)
        protected, _unprotected, payload, signature = item.value
        header = cbor2.loads(protected)
    except Exception:  # noqa: BLE001 - whatever it is, it is not a signed answer
        raise AnswerNotTrusted("the answer is not a COSE_Sign1 (not signed by the centre)") from None
    if getattr(item, "tag", None) != 18 or header.get(1) not in (ALG_EDDSA, ALG_ED25519):
        raise AnswerNotTrusted("the answer is not an EdDSA / Ed25519 COSE_Sign1")
    if header.get(4) != kid_of(public_key):
        raise AnswerNotTrusted("the answer is signed by another key than the centre's")
    to_sign = _canonical(["Signature1", protected, b"", payload])
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, to_sign)
        fields = cbor2.loads(payload)
    except Exception:  # noqa: BLE001 - InvalidSignature, or a payload that is not CBOR
        raise AnswerNotTrusted("the answer's signature does not verify") from None
    if not isinstance(fields, dict) or fields.get("req") != hashlib.sha256(request).digest():
        raise AnswerNotTrusted("the answer is for another request")
    return fields
