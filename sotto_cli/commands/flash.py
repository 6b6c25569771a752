"""`sotto flash`: write the MicroPython runtime (optional) and the Sotto firmware to a device.

Thin handler over host_tools.flash.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from host_tools import efuse_check, flash
from host_tools.errors import UsageError
from sotto_cli.options import add_json, board_name, command, emit, known_boards

# relative: under the folder the technician runs `sotto flash` in, not the checkout
DEFAULT_BUILD_DIR = Path("build") / "flash"

DESCRIPTION = """\
Flash a device over USB (or a virtual device from `sotto vdev start`).

With --runtime, first write the MicroPython runtime with esptool (the whole chip
is erased; the image is refused unless its SHA-256 matches --sha256). Then
compile the firmware with mpy-cross for what the device reports, copy only the
files that differ from what the device holds, check every file's SHA-256 on the
device, write /manifest.json and soft-reset. /data (configuration, key, queued
alerts) is left alone. An interrupted flash is completed by running it again."""

EPILOG = """\
examples:
  sotto flash --port /dev/ttyACM0
  sotto flash --port /dev/ttyACM0 --runtime ESP32_GENERIC_S3-20251209-v1.27.0.bin --sha256 9f2c...
  sotto flash --port "$(cat ~/.sotto/vdev/port)\""""


def register(subparsers: Any) -> None:
    """Add `sotto flash` to the CLI."""
    p = command(subparsers, "flash", cmd_flash,
                help="write the firmware (and optionally MicroPython) to a device",
                description=DESCRIPTION, epilog=EPILOG)
    p.add_argument("--port", required=True, help="the device's serial port (e.g. /dev/ttyACM0)")
    p.add_argument("--runtime", type=Path, metavar="MICROPYTHON.bin",
                   help="first write this MicroPython runtime image with esptool (erases the chip)")
    p.add_argument("--sha256", metavar="HEX",
                   help="the runtime image's published SHA-256 (required with --runtime)")
    p.add_argument("--board", default=flash.DEFAULT_BOARD, type=board_name,
                   help=f"board definition, for the chip type esptool needs (default {flash.DEFAULT_BOARD}; "
                        f"known: {', '.join(known_boards())})")
    p.add_argument("--full", action="store_true", help="copy every file, even those already up to date")
    p.add_argument("--production", action="store_true",
                   help="a production unit: first check its eFuses (`sotto efuses`) and refuse (exit 2) "
                        "unless flash encryption (release mode), secure boot v2 and the download-mode lock "
                        "are in place")
    p.add_argument("--romfs", action="store_true",
                   help="put the firmware package in the device's ROMFS partition (MicroPython >= 1.25 built "
                        "with one): its bytecode then runs from flash instead of taking RAM")
    p.add_argument("--build-dir", type=Path, default=DEFAULT_BUILD_DIR,
                   help=f"where compiled files are kept (default {DEFAULT_BUILD_DIR}, in the current folder)")
    add_json(p, "print what was flashed as JSON")


class _Bar:
    """A progress bar on stderr, only when stdout is a terminal."""

    def __init__(self) -> None:
        self.on = sys.stdout.isatty()
        self.drawn = False

    def __call__(self, done: int, total: int, path: str) -> None:
        if not self.on or total <= 0:
            return
        width = 30
        filled = width * done // total
        bar = "#" * filled + " " * (width - filled)
        sys.stderr.write(f"\rcopying [{bar}] {done // 1024:4d}/{total // 1024} KB {path[-28:]:<28}")
        sys.stderr.flush()
        self.drawn = True

    def end(self) -> None:
        if self.drawn:
            sys.stderr.write("\n")


def cmd_flash(args: argparse.Namespace) -> int:
    """`sotto flash --port PORT [--runtime BIN --sha256 HEX] [--board B] [--full] [--romfs]`."""
    if (args.runtime is None) != (args.sha256 is None):
        raise UsageError("--runtime and --sha256 go together: give the image and its published SHA-256")
    if args.production:
        efuse_check.require_production(args.port)
        if args.runtime is None:   # espefuse reset the unit into its ROM bootloader: let MicroPython start
            flash.wait_for_micropython(args.port).close()
    if args.runtime is not None:
        flash.write_runtime(args.port, args.runtime, args.sha256, board=args.board)
        print(f"runtime {args.runtime.name} written; waiting for MicroPython on {args.port}", file=sys.stderr)
        flash.wait_for_micropython(args.port).close()
    bar = _Bar()
    try:
        result = flash.flash_firmware(args.port, build_dir=args.build_dir, full=args.full, progress=bar,
                                      romfs=args.romfs)
    finally:
        bar.end()
    data = {"port": args.port, "version": result.version, "build_id": result.build_id,
            "copied": list(result.copied), "bytes_copied": result.bytes_copied, "unchanged": result.unchanged,
            "removed": list(result.removed), "verified": result.verified, "device": str(result.device),
            "config": result.config.to_json() if result.config else None}
    return emit(data, args, f"flashed firmware {result.version} (build {result.build_id[:12]}) on "
                f"{args.port}: "
                f"{len(result.copied)} file(s) copied ({result.bytes_copied // 1024} KB), "
                f"{result.unchanged} unchanged, "
                f"{len(result.removed)} removed, {result.verified} verified on the device; {result.device}"
                + (f"\nconfiguration: {result.config.detail}" if result.config else ""))
