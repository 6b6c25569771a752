"""Virtual devices for the technician-tool tests: real mpremote, real MicroPython VM on a pty.

Starting a virtual device costs about half a second and a full flash a few
seconds on this machine, so one flashed device is shared by the tests that only
read it or reset its /data; tests that need a fresh or odd device start their own.
"""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import sys
import threading
import tty
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from host_tools import vdev
from host_tools.flash import flash_firmware
from host_tools.vm import VM_PACKAGE

MPREMOTE = [sys.executable, "-m", "mpremote"]

if not VM_PACKAGE.exists():  # pragma: no cover - `make setup` installs it
    pytest.skip("the MicroPython VM is not installed (npm ci)", allow_module_level=True)


@dataclass
class VirtualDevice:
    port: str
    dir: Path

    @property
    def flash(self) -> Path:
        """The device's filesystem, as a host folder."""
        return vdev.flash_dir(self.dir)

    def mpremote(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """The real mpremote command line against this device."""
        proc = subprocess.run([*MPREMOTE, "connect", self.port, *args], capture_output=True, text=True,
                              timeout=60)
        if check and proc.returncode != 0:
            raise AssertionError(f"mpremote {' '.join(args)} failed: {proc.stdout}{proc.stderr}")
        return proc

    def wipe_data(self) -> None:
        """Erase /data (config, key, queue), as erasing that partition would."""
        shutil.rmtree(self.flash / "data", ignore_errors=True)


def start_vdev(dir: Path, **options: object) -> VirtualDevice:
    port, _pid = vdev.start_detached(vdev.VdevOptions(dir=dir, **options))  # type: ignore[arg-type]
    return VirtualDevice(port, dir)


@pytest.fixture
def make_vdev(tmp_path: Path) -> Iterator:
    """Start virtual devices for one test; all are stopped afterwards."""
    started: list[VirtualDevice] = []

    def make(name: str = "vdev", **options: object) -> VirtualDevice:
        dev = start_vdev(tmp_path / name, **options)
        started.append(dev)
        return dev

    yield make
    for dev in started:
        try:
            vdev.stop(dev.dir)
        except vdev.VdevNotRunning:
            pass


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mpy-cross build cache for the whole run."""
    return tmp_path_factory.mktemp("build")


@pytest.fixture(scope="session")
def flashed(tmp_path_factory: pytest.TempPathFactory, build_dir: Path) -> Iterator[VirtualDevice]:
    """A virtual device with the firmware flashed, shared by the session."""
    dev = start_vdev(tmp_path_factory.mktemp("flashed") / "vdev")
    flash_firmware(dev.port, build_dir=build_dir)
    yield dev
    vdev.stop(dev.dir)


@pytest.fixture
def echo_port() -> Iterator[str]:
    """A pty whose other end echoes every byte back: a serial port with no MicroPython behind it."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    stop = threading.Event()

    def echo() -> None:
        os.set_blocking(master, False)
        while not stop.is_set():
            try:
                data = os.read(master, 1024)
            except BlockingIOError:
                stop.wait(0.01)
                continue
            except OSError:
                return
            if data:
                os.write(master, data)

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    yield os.ttyname(slave)
    stop.set()
    thread.join(timeout=2)
    os.close(master)
    os.close(slave)


@pytest.fixture
def device(flashed: VirtualDevice) -> Iterator[VirtualDevice]:
    """The shared flashed device with an empty /data (never provisioned), emptied again afterwards."""
    flashed.wipe_data()
    yield flashed
    flashed.wipe_data()
