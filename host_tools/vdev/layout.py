"""The virtual device's options, errors and folder layout (DIR/flash, vdev.pid, port,
vdev.log), and which device runs in a folder."""

from __future__ import annotations

import fcntl
import os
import re
from dataclasses import dataclass
from pathlib import Path

from host_tools.errors import SottoError, UsageError
from host_tools.vm import REPO_ROOT

VDEV_SCRIPT = REPO_ROOT / "tools" / "vm" / "vdev.mjs"
DEFAULT_DIR = Path(os.environ.get("SOTTO_VDEV_DIR", "~/.sotto/vdev")).expanduser()
DEFAULT_FLASH_KB = 2048  # the vfs partition of a 4 MB ESP32 module
DEFAULT_HEAP_KB = 256
INTERRUPT_GRACE_S = 3.0  # a board that ignores Ctrl-C this long is hard-reset
MAX_PENDING_OUT = 256 * 1024  # bytes held for a host that is not reading
_CTRL_C = 0x03


class VdevError(SottoError, RuntimeError):
    """The virtual device could not start, stop or keep running."""

class VdevAlreadyRunning(VdevError):
    """Another virtual device already uses this DIR."""


class VdevNotRunning(VdevError):
    """`sotto vdev stop` found no virtual device in DIR."""


@dataclass(frozen=True)
class VdevOptions:
    """How to run a virtual device."""

    dir: Path = DEFAULT_DIR
    flash_kb: int = DEFAULT_FLASH_KB
    heap_kb: int = DEFAULT_HEAP_KB
    trace: Path | None = None
    report_version: str | None = None  # claim another MicroPython release (tests of refusals)

    def validate(self) -> None:
        if self.flash_kb < 16:
            raise UsageError(f"--flash-kb {self.flash_kb}: a flash smaller than 16 KB cannot hold "
                             "a filesystem")
        if self.report_version is not None and not re.fullmatch(r"\d+\.\d+\.\d+", self.report_version):
            raise UsageError(f"--report-version {self.report_version!r}: give X.Y.Z, e.g. 1.22.2")
        if self.heap_kb < 64:
            raise UsageError(f"--heap-kb {self.heap_kb}: MicroPython needs at least 64 KB of heap")


def flash_dir(dir: Path) -> Path:
    """The host folder that is the virtual device's filesystem ("/")."""
    return dir / "flash"


def pid_path(dir: Path) -> Path:
    return dir / "vdev.pid"


def port_link(dir: Path) -> Path:
    """A stable symlink to the running device's /dev/pts/N."""
    return dir / "port"


def log_path(dir: Path) -> Path:
    return dir / "vdev.log"


def running_pid(dir: Path) -> int | None:
    """The pid of the virtual device running in DIR, or None."""
    path = pid_path(dir)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 32).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None  # a pid file nobody holds: left by a device that was killed
    finally:
        os.close(fd)
