"""Running a virtual device: in the foreground (serve), detached (start_detached), stopping
it, and the options `sotto vdev start` and `python -m host_tools.vdev serve` share."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from host_tools.errors import SottoError
from host_tools.vdev.bridge import _Bridge
from host_tools.vdev.layout import (
    DEFAULT_DIR,
    DEFAULT_FLASH_KB,
    DEFAULT_HEAP_KB,
    VdevAlreadyRunning,
    VdevError,
    VdevNotRunning,
    VdevOptions,
    flash_dir,
    log_path,
    pid_path,
    port_link,
    running_pid,
)
from host_tools.vm import REPO_ROOT, VM_PACKAGE


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
