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

Inside: layout (options, errors, the folder), bridge (the pty and the VM process),
process (serve, start_detached, stop; `python -m host_tools.vdev` runs __main__).
"""

from host_tools.vdev.layout import (
    DEFAULT_DIR,
    DEFAULT_FLASH_KB,
    DEFAULT_HEAP_KB,
    INTERRUPT_GRACE_S,
    MAX_PENDING_OUT,
    VDEV_SCRIPT,
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
from host_tools.vdev.process import add_options, main, options_from, serve, start_detached, stop

__all__ = [
    "DEFAULT_DIR", "DEFAULT_FLASH_KB", "DEFAULT_HEAP_KB", "INTERRUPT_GRACE_S", "MAX_PENDING_OUT",
    "VDEV_SCRIPT", "VdevAlreadyRunning", "VdevError", "VdevNotRunning", "VdevOptions", "add_options",
    "flash_dir", "log_path", "main", "options_from", "pid_path", "port_link", "running_pid", "serve",
    "start_detached", "stop",
]
