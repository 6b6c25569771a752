"""The bridge: the pseudo-terminal, the MicroPython VM process and the bytes between
them; hard resets (the USB-serial chip and the power supply of the package docstring)."""

from __future__ import annotations

import contextlib
import errno
import os
import pty
import selectors
import subprocess
import sys
import time
import tty
from collections.abc import Callable

from host_tools.vdev.layout import (
    _CTRL_C,
    INTERRUPT_GRACE_S,
    MAX_PENDING_OUT,
    VDEV_SCRIPT,
    VdevError,
    VdevOptions,
    flash_dir,
    log_path,
)
from host_tools.vm import REPO_ROOT, node_binary


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
