# The device's own Ed25519 key. The 32-byte seed is made on the device from
# its hardware RNG, kept in identity.key on flash, and never leaves it: only
# the public key is read back by provisioning. Nothing here prints, logs or
# puts the seed into an exception.
import struct
from binascii import crc32

from sotto import ed25519

KEY = "identity.key"
_MAGIC = b"SID1"


class IdentityError(Exception):
    """`reason`: missing (not provisioned), corrupt, exists (create without force)."""

    def __init__(self, reason, msg):
        super().__init__(msg)
        self.reason = reason


def _seed(storage):
    raw = storage.read(KEY)
    if raw is None:
        raise IdentityError("missing", "no device key: provision the device (sotto provision)")
    good = len(raw) == 40 and raw[:4] == _MAGIC
    if not good or struct.unpack(">I", raw[36:])[0] != crc32(raw[:36]) & 0xFFFFFFFF:
        raise IdentityError("corrupt", "device key file damaged: re-provision with --force")
    return raw[4:36]


def load(storage):
    """The device's SigningKey."""
    return ed25519.SigningKey(_seed(storage))


def public_key(storage):
    return load(storage).public_key


def create(storage, random_bytes, force=False):
    """Make a new key from the RNG; returns the 32-byte public key."""
    if not force and storage.read(KEY) is not None:
        raise IdentityError("exists", "device already has a key: use --force to replace it")
    seed = random_bytes(32)
    if len(seed) != 32 or seed == bytes(32):
        raise IdentityError("rng", "the random number generator gave no usable bytes")
    body = _MAGIC + seed
    storage.write_atomic(KEY, body + struct.pack(">I", crc32(body) & 0xFFFFFFFF))
    return ed25519.SigningKey(seed).public_key
