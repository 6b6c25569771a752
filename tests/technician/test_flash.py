"""`sotto flash` end to end against the virtual device, with the real mpremote and esptool."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time

import pytest
import serial

from host_tools import flash
from host_tools.device_link import (
    DeviceFull,
    DeviceLink,
    IncompatibleDevice,
    NoSuchPort,
    NotMicroPython,
    PortBusy,
)
from host_tools.firmware_build import FIRMWARE_DIR


def _sotto(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sotto_cli", *args], capture_output=True, text=True,
                          timeout=120)


def test_flash_writes_verified_firmware_and_manifest(flashed, build_dir):
    build = flash.build_firmware(build_dir)  # what the shared device was flashed with (bytecode)
    manifest = json.loads((flashed.flash / "manifest.json").read_bytes())
    assert manifest["firmware_version"] == flash.firmware_version()
    assert manifest["files"] == {f.device_path: f.sha256 for f in build.files}
    expected = {"/main.py", "/boot.py", "/sotto/config.mpy", "/boards/sotto-ref-s3.json"}
    assert expected <= set(manifest["files"])
    # the device's own hashes (mpremote's sha256sum, not ours) match the manifest
    for path in ("/sotto/identity.mpy", "/main.py"):
        out = flashed.mpremote("fs", "sha256sum", ":" + path).stdout.split()[-1]
        assert out == manifest["files"][path]
    # boot.py and main.py ship as source; the package as bytecode the device imports
    assert (flashed.flash / "main.py").read_bytes() == (FIRMWARE_DIR / "main.py").read_bytes()
    out = flashed.mpremote("exec", "import sotto, sotto.config; print(sotto.VERSION, sotto.config.__file__)")
    assert out.stdout.split() == [flash.firmware_version(), "sotto/config.mpy"]  # "" is first on sys.path


def test_reflash_copies_nothing_when_up_to_date(flashed, build_dir):
    result = flash.flash_firmware(flashed.port, build_dir=build_dir)
    assert result.copied == [] and result.removed == []
    assert result.verified == result.unchanged > 30


def test_reflash_copies_only_the_changed_file_and_removes_stale_ones(make_vdev, build_dir, tmp_path):
    fw = tmp_path / "firmware"
    shutil.copytree(FIRMWARE_DIR, fw, ignore=shutil.ignore_patterns("__pycache__"))
    dev = make_vdev("one-change")
    first = flash.flash_firmware(dev.port, build_dir=build_dir, firmware_dir=fw)
    assert len(first.copied) == first.verified
    (dev.flash / "sotto" / "old_module.py").write_text("raise RuntimeError('stale')\n")
    (dev.flash / "data").mkdir()
    (dev.flash / "data" / "identity.key").write_bytes(b"not touched")
    with (fw / "sotto" / "haptic.py").open("a") as f:
        f.write("\n_FLASH_TEST_MARK = 1\n")
    second = flash.flash_firmware(dev.port, build_dir=build_dir, firmware_dir=fw)
    assert second.copied == ["/sotto/haptic.mpy"]
    assert second.removed == ["/sotto/old_module.py"]
    assert (dev.flash / "data" / "identity.key").read_bytes() == b"not touched"
    out = dev.mpremote("exec", "import sotto.haptic; print(sotto.haptic._FLASH_TEST_MARK)")
    assert out.stdout.strip() == "1"


def test_interrupted_flash_leaves_no_manifest_and_rerun_completes(make_vdev, build_dir):
    dev = make_vdev("interrupted")

    def pull_the_cable(done: int, total: int, path: str) -> None:
        if done > total // 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        flash.flash_firmware(dev.port, build_dir=build_dir, progress=pull_the_cable)
    assert not (dev.flash / "manifest.json").exists()  # the device claims no firmware
    build = flash.build_firmware(build_dir)
    def on_flash(path: str) -> str | None:
        host = dev.flash / path.lstrip("/")
        return hashlib.sha256(host.read_bytes()).hexdigest() if host.exists() else None

    missing = [f.device_path for f in build.files if on_flash(f.device_path) != f.sha256]
    assert 0 < len(missing) < len(build.files)
    result = flash.flash_firmware(dev.port, build_dir=build_dir)
    assert result.copied == missing  # exactly what the interruption left undone
    assert result.verified == len(build.files)
    manifest = json.loads((dev.flash / "manifest.json").read_bytes())
    for path, digest in manifest["files"].items():
        assert hashlib.sha256((dev.flash / path.lstrip("/")).read_bytes()).hexdigest() == digest
    assert not list(dev.flash.rglob("*.tmp"))


def test_interrupted_cli_by_kill_then_rerun(make_vdev, build_dir):
    dev = make_vdev("killed")
    proc = subprocess.Popen([sys.executable, "-m", "sotto_cli", "flash", "--port", dev.port,
                             "--build-dir", str(build_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sotto_dir = dev.flash / "sotto"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(sotto_dir.glob("*.mpy"))) < 8:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert not (dev.flash / "manifest.json").exists()
    again = _sotto("flash", "--port", dev.port, "--build-dir", str(build_dir))
    assert again.returncode == 0, again.stderr
    assert "verified on the device" in again.stdout
    assert "configuration: no configuration (config.json is missing)" in again.stdout   # a new unit
    assert (dev.flash / "manifest.json").exists()


def test_full_filesystem_is_refused_before_writing(make_vdev, build_dir):
    dev = make_vdev("small", flash_kb=64)
    with pytest.raises(DeviceFull) as err:
        flash.flash_firmware(dev.port, build_dir=build_dir)
    message = str(err.value)
    assert "too full" in message and "KB are free" in message and "/data" in message
    assert not (dev.flash / "sotto").exists()


def test_filesystem_filling_up_mid_write_is_reported(make_vdev):
    dev = make_vdev("fills", flash_kb=32)
    with DeviceLink.open(dev.port) as link:
        with pytest.raises(DeviceFull) as err:
            link.put("/big.bin", bytes(40 * 1024))
        assert link.hashes(["/big.bin"]) == {"/big.bin": None}
    assert "filesystem is full while writing /big.bin" in str(err.value)
    assert not list(dev.flash.rglob("*.tmp"))


def test_no_such_port(tmp_path):
    port = str(tmp_path / "ttyACM9")
    with pytest.raises(NoSuchPort) as err:
        flash.flash_firmware(port)
    assert "no such port" in str(err.value)
    cli = _sotto("flash", "--port", port)
    assert cli.returncode == 1
    assert cli.stderr.startswith("sotto: error: ") and cli.stderr.count("\n") == 1


def test_port_busy(flashed):
    holder = serial.Serial(flashed.port, exclusive=True)
    try:
        with pytest.raises(PortBusy) as err:
            flash.flash_firmware(flashed.port)
    finally:
        holder.close()
    assert "in use by another program" in str(err.value)


def test_no_micropython_on_the_other_end(echo_port):
    with pytest.raises(NotMicroPython) as err:
        DeviceLink.open(echo_port, probe_timeout_s=1.5)
    assert "not as a MicroPython REPL" in str(err.value)
    assert "sotto flash --runtime" in str(err.value)


def test_incompatible_micropython_version(make_vdev, build_dir):
    dev = make_vdev("old", report_version="1.22.2")
    with pytest.raises(IncompatibleDevice) as err:
        flash.flash_firmware(dev.port, build_dir=build_dir)
    assert "MicroPython 1.22.2 (mpy v6.2)" in str(err.value)
    assert f"sotto flash --port {dev.port} --runtime" in str(err.value)
    assert not (dev.flash / "sotto").exists()


# -- the runtime (esptool) -------------------------------------------------------
def _image(tmp_path, data: bytes = b"\xe9\x03\x02\x20" + bytes(4092)):
    path = tmp_path / "micropython.bin"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def test_runtime_with_wrong_sha256_is_refused_before_esptool_runs(tmp_path):
    image, digest = _image(tmp_path)
    ran: list[list[str]] = []
    wrong = digest[:-1] + ("0" if digest[-1] != "0" else "1")
    with pytest.raises(flash.RuntimeImageError) as err:
        flash.write_runtime("/dev/ttyACM0", image, wrong, run=lambda c: ran.append(c))  # type: ignore[arg-type,func-returns-value]
    assert ran == []
    assert f"has SHA-256 {digest}" in str(err.value) and "nothing was written" in str(err.value)
    cli = _sotto("flash", "--port", "/dev/ttyACM0", "--runtime", str(image), "--sha256", wrong)
    assert cli.returncode == 1 and "nothing was written" in cli.stderr


def test_runtime_that_is_not_an_esp32_image_is_refused(tmp_path):
    image, digest = _image(tmp_path, b"<html>not a firmware</html>")
    with pytest.raises(flash.RuntimeImageError) as err:
        flash.check_runtime_image(image, digest)
    assert "not an ESP32 flash image" in str(err.value)


def test_runtime_esptool_invocation_erases_and_writes_at_the_chip_offset(tmp_path):
    image, digest = _image(tmp_path)
    ran: list[list[str]] = []

    def fake_run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
        ran.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    flash.write_runtime("/dev/ttyACM0", image, digest.upper(), run=fake_run)
    (cmd,) = ran
    assert cmd[1:3] == ["-m", "esptool"]
    assert cmd[cmd.index("--chip") + 1] == "esp32s3"  # from hardware/boards/sotto-ref-s3.json
    tail = cmd[cmd.index("write-flash"):]
    assert tail == ["write-flash", "--erase-all", "0x0", str(image)]  # the S3 boots from 0x0
    assert flash.esptool_command("/dev/x", image, "esp32")[-2] == "0x1000"  # the original ESP32: 0x1000


def test_real_esptool_against_a_port_without_a_chip_gives_a_clear_error(echo_port, tmp_path):
    image, digest = _image(tmp_path)
    with pytest.raises(flash.FlashError) as err:
        flash.write_runtime(echo_port, image, digest, connect_attempts=1)
    message = str(err.value)
    assert message.startswith(f"esptool could not write the runtime to {echo_port}: ")
    assert "hold BOOT" in message
