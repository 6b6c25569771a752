"""Ed25519 private-key files: PEM (PKCS8, unencrypted), mode 0600, never
written over. The one way the host tools make one (the release key, the
centre's key) and read one back. Errors name the file and what is wrong with
it, never the key's bytes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


class KeyFileError(Exception):
    """A key file that cannot be used; `exposed` is True when others may read it."""

    def __init__(self, message: str, exposed: bool = False) -> None:
        super().__init__(message)
        self.exposed = exposed


def create_private_key(path: str | os.PathLike[str], *, make_folder: bool = False) -> Ed25519PrivateKey:
    """Write a new Ed25519 key to `path` (0600; its folder made 0700 if asked)
    and return it. FileExistsError if `path` exists, OSError if it cannot be
    made: the caller says what the file is for."""
    path = Path(path)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    if make_folder:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    return key


def read_private_key(path: str | os.PathLike[str], what: str,
                     missing: str | None = None) -> Ed25519PrivateKey:
    """The Ed25519 key in `path`. KeyFileError if it is missing (`missing` is then
    the message, if given), not a regular file, readable by others, or not an
    unencrypted PEM Ed25519 private key. `what` names it in messages ("the release key")."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError as e:
        raise KeyFileError(missing or f"cannot read {what} {path}: {e.strerror or e}") from None
    except OSError as e:
        raise KeyFileError(f"cannot read {what} {path}: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError(f"{what} {path} is not a regular file")
    if st.st_mode & 0o077:
        mode = stat.S_IMODE(st.st_mode)
        raise KeyFileError(f"{what} {path} can be read by others (mode {mode:o}); "
                           f"`chmod 600 {path}`, and make a new key if others may have read it", exposed=True)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as e:
        raise KeyFileError(f"cannot read {what} {path}: {e.strerror or e}") from None
    except (ValueError, TypeError):
        raise KeyFileError(f"{path} does not hold an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} holds a {type(key).__name__.lstrip('_')}, not an Ed25519 key")
    return key
