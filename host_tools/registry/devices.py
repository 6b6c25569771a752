"""Registry: devices and their public keys in the receiver's database (see the
package docstring)."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from host_tools.ids import format_device_id
from host_tools.registry.database import (
    connect,
    ensure_registry_schema,
    write_transaction,
)
from host_tools.registry.records import (
    DeviceNotFoundError,
    DeviceRecord,
    KeyBookEntry,
    KeyRecord,
    RegistryError,
    _officer,
    device_id_bytes,
    key_fingerprint,
    public_key_bytes,
)

# --------------------------------------------------------------------------
# The registry.


class Registry:
    """Devices and their public keys in the receiver's database (see module doc)."""

    def __init__(self, db_path: str | os.PathLike[str] | sqlite3.Connection, *, create: bool = True,
                 clock: Callable[[], float] = time.time) -> None:
        if isinstance(db_path, (str, os.PathLike)):
            self._conn = connect(db_path, create=create)
            self._owned = True
        else:                   # an open connection (SQLite or PostgreSQL)
            self._conn = db_path
            self._owned = False
        self._clock = clock
        ensure_registry_schema(self._conn)

    # context manager / lifetime
    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the database connection (if this registry opened it)."""
        if self._owned:
            self._conn.close()

    @property
    def connection(self) -> sqlite3.Connection:
        return self._conn

    # -- reading -------------------------------------------------------------
    def find(self, device_id: bytes | str) -> DeviceRecord | None:
        """The device, or None."""
        kid = device_id_bytes(device_id)
        row = self._conn.execute("SELECT device_id, officer, created_at, updated_at FROM devices "
                                 "WHERE device_id = ?", (kid,)).fetchone()
        if row is None:
            return None
        keys = self._conn.execute(
            "SELECT key_id, public_key, added_at, added_by, revoked_at, revoked_by, revoke_reason "
            "FROM device_keys WHERE device_id = ? ORDER BY key_id", (kid,)).fetchall()
        return DeviceRecord(bytes(row[0]), row[1], row[2], row[3],
                            tuple(KeyRecord(k[0], bytes(k[1]), *k[2:]) for k in keys))

    def get(self, device_id: bytes | str) -> DeviceRecord:
        """The device; DeviceNotFoundError if it is not registered."""
        record = self.find(device_id)
        if record is None:
            raise DeviceNotFoundError(f"device {format_device_id(device_id_bytes(device_id))} is not in "
                                      "the registry (`sotto devices list` shows the registered ones)")
        return record

    def list(self) -> list[DeviceRecord]:
        """Every registered device, ordered by id."""
        ids = [bytes(r[0]) for r in self._conn.execute("SELECT device_id FROM devices ORDER BY device_id")]
        return [self.get(kid) for kid in ids]

    def generation(self) -> int:
        """A number that changes whenever any device or key changes (for caches)."""
        row = self._conn.execute("SELECT value FROM registry_meta WHERE name = 'generation'").fetchone()
        return int(row[0]) if row else 0

    def key_book(self) -> tuple[int, dict[bytes, KeyBookEntry]]:
        """(generation, {device id: KeyBookEntry}) read in one consistent snapshot."""
        conn = self._conn
        own = not conn.in_transaction   # inside the caller's transaction, read in it
        if own:
            conn.execute("BEGIN")
        try:
            gen = self.generation()
            officers = {bytes(r[0]): r[1] for r in conn.execute("SELECT device_id, officer FROM devices")}
            keys: dict[bytes, list[KeyRecord]] = {kid: [] for kid in officers}
            for k in conn.execute("SELECT key_id, public_key, added_at, added_by, revoked_at, revoked_by, "
                                  "revoke_reason, device_id FROM device_keys ORDER BY key_id"):
                keys.setdefault(bytes(k[7]), []).append(KeyRecord(k[0], bytes(k[1]), *k[2:7]))
        finally:
            if own:
                conn.execute("COMMIT")
        book = {}
        for kid, records in keys.items():
            active = next((r for r in records if r.active), None)
            book[kid] = KeyBookEntry(kid, officers.get(kid), active,
                                     tuple(r for r in records if not r.active))
        return gen, book

    # -- changes ----------------------------------------------------------------
    def add(self, device_id: bytes | str, public_key: bytes | Ed25519PublicKey, officer: str | None = None,
            *, by: str | None = None) -> DeviceRecord:
        """Register a device with its public key (or a new key for a device whose
        key was revoked). Adding the key the device already has is harmless
        (officer is updated when given). Refuses a second active key (use
        rotate), and a key that was ever registered before."""
        kid = device_id_bytes(device_id)
        pub = public_key_bytes(public_key)
        name = _officer(officer)
        now = self._clock()
        with write_transaction(self._conn) as conn:
            self._check_key_unused(conn, kid, pub, allow_active_same=True)
            same = conn.execute("SELECT key_id FROM device_keys WHERE device_id = ? AND public_key = ? "
                                "AND revoked_at IS NULL", (kid, pub)).fetchone()
            if same is None:
                active = conn.execute("SELECT public_key FROM device_keys WHERE device_id = ? "
                                      "AND revoked_at IS NULL", (kid,)).fetchone()
                if active is not None:
                    raise RegistryError(
                        f"device {format_device_id(kid)} already has an active key "
                        f"({key_fingerprint(bytes(active[0]))}); to replace it use rotate "
                        "(`sotto devices rotate`), or revoke it first")
            exists = conn.execute("SELECT 1 FROM devices WHERE device_id = ?", (kid,)).fetchone()
            if exists is None:
                conn.execute("INSERT INTO devices(device_id, officer, created_at, updated_at) "
                             "VALUES (?, ?, ?, ?)",
                             (kid, name, now, now))
            elif name is not None:
                conn.execute("UPDATE devices SET officer = ?, updated_at = ? WHERE device_id = ? "
                             "AND officer IS DISTINCT FROM ?", (name, now, kid, name))
            if same is None:
                conn.execute("INSERT INTO device_keys(device_id, public_key, added_at, added_by) "
                             "VALUES (?, ?, ?, ?)",
                             (kid, pub, now, _officer(by)))
        return self.get(kid)

    def rotate(self, device_id: bytes | str, new_public_key: bytes | Ed25519PublicKey, *,
               by: str | None = None) -> DeviceRecord:
        """Revoke the device's active key (if any) and trust `new_public_key` instead."""
        kid = device_id_bytes(device_id)
        pub = public_key_bytes(new_public_key)
        now = self._clock()
        with write_transaction(self._conn) as conn:
            if conn.execute("SELECT 1 FROM devices WHERE device_id = ?", (kid,)).fetchone() is None:
                raise DeviceNotFoundError(f"device {format_device_id(kid)} is not in the registry; "
                                          "add it first (`sotto devices add`)")
            active = conn.execute("SELECT public_key FROM device_keys WHERE device_id = ? "
                                  "AND revoked_at IS NULL",
                                  (kid,)).fetchone()
            if active is not None and bytes(active[0]) == pub:
                raise RegistryError(f"that is already device {format_device_id(kid)}'s active key; "
                                    "a rotation needs a new key made on the device")
            self._check_key_unused(conn, kid, pub, allow_active_same=False)
            conn.execute("UPDATE device_keys SET revoked_at = ?, revoked_by = ?, revoke_reason = 'rotated' "
                         "WHERE device_id = ? AND revoked_at IS NULL", (now, _officer(by), kid))
            conn.execute("INSERT INTO device_keys(device_id, public_key, added_at, added_by) "
                         "VALUES (?, ?, ?, ?)",
                         (kid, pub, now, _officer(by)))
            conn.execute("UPDATE devices SET updated_at = ? WHERE device_id = ?", (now, kid))
        return self.get(kid)

    def revoke(self, device_id: bytes | str, *, reason: str | None = None,
               by: str | None = None) -> DeviceRecord:
        """Stop trusting the device's active key: its frames are rejected as
        `revoked-device` from now on. The key stays on record."""
        kid = device_id_bytes(device_id)
        now = self._clock()
        with write_transaction(self._conn) as conn:
            if conn.execute("SELECT 1 FROM devices WHERE device_id = ?", (kid,)).fetchone() is None:
                raise DeviceNotFoundError(f"device {format_device_id(kid)} is not in the registry")
            cur = conn.execute("UPDATE device_keys SET revoked_at = ?, revoked_by = ?, revoke_reason = ? "
                               "WHERE device_id = ? AND revoked_at IS NULL",
                               (now, _officer(by), (reason or "revoked")[:200], kid))
            if cur.rowcount == 0:
                raise RegistryError(f"device {format_device_id(kid)} has no active key: "
                                    "it is already revoked")
            conn.execute("UPDATE devices SET updated_at = ? WHERE device_id = ?", (now, kid))
        return self.get(kid)

    def set_officer(self, device_id: bytes | str, officer: str | None) -> DeviceRecord:
        """Change (or clear, with None) the officer who wears the device."""
        kid = device_id_bytes(device_id)
        with write_transaction(self._conn) as conn:
            cur = conn.execute("UPDATE devices SET officer = ?, updated_at = ? WHERE device_id = ?",
                               (_officer(officer), self._clock(), kid))
            if cur.rowcount == 0:
                raise DeviceNotFoundError(f"device {format_device_id(kid)} is not in the registry")
        return self.get(kid)

    @staticmethod
    def _check_key_unused(conn: sqlite3.Connection, kid: bytes, pub: bytes, *,
                          allow_active_same: bool) -> None:
        row = conn.execute("SELECT device_id, revoked_at FROM device_keys WHERE public_key = ?",
                           (pub,)).fetchone()
        if row is None:
            return
        owner, revoked_at = bytes(row[0]), row[1]
        if owner != kid:
            raise RegistryError("that public key is already registered for device "
                                f"{format_device_id(owner)}; "
                                "every device makes its own key")
        if revoked_at is not None:
            raise RegistryError(f"that key of device {format_device_id(kid)} was revoked; a revoked key is "
                                "never trusted again: make a new key on the device")
        if not allow_active_same:
            raise RegistryError("that key is already the device's active key")
