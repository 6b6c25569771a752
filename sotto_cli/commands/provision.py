"""`sotto provision`: configure a flashed device, let it make its key, register the key.

Thin handler over host_tools.provision.
"""

from __future__ import annotations

import argparse
from typing import Any

from host_tools import provision
from host_tools.registry import add_db_option, resolve_db_path

DESCRIPTION = """\
Provision a flashed device: write its configuration (checked by the firmware's
own rules, on the device), let it make its Ed25519 key from its hardware RNG
(the private key never leaves the device), and register its public key in the
registry the receiver trusts. A device that already has a key is refused unless
--force, which gives it a new key and revokes the old one."""

EPILOG = """\
example:
  sotto provision --port /dev/ttyACM0 --id SOTTO-42 --officer "PC 1234 Smith" \\
      --server https://alerts.example.org --apn internet --sms-number +447700900123"""


def register(subparsers: Any) -> None:
    """Add `sotto provision` to the CLI."""
    p = subparsers.add_parser("provision", help="configure a device and register its new key",
                              description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", required=True, help="the device's serial port")
    p.add_argument("--id", required=True, dest="device_id",
                   help="device id: 16 hex digits or 8 characters such as SOTTO-42")
    p.add_argument("--officer", help="who wears it (shown to operators)")
    p.add_argument("--server", help="the receiver's URL, https://HOST[:PORT] (required the first time)")
    p.add_argument("--apn", help="the SIM's APN (required the first time)")
    p.add_argument("--sms-number", help="SMS fallback number, international form (+447700900123)")
    p.add_argument("--board", help="board definition name (default: the device's, else sotto-ref-s3)")
    p.add_argument("--force", action="store_true",
                   help="re-provision a provisioned device: new key, the old one is revoked")
    add_db_option(p)
    p.set_defaults(func=cmd_provision)


def cmd_provision(args: argparse.Namespace) -> int:
    """`sotto provision --port PORT --id ID [...]`."""
    request = provision.ProvisionRequest(args.device_id, officer=args.officer, server=args.server,
                                         sms_number=args.sms_number, apn=args.apn, board=args.board)
    db = resolve_db_path(args.db)
    change = provision.provision(args.port, request, db, force=args.force)
    revoked = f"; revoked {', '.join(change.revoked)}" if change.revoked else ""
    print(f"provisioned {change.device_id}: key {change.fingerprint} registered in {db}{revoked}")
    return 0
