"""Is a unit ready for production? Its security eFuses, read with esptool's espefuse.

The device key at rest (docs/technician-guide.md, "The device key at rest:
production units") is protected by three things burned into the chip, which
no Python on the device can show or change:

  flash_encryption  on, in release mode (the count of encryption enables is odd
                    and write-protected, download-mode encryption and JTAG off)
  secure_boot       secure boot v2 (only images signed with the release key boot)
  download_mode     the ROM's plain download mode is off (or only the secure one)

`read_summary` runs `espefuse --port P --chip auto summary --format json` (the
pinned esptool's own reader) and `judge` turns that summary into one verdict
per layer with a plain reason. Field names are espefuse's: ESP32-S2/S3/C-series
(SPI_BOOT_CRYPT_CNT, SECURE_BOOT_EN, KEY_PURPOSE_n, DIS_DOWNLOAD_MODE,
ENABLE_SECURITY_DOWNLOAD, DIS_DOWNLOAD_MANUAL_ENCRYPT, DIS_PAD_JTAG,
DIS_USB_JTAG) and the classic ESP32 (FLASH_CRYPT_CNT, ABS_DONE_0/1,
UART_DOWNLOAD_DIS, DISABLE_DL_ENCRYPT/DECRYPT/CACHE, JTAG_DISABLE).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from host_tools.errors import UsageError

GUIDE = 'docs/technician-guide.md, "The device key at rest: production units"'
LAYERS = ("flash_encryption", "secure_boot", "download_mode")
ESPEFUSE_TIMEOUT_S = 60.0


class EfuseReadError(UsageError):
    """The port has no chip whose eFuses espefuse can read (exit 2)."""


class NotProductionReady(UsageError):
    """--production on a unit whose eFuses do not protect the key (exit 2)."""


@dataclass(frozen=True)
class Verdict:
    layer: str
    ok: bool
    reason: str


@dataclass(frozen=True)
class SecurityReport:
    source: str                     # the port, or the summary file judged
    family: str
    verdicts: tuple[Verdict, ...]

    @property
    def ready(self) -> bool:
        return all(v.ok for v in self.verdicts)

    @property
    def missing(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.ok]

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "family": self.family, "production_ready": self.ready,
                "layers": {v.layer: {"ok": v.ok, "reason": v.reason} for v in self.verdicts}}


# -- the verdicts, from an espefuse JSON summary ------------------------------------------

def _raw(summary: dict[str, Any], name: str) -> int:
    return int(str(summary[name]["raw_value"]), 16)


def _burned(summary: dict[str, Any], name: str) -> bool:
    return name in summary and _raw(summary, name) != 0


def _not_burned(summary: dict[str, Any], names: tuple[str, ...]) -> list[str]:
    """Those of names the chip has (espefuse lists them) that are still 0."""
    return [n for n in names if n in summary and not _burned(summary, n)]


def _flash_encryption(summary: dict[str, Any], cnt_name: str, release_fuses: tuple[str, ...]) -> Verdict:
    bits = _raw(summary, cnt_name)
    if bin(bits).count("1") % 2 == 0:
        return Verdict("flash_encryption", False,
                       f"off: {cnt_name} is {bits:#b} (an even number of bits set), so the flash and "
                       "/data/identity.key on it are plain; build with flash encryption in release mode")
    dev = [f"{cnt_name} is not write-protected"] if summary[cnt_name].get("writeable", True) else []
    dev += [f"{n} is not burned" for n in _not_burned(summary, release_fuses)]
    if dev:
        return Verdict("flash_encryption", False,
                       "on but in development mode (" + ", ".join(dev) + "): it can still be turned off "
                       "or bypassed; a production unit needs release mode")
    return Verdict("flash_encryption", True,
                   f"on, release mode: {cnt_name} odd and write-protected, " + ", ".join(release_fuses[:-1])
                   + f" and {release_fuses[-1]} burned (where the chip has them)")


def _first_burned(summary: dict[str, Any], layer: str, cases: tuple[tuple[str, bool, str], ...],
                  otherwise: tuple[bool, str]) -> Verdict:
    """The layer's verdict: (ok, reason) of the first (fuse, ok, reason) case whose fuse is
    burned (later fuses are not read), else `otherwise`."""
    for fuse, ok, reason in cases:
        if _burned(summary, fuse):
            return Verdict(layer, ok, reason)
    return Verdict(layer, *otherwise)


def _judge_s_series(summary: dict[str, Any]) -> tuple[Verdict, ...]:
    fe = _flash_encryption(summary, "SPI_BOOT_CRYPT_CNT",
                           ("DIS_DOWNLOAD_MANUAL_ENCRYPT", "DIS_PAD_JTAG", "DIS_USB_JTAG"))
    digests = sorted(n for n, f in summary.items() if n.startswith("KEY_PURPOSE_")
                     and str(f.get("value", "")).startswith("SECURE_BOOT_DIGEST"))
    if not _burned(summary, "SECURE_BOOT_EN"):
        sb = Verdict("secure_boot", False, "off: SECURE_BOOT_EN is not burned, so the bootloader runs any "
                                           "image (a firmware that prints the key could be flashed)")
    elif not digests:
        sb = Verdict("secure_boot", False, "SECURE_BOOT_EN is burned but no key block holds a "
                                           "SECURE_BOOT_DIGEST (no KEY_PURPOSE_n names one)")
    else:
        sb = Verdict("secure_boot", True, f"secure boot v2 on: SECURE_BOOT_EN burned, release key digest in "
                                          f"{', '.join(digests)}")
    dl = _first_burned(summary, "download_mode", (
        ("DIS_DOWNLOAD_MODE", True, "off: DIS_DOWNLOAD_MODE burned"),
        ("ENABLE_SECURITY_DOWNLOAD", True, "secure download mode only (ENABLE_SECURITY_DOWNLOAD burned): "
                                           "it cannot read flash")),
        (False, "open: neither DIS_DOWNLOAD_MODE nor ENABLE_SECURITY_DOWNLOAD is burned, so the ROM's "
                "download mode (esptool) still answers"))
    return fe, sb, dl


def _judge_esp32(summary: dict[str, Any]) -> tuple[Verdict, ...]:
    fe = _flash_encryption(summary, "FLASH_CRYPT_CNT",
                           ("DISABLE_DL_ENCRYPT", "DISABLE_DL_DECRYPT", "DISABLE_DL_CACHE", "JTAG_DISABLE"))
    sb = _first_burned(summary, "secure_boot", (
        ("ABS_DONE_1", True, "secure boot v2 on: ABS_DONE_1 burned"),
        ("ABS_DONE_0", False, "secure boot v1 (ABS_DONE_0), not v2: a production unit needs v2 (ESP32 ECO3 "
                              "or later, ABS_DONE_1)")),
        (False, "off: ABS_DONE_1 is not burned, so the bootloader runs any image (a firmware that prints "
                "the key could be flashed)"))
    dl = _first_burned(summary, "download_mode", (
        ("UART_DOWNLOAD_DIS", True, "off: UART_DOWNLOAD_DIS burned"),),
        (False, "open: UART_DOWNLOAD_DIS is not burned, so the ROM's download mode still answers"))
    return fe, sb, dl


def judge(summary: dict[str, Any]) -> tuple[str, tuple[Verdict, ...]]:
    """(chip family, a verdict per layer) of an `espefuse summary --format json` document;
    UsageError when a field is not as espefuse writes it."""
    try:
        if "SPI_BOOT_CRYPT_CNT" in summary:
            return "ESP32-S2/S3/C", _judge_s_series(summary)
        if "FLASH_CRYPT_CNT" in summary:
            return "ESP32", _judge_esp32(summary)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise UsageError(f"not an espefuse JSON summary: field {e} missing or malformed") from None
    why = "espefuse reported neither SPI_BOOT_CRYPT_CNT nor FLASH_CRYPT_CNT: a chip these checks do not know"
    return "unknown", tuple(Verdict(layer, False, why) for layer in LAYERS)


def report(source: str, summary: dict[str, Any]) -> SecurityReport:
    """The SecurityReport of a summary read from `source` (a port, or a summary file)."""
    family, verdicts = judge(summary)
    return SecurityReport(source, family, verdicts)


# -- reading a unit ----------------------------------------------------------------------------

def is_pseudo_terminal(port: str) -> bool:
    """A pty (Unix98 majors 136-143), such as the virtual device's port: no chip behind it."""
    try:
        st = os.stat(port)
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) and 136 <= os.major(st.st_rdev) <= 143


