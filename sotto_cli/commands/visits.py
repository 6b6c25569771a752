"""`sotto visits list`: timed check-in visits as the centre sees them.

Thin handler over host_tools.receiver.visits. No location is shown here (a
check-in's position is in its frame: `sotto frame show`, audited alert views)."""

from __future__ import annotations

import argparse
import time
from contextlib import closing
from typing import Any

from host_tools.errors import UsageError
from host_tools.ids import parse_device_id
from host_tools.receiver.format import iso_utc
from host_tools.receiver.store import open_db
from host_tools.receiver.visits import list_visits, visit_line
from host_tools.registry import resolve_db_path
from sotto_cli.options import add_db_and_json, command, emit, group

VISITS_HELP = """\
Timed check-in visits ("amber"): the officer starts a visit with a press
pattern, may extend it, and ends it; a visit neither extended nor ended in time
makes the device raise a check-in-overdue alert.

The centre keeps its own timer (the receipt of the newest check-in + its
duration), so a visit whose device went quiet past its end is listed OVERDUE
even if no alert ever arrives. States, most urgent first: OVERDUE (past its
end, no end, no alert), ALERTED (the device raised the alert: handle it in
`sotto alerts`), OPEN, and with --all ENDED."""


def register(subparsers: Any) -> None:
    """Add `sotto visits` and its subcommand to the CLI."""
    _, sub = group(subparsers, "visits", help="timed check-in visits: open, overdue, ended",
                   description=VISITS_HELP)
    lst = command(sub, "list", cmd_list, help="open and overdue visits (with --all, ended ones too)",
                  description="Open, overdue and alerted visits, most urgent first, with their end "
                              "at the centre. No location is shown here.")
    lst.add_argument("--all", action="store_true", help="include visits that ended (and closed alerts')")
    lst.add_argument("--device", metavar="ID", help="only this device (e.g. SOTTO-61 or 16 hex digits)")
    add_db_and_json(lst)


def cmd_list(args: argparse.Namespace) -> int:
    """`sotto visits list [--all] [--device ID] [--json]`."""
    device = None
    if args.device:
        try:
            device = parse_device_id(args.device)
        except ValueError as e:
            raise UsageError(f"--device: {e}") from None
    now = time.time()
    with closing(open_db(resolve_db_path(args.db))) as conn:
        visits = list_visits(conn, include_ended=args.all, now=now, device_id=device)
    lines = [visit_line(v) for v in visits] or ["no visits" if args.all else "no open visits"]
    return emit({"time": iso_utc(now), "visits": [v.to_json() for v in visits]}, args, lines)
