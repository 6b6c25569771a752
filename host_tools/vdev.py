"""The virtual device: the MicroPython VM behind a pseudo-terminal.

`sotto vdev start [--dir DIR]` gives technicians and tests a board to flash and
provision without hardware: `mpremote connect PORT ...` talks to it as to a
USB-attached MicroPython board.

Two processes, like the two chips of a dev board:

- this module is the **USB-serial chip and the power supply**: it owns the
  pseudo-terminal (Python has `pty.openpty`; Node cannot open one without a
  native add-on), keeps its slave end open and raw so the port exists whether
  or not a host is connected, moves bytes between the pty and the VM, and
  resets the VM when it dies or ignores Ctrl-C (a "watchdog" hard reset: the
  VM is single-threaded, so a loop that never polls cannot be interrupted);
- `tools/vm/vdev.mjs` is the **microcontroller**: the pinned MicroPython
  WebAssembly VM with its REPL (friendly and raw, soft reset, Ctrl-C) and its
  flash, a VFS whose files live in DIR/flash on the host.

DIR holds: `flash/` (the device's filesystem, "/" on the device), `vdev.pid`
(locked while the device runs), `port` (a symlink to the current /dev/pts/N),
`vdev.log` (what a detached device reports). `--trace PREFIX` records every byte
that crossed the pty into PREFIX.in (host to device) and PREFIX.out.

What differs from an ESP32 running MicroPython: `sys.platform` is
"webassembly", `sys.implementation._machine` "JS with Emscripten" and its
`_mpy` names no native architecture (so tools build bytecode for it, which is
what it runs); there is no `machine`, `esp32`, `network` or `os.uname()`; no
raw-paste mode; the heap and flash sizes are options; a busy loop that neither
sleeps, reads the clock nor prints is stopped by a hard reset instead of
KeyboardInterrupt.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import os
import pty
import re
import selectors
import signal
import subprocess
import sys
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from host_tools.errors import SottoError, UsageError
from host_tools.vm import REPO_ROOT, VM_PACKAGE, node_binary

VDEV_SCRIPT = REPO_ROOT / "tools" / "vm" / "vdev.mjs"
DEFAULT_DIR = Path(os.environ.get("SOTTO_VDEV_DIR", "~/.sotto/vdev")).expanduser()
DEFAULT_FLASH_KB = 2048  # the vfs partition of a 4 MB ESP32 module
DEFAULT_HEAP_KB = 256
INTERRUPT_GRACE_S = 3.0  # a board that ignores Ctrl-C this long is hard-reset
MAX_PENDING_OUT = 256 * 1024  # bytes held for a host that is not reading
_CTRL_C = 0x03


class VdevError(SottoError, RuntimeError):
    """The virtual device could not start, stop or keep running."""


class VdevAlreadyRunning(VdevError):
    """Another virtual device already uses this DIR."""


class VdevNotRunning(VdevError):
    """`sotto vdev stop` found no virtual device in DIR."""


@dataclass(frozen=True)
class VdevOptions:
    """How to run a virtual device."""

    dir: Path = DEFAULT_DIR
    flash_kb: int = DEFAULT_FLASH_KB
    heap_kb: int = DEFAULT_HEAP_KB
    trace: Path | None = None
    report_version: str | None = None  # claim another MicroPython release (tests of refusals)

    def validate(self) -> None:
        if self.flash_kb < 16:
            raise UsageError(f"--flash-kb {self.flash_kb}: a flash smaller than 16 KB cannot hold "
                             "a filesystem")
        if self.report_version is not None and not re.fullmatch(r"\d+\.\d+\.\d+", self.report_version):
            raise UsageError(f"--report-version {self.report_version!r}: give X.Y.Z, e.g. 1.22.2")
        if self.heap_kb < 64:
            raise UsageError(f"--heap-kb {self.heap_kb}: MicroPython needs at least 64 KB of heap")


def flash_dir(dir: Path) -> Path:
    """The host folder that is the virtual device's filesystem ("/")."""
    return dir / "flash"


def pid_path(dir: Path) -> Path:
    return dir / "vdev.pid"


def port_link(dir: Path) -> Path:
    """A stable symlink to the running device's /dev/pts/N."""
    return dir / "port"