Runner = Callable[[list[str]], subprocess.CompletedProcess[str]]


def read_summary(connection: list[str], *, run: Runner | None = None) -> dict[str, Any]:
    """espefuse's JSON summary; connection is its options before the command (["--port", P,
    "--chip", "auto"], or ["--virt", ...] in tests). EfuseReadError when espefuse fails."""
    where = connection[connection.index("--port") + 1] if "--port" in connection else "the virtual chip"
    runner = run or (lambda c: subprocess.run(c, capture_output=True, text=True, timeout=ESPEFUSE_TIMEOUT_S))
    with tempfile.TemporaryDirectory(prefix="sotto-efuse-") as tmp:
        out = Path(tmp) / "summary.json"
        cmd = [sys.executable, "-m", "espefuse", *connection,
               "summary", "--format", "json", "--file", str(out)]
        try:
            proc = runner(cmd)
        except subprocess.TimeoutExpired:
            raise EfuseReadError(f"cannot read eFuses on {where}: espefuse did not finish within "
                                 f"{ESPEFUSE_TIMEOUT_S:.0f} s") from None
        if proc.returncode != 0 or not out.exists():
            lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
            last = lines[-1] if lines else f"exit {proc.returncode}"
            why = next((ln for ln in lines if "rror" in ln), last)
            raise EfuseReadError(f"cannot read eFuses on {where}: {why.rstrip('.')}")
        return json.loads(out.read_text())


