"""The link to a MicroPython device over its serial port, through mpremote.

A thin adapter over `mpremote.transport_serial.SerialTransport` (mpremote is
pinned in pyproject.toml: its Python API is not promised stable, so all of it
is reached from here). It turns mpremote's and pyserial's failures into
SottoErrors that say what went wrong and what to do, and runs the few pieces of
device-side code that flashing and provisioning need (hashing files, writing a
file atomically, free space) in the device's raw REPL.

The same code talks to a board on USB and to the virtual device
(`sotto vdev start`): the virtual device lacks raw-paste mode, so mpremote
falls back to the plain raw REPL there (slower, same bytes).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType

import serial
from mpremote.transport import TransportError
from mpremote.transport_serial import SerialTransport

from host_tools.device_helpers import _HELPERS
from host_tools.errors import SottoError

# What the firmware is compiled for: mpy-cross 1.27 writes .mpy version 6.3.
MPY_VERSION = 6
MPY_SUB_VERSION = 3
MIN_MICROPYTHON = (1, 27)
# sys.implementation._mpy >> 10 -> mpy-cross -march (py/persistentcode.h, MP_NATIVE_ARCH_*)
NATIVE_ARCHES = {0: None, 1: "x86", 2: "x64", 3: "armv6", 4: "armv6m", 5: "armv7m", 6: "armv7em",
                 7: "armv7emsp", 8: "armv7emdp", 9: "xtensa", 10: "xtensawin", 11: "rv32imc",
                 12: "rv64imc"}
PROBE_TIMEOUT_S = 8.0
WRITE_CHUNK_BYTES = 6144  # file bytes per raw-REPL command (8 KB of base64): fits a small heap
_ENOSPC = (28, 51)  # LittleFS/POSIX, Emscripten


class LinkError(SottoError, OSError):
    """The device could not be reached or stopped answering."""


class NoSuchPort(LinkError, FileNotFoundError):
    """The serial port does not exist."""


class PortBusy(LinkError, BlockingIOError):
    """Another program holds the serial port."""


class NotMicroPython(LinkError, ConnectionError):
    """Something answered on the port, but not a MicroPython REPL."""


class IncompatibleDevice(SottoError, RuntimeError):
    """The device runs a MicroPython the firmware cannot run on."""


class DeviceFull(SottoError, OSError):
    """The device's filesystem has no room left."""


class DeviceCodeError(SottoError, RuntimeError):
    """Code run on the device raised; `device_error` is its last traceback line."""

    def __init__(self, message: str, device_error: str = "") -> None:
        super().__init__(message)
        self.device_error = device_error


@dataclass(frozen=True)
class DeviceInfo:
    """What the device says about itself (sys.implementation and friends)."""

    name: str
    version: tuple[int, int, int]
    mpy: int  # sys.implementation._mpy (0 when absent)
    platform: str
    machine: str

    @property
    def mpy_version(self) -> tuple[int, int]:
        return self.mpy & 0xFF, (self.mpy >> 8) & 3

    @property
    def march(self) -> str | None:
        """The mpy-cross -march for native code on this device (None: bytecode only)."""
        return NATIVE_ARCHES.get(self.mpy >> 10)

    @property
    def version_text(self) -> str:
        return ".".join(str(v) for v in self.version)

    def describe(self) -> str:
        v, sub = self.mpy_version
        return f"MicroPython {self.version_text} on {self.platform} ({self.machine}), mpy v{v}.{sub}"


def check_compatible(info: DeviceInfo, port: str = "PORT") -> None:
    """Raise IncompatibleDevice unless the firmware's .mpy files can run on this device."""
    fix = (f"flash MicroPython 1.27 first: `sotto flash --port {port} --runtime MICROPYTHON.bin "
           "--sha256 HEX` (see docs/technician-guide.md)")
    if info.name != "micropython":
        raise IncompatibleDevice(f"the device runs {info.name} {info.version_text}, not MicroPython; {fix}")
    if info.mpy_version != (MPY_VERSION, MPY_SUB_VERSION) or info.version[:2] < MIN_MICROPYTHON:
        v, sub = info.mpy_version
        raise IncompatibleDevice(
            f"the device runs MicroPython {info.version_text} (mpy v{v}.{sub}); Sotto firmware needs "
            f"{MIN_MICROPYTHON[0]}.{MIN_MICROPYTHON[1]} or newer with mpy v{MPY_VERSION}.{MPY_SUB_VERSION}; "
            f"{fix}")
    if info.march is None and info.mpy >> 10:
        raise IncompatibleDevice(f"the device reports an unknown native architecture ({info.mpy >> 10}); "
                                 "update sotto's tools")


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


