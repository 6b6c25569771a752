"""`sotto rotate-key`: a new key made on the device, registered; the old one revoked.

Thin handler over host_tools.provision.
"""

from __future__ import annotations

import argparse
from typing import Any

from host_tools import provision
from host_tools.registry import resolve_db_path
from host_tools.storage import redact
from sotto_cli.commands.provision import add_queue_options, queue_policy
from sotto_cli.options import add_db_and_json, command, emit

DESCRIPTION = """\
Rotate a provisioned device's key: the device makes a new Ed25519 key from its
hardware RNG, the registry learns the new public key and revokes the old one.
Frames signed with the old key that arrive later are rejected as revoked-device,
so a device that still holds queued frames or a live alert is refused: --drain
delivers its frames to the centre first (over the USB link, checking the
centre's signed answers), --discard-queue throws them away (recorded in the
audit log). The registry must trust the device's current key (otherwise use
`sotto provision --force`)."""


def register(subparsers: Any) -> None:
    """Add `sotto rotate-key` to the CLI."""
    p = command(subparsers, "rotate-key", cmd_rotate_key,
                help="give a provisioned device a new key, revoke the old one", description=DESCRIPTION)
    p.add_argument("--port", required=True, help="the device's serial port")
    add_queue_options(p)
    add_db_and_json(p)


def cmd_rotate_key(args: argparse.Namespace) -> int:
    """`sotto rotate-key --port PORT [--drain | --discard-queue] [--db PATH]`."""
    db = resolve_db_path(args.db)
    change = provision.rotate_key(args.port, db, queue=queue_policy(args))
    shown = redact(db)   # a PostgreSQL URL's password never printed
    done = ""
    if change.drained is not None:
        done = f"; {change.drained.acked} queued frames delivered first"
    elif change.discarded:
        done = f"; {change.discarded} queued frames discarded (audit log)"
    return emit({**change.to_json(), "registry": shown}, args,
                f"rotated {change.device_id}: new key {change.fingerprint} registered in {shown}; "
                f"revoked {', '.join(change.revoked)}{done}")