def log_path(dir: Path) -> Path:
    return dir / "vdev.log"


def running_pid(dir: Path) -> int | None:
    """The pid of the virtual device running in DIR, or None."""
    path = pid_path(dir)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 32).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None  # a pid file nobody holds: left by a device that was killed
    finally:
        os.close(fd)


class _Bridge:
    """The pty, the VM process and the bytes between them."""

    def __init__(self, options: VdevOptions) -> None:
        self.options = options
        self.master = -1
        self.slave = -1
        self.port = ""
        self.child: subprocess.Popen[bytes] | None = None
        self.status_r = -1
        self.to_host = bytearray()  # VM output the host has not read yet
        self.to_vm = bytearray()  # host input the VM has not taken yet
        self.busy = False
        self.interrupt_at: float | None = None
        self.replay = bytearray()  # host bytes after an ignored Ctrl-C
        self.dropped = 0
        self.resets: list[float] = []
        self.trace_in = None
        self.trace_out = None

    # -- setup ---------------------------------------------------------
    def open(self) -> str:
        self.master, self.slave = pty.openpty()
        # Raw, so the line discipline never echoes the board's output back to it.
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.port = os.ttyname(self.slave)
        if self.options.trace is not None:
            self.trace_in = open(f"{self.options.trace}.in", "ab")  # noqa: SIM115
            self.trace_out = open(f"{self.options.trace}.out", "ab")  # noqa: SIM115
        self._spawn()
        return self.port

    def _spawn(self) -> None:
        status_r, status_w = os.pipe()
        cmd = [node_binary(), str(VDEV_SCRIPT), "--flash", str(flash_dir(self.options.dir)),
               "--flash-kb", str(self.options.flash_kb), "--heap-kb", str(self.options.heap_kb),
               "--status-fd", str(status_w)]
        if self.options.report_version:
            cmd += ["--report-version", self.options.report_version]
        self.child = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      pass_fds=(status_w,), cwd=REPO_ROOT)
        os.close(status_w)
        self.status_r = status_r
        assert self.child.stdin is not None and self.child.stdout is not None
        os.set_blocking(self.child.stdin.fileno(), False)
        os.set_blocking(self.child.stdout.fileno(), False)
        os.set_blocking(self.status_r, False)
        self.busy = True  # until the VM has booted
        self.interrupt_at = None
        self.to_vm = bytearray(self.replay)
        self.replay = bytearray()

    def _kill_child(self) -> None:
        child = self.child
        self.child = None
        if child is None:
            return
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        child.wait()
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if self.status_r >= 0:
            os.close(self.status_r)
            self.status_r = -1

    def hard_reset(self, why: str) -> None:
        """Power-cycle the VM (its flash stays)."""
        now = time.monotonic()
        self.resets = [t for t in self.resets if now - t < 30] + [now]
        if len(self.resets) > 5:
            raise VdevError(f"the MicroPython VM keeps failing ({why}); see {log_path(self.options.dir)}")
        print(f"sotto vdev: hard reset: {why}", file=sys.stderr, flush=True)
        self._kill_child()
        self._to_host(f"\r\n[sotto vdev] hard reset: {why}\r\n".encode())
        self._spawn()

    def close(self) -> None:
        if self.child is not None:
            with contextlib.suppress(ProcessLookupError):
                self.child.terminate()
            try:
                self.child.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        self._kill_child()
        for fd in (self.master, self.slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.master = self.slave = -1
        for f in (self.trace_in, self.trace_out):
            if f is not None:
                f.close()

    # -- data ----------------------------------------------------------
    def _to_host(self, data: bytes) -> None:
        self.to_host += data
        if len(self.to_host) > MAX_PENDING_OUT:
            # Nobody reads the port: drop the oldest output, as a USB CDC
            # board drops what no host collects.
            excess = len(self.to_host) - MAX_PENDING_OUT
            del self.to_host[:excess]
            self.dropped += excess

    def _from_host(self, data: bytes) -> None:
        if self.trace_in is not None:
            self.trace_in.write(data)
            self.trace_in.flush()
        if self.interrupt_at is not None:
            self.replay += data
        elif self.busy and _CTRL_C in data:
            self.interrupt_at = time.monotonic()
            self.replay += data[data.index(_CTRL_C) + 1:]
        self.to_vm += data

    def _flush(self) -> None:
        if self.to_host:
            try:
                n = os.write(self.master, self.to_host)
            except BlockingIOError:
                n = 0
            if n:
                if self.trace_out is not None:
                    self.trace_out.write(self.to_host[:n])
                    self.trace_out.flush()
                del self.to_host[:n]
        if self.to_vm and self.child is not None and self.child.stdin is not None:
            try:
                n = os.write(self.child.stdin.fileno(), self.to_vm)
            except BlockingIOError:
                n = 0
            except BrokenPipeError:
                n = len(self.to_vm)  # the VM died; the loop restarts it
            del self.to_vm[:n]

    # -- loop ----------------------------------------------------------
    def run(self, should_stop: Callable[[], bool]) -> None:
        """Move bytes until should_stop() is true."""
        sel = selectors.DefaultSelector()
        while not should_stop():
            child = self.child
            assert child is not None and child.stdout is not None
            sel.register(self.master, selectors.EVENT_READ | (selectors.EVENT_WRITE if self.to_host else 0))
            sel.register(child.stdout.fileno(), selectors.EVENT_READ)
            if self.status_r >= 0:
                sel.register(self.status_r, selectors.EVENT_READ)
            if self.to_vm and child.stdin is not None:
                sel.register(child.stdin.fileno(), selectors.EVENT_WRITE)
            try:
                events = sel.select(timeout=0.2)
            finally:
                for key in list(sel.get_map().values()):
                    sel.unregister(key.fileobj)
            vm_gone = False
            for key, mask in events:
                fd = key.fd
                if fd == self.master and mask & selectors.EVENT_READ:
                    try:
                        data = os.read(self.master, 65536)
                    except BlockingIOError:
                        data = b""
                    except OSError as e:  # EIO: cannot happen while we hold the slave
                        if e.errno != errno.EIO:
                            raise
                        data = b""
                    if data:
                        self._from_host(data)
                elif fd == child.stdout.fileno():
                    try:
                        data = os.read(fd, 65536)
                    except BlockingIOError:
                        continue
                    if data:
                        self._to_host(data)
                    else:
                        vm_gone = True
                elif fd == self.status_r:
                    try:
                        status = os.read(fd, 4096)
                    except BlockingIOError:
                        continue
                    if status:
                        self.busy = status[-1:] == b"B"
                        if not self.busy:
                            self.interrupt_at = None
                            self.replay = bytearray()
            self._flush()
            if vm_gone or child.poll() is not None:
                code = child.wait()
                self.hard_reset(f"the MicroPython VM exited with status {code}")
            elif self.interrupt_at is not None and time.monotonic() - self.interrupt_at > INTERRUPT_GRACE_S:
                self.hard_reset("the running program did not stop on Ctrl-C")


def _lock_dir(dir: Path) -> int:
    """Create DIR, take its pid-file lock and write our pid; return the fd."""
    dir.mkdir(parents=True, exist_ok=True)
    flash_dir(dir).mkdir(exist_ok=True)
    fd = os.open(pid_path(dir), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        pid = running_pid(dir)
        raise VdevAlreadyRunning(
            f"a virtual device is already running in {dir} (pid {pid}); use its port "
            f"({port_link(dir)}) or stop it with `sotto vdev stop --dir {dir}`") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def serve(options: VdevOptions, on_ready: Callable[[str], None]) -> int:
    """Run a virtual device in this process until SIGINT/SIGTERM.

    on_ready(port) is called once the port exists and the VM is starting.
    """
    options.validate()
    if not VM_PACKAGE.exists():
        raise VdevError("the MicroPython VM is not installed; run `make setup` (npm ci)")
    lock_fd = _lock_dir(options.dir)
    stopping = []

    def stop(signum: int, _frame: object) -> None:
        stopping.append(signum)

    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    bridge = _Bridge(options)
    link = port_link(options.dir)
    try:
        port = bridge.open()
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        link.symlink_to(port)
        on_ready(port)
        bridge.run(lambda: bool(stopping))
    finally:
        bridge.close()
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        for s, handler in old.items():
            signal.signal(s, handler)
        os.ftruncate(lock_fd, 0)
        os.close(lock_fd)
        with contextlib.suppress(FileNotFoundError):
            pid_path(options.dir).unlink()
    return 0


def _serve_args(options: VdevOptions) -> list[str]:
    args = ["--dir", str(options.dir), "--flash-kb", str(options.flash_kb), "--heap-kb", str(options.heap_kb)]
    if options.trace is not None:
        args += ["--trace", str(options.trace)]
    if options.report_version is not None:
        args += ["--report-version", options.report_version]
    return args


def start_detached(options: VdevOptions, timeout_s: float = 20.0) -> tuple[str, int]:
    """Start a virtual device in the background; return (port, pid) once it is up."""
    options.validate()
    pid = running_pid(options.dir)
    if pid is not None:
        raise VdevAlreadyRunning(
            f"a virtual device is already running in {options.dir} (pid {pid}); "
            f"stop it with `sotto vdev stop --dir {options.dir}`")
    options.dir.mkdir(parents=True, exist_ok=True)
    log = open(log_path(options.dir), "ab")  # noqa: SIM115
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "host_tools.vdev", "serve", "--detached", *_serve_args(options)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, start_new_session=True,
            cwd=REPO_ROOT)
    finally:
        log.close()
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    line = b""
    deadline = time.monotonic() + timeout_s
    while not line.endswith(b"\n") and time.monotonic() < deadline:
        if sel.select(timeout=max(0.0, deadline - time.monotonic())):
            chunk = os.read(proc.stdout.fileno(), 256)
            if not chunk:
                break
            line += chunk
    sel.close()
    proc.stdout.close()
    port = line.decode(errors="replace").strip()
    if not port.startswith("/"):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()
        detail = _tail(log_path(options.dir))
        raise VdevError(f"the virtual device did not start{': ' + detail if detail else ''}")
    return port, proc.pid


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def stop(dir: Path, timeout_s: float = 5.0) -> int:
    """Stop the virtual device running in DIR; return its pid."""
    pid = running_pid(dir)
    if pid is None:
        raise VdevNotRunning(f"no virtual device is running in {dir}")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if running_pid(dir) is None:
            return pid
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    with contextlib.suppress(FileNotFoundError):
        port_link(dir).unlink()
    return pid


def add_options(parser: argparse.ArgumentParser) -> None:
    """The options shared by `sotto vdev start` and `python -m host_tools.vdev serve`."""
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                        help="folder for the device's flash (DIR/flash), pid file and port link "
                             f"(default: $SOTTO_VDEV_DIR or {DEFAULT_DIR})")
    parser.add_argument("--flash-kb", type=int, default=DEFAULT_FLASH_KB, metavar="N",
                        help=f"size of the virtual flash in KB (default {DEFAULT_FLASH_KB}); "
                             "small values let you test a full filesystem")
    parser.add_argument("--heap-kb", type=int, default=DEFAULT_HEAP_KB, metavar="N",
                        help=f"MicroPython heap in KB (default {DEFAULT_HEAP_KB})")
    parser.add_argument("--trace", type=Path, metavar="PREFIX",
                        help="record every byte that crosses the port into PREFIX.in and PREFIX.out")
    parser.add_argument("--report-version", metavar="X.Y.Z",
                        help="make the device report this MicroPython release in sys.implementation "
                             "(to see how the tools treat a board running another release)")


def options_from(args: argparse.Namespace) -> VdevOptions:
    return VdevOptions(dir=args.dir.expanduser().resolve(), flash_kb=args.flash_kb,
                       heap_kb=args.heap_kb, trace=args.trace.resolve() if args.trace else None,
                       report_version=args.report_version)


def main(argv: list[str] | None = None) -> int:
    """`python -m host_tools.vdev serve ...`: the process behind `sotto vdev start`."""
    parser = argparse.ArgumentParser(prog="python -m host_tools.vdev")
    sub = parser.add_subparsers(dest="cmd", required=True)
    serve_p = sub.add_parser("serve", help="run a virtual device in the foreground")
    add_options(serve_p)
    serve_p.add_argument("--detached", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    def ready(port: str) -> None:
        sys.stdout.write(port + "\n")
        sys.stdout.flush()
        if args.detached:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.close(null)

    try:
        return serve(options_from(args), ready)
    except SottoError as e:
        print(f"sotto vdev: error: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
