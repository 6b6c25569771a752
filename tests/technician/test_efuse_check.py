"""`sotto efuses` and `--production` on `sotto flash` / `sotto provision`: a unit's security
eFuses, judged per layer (flash encryption in release mode, secure boot v2, download mode).

The summaries are real: espefuse (the pinned esptool's) burns the fuses on its own
virtual chip (`--virt --path-efuse-file`) and writes its JSON summary, which
host_tools.efuse_check reads the same way it reads a unit's. The burns follow what
ESP-IDF's bootloader burns on first boot in release mode (one bit of the encryption
count, write-protected; download-mode encryption, JTAG and download mode off; the
secure boot v2 digest in a key block). Hardware itself is not in these tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from centre_support import centre_db

from host_tools import efuse_check, flash
from host_tools.errors import UsageError
from sotto_cli.cli import main

S3_RELEASE_FE = ["SPI_BOOT_CRYPT_CNT", "1", "DIS_DOWNLOAD_MANUAL_ENCRYPT", "1", "DIS_PAD_JTAG", "1",
                 "DIS_USB_JTAG", "1"]
S3_SECURE_BOOT = ["SECURE_BOOT_EN", "1", "KEY_PURPOSE_0", "SECURE_BOOT_DIGEST0"]
ESP32_RELEASE_FE = ["FLASH_CRYPT_CNT", "1", "DISABLE_DL_ENCRYPT", "1", "DISABLE_DL_DECRYPT", "1",
                    "DISABLE_DL_CACHE", "1", "JTAG_DISABLE", "1"]


def virtual_summary(tmp: Path, chip: str, burn: list[str], write_protect: list[str] = ()) -> dict:
    """espefuse's JSON summary of its virtual chip after burning `burn` (NAME VALUE pairs)."""
    efuses = tmp / f"{chip}.efuse.bin"
    virt = ["--virt", "--path-efuse-file", str(efuses), "--chip", chip]
    if burn:
        cmd = [sys.executable, "-m", "espefuse", *virt, "--do-not-confirm", "burn-efuse", *burn]
        if write_protect:
            cmd += ["write-protect-efuse", *write_protect]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return efuse_check.read_summary(virt)


# (id, chip, burn, write-protect, ok per layer (fe, sb, dl), words each failing reason must hold)
CASES = [
    ("s3-open-dev-unit", "esp32s3", [], [], (False, False, False),
     ["off: SPI_BOOT_CRYPT_CNT is 0b0", "SECURE_BOOT_EN is not burned", "DIS_DOWNLOAD_MODE nor"]),
    ("s3-release", "esp32s3", [*S3_RELEASE_FE, *S3_SECURE_BOOT, "DIS_DOWNLOAD_MODE", "1"],
     ["SPI_BOOT_CRYPT_CNT"], (True, True, True), []),
    ("s3-release-secure-download", "esp32s3",
     [*S3_RELEASE_FE, *S3_SECURE_BOOT, "ENABLE_SECURITY_DOWNLOAD", "1"], ["SPI_BOOT_CRYPT_CNT"],
     (True, True, True), []),
    ("s3-encryption-development-mode", "esp32s3", ["SPI_BOOT_CRYPT_CNT", "1", *S3_SECURE_BOOT], [],
     (False, True, False),
     ["development mode", "SPI_BOOT_CRYPT_CNT is not write-protected", "DIS_DOWNLOAD_MANUAL_ENCRYPT is not "
      "burned", "DIS_PAD_JTAG is not burned", "download mode (esptool) still answers"]),
    ("s3-encryption-turned-off-again", "esp32s3", ["SPI_BOOT_CRYPT_CNT", "3", *S3_SECURE_BOOT,
                                                    "DIS_DOWNLOAD_MODE", "1"], [], (False, True, True),
     ["SPI_BOOT_CRYPT_CNT is 0b11 (an even number"]),
    ("s3-secure-boot-off", "esp32s3", [*S3_RELEASE_FE, "DIS_DOWNLOAD_MODE", "1"], ["SPI_BOOT_CRYPT_CNT"],
     (True, False, True), ["off: SECURE_BOOT_EN is not burned"]),
    ("s3-secure-boot-without-digest", "esp32s3",
     [*S3_RELEASE_FE, "SECURE_BOOT_EN", "1", "DIS_DOWNLOAD_MODE", "1"], ["SPI_BOOT_CRYPT_CNT"],
     (True, False, True), ["no KEY_PURPOSE_n names one"]),
    ("esp32-open-dev-unit", "esp32", [], [], (False, False, False),
     ["off: FLASH_CRYPT_CNT is 0b0", "ABS_DONE_1 is not burned", "UART_DOWNLOAD_DIS is not burned"]),
    ("esp32-release", "esp32", [*ESP32_RELEASE_FE, "ABS_DONE_1", "1", "UART_DOWNLOAD_DIS", "1"],
     ["FLASH_CRYPT_CNT"], (True, True, True), []),
    ("esp32-secure-boot-v1", "esp32", [*ESP32_RELEASE_FE, "ABS_DONE_0", "1", "UART_DOWNLOAD_DIS", "1"],
     ["FLASH_CRYPT_CNT"], (True, False, True), ["secure boot v1 (ABS_DONE_0), not v2"]),
]


