"""`sotto efuses`: is a unit's key protected at rest? Its security eFuses, judged per layer.

Thin handler over host_tools.efuse_check.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from host_tools import efuse_check
from host_tools.errors import UsageError
from sotto_cli.options import add_json, command, emit

DESCRIPTION = """\
Read a unit's security eFuses with esptool's espefuse (read only: nothing is
burned) and say, for each layer that protects the device key at rest, whether
it is in place and why not:

  flash_encryption  on, in release mode
  secure_boot       secure boot v2 enabled, with the release key's digest
  download_mode     the ROM's plain download mode off (or secure download only)

`sotto flash --production` and `sotto provision --production` run the same
check and refuse a unit that fails it. The unit is reset into its ROM
bootloader to be read, and restarts afterwards. A virtual device has no
eFuses and is refused. Exit status: 0 ready for production, 3 a layer is
missing, 2 the eFuses cannot be read."""

EPILOG = f"""\
examples:
  sotto efuses --port /dev/ttyACM0
  espefuse --port /dev/ttyACM0 --chip auto summary --format json --file unit7.json
  sotto efuses --summary unit7.json --json

what to do when a layer is missing: {efuse_check.GUIDE}"""


def register(subparsers: Any) -> None:
    """Add `sotto efuses` to the CLI."""
    p = command(subparsers, "efuses", cmd_efuses,
                help="check a unit's security eFuses (flash encryption, secure boot, download mode)",
                description=DESCRIPTION, epilog=EPILOG)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--port", help="the unit's serial port (e.g. /dev/ttyACM0)")
    source.add_argument("--summary", type=Path, metavar="JSON_FILE",
                        help="judge a saved `espefuse summary --format json` file instead of a unit")
    add_json(p, "print the verdicts as JSON")


def cmd_efuses(args: argparse.Namespace) -> int:
    """`sotto efuses --port PORT | --summary FILE [--json]`."""
    if args.port is not None:
        report = efuse_check.check(args.port)
    else:
        try:
            summary = json.loads(args.summary.read_text())
        except (OSError, ValueError) as e:
            raise UsageError(f"cannot read the eFuse summary {args.summary}: {e}") from None
        if not isinstance(summary, dict):
            raise UsageError(f"{args.summary} is not an `espefuse summary --format json` document")
        report = efuse_check.report(str(args.summary), summary)
    return emit(report.to_json(), args, efuse_check.report_lines(report), status=0 if report.ready else 3)
