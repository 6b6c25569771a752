"""The device registry: which devices exist and which public keys the receiver trusts.

It lives in the receiver's database (a SQLite file or PostgreSQL: host_tools.storage),
shared by `sotto devices`, `sotto provision` (which registers the key a device made for itself) and
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

Inside: database (the file, connections, schema versions), records (what the
registry returns, input checks), devices (Registry).
"""

from host_tools.registry.database import (
    BUSY_TIMEOUT_MS,
    DB_FILE_NAME,
    ENV_DB,
    REGISTRY_SCHEMA_VERSION,
    DatabaseError,
    add_db_option,
    connect,
    default_db_path,
    ensure_registry_schema,
    resolve_db_path,
    write_transaction,
)
from host_tools.registry.devices import Registry
from host_tools.registry.records import (
    MAX_OFFICER_CHARS,
    PUBLIC_KEY_BYTES,
    DeviceNotFoundError,
    DeviceRecord,
    KeyBookEntry,
    KeyRecord,
    RegistryError,
    device_id_bytes,
    key_fingerprint,
    public_key_bytes,
)

__all__ = [
    "BUSY_TIMEOUT_MS", "DB_FILE_NAME", "DatabaseError", "DeviceNotFoundError", "DeviceRecord", "ENV_DB",
    "KeyBookEntry", "KeyRecord", "MAX_OFFICER_CHARS", "PUBLIC_KEY_BYTES", "REGISTRY_SCHEMA_VERSION",
    "Registry", "RegistryError", "add_db_option", "connect", "default_db_path",
    "device_id_bytes", "ensure_registry_schema", "key_fingerprint", "public_key_bytes", "resolve_db_path",
    "write_transaction",
]