class DeviceLink:
    """One session with a MicroPython device: raw REPL, soft-reset state.

    Use as a context manager: `with DeviceLink.open(port) as dev: ...`.
    """

    def __init__(self, port: str, transport: SerialTransport) -> None:
        self.port = port
        self._t = transport
        self._helpers = False
        self.info: DeviceInfo | None = None

    # -- connecting --------------------------------------------------------
    @classmethod
    def open(cls, port: str, *, probe_timeout_s: float = PROBE_TIMEOUT_S, soft_reset: bool = True,
             check: bool = True) -> DeviceLink:
        """Connect, enter the raw REPL (soft reset: a clean interpreter), read DeviceInfo.

        Raises NoSuchPort, PortBusy, LinkError, NotMicroPython, and with check
        IncompatibleDevice.
        """
        transport = _open_transport(port)
        link = cls(port, transport)
        try:
            link._enter_raw(probe_timeout_s, soft_reset)
            link.info = link._probe()
            if check:
                check_compatible(link.info, port)
        except BaseException:
            link.close(leave_raw=False)
            raise
        return link

    def _enter_raw(self, timeout_s: float, soft_reset: bool) -> None:
        captured = io.StringIO()
        try:
            with contextlib.redirect_stdout(captured):  # mpremote prints what it got on failure
                try:
                    self._t.enter_raw_repl(soft_reset=soft_reset, timeout_overall=timeout_s)
                except TransportError:
                    if captured.getvalue().strip() in ("", "b''"):
                        raise
                    # Something answered: a board that was busy or rebooting
                    # (boot messages, a watchdog reset) gets a second chance.
                    captured.seek(0)
                    captured.truncate()
                    self._t.enter_raw_repl(soft_reset=soft_reset, timeout_overall=timeout_s)
        except TransportError:
            heard = captured.getvalue().strip()
            if heard in ("", "b''"):
                raise NotMicroPython(
                    f"{self.port} gave no answer in {timeout_s:.0f} s: no MicroPython REPL there. Is it the "
                    "right port? Is MicroPython flashed (`sotto flash --runtime ...`)? Press RESET and "
                    "retry") from None
            raise NotMicroPython(
                f"{self.port} answered, but not as a MicroPython REPL (it sent {heard[:60]}): is it the "
                "right port, and is MicroPython flashed (`sotto flash --runtime ...`)?") from None
        except (OSError, serial.SerialException) as e:
            raise LinkError(f"lost {self.port} while connecting ({e}): check the cable and retry") from None

    def _probe(self) -> DeviceInfo:
        out = self.exec("import sys, json\n"
                        "i = sys.implementation\n"
                        "print(json.dumps([i.name, list(i.version[:3]), getattr(i, '_mpy', 0), sys.platform, "
                        "getattr(i, '_machine', '')]))\n"
                        "del i\n", what="reading what the device runs")
        try:
            name, version, mpy, platform, machine = json.loads(_last_line(out))
            return DeviceInfo(str(name), (int(version[0]), int(version[1]), int(version[2])), int(mpy),
                              str(platform), str(machine))
        except (ValueError, TypeError, IndexError):
            raise NotMicroPython(f"{self.port}: the REPL did not answer like MicroPython "
                                 f"({out[:60]!r})") from None

    def close(self, *, leave_raw: bool = True) -> None:
        """Leave the raw REPL (the device stays in its friendly REPL) and release the port."""
        with contextlib.suppress(Exception):
            if leave_raw and self._t.in_raw_repl:
                self._t.exit_raw_repl()
        with contextlib.suppress(Exception):
            self._t.close()

    def __enter__(self) -> DeviceLink:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- running code ------------------------------------------------------
    def exec(self, code: str, *, timeout_s: float = 30, what: str = "running code") -> str:
        """Run code in the raw REPL; return its stdout. DeviceCodeError if it raised."""
        try:
            out, err = self._t.exec_raw(code, timeout=timeout_s)
        except TransportError as e:
            raise LinkError(f"{self.port} stopped answering while {what} ({e}): check the cable, "
                            "then run the command again (it picks up where it stopped)") from None
        except (OSError, serial.SerialException) as e:
            raise LinkError(f"lost {self.port} while {what} ({e}): check the cable, then run the command "
                            "again (it picks up where it stopped)") from None
        text = out.decode("utf-8", "replace")
        if err:
            detail = _last_line(err.decode("utf-8", "replace"))
            raise DeviceCodeError(f"the device failed while {what}: {detail}", detail)
        return text

    def exec_json(self, code: str, *, timeout_s: float = 30, what: str = "running code") -> object:
        """Run code that prints one JSON line last; return it decoded."""
        out = self.exec(code, timeout_s=timeout_s, what=what)
        try:
            return json.loads(_last_line(out))
        except ValueError:
            raise DeviceCodeError(f"the device gave an unreadable answer while {what}: "
                                  f"{out[-80:]!r}") from None

    def _ensure_helpers(self) -> None:
        if not self._helpers:
            self.exec(_HELPERS, what="loading the flashing helpers")
            self._helpers = True

    # -- files ---------------------------------------------------------------
    def hashes(self, paths: Iterable[str] = (), roots: Iterable[str] = ()) -> dict[str, str | None]:
        """SHA-256 (hex) of each path and of every file under each root dir, computed on the device.

        A path that does not exist maps to None; a missing root adds nothing.
        """
        self._ensure_helpers()
        got = self.exec_json(f"_s_hashes({list(paths)!r}, {list(roots)!r})", timeout_s=60,
                             what="hashing files on the device")
        if not isinstance(got, dict):
            raise DeviceCodeError(f"the device gave an unreadable list of hashes: {got!r}")
        return {str(k): (str(v) if v is not None else None) for k, v in got.items()}

    def free_bytes(self) -> tuple[int, int]:
        """(free bytes, block size) of the device's filesystem."""
        self._ensure_helpers()
        got = self.exec_json("_s_free()", what="reading free space")
        if not isinstance(got, list) or len(got) != 3:
            raise DeviceCodeError(f"the device gave an unreadable statvfs: {got!r}")
        bsize, _blocks, bavail = (int(x) for x in got)
        return bavail * bsize, bsize

    def put(self, path: str, data: bytes, progress: Callable[[int], None] | None = None) -> None:
        """Write data to path on the device: into path.tmp, then renamed over path.

        An interruption leaves the old file (or none) and a stale .tmp, never a
        half-written path. DeviceFull on ENOSPC (the .tmp is removed).
        """
        self._ensure_helpers()
        chunks = [data[i:i + WRITE_CHUNK_BYTES] for i in range(0, len(data), WRITE_CHUNK_BYTES)] or [b""]
        for n, chunk in enumerate(chunks):
            b64 = base64.b64encode(chunk)  # bytes: the VM's binascii (Python) takes no str
            got = self.exec_json(f"_s_put({path!r}, {b64!r}, {int(n == 0)}, {int(n == len(chunks) - 1)})",
                                 what=f"writing {path}")
            if isinstance(got, dict) and "errno" in got:
                errno_value = int(got["errno"])
                if errno_value in _ENOSPC:
                    free, _ = self.free_bytes()
                    raise DeviceFull(f"the device's filesystem is full while writing {path} "
                                     f"({free // 1024} KB free): remove files you no longer need "
                                     "(never /data: it holds the device's key and queued alerts) "
                                     "or use a module with more flash")
                raise DeviceCodeError(f"the device could not write {path}: {os.strerror(errno_value)} "
                                      f"(errno {errno_value})")
            if progress is not None:
                progress(len(chunk))

    def remove(self, path: str) -> None:
        """Remove a file on the device; a missing file is fine."""
        self._ensure_helpers()
        self.exec(f"_s_rm({path!r})", what=f"removing {path}")

    def read(self, path: str) -> bytes | None:
        """A small file's bytes (None if absent). Only for public data: never the key."""
        got = self.exec_json(
            "import binascii, json\n"
            f"try:\n f = open({path!r}, 'rb')\nexcept OSError:\n print('null')\n"
            "else:\n with f:\n  print(json.dumps(binascii.b2a_base64(f.read()).decode().strip()))\n",
            what=f"reading {path}")
        return None if got is None else base64.b64decode(str(got))

    # -- reset -----------------------------------------------------------------
    def soft_reset_and_run(self, wait_s: float = 5.0) -> str:
        """Leave the raw REPL and soft-reset from the friendly REPL, so boot.py and main.py run.

        Returns what the device printed in the first moments (or up to wait_s).
        After this the link is done; close() it.
        """
        try:
            self._t.exit_raw_repl()
            self._t.serial.write(b"\x04")
            seen = self._t.read_until(1, b"soft reboot\r\n", timeout=wait_s, timeout_overall=wait_s)
        except (OSError, serial.SerialException, TransportError) as e:
            raise LinkError(f"lost {self.port} while resetting the device ({e})") from None
        return seen.decode("utf-8", "replace")


