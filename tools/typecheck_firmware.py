"""Type-check firmware/ against the MicroPython ESP32 stubs with mypy.

The stubs replace CPython's standard library for this check (they are
micropython-stdlib-stubs plus the ESP32 port's modules), so firmware code that
uses something MicroPython lacks fails here too. mypy refuses site-packages on
its search path, so the stub files are linked into build/stubs first.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
STUB_LINKS = REPO_ROOT / "build" / "stubs"
CONFIG = REPO_ROOT / "tools" / "mypy-firmware.ini"


def site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def link_stubs(site: Path) -> None:
    STUB_LINKS.mkdir(parents=True, exist_ok=True)
    for old in STUB_LINKS.iterdir():
        old.unlink()
    for entry in site.iterdir():
        if entry.suffix == ".pyi" or entry.name == "_mpy_shed":
            (STUB_LINKS / entry.name).symlink_to(entry)
    if not (STUB_LINKS / "machine.pyi").exists():
        sys.exit("typecheck: micropython-esp32-stubs is not installed; run `make setup`")


def main() -> int:
    site = site_packages()
    if not (site / "stdlib" / "builtins.pyi").exists():
        sys.exit("typecheck: micropython-stdlib-stubs is not installed; run `make setup`")
    link_stubs(site)
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(CONFIG),
           "--custom-typeshed-dir", str(site), str(REPO_ROOT / "firmware")]
    return subprocess.call(cmd, cwd=REPO_ROOT)


if __name__ == "__main__":
    sys.exit(main())
