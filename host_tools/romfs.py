"""Keep the firmware's bytecode out of RAM: the sotto package in a ROMFS image.

MicroPython >= 1.25 can mount a read-only filesystem (ROMFS) that lives in its
own flash partition at /rom, with /rom on sys.path. A .mpy imported from there
runs in place: its bytecode and its str/bytes constants stay in flash instead
of being copied into the heap, as frozen modules do, but without rebuilding
the runtime. That is what fits `sotto flash`: `sotto flash --romfs` builds the
package's .mpy files (native kernels included) into an image with mpremote's
ROMFS builder, deploys it with `mpremote romfs deploy`, checks the partition's
SHA-256 on the device and removes /sotto from the read-write filesystem (the
current directory comes before /rom on sys.path). boot.py, main.py and the
board files stay on the read-write filesystem. Frozen modules would need a
custom runtime build per firmware change; ROMFS does not.

The runtime must be built with ROMFS enabled (MICROPY_VFS_ROM) and a ROMFS
partition: not every published ESP32 image has one. Without it the command
stops before changing anything (RomfsUnsupported).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import shutil
import subprocess
import sys
from pathlib import Path

from mpremote.romfs import make_romfs

from host_tools.device_link import DeviceLink
from host_tools.errors import SottoError

PACKAGE_ROOT = "/sotto/"
ROMFS_MAGIC = b"\xd2\xcd\x31"  # the first bytes of a ROMFS image
_QUERY = ("import vfs\nif not hasattr(vfs, 'rom_ioctl') or vfs.rom_ioctl(1) <= 0:\n print(-1)\nelse:\n"
          " d = vfs.rom_ioctl(2, 0)\n"
          " print(d.ioctl(4, 0) * d.ioctl(5, 0) if hasattr(d, 'ioctl') else len(d))\n")


class RomfsError(SottoError, RuntimeError):
    """Building, deploying or checking the ROMFS image failed."""


class RomfsUnsupported(RomfsError):
    """The device's MicroPython has no ROMFS partition."""


def build_image(files: dict[str, Path], out: Path) -> bytes:
    """A ROMFS image holding `files` ({device path under /sotto/: host .mpy});
    they appear under /rom with the same paths. Also written to `out`."""
    stage = out.with_suffix(".d")
    shutil.rmtree(stage, ignore_errors=True)
    for device_path, host in sorted(files.items()):
        if not device_path.startswith(PACKAGE_ROOT):
            raise RomfsError(f"{device_path} is not part of the package: only /sotto goes into ROMFS")
        dst = stage / device_path.lstrip("/")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(host, dst)
    with contextlib.redirect_stdout(io.StringIO()):  # it lists the tree it builds
        image = bytes(make_romfs(str(stage), mpy_cross=False))  # already compiled for the device
    out.write_bytes(image)
    return image


def partition_bytes(dev: DeviceLink) -> int | None:
    """Size of the device's first ROMFS partition, None if it has none."""
    size = int(dev.exec(_QUERY).strip())
    return size if size > 0 else None


def check_fits(dev: DeviceLink, image: bytes) -> None:
    size = partition_bytes(dev)
    if size is None:
        raise RomfsUnsupported("this device's MicroPython has no ROMFS partition (it needs MicroPython "
                               ">= 1.25 built with MICROPY_VFS_ROM and a romfs partition); flash without "
                               "--romfs, or write a runtime that has one with `sotto flash --runtime`")
    if len(image) > size:
        raise RomfsError(f"the firmware's ROMFS image is {len(image) // 1024} KB and the device's ROMFS "
                         f"partition {size // 1024} KB: flash without --romfs, or use a runtime with a "
                         "larger partition")


def deploy(port: str, image_path: Path) -> None:
    """Write the image to ROMFS partition 0 with `mpremote romfs deploy`."""
    cmd = [sys.executable, "-m", "mpremote", "connect", port, "romfs", "deploy", str(image_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 or "ROMFS image deployed" not in proc.stdout:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RomfsError(f"mpremote romfs deploy failed on {port}: {detail[0]}; "
                         "run `sotto flash --romfs` again")


def sha256_on_device(dev: DeviceLink, length: int) -> str:
    """SHA-256 of the first `length` bytes of ROMFS partition 0, computed on the device."""
    code = ("import vfs, hashlib, binascii\nd = vfs.rom_ioctl(2, 0)\nh = hashlib.sha256()\n"
            "m = memoryview(d)\n"
            f"for i in range(0, {length}, 4096):\n h.update(m[i:min(i + 4096, {length})])\n"
            "print(binascii.hexlify(h.digest()).decode())\n")
    return dev.exec(code).strip()


def image_sha256(image: bytes) -> str:
    return hashlib.sha256(image).hexdigest()
