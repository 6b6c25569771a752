# The device's own Ed25519 key. The 32-byte seed is made on the device from
# its hardware RNG, kept in identity.key on flash (magic, seed, CRC-32; written
# atomically), and never leaves it: only the public key is read back by
# provisioning. Nothing here prints, logs or puts the seed into an exception.
import struct
from binascii import crc32

from sotto import ed25519

KEY = "identity.key"
_MAGIC = b"SID1"
_MIN_DISTINCT = 12  # distinct byte values in 32 random bytes: ~30 expected; under 12 is a broken RNG


class IdentityError(Exception):
    """`reason`: missing (not provisioned), corrupt, exists (create without
    force), rng (the RNG gave unusable bytes), flash (the key could not be
    stored)."""

    def __init__(self, reason, msg):
        super().__init__(msg)
        self.reason = reason


def _seed(storage):
    raw = storage.read(KEY)
    if raw is None:
        raise IdentityError("missing", "no device key: provision the device (sotto provision)")
    good = len(raw) == 40 and raw[:4] == _MAGIC
    if not good or struct.unpack(">I", raw[36:])[0] != crc32(raw[:36]) & 0xFFFFFFFF:
        raise IdentityError("corrupt", "device key file damaged: provision again with --force "
                            "(the device gets a new key; the registry must learn it)")
    return raw[4:36]


def load(storage):
    """The device's SigningKey."""
    return ed25519.SigningKey(_seed(storage))


def public_key(storage):
    """The 32-byte public key (what provisioning registers)."""
    return load(storage).public_key


def create(storage, random_bytes, force=False):
    """Make a new key from the RNG (random_bytes(n) -> bytes); returns the
    32-byte public key. Refuses to replace a key unless force."""
    if not force and storage.read(KEY) is not None:
        raise IdentityError("exists", "device already has a key: use --force to replace it")
    seed = bytes(random_bytes(32))
    if len(seed) != 32 or len(set(seed)) < _MIN_DISTINCT:
        raise IdentityError("rng", "the random number generator gave no usable bytes: "
                            "check the hardware RNG (no key written)")
    body = _MAGIC + seed
    try:
        storage.write_atomic(KEY, body + struct.pack(">I", crc32(body) & 0xFFFFFFFF))
    except OSError as e:
        # StorageError text names the file and the failure, never the data
        raise IdentityError("flash", "cannot store the device key: %s" % e) from None
    try:
        same = _seed(storage) == seed
    except IdentityError:
        same = False
    if not same:
        raise IdentityError("flash", "the device key did not read back intact: the flash may be failing")
    return ed25519.SigningKey(seed).public_key
