"""`sotto vdev start|stop`: a virtual device (the MicroPython VM on a pseudo-terminal).

Thin handlers over host_tools.vdev.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from host_tools import vdev

VDEV_HELP = """\
A virtual Sotto device: the MicroPython VM behind a pseudo-terminal, with its
flash in a folder on this machine. `mpremote connect PORT ...`, `sotto flash`
and `sotto provision` talk to it as to a USB-attached board."""

START_HELP = """\
Start a virtual device. The first line printed is its port (/dev/pts/N); DIR/port
is a symlink to it. Runs until interrupted (Ctrl-C), or with --detach in the
background until `sotto vdev stop`. The device's filesystem is DIR/flash: it
survives soft resets and restarts, like flash."""

START_EPILOG = """\
example:
  PORT=$(sotto vdev start --detach --dir /tmp/vdev)
  mpremote connect "$PORT" exec "import sys; print(sys.implementation)"
  sotto vdev stop --dir /tmp/vdev"""


def register(subparsers: Any) -> None:
    """Add `sotto vdev` and its subcommands to the CLI."""
    fmt = argparse.RawDescriptionHelpFormatter
    parser = subparsers.add_parser("vdev", help="run a virtual device (MicroPython VM on a pty)",
                                   description=VDEV_HELP, formatter_class=fmt)
    parser.set_defaults(func=lambda args: _no_subcommand(parser))
    sub = parser.add_subparsers(dest="vdev_command", metavar="SUBCOMMAND", title="subcommands")

    start = sub.add_parser("start", help="start a virtual device and print its port",
                           description=START_HELP, epilog=START_EPILOG, formatter_class=fmt)
    vdev.add_options(start)
    start.add_argument("--detach", action="store_true",
                       help="leave it running in the background (stop it with `sotto vdev stop`)")
    start.set_defaults(func=cmd_start)

    stop = sub.add_parser("stop", help="stop a detached virtual device",
                          description="Stop the virtual device running in DIR.")
    stop.add_argument("--dir", type=Path, default=vdev.DEFAULT_DIR,
                      help=f"its folder (default: $SOTTO_VDEV_DIR or {vdev.DEFAULT_DIR})")
    stop.set_defaults(func=cmd_stop)


def _no_subcommand(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def cmd_start(args: argparse.Namespace) -> int:
    """`sotto vdev start [--dir DIR] [--detach] [--flash-kb N] [--heap-kb N] [--trace PREFIX]`."""
    options = vdev.options_from(args)
    if args.detach:
        port, pid = vdev.start_detached(options)
        print(port, flush=True)
        if sys.stderr.isatty():
            print(f"virtual device running (pid {pid}); flash in {vdev.flash_dir(options.dir)}; "
                  f"stop it with `sotto vdev stop --dir {options.dir}`", file=sys.stderr)
        return 0

    def ready(port: str) -> None:
        print(port, flush=True)
        if sys.stderr.isatty():
            print(f"virtual device running; flash in {vdev.flash_dir(options.dir)}; Ctrl-C stops it",
                  file=sys.stderr, flush=True)

    return vdev.serve(options, ready)


def cmd_stop(args: argparse.Namespace) -> int:
    """`sotto vdev stop [--dir DIR]`."""
    dir = args.dir.expanduser().resolve()
    pid = vdev.stop(dir)
    if sys.stderr.isatty():
        print(f"stopped the virtual device in {dir} (pid {pid})", file=sys.stderr)
    return 0
