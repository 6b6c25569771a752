"""The centre's seal on an evidence bundle (format sotto-evidence/2).

manifest.json lists the SHA-256 and size of every other file and the SHA-256 of
every frame, in chain order. manifest.sig is the centre's Ed25519 signature
(64 raw bytes, its answer-signing key) over

    b"sotto-evidence/2\\x00" + the exact bytes of manifest.json

The prefix keeps a seal from ever being read as an answer to a device (those
sign a CBOR Sig_structure, which begins with byte 0x84) and the other way round.
Verification takes the centre's public key from outside the bundle: a bundle
rebuilt by anyone without the centre's private key does not verify, however
carefully its hashes were recomputed.

Verdicts, worst first: `tampered` (anything that was changed, removed, added or
signed by another key), `incomplete` (authentic, but the alert itself lacks
something: a chain gap, no end frame, audio the frames announce that is not
there), `intact`.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from host_tools.receiver.centre_key import CentreKey

SEAL_FILE = "manifest.sig"
SEAL_CONTEXT = b"sotto-evidence/2\x00"
SIGNATURE_BYTES = 64

INTACT, INCOMPLETE, TAMPERED = "intact", "incomplete", "tampered"
# exit statuses of `sotto evidence verify` (2 is a usage error)
EXIT_STATUS = {INTACT: 0, TAMPERED: 1, INCOMPLETE: 3}


def seal(centre: CentreKey, manifest: bytes) -> bytes:
    """manifest.sig for these manifest.json bytes."""
    return centre.sign_detached(SEAL_CONTEXT + manifest)


def seal_valid(centre_public_key: bytes, manifest: bytes, signature: bytes) -> bool:
    """Whether `signature` is the centre's seal over `manifest`."""
    if len(signature) != SIGNATURE_BYTES:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(centre_public_key).verify(signature, SEAL_CONTEXT + manifest)
    except InvalidSignature:
        return False
    return True
