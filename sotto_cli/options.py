"""What every command module shares: building groups and commands, the common
options (--json, --db, --operator, --board) and printing data as JSON or text.

    parser, sub = group(subparsers, "devices", help=..., description=...)
    lst = command(sub, "list", cmd_list, help=..., description=...)
    add_db_and_json(lst)
    ...
    return emit(data, args, lines)     # JSON with --json, else the lines

Handlers return an exit status; a usage error raises UsageError (exit 2).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from host_tools.errors import UsageError
from host_tools.receiver import audit
from host_tools.registry import add_db_option

FORMATTER = argparse.RawDescriptionHelpFormatter
JSON_HELP = "print JSON for tools"

Handler = Callable[[argparse.Namespace], int]


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def group(subparsers: Any, name: str, *, help: str, description: str,
          epilog: str | None = None) -> tuple[argparse.ArgumentParser, Any]:
    """A command with subcommands (`sotto NAME SUBCOMMAND`); without one it prints
    its help to stderr and exits 2. Returns the parser and its subparsers."""
    parser = subparsers.add_parser(name, help=help, description=description, epilog=epilog,
                                   formatter_class=FORMATTER)
    parser.set_defaults(func=lambda args: _usage(parser))
    sub = parser.add_subparsers(dest=f"{name.replace('-', '_')}_command", metavar="SUBCOMMAND",
                                title="subcommands")
    return parser, sub


def command(subparsers: Any, name: str, func: Handler, *, help: str, description: str | None = None,
            epilog: str | None = None, **defaults: Any) -> argparse.ArgumentParser:
    """A command (or subcommand) run by func(args)."""
    parser = subparsers.add_parser(name, help=help, epilog=epilog, formatter_class=FORMATTER,
                                   description=description or help[:1].upper() + help[1:] + ".")
    parser.set_defaults(func=func, **defaults)
    return parser


def add_json(parser: Any, help: str = JSON_HELP) -> None:
    parser.add_argument("--json", action="store_true", help=help)


def add_db_and_json(parser: Any, json_help: str = JSON_HELP) -> None:
    add_json(parser, json_help)
    add_db_option(parser)


def emit(data: Any, args: argparse.Namespace, lines: Iterable[str] | Callable[[], Iterable[str]] | str,
         status: int = 0) -> int:
    """Print data as JSON with --json, else the text lines (or a callable giving them);
    returns status."""
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, default=str))
        return status
    if callable(lines):
        lines = lines()
    if isinstance(lines, str):
        lines = [lines]
    for line in lines:
        print(line)
    return status


def table(rows: list[tuple[str, ...]]) -> list[str]:
    """Rows (the first one the header) as left-aligned columns."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def add_operator(parser: Any, *, what: str = "who acts", login_fallback: bool = True,
                 metavar: str = "NAME", dest: str = "operator", flag: str = "--operator") -> None:
    """`--operator NAME`, default $SOTTO_OPERATOR; without either, the login name
    (login_fallback) or a usage error (exit 2)."""
    fallback = " or the login name" if login_fallback else "; one of the two is needed"
    parser.add_argument(flag, metavar=metavar, dest=dest,
                        help=f"{what}, for the audit log (default ${audit.ENV_OPERATOR}{fallback})")
    parser.set_defaults(**{f"_{dest}_login": login_fallback})


def operator_of(args: argparse.Namespace, dest: str = "operator") -> str:
    """The operator the command acts as: --operator, else $SOTTO_OPERATOR, else
    (where allowed) the login name; UsageError (exit 2) when there is none."""
    given = getattr(args, dest, None)
    if getattr(args, f"_{dest}_login", True):
        return audit.operator_name(given)
    for candidate in (given, os.environ.get(audit.ENV_OPERATOR)):
        if candidate is not None and candidate.strip():
            return audit.check_operator(candidate)
    raise UsageError(f"who is the operator? give --operator NAME or set {audit.ENV_OPERATOR}")


def known_boards(directory: Path | None = None) -> list[str]:
    """The board definitions the tools carry (hardware/boards/NAME.json)."""
    from host_tools.flash import BOARDS_DIR

    return sorted(p.stem for p in (directory or BOARDS_DIR).glob("*.json"))


def board_name(value: str) -> str:
    """argparse type for --board: a known board, else a usage error (exit 2) naming them."""
    boards = known_boards()
    if value not in boards:
        raise argparse.ArgumentTypeError(f"no board {value!r}: known boards are {', '.join(boards)}")
    return value
