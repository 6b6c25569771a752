"""`sotto operators add|list|disable|passwd`: the console's accounts.

Thin handlers over host_tools.receiver.accounts. Run on the centre's host by
whoever owns the database file; every change is in the audit log with role
`cli` and the operator name from --operator, $SOTTO_OPERATOR or the login name.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from contextlib import closing
from typing import Any

from host_tools.errors import UsageError
from host_tools.receiver import accounts
from host_tools.receiver.format import utc_text
from host_tools.receiver.roles import CLI, ROLES, Actor
from host_tools.receiver.store import open_db
from host_tools.registry import resolve_db_path
from sotto_cli.options import add_db_and_json, add_operator, command, emit, group, operator_of, table

OPERATORS_HELP = f"""\
Accounts for the operators' console (`sotto receive --console-port P`).

Roles: operator (live alerts: location, audio, acknowledge, commands),
supervisor (also closed alerts, close, export, statistics), auditor (audit
log, access ledger, purge and holds; no audio, no live location), admin
(devices and accounts; no alert content). Passwords are hashed with argon2id
and at least {accounts.MIN_PASSWORD_CHARS} characters long; {accounts.MAX_FAILED_LOGINS} wrong ones in a row
lock an account for {accounts.LOCKOUT_S // 60} minutes (a new password unlocks it). Accounts are disabled,
never deleted: the audit log names them."""


def register(subparsers: Any) -> None:
    """Add `sotto operators` and its subcommands to the CLI."""
    _, sub = group(subparsers, "operators", help="console accounts: add, list, disable, passwd",
                   description=OPERATORS_HELP)

    add = command(sub, "add", cmd_add, help="create an account",
                  description="Create a console account with a role. The password is read from standard "
                              "input (--password-stdin) or asked for twice on a terminal.")
    add.add_argument("name", metavar="NAME", help="login name (letters, digits, . _ @ -)")
    add.add_argument("--role", required=True, choices=ROLES, help="what the account may do")
    _common(add, password=True)

    lst = command(sub, "list", cmd_list, help="the accounts, their roles and state",
                  description="Every account: role, created, last login, disabled or locked.")
    add_db_and_json(lst)

    dis = command(sub, "disable", cmd_disable, help="disable an account and end its sessions",
                  description="Disable the account at once: its console sessions end, it cannot log in "
                              "again. The audit log keeps its name.")
    dis.add_argument("name", metavar="NAME", help="the account")
    _common(dis)

    pw = command(sub, "passwd", cmd_passwd, help="set a new password (also unlocks)",
                 description="Set a new password: unlocks the account and ends its sessions.")
    pw.add_argument("name", metavar="NAME", help="the account")
    _common(pw, password=True)


def _common(p: argparse.ArgumentParser, password: bool = False) -> None:
    if password:
        p.add_argument(
            "--password-stdin", action="store_true", help="read the password from standard input (one line)"
        )
    add_operator(p, what="who makes the change", metavar="WHO")
    add_db_and_json(p, "print the account as JSON")


def read_password(from_stdin: bool) -> str:
    """One line from standard input, or asked twice on a terminal."""
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise UsageError("--password-stdin: standard input is empty")
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise UsageError("give the password on standard input with --password-stdin")
    first = getpass.getpass("new password: ")
    if getpass.getpass("again: ") != first:
        raise UsageError("the two passwords differ; nothing changed")
    return first


def _actor(args: argparse.Namespace) -> Actor:
    return Actor(operator_of(args), CLI)


def cmd_add(args: argparse.Namespace) -> int:
    """`sotto operators add NAME --role ROLE --password-stdin`."""
    password = read_password(args.password_stdin)
    with closing(open_db(resolve_db_path(args.db), create=True)) as conn:
        rec = accounts.add_operator(conn, args.name, args.role, password, by=_actor(args))
    return emit(rec.to_json(), args, f"operator {rec.name} added ({rec.role})")


def cmd_list(args: argparse.Namespace) -> int:
    """`sotto operators list [--json]`."""
    now = time.time()
    with closing(open_db(resolve_db_path(args.db))) as conn:
        recs = accounts.list_operators(conn)
    if args.json or not recs:
        return emit([r.to_json(now) for r in recs], args,
                    "no operator accounts (`sotto operators add NAME --role ROLE --password-stdin`)")
    rows = [("NAME", "ROLE", "STATE", "LAST LOGIN (UTC)", "CREATED BY")]
    for r in recs:
        state = "disabled" if r.disabled_at else "locked" if r.locked(now) else "active"
        rows.append(
            (
                r.name,
                r.role,
                state,
                utc_text(r.last_login_at)[:19] if r.last_login_at else "never",
                r.created_by,
            )
        )
    return emit(None, args, table(rows))


def cmd_disable(args: argparse.Namespace) -> int:
    """`sotto operators disable NAME`."""
    with closing(open_db(resolve_db_path(args.db))) as conn:
        rec = accounts.disable_operator(conn, args.name, by=_actor(args))
    return emit(rec.to_json(), args, f"operator {rec.name} disabled; its console sessions ended")


def cmd_passwd(args: argparse.Namespace) -> int:
    """`sotto operators passwd NAME --password-stdin`."""
    password = read_password(args.password_stdin)
    with closing(open_db(resolve_db_path(args.db))) as conn:
        rec = accounts.set_password(conn, args.name, password, by=_actor(args))
    return emit(rec.to_json(), args, f"operator {rec.name}: new password set; unlocked, its sessions ended")
