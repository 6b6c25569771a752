"""Loading Ed25519 public keys from hex, PEM, DER or raw bytes."""

from __future__ import annotations

import os
import string
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from host_tools.frames.reasons import (
    KeyFormatError,
)

# --------------------------------------------------------------------------
# Public keys.


def _key_from_blob(blob: bytes, where: str) -> Ed25519PublicKey:
    if b"PRIVATE KEY" in blob:
        raise KeyFormatError(f"{where} holds a private key; give the device's public key instead "
                             "(verification never needs the private key)")
    key: Any
    if blob.lstrip().startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(blob)
        except (ValueError, UnsupportedAlgorithm) as e:
            raise KeyFormatError(f"{where} is not a PEM public key this tool can read ({e})") from None
    elif len(blob) == 32:
        return Ed25519PublicKey.from_public_bytes(blob)
    else:
        text = blob.strip()
        if len(text) == 64 and all(chr(c) in string.hexdigits for c in text):
            return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text.decode("ascii")))
        try:
            key = serialization.load_der_public_key(blob)
        except (ValueError, UnsupportedAlgorithm):
            raise KeyFormatError(f"{where} holds neither a PEM or DER public key, 64 hex digits, "
                                 "nor 32 raw key bytes") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFormatError(f"{where} holds a {type(key).__name__.lstrip('_')}, not an Ed25519 public key")
    return key


def load_public_key(source: str | os.PathLike[str] | bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from 64 hex digits, a file (PEM, DER, 32 raw bytes
    or 64 hex digits) or 32 raw bytes. Raises KeyFormatError (a UsageError)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _key_from_blob(bytes(source), "the key bytes")
    text = os.fspath(source)
    stripped = text.strip()
    if len(stripped) == 64 and all(c in string.hexdigits for c in stripped):
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(stripped))
    path = Path(text)
    if path.is_file():
        try:
            blob = path.read_bytes()
        except OSError as e:
            raise KeyFormatError(f"cannot read key file {text}: {e.strerror}") from None
        return _key_from_blob(blob, f"key file {text}")
    if stripped and all(c in string.hexdigits for c in stripped):
        # Never echo hex: it might be someone's private seed typed by mistake.
        raise KeyFormatError(f"the key is {len(stripped)} hex digits; an Ed25519 public key is 64")
    raise KeyFormatError(f"no such key file: {text!r} (give a PEM public key file or 64 hex digits)")


def public_key_bytes(key: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of an Ed25519 public key."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
