"""Registry records (KeyRecord, DeviceRecord, KeyBookEntry) and the checks on what
goes into the registry: device ids, public keys, officer names."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from host_tools.errors import SottoError, UsageError
from host_tools.ids import DEVICE_ID_BYTES, format_device_id, parse_device_id

PUBLIC_KEY_BYTES = 32
MAX_OFFICER_CHARS = 200


class RegistryError(SottoError, ValueError):
    """A registry change that is not allowed (second active key, reused key, ...)."""

class DeviceNotFoundError(RegistryError, LookupError):
    """No such device in the registry."""


# --------------------------------------------------------------------------
# Records.


def key_fingerprint(public_key: bytes) -> str:
    """A short, stable name for a public key: the first 8 bytes of its SHA-256, in hex."""
    return hashlib.sha256(public_key).hexdigest()[:16]


@dataclass(frozen=True)
class KeyRecord:
    """One public key a device had. `revoked_at` None: the active key."""

    key_id: int
    public_key: bytes
    added_at: float
    added_by: str | None = None
    revoked_at: float | None = None
    revoked_by: str | None = None
    revoke_reason: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def fingerprint(self) -> str:
        return key_fingerprint(self.public_key)

    def public_key_object(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.public_key)

    def public_key_pem(self) -> str:
        return self.public_key_object().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


@dataclass(frozen=True)
class DeviceRecord:
    """A registered device with every key it ever had (oldest first)."""

    device_id: bytes
    officer: str | None
    created_at: float
    updated_at: float
    keys: tuple[KeyRecord, ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        """The id as people write it (SOTTO-42 or 16 hex digits)."""
        return format_device_id(self.device_id)

    @property
    def active_key(self) -> KeyRecord | None:
        return next((k for k in self.keys if k.active), None)

    @property
    def public_key(self) -> bytes | None:
        """The active public key (32 bytes), or None when revoked."""
        key = self.active_key
        return key.public_key if key else None

    @property
    def status(self) -> str:
        """`active` (has a trusted key) or `revoked`."""
        return "active" if self.active_key else "revoked"

    @property
    def revoked_keys(self) -> tuple[KeyRecord, ...]:
        return tuple(k for k in self.keys if not k.active)


# --------------------------------------------------------------------------
# Input checks.


def device_id_bytes(device_id: bytes | str) -> bytes:
    """8 bytes from bytes or from text as people write ids (UsageError otherwise)."""
    if isinstance(device_id, str):
        return parse_device_id(device_id)
    if isinstance(device_id, (bytes, bytearray, memoryview)):
        raw = bytes(device_id)
        if len(raw) != DEVICE_ID_BYTES:
            raise UsageError(f"a device id is {DEVICE_ID_BYTES} bytes, got {len(raw)}")
        return raw
    raise TypeError(f"device id must be bytes or text, not {type(device_id).__name__}")


def public_key_bytes(public_key: bytes | Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of an Ed25519 public key; refuses anything else, and
    anything that looks like private key material, without echoing it."""
    if isinstance(public_key, Ed25519PublicKey):
        return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if not isinstance(public_key, (bytes, bytearray, memoryview)):
        raise TypeError("public key must be 32 bytes or an Ed25519PublicKey, "
                        f"not {type(public_key).__name__}")
    raw = bytes(public_key)
    if b"PRIVATE KEY" in raw:
        raise RegistryError("that is a private key; register the device's public key only "
                            "(the private key never leaves the device)")
    if len(raw) == 64:
        raise RegistryError("64 bytes look like a private key (seed + public key); register the "
                            "32-byte public key only")
    if len(raw) != PUBLIC_KEY_BYTES:
        raise RegistryError(f"an Ed25519 public key is {PUBLIC_KEY_BYTES} bytes, got {len(raw)}")
    try:
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise RegistryError("those 32 bytes are not an Ed25519 public key") from None
    return raw


def _officer(officer: str | None) -> str | None:
    if officer is None:
        return None
    text = " ".join(str(officer).split())
    if not text:
        return None
    if len(text) > MAX_OFFICER_CHARS:
        raise UsageError(f"officer name is {len(text)} characters; at most {MAX_OFFICER_CHARS}")
    return text



@dataclass(frozen=True)
class KeyBookEntry:
    """What verification needs to know about one device id."""

    device_id: bytes
    officer: str | None
    active: KeyRecord | None
    revoked: tuple[KeyRecord, ...]
