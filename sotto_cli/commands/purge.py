"""`sotto purge --older-than DAYS`: remove location and audio past retention.

Thin handler over host_tools.receiver.purge.
"""

from __future__ import annotations

import argparse
from contextlib import closing
from typing import Any

from host_tools.receiver import audit
from host_tools.receiver.alerts import utc_text
from host_tools.receiver.purge import purge
from host_tools.receiver.store import alert_code, open_db
from host_tools.registry import add_db_option, resolve_db_path

PURGE_HELP = """\
Remove the location and audio of alerts whose last frame arrived more than DAYS
ago, and of check-ins older than that; delete old rejection records. The frames'
metadata (type, seq, time, hash, chain link) and the alerts' history stay, so
retried frames are still recognised and the audit trail is whole. Each purged
alert gets an audit entry. Safe to run while `sotto receive` runs."""


def register(subparsers: Any) -> None:
    """Add `sotto purge` to the CLI."""
    parser = subparsers.add_parser("purge", help="remove location and audio past retention",
                                   description=PURGE_HELP,
                                   formatter_class=argparse.RawDescriptionHelpFormatter,
                                   epilog="example: sotto purge --older-than 30 --operator dpo")
    parser.add_argument("--older-than", required=True, type=float, metavar="DAYS",
                        help="retention period in days")
    parser.add_argument("--operator", metavar="NAME",
                        help="who purges (default $SOTTO_OPERATOR or login name)")
    parser.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    add_db_option(parser)
    parser.set_defaults(func=cmd_purge)


def cmd_purge(args: argparse.Namespace) -> int:
    """`sotto purge --older-than DAYS [--dry-run]`."""
    operator = audit.operator_name(args.operator)
    with closing(open_db(resolve_db_path(args.db))) as conn:
        result = purge(conn, args.older_than, operator=operator, dry_run=args.dry_run)
    verb = "would remove" if result.dry_run else "removed"
    print(f"{verb} data received before {utc_text(result.cutoff)}:")
    for a in result.alerts:
        print(f"  {alert_code(a.alert_id)}: {a.locations} locations, {a.audio_chunks} audio chunks "
              f"({a.audio_seconds:.1f} s)")
    print(f"  {len(result.alerts)} alerts, {result.locations} locations in all "
          f"({result.other_locations} from "
          f"check-ins), {result.audio_chunks} audio chunks ({result.audio_seconds:.1f} s), "
          f"{result.rejections} rejection records")
    if not result.dry_run and not result.wal_truncated:
        print("note: the write-ahead log was busy; erased pages leave it at the next checkpoint")
    return 0
