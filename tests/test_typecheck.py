"""`make typecheck` has no holes in the HAL: typos planted in a copy of the
firmware (on attributes that start as None, and wrong argument types) fail
the check, each reported at its own line; the unmodified copy passes."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from host_tools.firmware_build import FIRMWARE_DIR

REPO_ROOT = Path(__file__).resolve().parent.parent
TOOL = REPO_ROOT / "tools" / "typecheck_firmware.py"

# (file, text to find, planted replacement, what mypy must say about that line)
PLANTS = [
    ("sotto/hal/esp32.py", "self._wdt.feed()", "self._wdt.feeed()", '"WDT" has no attribute "feeed"'),
    ("sotto/hal/esp32.py", "self._i2s.deinit()", "self._i2s.deinitt()", '"I2S" has no attribute "deinitt"'),
    # a wrong argument type to a HAL method, and to a machine constructor
    ("sotto/hal/esp32.py", "    def mic_readinto(self, buf: bytearray) -> int:\n",
     "    def mic_readinto(self, buf: bytearray) -> int:\n        self.gnss_power(\"on\")\n",
     'Argument 1 to "gnss_power" of "Esp32Hal" has incompatible type "str"'),
    ("main.py", "hal = Esp32Hal(load_board(_board_name()))", "hal = Esp32Hal(load_board(_board_name()), 5)",
     'Argument 2 to "Esp32Hal" has incompatible type "int"'),
    ("sotto/hal/esp32.py", 'self._wdt = machine.WDT(timeout=self.board.get("watchdog_ms", 8000))',
     'self._wdt = machine.WDT(timeout="8000")', 'Argument "timeout" to "WDT" has incompatible type "str"'),
]


def _check(firmware: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(TOOL), "--firmware", str(firmware)], capture_output=True,
                          text=True, timeout=600)


def test_planted_typos_and_wrong_types_fail_the_check(tmp_path):
    firmware = tmp_path / "firmware"
    shutil.copytree(FIRMWARE_DIR, firmware, ignore=shutil.ignore_patterns("__pycache__"))
    clean = _check(firmware)
    assert clean.returncode == 0, clean.stdout + clean.stderr

    for rel, old, new, _ in PLANTS:
        path = firmware / rel
        text = path.read_text()
        assert text.count(old) == 1, (rel, old)
        path.write_text(text.replace(old, new))
    planted = _check(firmware)
    assert planted.returncode == 1
    out = planted.stdout
    for rel, _old, new, message in PLANTS:
        marker = new.strip().splitlines()[-1].strip()
        lines = [i + 1 for i, line in enumerate((firmware / rel).read_text().splitlines()) if marker in line]
        found = [m for m in re.finditer(r"^firmware/(\S+?):(\d+): error: (.*)$", out, re.M)
                 if m.group(1) == rel and int(m.group(2)) in lines and message in m.group(3)]
        assert found, f"{rel}: mypy did not report {message!r} at line {lines}:\n{out}"
