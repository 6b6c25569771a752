"""`sotto rotate-key`: a new key made on the device, registered; the old one revoked.

Thin handler over host_tools.provision.
"""

from __future__ import annotations

import argparse
from typing import Any

from host_tools import provision
from host_tools.registry import add_db_option, resolve_db_path

DESCRIPTION = """\
Rotate a provisioned device's key: the device makes a new Ed25519 key from its
hardware RNG, the registry learns the new public key and revokes the old one.
Frames signed with the old key that arrive later are rejected as revoked-device.
The registry must trust the device's current key (otherwise use
`sotto provision --force`)."""


def register(subparsers: Any) -> None:
    """Add `sotto rotate-key` to the CLI."""
    p = subparsers.add_parser("rotate-key", help="give a provisioned device a new key, revoke the old one",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", required=True, help="the device's serial port")
    add_db_option(p)
    p.set_defaults(func=cmd_rotate_key)


def cmd_rotate_key(args: argparse.Namespace) -> int:
    """`sotto rotate-key --port PORT [--db PATH]`."""
    db = resolve_db_path(args.db)
    change = provision.rotate_key(args.port, db)
    print(f"rotated {change.device_id}: new key {change.fingerprint} registered in {db}; "
          f"revoked {', '.join(change.revoked)}")
    return 0
