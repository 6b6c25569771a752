"""Device ids: the 8-byte `kid` of every frame, and how people write it.

docs/frames.md: a device id is 8 bytes. Tools write it as 16 hex digits
(`0123456789abcdef`) or, when all 8 bytes are ASCII letters, digits, `.`, `_`
or `-`, as those 8 characters (`SOTTO-42`); both texts name the same bytes.
"""

from __future__ import annotations

import string

from host_tools.errors import UsageError

DEVICE_ID_BYTES = 8
# The characters an id may be written with in its short form.
ID_CHARACTERS = frozenset(string.ascii_letters + string.digits + "._-")
_ID_BYTES = frozenset(ord(c) for c in ID_CHARACTERS)
_HEX_DIGITS = frozenset(string.hexdigits)


class DeviceIdError(UsageError):
    """A device id that is neither 16 hex digits nor 8 id characters."""


def parse_device_id(text: str) -> bytes:
    """The 8 bytes named by `text`: 16 hex digits, or 8 characters from [A-Za-z0-9._-].

    Surrounding whitespace is ignored; hex digits may be upper or lower case.
    Raises DeviceIdError (a UsageError) for anything else.
    """
    if not isinstance(text, str):
        raise TypeError(f"device id must be text, not {type(text).__name__}")
    s = text.strip()
    if len(s) == 2 * DEVICE_ID_BYTES and all(c in _HEX_DIGITS for c in s):
        return bytes.fromhex(s)
    if len(s) == DEVICE_ID_BYTES and all(c in ID_CHARACTERS for c in s):
        return s.encode("ascii")
    if len(s) == 2 * DEVICE_ID_BYTES:
        bad = next(c for c in s if c not in _HEX_DIGITS)
        raise DeviceIdError(f"device id {s!r}: 16 characters but {bad!r} is not a hex digit; "
                            "write the id as 16 hex digits or as 8 characters from A-Z a-z 0-9 . _ -")
    if len(s) == DEVICE_ID_BYTES:
        bad = next(c for c in s if c not in ID_CHARACTERS)
        raise DeviceIdError(f"device id {s!r}: {bad!r} is not allowed in the 8-character form "
                            "(A-Z a-z 0-9 . _ -); write other ids as 16 hex digits")
    raise DeviceIdError(f"device id {s!r} is {len(s)} characters long; expected 16 hex digits "
                        "(e.g. 0123456789abcdef) or 8 characters from A-Z a-z 0-9 . _ - (e.g. SOTTO-42)")


def format_device_id(kid: bytes) -> str:
    """How to write the 8-byte id `kid`: its 8 characters when all are id
    characters, else 16 lower-case hex digits. Raises DeviceIdError if `kid`
    is not 8 bytes."""
    if not isinstance(kid, (bytes, bytearray, memoryview)):
        raise TypeError(f"device id must be bytes, not {type(kid).__name__}")
    raw = bytes(kid)
    if len(raw) != DEVICE_ID_BYTES:
        raise DeviceIdError(f"a device id is {DEVICE_ID_BYTES} bytes, got {len(raw)}")
    if all(b in _ID_BYTES for b in raw):
        return raw.decode("ascii")
    return raw.hex()
