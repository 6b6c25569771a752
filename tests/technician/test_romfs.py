"""`sotto flash --romfs`: the package as a ROMFS image (mpremote's builder),
and a device without a ROMFS partition (the virtual device: the VM's port has
none) is refused before anything on it changes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from host_tools import flash, romfs
from host_tools.device_link import DeviceLink


def test_the_image_holds_every_package_file_and_nothing_else(tmp_path):
    build = flash.build_firmware(tmp_path / "b", "xtensawin")
    rest, path, image = flash.romfs_build(build, tmp_path / "b")
    assert image.startswith(romfs.ROMFS_MAGIC) and path.read_bytes() == image
    package = [f for f in build.files if f.device_path.startswith("/sotto/")]
    assert any(f.device_path.endswith("_native.mpy") for f in package)
    for f in package:
        # each .mpy is stored verbatim (ROMFS maps it in place) under its own name
        assert f.host_path.read_bytes() in image, f.device_path
        assert f.device_path.rsplit("/", 1)[1].encode() in image
    # what stays on the read-write filesystem: entry points and boards, and the image's hash
    assert {f.device_path for f in rest.files} == {f.device_path for f in build.files} - {
        f.device_path for f in package}
    assert "/main.py" in {f.device_path for f in rest.files}
    assert rest.manifest()["romfs"] == romfs.image_sha256(image)
    assert rest.build_id != build.build_id


def test_only_package_files_go_into_the_image(tmp_path):
    with pytest.raises(romfs.RomfsError, match="only /sotto"):
        romfs.build_image({"/main.py": tmp_path / "x"}, tmp_path / "img.romfs")


def test_a_device_without_romfs_is_refused_before_anything_changes(make_vdev):
    dev = make_vdev()
    with DeviceLink.open(dev.port) as link:
        assert romfs.partition_bytes(link) is None
        before = link.hashes(flash.TOP_FILES, flash.MANAGED_ROOTS)
    proc = subprocess.run([sys.executable, "-m", "sotto_cli", "flash", "--port", dev.port, "--romfs"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "no ROMFS partition" in proc.stderr and "Traceback" not in proc.stderr
    with DeviceLink.open(dev.port) as link:
        assert link.hashes(flash.TOP_FILES, flash.MANAGED_ROOTS) == before
