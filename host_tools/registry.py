"""The device registry: which devices exist and which public keys the receiver trusts.

It lives in the receiver's SQLite database, shared by `sotto devices`,
`sotto provision` (which registers the key a device made for itself) and
`sotto receive` (which verifies every frame against it):

    with Registry(resolve_db_path(args.db)) as reg:
        reg.add(b"SOTTO-42", public_key, officer="J. Smith")
        reg.rotate(b"SOTTO-42", new_public_key)     # the old key is revoked, the new one added
        reg.revoke(b"SOTTO-42")
        reg.get(b"SOTTO-42").keys                   # every key it ever had, oldest first

A device has at most one active key. Keys are never deleted: a revoked key
stays on record so frames signed with it are recognised as `revoked-device`
rather than as forgeries, and a key is never trusted twice. Only public keys
are stored; the registry refuses anything that looks like a private key.

The database path is chosen the same way by every command
(resolve_db_path): `--db PATH`, else the environment variable SOTTO_DB, else
`$XDG_DATA_HOME/sotto/receiver.db` (`~/.local/share/sotto/receiver.db`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from host_tools.errors import SottoError, UsageError
from host_tools.ids import DEVICE_ID_BYTES, format_device_id, parse_device_id

ENV_DB = "SOTTO_DB"
DB_FILE_NAME = "receiver.db"
PUBLIC_KEY_BYTES = 32
MAX_OFFICER_CHARS = 200
BUSY_TIMEOUT_MS = 10_000
REGISTRY_SCHEMA_VERSION = 1


class DatabaseError(SottoError, OSError):
    """The database cannot be opened or used (missing, not SQLite, locked, newer schema)."""


class RegistryError(SottoError, ValueError):
    """A registry change that is not allowed (second active key, reused key, ...)."""


class DeviceNotFoundError(RegistryError, LookupError):
    """No such device in the registry."""


# --------------------------------------------------------------------------
# The database file.


def default_db_path(env: Mapping[str, str] | None = None) -> Path:
    """`$XDG_DATA_HOME/sotto/receiver.db`, or `~/.local/share/sotto/receiver.db`."""
    env = os.environ if env is None else env
    base = env.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "sotto" / DB_FILE_NAME


def resolve_db_path(cli_value: str | os.PathLike[str] | None = None,
                    env: Mapping[str, str] | None = None) -> Path:
    """The database every command uses: `--db PATH` (cli_value), else $SOTTO_DB,
    else default_db_path()."""
    env = os.environ if env is None else env
    if cli_value is not None and str(cli_value).strip():
        return Path(os.path.expanduser(os.fspath(cli_value)))
    from_env = env.get(ENV_DB, "").strip()
    if from_env:
        return Path(os.path.expanduser(from_env))
    return default_db_path(env)


def add_db_option(parser: Any) -> None:
    """The `--db PATH` option every command that uses the database shares."""
    parser.add_argument("--db", metavar="PATH",
                        help=f"the receiver database (default: ${ENV_DB}, else {_DEFAULT_HELP})")


_DEFAULT_HELP = "$XDG_DATA_HOME/sotto/receiver.db, i.e. ~/.local/share/sotto/receiver.db"


def connect(db_path: str | os.PathLike[str], *, create: bool = True) -> sqlite3.Connection:
    """Open the receiver database: WAL journal, synchronous=FULL (a commit is on
    disk when it returns), foreign keys on, waits up to 10 s for another writer.

    create: make the file (mode 0600, its folder 0700) if it does not exist;
    otherwise a missing file is a DatabaseError that says how to make one.
    The connection is in autocommit mode: write through write_transaction().
    """
    path = Path(db_path)
    if not path.exists():
        if not create:
            raise DatabaseError(f"no receiver database at {path}; register a device "
                                f"(`sotto devices add`) or start `sotto receive --db {path}` first, "
                                f"or point --db / {ENV_DB} at the right file")
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Location and audio are personal data: only the owner may read the file.
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        except OSError as e:
            raise DatabaseError(f"cannot create the database {path}: {e.strerror or e}") from None
    elif path.is_dir():
        raise DatabaseError(f"{path} is a directory, not a database file")
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=False)
    except sqlite3.Error as e:
        raise DatabaseError(f"cannot open the database {path}: {e}") from None
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise DatabaseError(f"the database {path} cannot use WAL mode (journal mode {mode}); "
                                "is it on a network file system?")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    except sqlite3.DatabaseError as e:
        conn.close()
        raise DatabaseError(f"{path} is not a usable SQLite database: {e}") from None
    except DatabaseError:
        conn.close()
        raise
    return conn


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any exception). The commit is
    durable when the block ends (synchronous=FULL)."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as e:
        raise DatabaseError(f"the database is busy or unavailable: {e}") from None
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def check_schema(conn: sqlite3.Connection, component: str, version: int, ddl: str) -> None:
    """Create `component`'s tables (ddl, idempotent) and record its schema version;
    refuse a database made by a newer version of sotto."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_versions ("
                 "component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
    row = conn.execute("SELECT version FROM schema_versions WHERE component = ?", (component,)).fetchone()
    if row is not None and row[0] == version:
        return
    if row is not None and row[0] > version:
        raise DatabaseError(f"the database's {component} tables are version {row[0]}; this sotto "
                            f"knows version {version}: upgrade sotto")
    with write_transaction(conn):
        for statement in _statements(ddl):
            conn.execute(statement)
        conn.execute("INSERT OR REPLACE INTO schema_versions(component, version) VALUES (?, ?)",
                     (component, version))