def check(port: str, *, run: Runner | None = None) -> SecurityReport:
    """Read the unit's eFuses and judge them. EfuseReadError for a pty or a port espefuse cannot read."""
    if is_pseudo_terminal(port):
        raise EfuseReadError(f"cannot read eFuses on {port}: it is a pseudo-terminal (a virtual device from "
                             "`sotto vdev`?), not a chip")
    # espefuse resets the chip into its ROM bootloader to read it; --after hard-reset restarts it
    # (its default, no-reset, would leave the unit in the bootloader)
    connection = ["--port", port, "--chip", "auto", "--after", "hard-reset"]
    return report(port, read_summary(connection, run=run))


def require_production(port: str, *, run: Runner | None = None) -> SecurityReport:
    """For --production: the report when every layer is in place, else NotProductionReady
    naming what is missing; a port without a readable chip is refused as well (both exit 2)."""
    try:
        report = check(port, run=run)
    except EfuseReadError as e:
        raise EfuseReadError(f"{e}; --production needs a real unit") from None
    if not report.ready:
        missing = "; ".join(f"{v.layer.replace('_', ' ')}: {v.reason}" for v in report.missing)
        raise NotProductionReady(f"{port} is not ready for production ({missing}). Flash the release build "
                                 f"and let it burn its eFuses ({GUIDE}), or leave out --production for a "
                                 "development unit")
    return report


def report_lines(report: SecurityReport) -> list[str]:
    """The verdicts for the technician."""
    head = "ready for production" if report.ready else "NOT ready for production"
    lines = [f"{report.source} ({report.family}): {head}"]
    width = max(len(v.layer) for v in report.verdicts)
    lines += [f"  {v.layer.ljust(width)}  {'ok     ' if v.ok else 'MISSING'}  {v.reason}"
              for v in report.verdicts]
    if not report.ready:
        lines.append(f"see {GUIDE}")
    return lines
