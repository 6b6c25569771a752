"""`sotto stats --month YYYY-MM`: BS 8484-style answer times for one month.

Thin handler over host_tools.receiver.stats.month_stats."""

from __future__ import annotations

import argparse
from contextlib import closing
from typing import Any

from host_tools.receiver.stats import TARGET_10S, TARGET_40S, month_stats
from host_tools.registry import resolve_db_path
from sotto_cli.options import add_db_and_json, command, emit

STATS_HELP = f"""\
For the alerts whose alert-start arrived in the month (UTC): how many, the share
acknowledged within 10 s and within 40 s of that arrival (BS 8484 expects
{100 * TARGET_10S:g} % and {100 * TARGET_40S:g} %), and the median and 95th percentile answer time."""


def register(subparsers: Any) -> None:
    """Add `sotto stats` to the CLI."""
    parser = command(subparsers, "stats", cmd_stats, help="monthly answer-time figures (BS 8484)",
                     description=STATS_HELP)
    parser.add_argument("--month", required=True, metavar="YYYY-MM", help="the month, e.g. 2026-09")
    add_db_and_json(parser)


def cmd_stats(args: argparse.Namespace) -> int:
    """`sotto stats --month YYYY-MM [--json]`."""
    from host_tools.receiver.store import open_db

    with closing(open_db(resolve_db_path(args.db))) as conn:
        s = month_stats(conn, args.month)
    j = s.to_json()
    if args.json or not s.alerts:
        return emit(j, args, f"{s.month}: no alerts")

    def secs(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f} s"

    print(f"{s.month}: {s.alerts} alerts ({s.duress} duress), {s.acknowledged} acknowledged")
    print(
        f"  within 10 s  {s.within_10s:>5}  {j['within_10s_pct']:6.2f} %  (target {100 * TARGET_10S:g} %: "
        f"{'met' if j['meets_10s'] else 'NOT met'})"
    )
    print(
        f"  within 40 s  {s.within_40s:>5}  {j['within_40s_pct']:6.2f} %  (target {100 * TARGET_40S:g} %: "
        f"{'met' if j['meets_40s'] else 'NOT met'})"
    )
    print(
        f"  median {secs(s.median_s)}, 95th percentile {secs(s.p95_s)}; never acknowledged: "
        f"{s.unacknowledged}"
    )
    return 0
