"""`sotto audit verify`: check that the audit log is whole and unaltered.

Thin handler over host_tools.receiver.audit.verify_chain. Exit status 0 when
every entry is as written and in order, 1 when an entry was removed, altered or
reordered (or entries were cut off the end); each problem is printed.
"""

from __future__ import annotations

import argparse
from contextlib import closing
from typing import Any

from host_tools.receiver import audit
from host_tools.receiver.store import open_db
from host_tools.registry import resolve_db_path
from sotto_cli.options import add_db_and_json, command, emit, group

AUDIT_HELP = """\
The audit log is hash-chained: each entry carries the SHA-256 of the one
before. `verify` recomputes every hash and follows the chain; it prints the
newest hash, which you can note somewhere else (a ticket, a notebook) and give
back later with --anchor to prove that nothing written before it was changed."""


def register(subparsers: Any) -> None:
    """Add `sotto audit verify` to the CLI."""
    _, sub = group(subparsers, "audit", help="check the audit log's hash chain", description=AUDIT_HELP)
    ver = command(sub, "verify", cmd_verify, help="detect removed, altered or reordered entries (exit 1)",
                  description="Recompute every entry's hash and follow the chain; exit 1 if any entry was "
                              "removed, altered or reordered.")
    ver.add_argument(
        "--anchor",
        action="append",
        default=[],
        metavar="HASH",
        help="a head hash noted earlier that must still be in the chain (repeatable)",
    )
    add_db_and_json(ver)


def cmd_verify(args: argparse.Namespace) -> int:
    """`sotto audit verify --db PATH [--anchor HASH] [--json]`."""
    with closing(open_db(resolve_db_path(args.db))) as conn:
        check = audit.verify_chain(conn, tuple(args.anchor))

    def lines() -> list[str]:
        if check.ok:
            return [f"audit log intact: {check.entries} entries, head {check.head_hash}"]
        return [f"audit log TAMPERED: {len(check.problems)} problems in {check.entries} entries"] + [
            f"  {code}: {text}" if audit_id is None else f"  #{audit_id} {code}: {text}"
            for audit_id, code, text in check.problems]

    return emit(check.to_json(), args, lines, 0 if check.ok else 1)
