"""Verification against the registry: the KeyBook (keys in memory, reloaded when the
registry changes) and check_frame (decode, find the key, verify).

A frame that a revoked key of the device verifies is accepted when its device
time is after 0 and before the revocation (`before_revocation` set: the alert is
flagged `signed-before-revocation`), so that an alert a unit held undelivered
when it was replaced still arrives; dated at or after the revocation it is
`revoked-device`. The trade-off (whoever holds the old key can backdate) is in
docs/operator-guide.md."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from host_tools.frames import MAX_FUTURE_S, Frame, FrameError, Reason, decode_frame, verify_frame
from host_tools.registry import KeyBookEntry, Registry

# --------------------------------------------------------------------------
# Keys.


@dataclass(frozen=True)
class _Key:
    key_id: int
    key: Ed25519PublicKey
    raw: bytes
    revoked_at: float | None


@dataclass(frozen=True)
class _Device:
    device_id: bytes
    officer: str | None
    active: _Key | None
    revoked: tuple[_Key, ...]


def _device(entry: KeyBookEntry) -> _Device:
    def key(k: Any) -> _Key:
        return _Key(k.key_id, Ed25519PublicKey.from_public_bytes(k.public_key), k.public_key, k.revoked_at)
    return _Device(entry.device_id, entry.officer, key(entry.active) if entry.active else None,
                   tuple(key(k) for k in entry.revoked))


class KeyBook:
    """The registry's keys in memory, reloaded whenever the registry changed
    (its generation number moves on any add, rotate or revoke, from any process)."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._lock = threading.Lock()   # for a registry connection shared between threads
        self._generation = -1
        self._devices: dict[bytes, _Device] = {}

    def refresh(self) -> None:
        """Reload if the registry changed since the last look (one small query)."""
        with self._lock:
            gen = self._registry.generation()
            if gen == self._generation:
                return
            gen, book = self._registry.key_book()
            self._devices = {kid: _device(entry) for kid, entry in book.items()}
            self._generation = gen

    def get(self, kid: bytes) -> _Device | None:
        return self._devices.get(kid)

    @property
    def generation(self) -> int:
        return self._generation

    def active_keys(self) -> dict[bytes, bytes]:
        """{device id: active public key (32 bytes)} for every device that has one."""
        return {kid: d.active.raw for kid, d in self._devices.items() if d.active is not None}

    def snapshot(self) -> tuple[int, dict[bytes, bytes]]:
        """(generation, active_keys()) of one and the same reload, for another thread."""
        with self._lock:
            return self._generation, self.active_keys()

    def __len__(self) -> int:
        return len(self._devices)


# --------------------------------------------------------------------------
# Verification (the caller's thread).


@dataclass
class Incoming:
    """One frame of a request after verification, on its way to the writer."""

    wire: bytes
    digest: bytes
    frame: Frame | None
    reason: Reason | None
    detail: str
    key_id: int | None = None
    officer: str | None = None
    before_revocation: float | None = None   # signed by a key revoked at this time, dated before it


def _time_text(epoch: float | None) -> str:
    if epoch is None:
        return "?"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))


@dataclass
class _Pending:
    """A decoded frame whose device has an active key: its signature is next."""

    wire: bytes
    digest: bytes
    frame: Frame
    device: _Device


def _resolve(wire: bytes, keys: KeyBook) -> Incoming | _Pending:
    """Decode the frame and find its key; an Incoming when that already decides it."""
    digest = hashlib.sha256(wire).digest()
    try:
        frame = decode_frame(wire)
    except FrameError as e:
        return Incoming(wire, digest, None, e.reason, e.detail)
    return _resolve_decoded(wire, digest, frame, keys)


def _resolve_decoded(wire: bytes, digest: bytes, frame: Frame, keys: KeyBook) -> Incoming | _Pending:
    """_resolve for a frame decoded already (by a verify helper)."""
    device = keys.get(frame.kid)
    if device is None:
        return Incoming(wire, digest, frame, Reason.UNKNOWN_DEVICE,
                        f"device {frame.device_id} is not in the registry")
    if device.active is None:
        when = max((k.revoked_at or 0) for k in device.revoked) if device.revoked else None
        if not device.revoked:
            return Incoming(wire, digest, frame, Reason.REVOKED_DEVICE,
                            f"device {frame.device_id} was revoked ({_time_text(when)})")
    return _Pending(wire, digest, frame, device)


def _by_revoked_key(p: _Pending, now: float, max_future_s: int) -> Incoming | None:
    """The verdict when a revoked key of the device signed the frame, else None."""
    frame = p.frame
    for old in p.device.revoked:
        try:
            old.key.verify(frame.signature, frame.sig_structure)
        except InvalidSignature:
            continue
        revoked_at = old.revoked_at or 0.0
        if not 0 < frame.time < revoked_at:
            return Incoming(p.wire, p.digest, frame, Reason.REVOKED_DEVICE,
                            f"signed with a key of device {frame.device_id} that was revoked "
                            f"({_time_text(old.revoked_at)}), dated {_time_text(frame.time or None)}")
        v = verify_frame(frame, old.key, now=now, max_future_s=max_future_s)    # audio digest, time
        if not v.ok:
            return Incoming(p.wire, p.digest, frame, v.reason, v.detail)
        return Incoming(p.wire, p.digest, frame, None, "", old.key_id, p.device.officer,
                        before_revocation=revoked_at)
    return None


def _finish(p: _Pending, ok: bool, reason: Reason | None, detail: str, now: float,
            max_future_s: int = MAX_FUTURE_S) -> Incoming:
    """The Incoming for a verified (or not) frame; a bad signature that a revoked key of
    the device makes good is accepted if dated before the revocation, else `revoked-device`."""
    device = p.device
    frame = p.frame
    if ok:
        assert device.active is not None
        return Incoming(p.wire, p.digest, frame, None, "", device.active.key_id, device.officer)
    if reason == Reason.BAD_SIGNATURE or device.active is None:
        old = _by_revoked_key(p, now, max_future_s)
        if old is not None:
            return old
    if device.active is None:
        when = max((k.revoked_at or 0) for k in device.revoked)
        return Incoming(p.wire, p.digest, frame, Reason.REVOKED_DEVICE,
                        f"device {frame.device_id} was revoked ({_time_text(when)})")
    return Incoming(p.wire, p.digest, frame, reason, detail)


def _verify_here(p: _Pending, now: float, max_future_s: int) -> Incoming:
    if p.device.active is None:
        return _finish(p, False, Reason.REVOKED_DEVICE, "", now, max_future_s)
    v = verify_frame(p.frame, p.device.active.key, now=now, max_future_s=max_future_s)
    return _finish(p, v.ok, v.reason, v.detail, now, max_future_s)


def check_frame(wire: bytes, keys: KeyBook, now: float, max_future_s: int = MAX_FUTURE_S) -> Incoming:
    """Decode and verify one frame against the registry; never raises for bad input."""
    r = _resolve(wire, keys)
    return r if isinstance(r, Incoming) else _verify_here(r, now, max_future_s)


# --------------------------------------------------------------------------
# The writer (one thread, one connection, group commit).