def _port_is_path(port: str) -> bool:
    return "://" not in port and not re.fullmatch(r"COM\d+", port)


def _open_transport(port: str) -> SerialTransport:
    if _port_is_path(port) and not os.path.exists(port):
        raise NoSuchPort(f"{port}: no such port. Is the device plugged in (list ports with `mpremote devs`)? "
                         "For a virtual device, use the port `sotto vdev start` printed")
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured):
            return SerialTransport(port, baudrate=115200)
    except TransportError:
        pass
    raise _diagnose_open_failure(port)


def _diagnose_open_failure(port: str) -> LinkError:
    """Open the port once more, only to learn why mpremote could not."""
    try:
        probe = serial.Serial(port, 115200, exclusive=True)
    except serial.SerialException as e:
        text = str(e)
        if "exclusively lock" in text or "Resource temporarily unavailable" in text:
            return PortBusy(f"{port} is in use by another program (an `mpremote` REPL, a serial monitor, "
                            "another sotto command?): close it and retry")
        if "Permission denied" in text or "[Errno 13]" in text:
            return LinkError(f"{port}: permission denied; add yourself to the port's group "
                             "(`sudo usermod -aG dialout $USER`, then log in again)")
        if "No such file" in text or "[Errno 2]" in text:
            return NoSuchPort(f"{port}: no such port (it went away): is the device plugged in?")
        return LinkError(f"cannot open {port}: {text}")
    probe.close()
    return LinkError(f"cannot open {port} through mpremote (it opened on its own just now): retry")