def _statements(ddl: str) -> list[str]:
    """Split a DDL script into statements (sqlite3.complete_statement keeps triggers whole)."""
    out: list[str] = []
    current = ""
    for line in ddl.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    if current.strip():
        out.append(current.strip())
    return out


_REGISTRY_DDL = """
CREATE TABLE IF NOT EXISTS devices (
    device_id   BLOB PRIMARY KEY CHECK (length(device_id) = 8),
    officer     TEXT,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS device_keys (
    key_id      INTEGER PRIMARY KEY,
    device_id   BLOB NOT NULL REFERENCES devices(device_id),
    public_key  BLOB NOT NULL UNIQUE CHECK (length(public_key) = 32),
    added_at    REAL NOT NULL,
    added_by    TEXT,
    revoked_at  REAL,
    revoked_by  TEXT,
    revoke_reason TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS device_keys_one_active ON device_keys(device_id) WHERE revoked_at IS NULL;
CREATE TABLE IF NOT EXISTS registry_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO registry_meta(name, value) VALUES ('generation', 0);
CREATE TRIGGER IF NOT EXISTS devices_gen_ins AFTER INSERT ON devices BEGIN
    UPDATE registry_meta SET value = value + 1 WHERE name = 'generation'; END;
CREATE TRIGGER IF NOT EXISTS devices_gen_upd AFTER UPDATE ON devices BEGIN
    UPDATE registry_meta SET value = value + 1 WHERE name = 'generation'; END;
CREATE TRIGGER IF NOT EXISTS devices_gen_del AFTER DELETE ON devices BEGIN
    UPDATE registry_meta SET value = value + 1 WHERE name = 'generation'; END;
CREATE TRIGGER IF NOT EXISTS keys_gen_ins AFTER INSERT ON device_keys BEGIN
    UPDATE registry_meta SET value = value + 1 WHERE name = 'generation'; END;
CREATE TRIGGER IF NOT EXISTS keys_gen_upd AFTER UPDATE ON device_keys BEGIN
    UPDATE registry_meta SET value = value + 1 WHERE name = 'generation'; END;
CREATE TRIGGER IF NOT EXISTS keys_gen_del AFTER DELETE ON device_keys BEGIN
    UPDATE registry_meta SET value = value + 1 WHERE name = 'generation'; END;
"""


def ensure_registry_schema(conn: sqlite3.Connection) -> None:
    """Create the registry's tables if they are missing."""
    check_schema(conn, "registry", REGISTRY_SCHEMA_VERSION, _REGISTRY_DDL)


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


# --------------------------------------------------------------------------
# The registry.


@dataclass(frozen=True)
class KeyBookEntry:
    """What verification needs to know about one device id."""

    device_id: bytes
    officer: str | None
    active: KeyRecord | None
    revoked: tuple[KeyRecord, ...]


class Registry:
    """Devices and their public keys in the receiver's database (see module doc)."""

    def __init__(self, db_path: str | os.PathLike[str] | sqlite3.Connection, *, create: bool = True,
                 clock: Callable[[], float] = time.time) -> None:
        if isinstance(db_path, sqlite3.Connection):
            self._conn = db_path
            self._owned = False
        else:
            self._conn = connect(db_path, create=create)
            self._owned = True
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
                             "AND officer IS NOT ?", (name, now, kid, name))
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