@pytest.mark.parametrize("chip,burn,protect,oks,words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_verdicts_on_espefuse_summaries(tmp_path, chip, burn, protect, oks, words):
    family, verdicts = efuse_check.judge(virtual_summary(tmp_path, chip, burn, protect))
    assert family == ("ESP32" if chip == "esp32" else "ESP32-S2/S3/C")
    assert [v.layer for v in verdicts] == list(efuse_check.LAYERS)
    assert tuple(v.ok for v in verdicts) == oks, [v.reason for v in verdicts]
    failing = " | ".join(v.reason for v in verdicts if not v.ok)
    for word in words:
        assert word in failing


def test_cli_judges_a_saved_summary_and_exits_3_when_a_layer_is_missing(tmp_path, capsys):
    saved = tmp_path / "unit.json"
    saved.write_text(json.dumps(virtual_summary(tmp_path, "esp32s3", ["SPI_BOOT_CRYPT_CNT", "1"])))
    assert main(["efuses", "--summary", str(saved), "--json"]) == 3
    out = json.loads(capsys.readouterr().out)
    assert out["production_ready"] is False and out["family"] == "ESP32-S2/S3/C"
    assert "development mode" in out["layers"]["flash_encryption"]["reason"]
    assert main(["efuses", "--summary", str(saved)]) == 3
    text = capsys.readouterr().out
    assert "NOT ready for production" in text and "MISSING" in text and "technician-guide.md" in text
    saved.write_text('{"SPI_BOOT_CRYPT_CNT": {"value": 1}}')
    assert main(["efuses", "--summary", str(saved)]) == 2
    assert "not an espefuse JSON summary" in capsys.readouterr().err


def _fake_espefuse(summary: dict):
    """A runner standing in for espefuse on a real port: writes `summary` where asked."""
    def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
        assert cmd[cmd.index("--port") + 1] == "/dev/ttyACM9"
        assert cmd[cmd.index("--after") + 1] == "hard-reset"   # the unit leaves the ROM bootloader
        Path(cmd[cmd.index("--file") + 1]).write_text(json.dumps(summary))
        return subprocess.CompletedProcess(cmd, 0, "", "")
    return run


def test_production_refusal_names_what_is_missing_and_what_to_do(tmp_path):
    summary = virtual_summary(tmp_path, "esp32s3", [*S3_RELEASE_FE, "DIS_DOWNLOAD_MODE", "1"],
                              ["SPI_BOOT_CRYPT_CNT"])
    with pytest.raises(efuse_check.NotProductionReady) as err:
        efuse_check.require_production("/dev/ttyACM9", run=_fake_espefuse(summary))
    msg = str(err.value)
    assert err.value.exit_code == 2
    assert msg.startswith("/dev/ttyACM9 is not ready for production (secure boot: off: SECURE_BOOT_EN")
    assert "flash encryption" not in msg and "download mode" not in msg   # only what is missing
    assert efuse_check.GUIDE in msg and "leave out --production" in msg


def test_a_pty_is_refused_without_running_espefuse(echo_port):
    def run(cmd):
        raise AssertionError("espefuse must not run on a pty")
    with pytest.raises(efuse_check.EfuseReadError, match="pseudo-terminal"):
        efuse_check.check(echo_port, run=run)


def test_a_port_espefuse_cannot_open_is_refused(tmp_path, capsys):
    port = str(tmp_path / "ttyUSB-none")
    assert main(["flash", "--production", "--port", port, "--build-dir", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert f"cannot read eFuses on {port}: " in err and "--production needs a real unit" in err
    assert not (tmp_path / "b").exists()   # nothing built, nothing flashed


def _provision_argv(port: str, db: Path) -> list[str]:
    return ["provision", "--port", port, "--id", "SOTTO-42", "--server", "http://127.0.0.1:8443",
            "--apn", "internet", "--db", str(db), "--production"]


def test_production_on_a_virtual_device_is_refused_before_it_is_touched(make_vdev, tmp_path):
    dev = make_vdev()
    db = centre_db(tmp_path / "r.db")
    for argv in (["flash", "--port", dev.port, "--production"], _provision_argv(dev.port, db)):
        proc = subprocess.run([sys.executable, "-m", "sotto_cli", *argv], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert f"cannot read eFuses on {dev.port}: it is a pseudo-terminal" in proc.stderr
        assert "--production needs a real unit" in proc.stderr
    assert not (dev.flash / "manifest.json").exists() and not (dev.flash / "data").exists()


def test_provision_production_locks_the_repl(make_vdev, tmp_path, build_dir, monkeypatch, capsys):
    """Past the check (the release summary, as if read from a unit), --production provisions with
    the REPL lock. Its own device: the lock takes hold at the soft reset that ends provisioning."""
    release = virtual_summary(tmp_path, "esp32s3",
                              [*S3_RELEASE_FE, *S3_SECURE_BOOT, "DIS_DOWNLOAD_MODE", "1"],
                              ["SPI_BOOT_CRYPT_CNT"])
    dev = make_vdev("locked")
    flash.flash_firmware(dev.port, build_dir=build_dir)
    monkeypatch.setattr(efuse_check, "is_pseudo_terminal", lambda port: False)
    monkeypatch.setattr(efuse_check, "read_summary", lambda connection, run=None: release)
    assert main([*_provision_argv(dev.port, centre_db(tmp_path / "r.db")), "--json"]) == 0, \
        capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["config"]["repl_lock"] is True
    assert json.loads((dev.flash / "data" / "config.json").read_text())["repl_lock"] is True


def test_judge_refuses_what_is_not_a_summary():
    with pytest.raises(UsageError):
        efuse_check.judge({"FLASH_CRYPT_CNT": {"raw_value": "zz"}})
    family, verdicts = efuse_check.judge({})
    assert family == "unknown" and not any(v.ok for v in verdicts)
