"""`sotto flash` on the virtual device: full flash, re-flash with one file changed, plain mpremote cp -r.

The re-flash hashes every file on the device and copies only the changed one,
so it should cost a small fraction of a full flash (target: at least 5x less).
A full flash is set next to `mpremote cp -r` of the same files (which neither
verifies nor writes a manifest).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Row, lower_is_better
from host_tools import vdev
from host_tools.firmware_build import FIRMWARE_DIR
from host_tools.flash import build_firmware, flash_firmware


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="sotto-bench-flash-") as tmp_name:
        tmp = Path(tmp_name)
        fw = tmp / "firmware"
        shutil.copytree(FIRMWARE_DIR, fw, ignore=shutil.ignore_patterns("__pycache__"))
        build_dir = tmp / "build"
        build = build_firmware(build_dir, None, fw)  # compile once: the bench measures the device link
        total_kb = sum(f.size for f in build.files) / 1024
        a = vdev.VdevOptions(dir=tmp / "a")
        b = vdev.VdevOptions(dir=tmp / "b")
        port_a, _ = vdev.start_detached(a)
        port_b, _ = vdev.start_detached(b)
        try:
            full_s = _timed(lambda: flash_firmware(port_a, build_dir=build_dir, firmware_dir=fw))
            with (fw / "sotto" / "haptic.py").open("a") as f:
                f.write("\n_BENCH_MARK = 1\n")
            one_s = _timed(lambda: flash_firmware(port_a, build_dir=build_dir, firmware_dir=fw))
            stage = tmp / "stage"
            for f in build.files:
                dest = stage / f.device_path.lstrip("/")
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f.host_path, dest)
            cp_s = _timed(lambda: subprocess.run(
                [sys.executable, "-m", "mpremote", "connect", port_b, "cp", "-r",
                 "sotto", "boards", "main.py", "boot.py", ":"],
                cwd=stage, check=True, capture_output=True, timeout=300))
        finally:
            vdev.stop(a.dir)
            vdev.stop(b.dir)
    note = f"{len(build.files)} files, {total_kb:.0f} KB, virtual device"
    return [
        lower_is_better("flash: full, verified on device", full_s, "s", cp_s,
                        note=f"baseline: mpremote cp -r of the same files; {note}"),
        lower_is_better("flash: re-flash, one file changed", one_s, "s", full_s, target=">=5x",
                        note="baseline: full flash"),
    ]
