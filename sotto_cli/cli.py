"""`sotto`: the command line. Thin handlers over library functions.

Each command group lives in its own module under sotto_cli/commands/ and
exposes `register(subparsers)`; its handlers return an exit status. Expected
failures (SottoError) print one line to stderr and exit non-zero; bugs keep
their traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from host_tools import __version__, storage
from host_tools.errors import SottoError

INSUFFICIENT_PRIVILEGE = "42501"   # PostgreSQL's SQLSTATE for a privilege its role lacks

# Order here is the order in `sotto --help`.
COMMAND_MODULES: list[str] = [
    "sotto_cli.commands.frame",
    "sotto_cli.commands.devices",
    "sotto_cli.commands.centre",
    "sotto_cli.commands.db",
    "sotto_cli.commands.receive",
    "sotto_cli.commands.alerts",
    "sotto_cli.commands.visits",
    "sotto_cli.commands.evidence",
    "sotto_cli.commands.purge",
    "sotto_cli.commands.operators",
    "sotto_cli.commands.audit",
    "sotto_cli.commands.stats",
    "sotto_cli.commands.ledger",
    "sotto_cli.commands.vdev",
    "sotto_cli.commands.flash",
    "sotto_cli.commands.efuses",
    "sotto_cli.commands.provision",
    "sotto_cli.commands.rotate_key",
    "sotto_cli.commands.sim",
    "sotto_cli.commands.release",
    "sotto_cli.commands.releases",
]

DESCRIPTION = """\
Sotto: tools for the discreet lone-worker alarm.

Technicians flash and provision devices, the monitoring centre runs the receiver
and handles alerts, QA runs the simulator. Run `sotto COMMAND --help` for the
options of each command."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sotto",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"sotto {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "func", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except SottoError as e:
        print(f"sotto: error: {e}", file=sys.stderr)
        return e.exit_code
    except storage.Error as e:
        if getattr(e, "sqlstate", None) != INSUFFICIENT_PRIVILEGE:
            raise
        # PostgreSQL refused this login's role (docs/operator-guide.md 1a): say so, no traceback
        first = str(e).splitlines()[0] if str(e) else "permission denied"
        print(f"sotto: error: the database refused this login: {first} (its role may not do this; "
              "run it as a login of the role that may: docs/operator-guide.md, section 1a)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("sotto: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into `head` and the like: stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
