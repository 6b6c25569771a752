"""`sotto purge --older-than DAYS`: remove location and audio past retention.

Thin handler over host_tools.receiver.purge.
"""

from __future__ import annotations

import argparse
from contextlib import closing
from typing import Any

from host_tools.receiver.alerts import utc_text
from host_tools.receiver.purge import DEFAULT_MIN_RETENTION_DAYS, purge, set_min_retention
from host_tools.receiver.store import alert_code, open_db
from host_tools.registry import resolve_db_path
from sotto_cli.options import add_db_and_json, add_operator, command, emit, operator_of

PURGE_HELP = f"""\
Remove the location and audio of closed alerts whose last frame arrived (and
which were closed) more than DAYS ago, and of check-ins older than that; delete
old rejection records. Open and acknowledged alerts, and alerts on hold (`sotto
alerts hold`), are never touched, however old. The frames' metadata (type, seq,
time, hash, chain link) and the alerts' history stay, so retried frames are
still recognised and the audit trail is whole. Each purged alert gets an audit
entry. Safe to run while `sotto receive` runs.

DAYS is a whole number, at least the centre's minimum retention (default
{DEFAULT_MIN_RETENTION_DAYS}; `--set-min-retention-days N` changes it, audited)."""


def register(subparsers: Any) -> None:
    """Add `sotto purge` to the CLI."""
    parser = command(subparsers, "purge", cmd_purge, help="remove location and audio past retention",
                     description=PURGE_HELP, epilog="example: sotto purge --older-than 30 --operator dpo")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--older-than", type=int, metavar="DAYS",
                      help="retention period in whole days (at least the minimum retention)")
    what.add_argument("--set-min-retention-days", type=int, metavar="N",
                      help=f"set the centre's minimum retention (default {DEFAULT_MIN_RETENTION_DAYS}); "
                           "purges nothing")
    add_operator(parser, what="who purges")
    parser.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    add_db_and_json(parser)


def cmd_purge(args: argparse.Namespace) -> int:
    """`sotto purge --older-than DAYS [--dry-run]`."""
    operator = operator_of(args)
    with closing(open_db(resolve_db_path(args.db))) as conn:
        if args.set_min_retention_days is not None:
            old = set_min_retention(conn, args.set_min_retention_days, operator=operator)
            return emit({"min_retention_days": args.set_min_retention_days, "was": old}, args,
                        f"minimum retention {old} -> {args.set_min_retention_days} days (set by {operator})")
        result = purge(conn, args.older_than, operator=operator, dry_run=args.dry_run)
    if args.json:
        return emit(result.to_json(), args, [])
    verb = "would remove" if result.dry_run else "removed"
    print(f"{verb} data received before {utc_text(result.cutoff)}:")
    for a in result.alerts:
        print(f"  {alert_code(a.alert_id)}: {a.locations} locations, {a.audio_chunks} audio chunks "
              f"({a.audio_seconds:.1f} s)")
    print(f"  {len(result.alerts)} alerts, {result.locations} locations in all "
          f"({result.other_locations} from "
          f"check-ins), {result.audio_chunks} audio chunks ({result.audio_seconds:.1f} s), "
          f"{result.rejections} rejection records")
    for k in result.kept:
        print(f"  kept {alert_code(k.alert_id)}: {k.why}")
    if not result.dry_run and not result.wal_truncated:
        print("note: the write-ahead log was busy; erased pages leave it at the next checkpoint")
    return 0
