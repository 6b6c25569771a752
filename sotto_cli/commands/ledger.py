"""`sotto ledger DEVICE`: who saw this device's location or audio, and when.

Thin handler over host_tools.receiver.ledger.device_ledger (read from the
audit log, which `sotto audit verify` checks)."""

from __future__ import annotations

from contextlib import closing
from typing import Any

from host_tools.ids import format_device_id, parse_device_id
from host_tools.receiver.format import utc_text
from host_tools.receiver.ledger import device_ledger
from host_tools.receiver.store import open_db
from host_tools.registry import resolve_db_path
from sotto_cli.options import add_db_and_json, command, emit


def register(subparsers: Any) -> None:
    """Add `sotto ledger` to the CLI."""
    parser = command(subparsers, "ledger", cmd_ledger, help="who accessed a device's location or audio",
                     description="Every view of a location or the track, every listen to audio and every "
                                 "export of the device's alerts: when, by whom, in which role, from the "
                                 "audit log.")
    parser.add_argument("device", metavar="DEVICE", help="device id (SOTTO-42 or 16 hex digits)")
    add_db_and_json(parser)


def cmd_ledger(args: Any) -> int:
    """`sotto ledger DEVICE [--json]`."""
    device_id = parse_device_id(args.device)
    with closing(open_db(resolve_db_path(args.db))) as conn:
        rows = device_ledger(conn, device_id)
    lines = [f"{utc_text(r['at_epoch'])}  {r['operator']} ({r['role']})  {r['action']}  "
             f"{r['alert'] or '-'}  {r['detail'] or ''}".rstrip() for r in rows]
    if not rows:
        lines = [f"nobody has accessed the location or audio of {format_device_id(device_id)}"]
    return emit({"device": format_device_id(device_id), "accesses": rows}, args, lines)
