"""Type-check firmware/ against the MicroPython ESP32 stubs with mypy.

The stubs replace CPython's standard library for this check (they are
micropython-stdlib-stubs plus the ESP32 port's modules), so firmware code that
uses something MicroPython lacks fails here too. mypy refuses site-packages on
its search path, so the stub files are linked into build/stubs first.

`--firmware DIR` checks another copy of the firmware tree with the same
settings (tests/test_typecheck.py plants typos in one and expects a failure).
"""

from __future__ import annotations

import argparse
import configparser
import subprocess
import sys
import sysconfig
import tempfile
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


def _config_for(firmware: Path, tmp: Path) -> Path:
    """tools/mypy-firmware.ini with its paths pointed at another firmware tree."""
    cfg = configparser.ConfigParser()
    cfg.read(CONFIG)
    cfg["mypy"]["mypy_path"] = f"{STUB_LINKS}:{firmware}"
    cfg["mypy"]["cache_dir"] = str(tmp / "cache")
    path = tmp / "mypy.ini"
    with path.open("w") as f:
        cfg.write(f)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--firmware", type=Path, help="check this firmware tree instead of firmware/")
    args = parser.parse_args(argv)
    site = site_packages()
    if not (site / "stdlib" / "builtins.pyi").exists():
        sys.exit("typecheck: micropython-stdlib-stubs is not installed; run `make setup`")
    link_stubs(site)
    base = [sys.executable, "-m", "mypy", "--custom-typeshed-dir", str(site)]
    if args.firmware is None:
        return subprocess.call(base + ["--config-file", str(CONFIG), str(REPO_ROOT / "firmware")],
                               cwd=REPO_ROOT)
    firmware = args.firmware.resolve()
    with tempfile.TemporaryDirectory(prefix="sotto-typecheck-") as tmp:
        config = _config_for(firmware, Path(tmp))
        return subprocess.call(base + ["--config-file", str(config), str(firmware)], cwd=firmware.parent)


if __name__ == "__main__":
    sys.exit(main())
