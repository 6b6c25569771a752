"""`sotto vdev start|stop`: a virtual device (the MicroPython VM on a pseudo-terminal).

Thin handlers over host_tools.vdev.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from host_tools import vdev
from sotto_cli.options import add_json, command, emit, group

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
    _, sub = group(subparsers, "vdev", help="run a virtual device (MicroPython VM on a pty)",
                   description=VDEV_HELP)

    start = command(sub, "start", cmd_start, help="start a virtual device and print its port",
                    description=START_HELP, epilog=START_EPILOG)
    vdev.add_options(start)
    start.add_argument("--detach", action="store_true",
                       help="leave it running in the background (stop it with `sotto vdev stop`)")

    stop = command(sub, "stop", cmd_stop, help="stop a detached virtual device",
                   description="Stop the virtual device running in DIR and say so.")
    stop.add_argument("--dir", type=Path, default=vdev.DEFAULT_DIR,
                      help=f"its folder (default: $SOTTO_VDEV_DIR or {vdev.DEFAULT_DIR})")
    add_json(stop, "print what was stopped as JSON")


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
    return emit({"dir": str(dir), "pid": pid, "stopped": True}, args,
                f"stopped the virtual device in {dir} (pid {pid})")
